// A hostile or broken peer (issue 10 section 4): CDC messages with impossible
// cursors, wrong tokens or old sequence numbers; malformed and unsolicited
// LLC messages; broken, truncated and mismatching CLC messages from a raw
// TCP peer on either side; a peer whose link never comes up. Each case ends
// in a counted drop, a Decline or a clean close, within the wait times.
#include <poll.h>

#include <cstring>

#include "smc/wire/cdc.h"
#include "tests/smc/smc_fixture.h"

namespace droce::smc {

// Sends raw bytes as one LLC-sized SEND on a link (test peer).
class LinkTestPeer {
 public:
  static bool send_raw(Link* l, const std::vector<uint8_t>& bytes) { return l->send_bytes(bytes.data(), bytes.size(), 1000); }
};

namespace test {
namespace {

using Clock = std::chrono::steady_clock;

class SmcHostile : public ::testing::Test {
 protected:
  void SetUp() override {
    Config c = test_config();
    c.clc_wait_ms = 1500;
    c.llc_wait_ms = 500;
    client_ = make_runtime(c);
    server_ = make_runtime(c);
    ASSERT_NE(client_, nullptr);
    ASSERT_NE(server_, nullptr);
  }
  void TearDown() override {
    client_.reset();
    server_.reset();
  }

  // Posts a crafted CDC from the server's side of `p` to the client.
  void forge_cdc(CorePair& p, const wire::CdcMsg& m) {
    Link* l = p.server.conn->lgr()->active_link();
    ASSERT_NE(l, nullptr);
    const int slot = l->try_get_slot();
    ASSERT_GE(slot, 0);
    ASSERT_TRUE(l->post_cdc(uint32_t(slot), p.server.conn, m, nullptr, 0, wire::Cursor{}));
  }

  std::unique_ptr<Runtime> client_, server_;
};

// --- CDC ------------------------------------------------------------------------

TEST_F(SmcHostile, CdcProducerCursorBeyondTheRmbAborts) {
  CorePair p;
  core_pair(client_.get(), server_.get(), &p);
  ASSERT_TRUE(p.client.smc);
  wire::CdcMsg m;
  m.seqno = 1;
  m.token = p.client.conn->token();
  m.prod.count = p.client.conn->rmb()->size + 10;  // beyond the buffer
  forge_cdc(p, m);
  ASSERT_TRUE(eventually([&] { return p.client.conn->error() == ECONNRESET; }, 5000));
  char b;
  EXPECT_EQ(p.client.conn->recv(&b, 1, true), -ECONNRESET);
  p.client.conn->release();
  p.server.conn->release();
}

TEST_F(SmcHostile, CdcProducerMoreThanOneLapAheadAborts) {
  CorePair p;
  core_pair(client_.get(), server_.get(), &p);
  ASSERT_TRUE(p.client.smc);
  wire::CdcMsg m;
  m.seqno = 1;
  m.token = p.client.conn->token();
  m.prod.wrap = 1;
  m.prod.count = 100;  // a lap and 100 bytes ahead of a consumer at 0: overwrites unread data
  forge_cdc(p, m);
  ASSERT_TRUE(eventually([&] { return p.client.conn->error() == ECONNRESET; }, 5000));
  p.client.conn->release();
  p.server.conn->release();
}

TEST_F(SmcHostile, CdcConsumerCursorBeyondWhatWeProducedAborts) {
  CorePair p;
  core_pair(client_.get(), server_.get(), &p);
  ASSERT_TRUE(p.client.smc);
  wire::CdcMsg m;
  m.seqno = 1;
  m.token = p.client.conn->token();
  m.cons.count = 5000;  // we never wrote anything into the peer's RMB
  forge_cdc(p, m);
  ASSERT_TRUE(eventually([&] { return p.client.conn->error() == ECONNRESET; }, 5000));
  p.client.conn->release();
  p.server.conn->release();
}

TEST_F(SmcHostile, CdcWithUnknownTokenIsCountedAndDropped) {
  CorePair p;
  core_pair(client_.get(), server_.get(), &p);
  ASSERT_TRUE(p.client.smc);
  Link* cl = p.client.conn->lgr()->active_link();
  const uint64_t before = cl->counters().rx_unknown_token.load();
  wire::CdcMsg m;
  m.seqno = 1;
  m.token = p.client.conn->token() ^ 0x5A5A5A5A;
  m.prod.count = 10;
  forge_cdc(p, m);
  ASSERT_TRUE(eventually([&] { return cl->counters().rx_unknown_token.load() == before + 1; }, 5000));
  EXPECT_EQ(p.client.conn->error(), 0);
  EXPECT_FALSE(p.client.conn->readable());
  p.client.conn->release();
  p.server.conn->release();
}

TEST_F(SmcHostile, CdcSequenceGoingBackwardsIsIgnored) {
  CorePair p;
  core_pair(client_.get(), server_.get(), &p);
  ASSERT_TRUE(p.client.smc);
  Connection* c = p.client.conn;
  wire::CdcMsg m;
  m.token = c->token();
  m.seqno = 10;
  m.prod.count = 100;
  forge_cdc(p, m);
  m.seqno = 5;  // older: must not move the cursor
  m.prod.count = 300;
  forge_cdc(p, m);
  ASSERT_TRUE(eventually([&] { return c->stats().cdc_received.load() == 2; }, 5000));
  std::vector<char> buf(1000);
  EXPECT_EQ(c->recv(buf.data(), buf.size(), true), 100);
  EXPECT_EQ(c->error(), 0);
  c->release();
  p.server.conn->release();
}

// --- LLC ------------------------------------------------------------------------

TEST_F(SmcHostile, MalformedLlcIsCountedAndTheLinkStays) {
  CorePair p;
  core_pair(client_.get(), server_.get(), &p);
  ASSERT_TRUE(p.client.smc);
  Link* sl = p.server.conn->lgr()->active_link();
  Link* cl = p.client.conn->lgr()->active_link();
  const uint64_t before = cl->counters().rx_bad_msg.load();
  std::vector<uint8_t> unknown(44, 0);
  unknown[0] = 0x0A;  // Alibaba's out-of-tree ANNOUNCE_CREDITS: not Linux's
  unknown[1] = 44;
  std::vector<uint8_t> bad_len(44, 0);
  bad_len[0] = 0x07;  // TEST LINK with a v1 length byte other than 44
  bad_len[1] = 40;
  std::vector<uint8_t> truncated = {0x01, 0x2C, 0x00, 0x00, 0x11};
  ASSERT_TRUE(LinkTestPeer::send_raw(sl, unknown));
  ASSERT_TRUE(LinkTestPeer::send_raw(sl, bad_len));
  ASSERT_TRUE(LinkTestPeer::send_raw(sl, truncated));
  ASSERT_TRUE(eventually([&] { return cl->counters().rx_bad_msg.load() == before + 3; }, 5000));
  EXPECT_TRUE(cl->active());
  // The connection still carries data.
  const char msg[] = "still fine";
  ASSERT_EQ(p.server.conn->send(msg, sizeof(msg), false), long(sizeof(msg)));
  char got[sizeof(msg)];
  EXPECT_EQ(p.client.conn->recv(got, sizeof(got), false), long(sizeof(msg)));
  p.client.conn->release();
  p.server.conn->release();
}

TEST_F(SmcHostile, TestLinkIsEchoed) {
  CorePair p;
  core_pair(client_.get(), server_.get(), &p);
  ASSERT_TRUE(p.client.smc);
  LinkGroup* g = p.server.conn->lgr();
  wire::LlcTestLink t;
  t.hdr.type = wire::LlcType::kTestLink;
  t.hdr.v2 = true;
  for (int i = 0; i < 16; ++i) t.user_data[i] = uint8_t(0xA0 + i);
  wire::LlcMsg resp;
  ASSERT_TRUE(g->llc_request(g->active_link(), t, &resp, 2000));
  const auto* r = std::get_if<wire::LlcTestLink>(&resp);
  ASSERT_NE(r, nullptr);
  EXPECT_TRUE(r->hdr.flags & wire::kLlcFlagResp);
  EXPECT_EQ(r->user_data, t.user_data);
  p.client.conn->release();
  p.server.conn->release();
}

TEST_F(SmcHostile, UnsolicitedAddLinkIsRejected) {
  CorePair p;
  core_pair(client_.get(), server_.get(), &p);
  ASSERT_TRUE(p.client.smc);
  LinkGroup* g = p.server.conn->lgr();
  wire::LlcAddLink a;
  a.hdr.type = wire::LlcType::kAddLink;
  a.hdr.v2 = true;
  a.sender_gid = server_->device()->gid;
  a.sender_qpn = 0x123;
  a.link_num = 7;
  a.mtu = 3;
  a.has_v2_ext = true;
  wire::LlcMsg resp;
  ASSERT_TRUE(g->llc_request(g->active_link(), a, &resp, 2000));
  const auto* r = std::get_if<wire::LlcAddLink>(&resp);
  ASSERT_NE(r, nullptr);
  EXPECT_TRUE(r->hdr.flags & wire::kLlcFlagResp);
  EXPECT_TRUE(r->hdr.flags & wire::kLlcAddLinkRejected);
  p.client.conn->release();
  p.server.conn->release();
}

TEST_F(SmcHostile, DeleteLinkFromThePeerEndsTheGroup) {
  CorePair p;
  core_pair(client_.get(), server_.get(), &p);
  ASSERT_TRUE(p.client.smc);
  LinkGroup* sg = p.server.conn->lgr();
  LinkGroup* cg = p.client.conn->lgr();
  cg->use();  // observed after its end: not reaped meanwhile
  wire::LlcDeleteLink d;
  d.hdr.type = wire::LlcType::kDeleteLink;
  d.hdr.v2 = true;
  d.hdr.flags = wire::kLlcDeleteLinkAll | wire::kLlcDeleteLinkOrderly;
  d.reason = wire::kLlcDelProgInitTerm;
  wire::LlcMsg resp;
  ASSERT_TRUE(sg->llc_request(sg->active_link(), d, &resp, 2000));
  EXPECT_NE(std::get_if<wire::LlcDeleteLink>(&resp), nullptr);
  EXPECT_TRUE(eventually([&] { return cg->terminating(); }, 5000));
  cg->unuse();
  ASSERT_TRUE(eventually([&] { return p.client.conn->error() == ECONNRESET; }, 5000));
  p.client.conn->release();
  p.server.conn->release();
}

// --- CLC from a raw TCP client against a droce server ---------------------------

struct RawClient {
  TcpPair tcp;
  ClcOutcome out;
  std::thread server_thread;
};

// Starts clc_accept on the server end; the test writes raw bytes as client.
void raw_client(Runtime* server, RawClient* r) {
  ASSERT_TRUE(tcp_pair(&r->tcp));
  r->server_thread = std::thread([r, server] { r->out = clc_accept(*server, r->tcp.server); });
}

std::vector<uint8_t> proposal_bytes(const wire::ClcProposal& p) {
  std::vector<uint8_t> b(wire::kClcMaxLen);
  b.resize(wire::encode_proposal(p, b));
  return b;
}

wire::ClcProposal good_proposal(Runtime* rt) {
  wire::ClcProposal p;
  p.peer_id = rt->system_id();
  p.gid = rt->device()->gid;
  p.mac = rt->device()->mac;
  p.eid_cnt = 1;
  p.eids[0] = rt->config().ueid;
  p.roce_v2_gid = rt->device()->gid;
  return p;
}

// Reads a Decline from fd (within 5 s); its diagnosis, or 0.
uint32_t read_decline(int fd) {
  uint8_t buf[64];
  size_t have = 0;
  pollfd pf{fd, POLLIN, 0};
  while (have < 8 && ::poll(&pf, 1, 5000) == 1) {
    const ssize_t n = ::recv(fd, buf + have, sizeof(buf) - have, 0);
    if (n <= 0) break;
    have += size_t(n);
  }
  wire::ClcHeader h;
  if (have < 8 || wire::peek_header(std::span<const uint8_t>(buf, have), &h) != wire::ClcError::kOk) return 0;
  while (have < h.length && ::poll(&pf, 1, 5000) == 1) {
    const ssize_t n = ::recv(fd, buf + have, sizeof(buf) - have, 0);
    if (n <= 0) break;
    have += size_t(n);
  }
  wire::ClcDecline d;
  if (wire::decode_decline(std::span<const uint8_t>(buf, h.length), &d) != wire::ClcError::kOk) return 0;
  return d.diag;
}

TEST_F(SmcHostile, ClcNotAProposalIsPlainTcp) {
  RawClient r;
  raw_client(server_.get(), &r);
  const char http[] = "GET / HTTP/1.0\r\n\r\n";
  ASSERT_EQ(::send(r.tcp.client, http, sizeof(http) - 1, 0), ssize_t(sizeof(http) - 1));
  r.server_thread.join();
  EXPECT_FALSE(r.out.smc);
  EXPECT_EQ(r.out.error, 0);
  EXPECT_EQ(r.out.fallback_reason, wire::decline::kPeerNoSmc);
  char got[64];
  EXPECT_EQ(::recv(r.tcp.server, got, sizeof(got), 0), ssize_t(sizeof(http) - 1)) << "the bytes stay for the application";
}

TEST_F(SmcHostile, ClcBrokenHeadersCloseWithoutDecline) {
  const uint64_t before = server_->counters().clc_malformed.load();
  std::vector<std::vector<uint8_t>> cases;
  auto good = proposal_bytes(good_proposal(client_.get()));
  auto bad_len = good;
  bad_len[5] = 0;
  bad_len[6] = 5;  // length below header + trailer
  cases.push_back(bad_len);
  auto bad_version = good;
  bad_version[7] = 0x02;  // version 0
  cases.push_back(bad_version);
  auto bad_type = good;
  bad_type[4] = 2;  // an Accept from a client
  cases.push_back(bad_type);
  auto too_many_eids = good;
  too_many_eids[80] = 9;  // eid_cnt > 8
  cases.push_back(too_many_eids);
  auto bad_trailer = good;
  bad_trailer[bad_trailer.size() - 1] ^= 0xFF;
  cases.push_back(bad_trailer);
  auto huge = good;
  huge[5] = 0x40;  // 16 KiB: longer than any CLC message
  cases.push_back(huge);
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE("case " + std::to_string(i));
    RawClient r;
    raw_client(server_.get(), &r);
    ASSERT_EQ(::send(r.tcp.client, cases[i].data(), cases[i].size(), 0), ssize_t(cases[i].size()));
    r.server_thread.join();
    EXPECT_FALSE(r.out.smc);
    EXPECT_NE(r.out.error, 0) << "a malformed CLC message closes the connection (B2)";
  }
  EXPECT_GE(server_->counters().clc_malformed.load(), before + 5);
}

TEST_F(SmcHostile, ClcTruncatedProposalEndsWithinTheWait) {
  RawClient r;
  raw_client(server_.get(), &r);
  auto good = proposal_bytes(good_proposal(client_.get()));
  const auto t0 = Clock::now();
  ASSERT_EQ(::send(r.tcp.client, good.data(), 60, 0), 60);  // then silence
  r.server_thread.join();
  EXPECT_FALSE(r.out.smc);
  EXPECT_NE(r.out.error, 0);
  EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(server_->config().clc_wait_ms + 2000));
}

TEST_F(SmcHostile, ClcDeclinesWithLinuxCodes) {
  struct Case {
    const char* name;
    void (*mutate)(wire::ClcProposal*);
    uint32_t want;
  };
  const Case cases[] = {
      {"UEID mismatch", [](wire::ClcProposal* p) { wire::make_ueid("SOMEONE-ELSE", &p->eids[0]); },
       wire::decline::kNoSmcDev},
      {"no UEID", [](wire::ClcProposal* p) { p->eid_cnt = 0; }, wire::decline::kNoUeid},
      {"GID not IPv4-mapped",
       [](wire::ClcProposal* p) {
         p->roce_v2_gid = {0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
       },
       wire::decline::kNoSmcRDev},
      {"no version droce offers", [](wire::ClcProposal* p) {
         p->typev2 = wire::SmcType::kNone;
         p->typev1 = wire::SmcType::kD;  // SMC-D only
         p->ipv4_prefix_len = 8;
       },
       wire::decline::kNoSmcDev},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    wire::ClcProposal p = good_proposal(client_.get());
    c.mutate(&p);
    auto bytes = proposal_bytes(p);
    ASSERT_FALSE(bytes.empty());
    RawClient r;
    raw_client(server_.get(), &r);
    ASSERT_EQ(::send(r.tcp.client, bytes.data(), bytes.size(), 0), ssize_t(bytes.size()));
    EXPECT_EQ(read_decline(r.tcp.client), c.want);
    r.server_thread.join();
    EXPECT_FALSE(r.out.smc);
    EXPECT_EQ(r.out.error, 0) << "declined, then TCP";
    EXPECT_EQ(r.out.fallback_reason, c.want);
  }
}

// A client whose QP never answers: the server's CONFIRM LINK goes nowhere.
TEST_F(SmcHostile, ClientWhoseLinkNeverComesUp) {
  RawClient r;
  raw_client(server_.get(), &r);
  auto prop = proposal_bytes(good_proposal(client_.get()));
  ASSERT_EQ(::send(r.tcp.client, prop.data(), prop.size(), 0), ssize_t(prop.size()));
  // Read the Accept, answer with a Confirm naming a QP nobody has.
  uint8_t buf[wire::kClcMaxLen];
  size_t have = 0;
  pollfd pf{r.tcp.client, POLLIN, 0};
  while (have < 160 && ::poll(&pf, 1, 5000) == 1) {
    const ssize_t n = ::recv(r.tcp.client, buf + have, sizeof(buf) - have, 0);
    ASSERT_GT(n, 0);
    have += size_t(n);
  }
  wire::ClcAcceptConfirm acc;
  ASSERT_EQ(wire::decode_accept_confirm(std::span<const uint8_t>(buf, have), wire::ClcType::kAccept, &acc),
            wire::ClcError::kOk);
  wire::ClcAcceptConfirm conf = acc;
  conf.type = wire::ClcType::kConfirm;
  conf.qpn = 0xABCDE;  // no such QP
  conf.gid_cnt = 1;
  conf.gids[0] = client_->device()->gid;
  std::vector<uint8_t> cb(wire::kClcMaxLen);
  cb.resize(wire::encode_accept_confirm(conf, cb));
  const auto t0 = Clock::now();
  ASSERT_EQ(::send(r.tcp.client, cb.data(), cb.size(), 0), ssize_t(cb.size()));
  EXPECT_EQ(read_decline(r.tcp.client), wire::decline::kTimeoutCl);
  r.server_thread.join();
  EXPECT_FALSE(r.out.smc);
  EXPECT_EQ(r.out.fallback_reason, wire::decline::kTimeoutCl);
  EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(server_->config().llc_wait_ms + 3000));
}

// --- CLC from a raw TCP server against a droce client ---------------------------

struct RawServer {
  TcpPair tcp;
  ClcOutcome out;
  std::thread client_thread;
  std::vector<uint8_t> proposal;
};

void raw_server(Runtime* client, RawServer* r) {
  ASSERT_TRUE(tcp_pair(&r->tcp));
  r->client_thread = std::thread([r, client] { r->out = clc_connect(*client, r->tcp.client); });
  uint8_t buf[wire::kClcMaxLen];
  size_t have = 0;
  pollfd pf{r->tcp.server, POLLIN, 0};
  while (::poll(&pf, 1, 2000) == 1) {
    const ssize_t n = ::recv(r->tcp.server, buf + have, sizeof(buf) - have, 0);
    if (n <= 0) break;
    have += size_t(n);
    wire::ClcHeader h;
    if (have >= 8 && wire::peek_header(std::span<const uint8_t>(buf, have), &h) == wire::ClcError::kOk &&
        have >= h.length) {
      break;
    }
  }
  r->proposal.assign(buf, buf + have);
}

TEST_F(SmcHostile, ServerAnswersGarbage) {
  RawServer r;
  raw_server(client_.get(), &r);
  ASSERT_GE(r.proposal.size(), 124u);
  const char banner[] = "SSH-2.0-OpenSSH\r\n";
  ::send(r.tcp.server, banner, sizeof(banner) - 1, 0);
  r.client_thread.join();
  EXPECT_FALSE(r.out.smc);
  EXPECT_EQ(r.out.fallback_reason, wire::decline::kPeerNoSmc);
}

TEST_F(SmcHostile, ServerSendsMalformedAccept) {
  RawServer r;
  raw_server(client_.get(), &r);
  std::vector<uint8_t> acc(108, 0);
  std::memcpy(acc.data(), wire::kEyecatcherSmcr.data(), 4);
  acc[4] = 2;
  acc[5] = 0;
  acc[6] = 108;
  acc[7] = 0x20;
  std::memcpy(acc.data() + 104, wire::kEyecatcherSmcr.data(), 4);
  acc[50] = 0xF3;  // RMBE size code 15: 512 MiB, beyond SMC-R's 512 KiB
  ::send(r.tcp.server, acc.data(), acc.size(), 0);
  r.client_thread.join();
  EXPECT_FALSE(r.out.smc);
  EXPECT_EQ(r.out.error, EPROTO);
}

TEST_F(SmcHostile, ServerDeclines) {
  RawServer r;
  raw_server(client_.get(), &r);
  wire::ClcDecline d;
  d.diag = wire::decline::kNoSmcDev;
  uint8_t b[wire::kClcDeclineV2Len];
  const size_t n = wire::encode_decline(d, b);
  ::send(r.tcp.server, b, n, 0);
  r.client_thread.join();
  EXPECT_FALSE(r.out.smc);
  EXPECT_EQ(r.out.error, 0);
  EXPECT_EQ(r.out.fallback_reason, wire::decline::kPeerDecl);
  EXPECT_EQ(r.out.peer_diagnosis, wire::decline::kNoSmcDev);
}

// An Accept naming a QP nobody has, and no CONFIRM LINK ever: the client
// declines with 0x02010000 within the LLC wait, never hangs.
TEST_F(SmcHostile, ServerWhoseLinkNeverComesUp) {
  RawServer r;
  raw_server(client_.get(), &r);
  wire::ClcAcceptConfirm acc;
  acc.type = wire::ClcType::kAccept;
  acc.first_contact = true;
  acc.peer_id = server_->system_id();
  acc.gid = server_->device()->gid;
  acc.mac = server_->device()->mac;
  acc.qpn = 0x5432;
  acc.rkey = 0x1234;
  acc.rmbe_alert_token = 77;
  acc.rmbe_size = 2;
  acc.mtu = 3;
  acc.rmb_vaddr = 0x10000;
  acc.psn = 1;
  acc.eid = client_->config().ueid;
  std::vector<uint8_t> b(wire::kClcMaxLen);
  b.resize(wire::encode_accept_confirm(acc, b));
  const auto t0 = Clock::now();
  ::send(r.tcp.server, b.data(), b.size(), 0);
  // The client's Confirm, then (no CONFIRM LINK) its Decline.
  uint8_t in[512];
  size_t have = 0;
  pollfd pf{r.tcp.server, POLLIN, 0};
  while (::poll(&pf, 1, 6000) == 1) {
    const ssize_t n = ::recv(r.tcp.server, in + have, sizeof(in) - have, 0);
    if (n <= 0) break;
    have += size_t(n);
    if (have > 164 + 16 && in[164 + 16 + 4] == 4) break;
  }
  r.client_thread.join();
  EXPECT_FALSE(r.out.smc);
  EXPECT_EQ(r.out.fallback_reason, wire::decline::kTimeoutCl);
  EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(2 * client_->config().llc_wait_ms + 2000));
}

}  // namespace
}  // namespace test
}  // namespace droce::smc
