// Capture interoperability (issue 4 section 7, "Captures"): frames the engine
// sends, recorded by the port capture, pass droce-pcap and tshark; request
// frames of real rxe captures (tests/data/rxe-captures) replayed into a
// droce responder are accepted (IBTA vol. 1 ch. 9, annex A17).
#include <pcap/pcap.h>
#include <rte_mbuf.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "nic/wire/icrc.h"
#include "nic/wire/ipv4.h"
#include "nic/wire/packet.h"
#include "tests/common/test_data.h"
#include "tests/nic/engine/engine_fixture.h"

namespace droce::nic::test {
namespace {

// Runs cmd through the shell; returns its stdout and sets *status to the exit status.
std::string run(const std::string& cmd, int* status) {
  std::string out;
  FILE* f = popen(cmd.c_str(), "r");
  if (f == nullptr) {
    *status = -1;
    return out;
  }
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  const int rc = pclose(f);
  *status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  return out;
}

bool have_tshark() {
  int st = 0;
  run("command -v tshark >/dev/null 2>&1", &st);
  return st == 0;
}

struct Frame {
  std::vector<uint8_t> bytes;
};

// Every frame of a pcap file (empty on error, with *err set).
std::vector<Frame> read_pcap(const std::string& path, std::string* err) {
  std::vector<Frame> out;
  char ebuf[PCAP_ERRBUF_SIZE];
  pcap_t* p = pcap_open_offline(path.c_str(), ebuf);
  if (p == nullptr) {
    *err = ebuf;
    return out;
  }
  pcap_pkthdr* h;
  const u_char* data;
  while (pcap_next_ex(p, &h, &data) == 1)
    out.push_back({std::vector<uint8_t>(data, data + h->caplen)});
  pcap_close(p);
  return out;
}

// Parses a private copy (ICRC verification masks in place); false when not a good RoCEv2 frame.
bool parse(std::vector<uint8_t>& bytes, wire::PacketView* v) {
  return wire::parse_frame(bytes.data(), bytes.size(), v) == wire::ParseError::kOk;
}

// ---------------------------------------------------------------------------
// a) Frames the engine sends, captured on both ports of a pair.

class CaptureTest : public EngineTest {
 protected:
  void SetUp() override {
    path_ = "/tmp/droce-capture-interop-" + std::to_string(getpid()) + ".pcap";
    PortConfig ca = test_config("10.9.0.1"), cb = test_config("10.9.0.2");
    ca.capture_path = path_;
    cb.capture_path = path_;
    auto pair = make_port_pair(ca, cb);
    ASSERT_TRUE(pair.is_ok()) << pair.status().message();
    pair_ = std::make_unique<PortPair>(std::move(pair.value()));
    make_side(&pair_->a(), &a_);
    make_side(&pair_->b(), &b_);
  }
  void TearDown() override {
    EngineTest::TearDown();
    std::remove(path_.c_str());
  }

  void post_recv(Qp* qp, const Buffer& b, uint64_t wr_id, uint32_t off, uint32_t len) {
    Sge s{b.addr() + off, len, b.key};
    ASSERT_EQ(qp->post_recv(wr_id, &s, 1), 0);
  }
  void post(Qp* qp, SendWqe w, const Buffer& b, uint32_t off, uint32_t len) {
    Sge s{b.addr() + off, len, b.key};
    w.num_sge = 1;
    w.length = len;
    ASSERT_EQ(qp->post_send(w, &s, nullptr), 0);
  }
  void expect_ok(CompletionQueue* cq, size_t n, const char* what) {
    auto c = wait_cqes(cq, n);
    ASSERT_EQ(c.size(), n) << what;
    for (const Cqe& e : c) EXPECT_EQ(e.status, WcStatus::kSuccess) << what << " wr " << e.wr_id;
  }

  void poll_once() {
    {
      auto l = a_.dev->lock_engine();
      a_.dev->poll(monotonic_now());
    }
    auto l = b_.dev->lock_engine();
    b_.dev->poll(monotonic_now());
  }

  std::string path_;
};

TEST_F(CaptureTest, EngineFramesPassDrocePcapAndTshark) {
  constexpr uint32_t kAll =
      kAccessLocalWrite | kAccessRemoteWrite | kAccessRemoteRead | kAccessRemoteAtomic;
  Buffer src = make_buffer(a_, 64 * 1024, kAll, 0x5A);
  Buffer dst = make_buffer(b_, 64 * 1024, kAll, 0);
  for (size_t i = 0; i < src.bytes.size(); ++i) src.bytes[i] = uint8_t(i * 7 + 3);

  // RC: multi-packet SEND, WRITE, READ, both atomics (path MTU 1024).
  Qp* ra = make_qp(a_, QpType::kRc);
  Qp* rb = make_qp(b_, QpType::kRc);
  connect(a_, ra, b_, rb);
  connect(b_, rb, a_, ra);
  post_recv(rb, dst, 1, 0, 8192);
  post(ra, wqe(WrOpcode::kSend, 1), src, 0, 3000);
  expect_ok(b_.rcq, 1, "rc send recv");
  expect_ok(a_.scq, 1, "rc send");
  SendWqe w = wqe(WrOpcode::kRdmaWrite, 2);
  w.rkey = dst.key;
  w.remote_addr = dst.addr() + 8192;
  post(ra, w, src, 0, 5000);
  w = wqe(WrOpcode::kRdmaRead, 3);
  w.rkey = dst.key;
  w.remote_addr = dst.addr() + 8192;
  post(ra, w, src, 16384, 4000);
  w = wqe(WrOpcode::kFetchAdd, 4);
  w.rkey = dst.key;
  w.remote_addr = dst.addr() + 32768;
  w.compare_add = 5;
  post(ra, w, src, 20480, 8);
  w = wqe(WrOpcode::kCmpSwap, 5);
  w.rkey = dst.key;
  w.remote_addr = dst.addr() + 32768;
  w.compare_add = 5;
  w.swap = 77;
  post(ra, w, src, 20488, 8);
  expect_ok(a_.scq, 4, "rc write/read/atomics");
  EXPECT_EQ(0, std::memcmp(dst.bytes.data() + 8192, src.bytes.data(), 5000));
  EXPECT_EQ(0, std::memcmp(src.bytes.data() + 16384, src.bytes.data(), 4000));
  uint64_t word;
  std::memcpy(&word, dst.bytes.data() + 32768, 8);
  EXPECT_EQ(word, 77u);

  // RNR NAK: a SEND with no receive posted; the receive arrives later.
  post(ra, wqe(WrOpcode::kSend, 6), src, 0, 100);
  for (int i = 0; i < 10; ++i) poll_once();
  post_recv(rb, dst, 2, 0, 8192);
  expect_ok(b_.rcq, 1, "rnr recv");
  expect_ok(a_.scq, 1, "rnr send");

  // UC: multi-packet SEND and WRITE.
  Qp* ua = make_qp(a_, QpType::kUc);
  Qp* ub = make_qp(b_, QpType::kUc);
  connect(a_, ua, b_, ub);
  connect(b_, ub, a_, ua);
  post_recv(ub, dst, 3, 40000, 4000);
  post(ua, wqe(WrOpcode::kSend, 7), src, 0, 2500);
  w = wqe(WrOpcode::kRdmaWrite, 8);
  w.rkey = dst.key;
  w.remote_addr = dst.addr() + 45000;
  post(ua, w, src, 0, 3000);
  expect_ok(b_.rcq, 1, "uc recv");
  expect_ok(a_.scq, 2, "uc sends");
  pump([&] { return std::memcmp(dst.bytes.data() + 45000, src.bytes.data(), 3000) == 0; });
  EXPECT_EQ(0, std::memcmp(dst.bytes.data() + 45000, src.bytes.data(), 3000));

  // UD: one datagram.
  Qp* da = make_qp(a_, QpType::kUd);
  Qp* db = make_qp(b_, QpType::kUd);
  connect(a_, da, b_, db);
  connect(b_, db, a_, da);
  const uint32_t ah = a_.dev->create_ah(a_.pd, av_to(b_)).value();
  post_recv(db, dst, 4, 50000, 40 + 512);
  w = wqe(WrOpcode::kSend, 9);
  w.ah = ah;
  w.remote_qpn = db->qpn();
  w.remote_qkey = 0x11111111;
  post(da, w, src, 0, 512);
  expect_ok(b_.rcq, 1, "ud recv");
  expect_ok(a_.scq, 1, "ud send");

  // NAK: a WRITE with a key the responder does not know (remote access error).
  w = wqe(WrOpcode::kRdmaWrite, 10);
  w.rkey = dst.key + 0x100;
  w.remote_addr = dst.addr();
  post(ra, w, src, 0, 64);
  auto c = wait_cqes(a_.scq, 1);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].status, WcStatus::kRemAccessErr);

  // Close the ports: the capture file is complete afterwards.
  a_.dev.reset();
  b_.dev.reset();
  pair_.reset();

  // Our own reading: every RoCEv2 frame parses with a good ICRC; ACK, RNR NAK and NAK present.
  std::string err;
  auto frames = read_pcap(path_, &err);
  ASSERT_FALSE(frames.empty()) << err;
  int acks = 0, rnr_naks = 0, naks = 0;
  for (Frame& f : frames) {
    wire::PacketView v;
    const auto e = wire::parse_frame(f.bytes.data(), f.bytes.size(), &v);
    if (wire::is_not_roce(e)) continue;
    ASSERT_EQ(e, wire::ParseError::kOk) << wire::parse_error_name(e);
    if (!v.op->has(wire::kOpAck)) continue;
    const uint8_t syn = v.aeth().syndrome();
    if ((syn & 0x60) == 0x00) ++acks;
    if ((syn & 0x60) == 0x20) ++rnr_naks;
    if ((syn & 0x60) == 0x60) ++naks;
  }
  EXPECT_GT(acks, 0);
  EXPECT_GT(rnr_naks, 0);
  EXPECT_GT(naks, 0);

  // droce-pcap.
  const char* bdir = std::getenv("DROCE_BUILD_DIR");
  const std::string tool = std::string(bdir ? bdir : "build") + "/bin/droce-pcap";
  if (access(tool.c_str(), X_OK) != 0) {
    ADD_FAILURE() << tool << " missing (build the droce-pcap target)";
  } else {
    int st = 0;
    const std::string json = run(tool + " --json " + path_, &st);
    EXPECT_EQ(st, 0) << json;
    EXPECT_NE(json.find("\"exit_status\":0"), std::string::npos) << json;
    EXPECT_NE(json.find("\"icrc_bad\":0,"), std::string::npos) << json;
    EXPECT_NE(json.find("\"malformed\":0,"), std::string::npos) << json;
    for (const char* name : {"RC_SEND_FIRST",
                             "RC_SEND_MIDDLE",
                             "RC_SEND_LAST",
                             "RC_SEND_ONLY",
                             "RC_RDMA_WRITE_FIRST",
                             "RC_RDMA_WRITE_MIDDLE",
                             "RC_RDMA_WRITE_LAST",
                             "RC_RDMA_WRITE_ONLY",
                             "RC_RDMA_READ_REQUEST",
                             "RC_RDMA_READ_RESPONSE_FIRST",
                             "RC_RDMA_READ_RESPONSE_MIDDLE",
                             "RC_RDMA_READ_RESPONSE_LAST",
                             "RC_ACKNOWLEDGE",
                             "RC_ATOMIC_ACKNOWLEDGE",
                             "RC_FETCH_ADD",
                             "RC_COMPARE_SWAP",
                             "UC_SEND_FIRST",
                             "UC_SEND_LAST",
                             "UC_RDMA_WRITE_FIRST",
                             "UC_RDMA_WRITE_LAST",
                             "UD_SEND_ONLY"}) {
      EXPECT_NE(json.find(std::string("\"") + name + "\""), std::string::npos) << name << "\n"
                                                                               << json;
    }
  }

  // tshark.
  if (!have_tshark()) GTEST_SKIP() << "tshark is not installed (package tshark): capture written and "
                                       "checked by droce-pcap, not decoded by tshark";
  int st = 0;
  const std::string total =
      run("tshark -r " + path_ + " -T fields -e frame.number 2>/dev/null | wc -l", &st);
  EXPECT_EQ(std::stoul(total), frames.size());
  const std::string bad = run("tshark -r " + path_ + " -Y _ws.malformed 2>/dev/null", &st);
  EXPECT_EQ(st, 0);
  EXPECT_EQ(bad, "") << bad;
  const std::string expert =
      run("tshark -r " + path_ + " -T fields -e _ws.expert.message 2>/dev/null", &st);
  EXPECT_EQ(expert.find("Malformed"), std::string::npos) << expert;
  const std::string roce = run("tshark -r " + path_ + " -Y infiniband 2>/dev/null | wc -l", &st);
  EXPECT_GT(std::stoul(roce), 0u) << "tshark decoded no InfiniBand frames";
}

// ---------------------------------------------------------------------------
// b) rxe captures replayed into a droce responder.

class ReplayTest : public ::testing::Test {
 protected:
  void TearDown() override {
    dev_.reset();
    pair_.reset();
  }

  // Loads `file`, keeps the request frames of the direction and QP of the
  // first frame whose opcode satisfies want(), in capture order.
  void load(const char* file, bool (*want)(const wire::OpcodeInfo&)) {
    // Part of the repository (tests/data/README.md): missing is a failure.
    const std::string dir = ::droce::test::rxe_captures_dir().string();
    ASSERT_EQ(access(dir.c_str(), R_OK), 0) << dir << " is missing: replay not run";
    std::string err;
    auto all = read_pcap(dir + "/" + file, &err);
    ASSERT_FALSE(all.empty()) << file << ": " << err;
    bool found = false;
    uint32_t src = 0, dst = 0, qpn = 0;
    for (Frame& f : all) {
      wire::PacketView v;
      if (!parse(f.bytes, &v) || !v.op->has(wire::kOpRequest)) continue;
      if (!found && want(*v.op)) {
        found = true;
        src = v.ipv4().src.get();
        dst = v.ipv4().dst.get();
        qpn = v.bth().dest_qp();
      }
      if (found && v.ipv4().src.get() == src && v.ipv4().dst.get() == dst &&
          v.bth().dest_qp() == qpn)
        frames_.push_back(f);
    }
    ASSERT_TRUE(found) << file << ": no request of the wanted kind";
    wire::PacketView v;
    ASSERT_TRUE(parse(frames_[0].bytes, &v));
    cap_qpn_ = qpn;
    first_psn_ = v.bth().psn();
    for (Frame& f : frames_) {
      ASSERT_TRUE(parse(f.bytes, &v));
      const wire::OpcodeInfo& op = *v.op;
      uint64_t va = 0;
      uint32_t len = 0, rkey = 0;
      if (op.has(wire::kOpReth)) {
        va = v.reth().va.get();
        rkey = v.reth().rkey.get();
        len = v.reth().dma_length.get();
      } else if (op.has(wire::kOpAtomic)) {
        va = v.atomic_eth().va.get();
        rkey = v.atomic_eth().rkey.get();
        len = 8;
      } else {
        continue;
      }
      if (cap_rkey_ == 0) {
        cap_rkey_ = rkey;
        va_lo_ = va;
        va_hi_ = va + len;
      }
      EXPECT_EQ(rkey, cap_rkey_) << "one rkey per replayed QP";
      va_lo_ = std::min(va_lo_, va);
      va_hi_ = std::max(va_hi_, va + len);
    }
  }

  // The responder: a Device on port b, QPs created until one has the
  // capture's QPN, an MR whose key is the capture's rkey (slot = key >> 8,
  // reached with a table of exactly that many slots) covering its VAs.
  void make_responder() {
    auto pair = make_port_pair(test_config("10.9.1.1"), test_config("10.9.1.2"));
    ASSERT_TRUE(pair.is_ok()) << pair.status().message();
    pair_ = std::make_unique<PortPair>(std::move(pair.value()));
    Device::Options opts;
    opts.engine_thread = false;
    opts.zero_copy_min = kTestZeroCopyMin;  // READ responses attached from the MR
    const uint32_t slot = cap_rkey_ >> 8;
    const bool key_reachable =
        cap_rkey_ != 0 && slot >= 2 && slot <= 4096 && (cap_rkey_ & 0xFF) != 0;
    if (key_reachable) opts.attr.max_mr = slot;
    auto dev = Device::create(&pair_->b(), opts);
    ASSERT_TRUE(dev.is_ok()) << dev.status().message();
    dev_ = std::move(dev.value());
    const uint32_t pd = dev_->alloc_pd().value();
    cq_ = dev_->create_cq(256).value();

    constexpr uint32_t kAll =
        kAccessLocalWrite | kAccessRemoteWrite | kAccessRemoteRead | kAccessRemoteAtomic;
    recv_buf_.assign(64 * 1024, 0);
    recv_key_ = dev_->reg_mr(pd, recv_buf_.data(), reinterpret_cast<uint64_t>(recv_buf_.data()),
                             recv_buf_.size(), kAll)
                    .value();
    if (cap_rkey_ != 0) {
      const uint64_t span = va_hi_ - va_lo_;
      ASSERT_LE(span, 1u << 20) << "capture VAs too far apart";
      mr_.assign(span, 0);
      for (size_t i = 0; i < mr_.size(); ++i) mr_[i] = uint8_t(i * 13 + 1);
      if (key_reachable) {
        // Slots 1 .. slot-1 taken (the first by recv_buf_), then slot `slot`
        // registered until its tag matches.
        for (uint32_t i = 2; i < slot; ++i)
          ASSERT_TRUE(dev_->reg_mr(pd, recv_buf_.data(), 0, 64, kAll).is_ok());
        for (int i = 0; i < 256 && mr_key_ != cap_rkey_; ++i) {
          if (mr_key_ != 0) {
            ASSERT_TRUE(dev_->dereg_mr(mr_key_).is_ok());
          }
          mr_key_ = dev_->reg_mr(pd, mr_.data(), va_lo_, mr_.size(), kAll).value();
        }
      }
      if (mr_key_ != cap_rkey_) {
        // Unreachable key: our own key, the capture's rkey rewritten below.
        if (mr_key_ != 0) {
          ASSERT_TRUE(dev_->dereg_mr(mr_key_).is_ok());
        }
        mr_key_ = dev_->reg_mr(pd, mr_.data(), va_lo_, mr_.size(), kAll).value();
        rewrote_rkey_ = true;
      }
    }

    QpInitAttr init;
    init.type = QpType::kRc;
    init.pd = pd;
    init.send_cq = cq_;
    init.recv_cq = cq_;
    init.cap.max_send_wr = 16;
    init.cap.max_recv_wr = 64;
    init.cap.max_send_sge = 1;
    init.cap.max_recv_sge = 1;
    for (int i = 0; i < 4096; ++i) {
      auto qp = dev_->create_qp(init);
      ASSERT_TRUE(qp.is_ok()) << qp.status().message();
      qp_ = qp.value();
      if (qp_->qpn() >= cap_qpn_) break;
    }
    rewrote_qpn_ = qp_->qpn() != cap_qpn_;

    QpAttrs a;
    a.state = QpState::kInit;
    a.pkey_index = 0;
    a.port_num = 1;
    a.access = kAll;
    ASSERT_TRUE(
        dev_->modify_qp(qp_, a,
                        QpAttr::kState | QpAttr::kPkeyIndex | QpAttr::kPort | QpAttr::kAccessFlags)
            .is_ok());
    a.state = QpState::kRtr;
    a.path_mtu = 1024;
    a.dest_qpn = 0x77;
    a.rq_psn = first_psn_;
    ipv4_to_gid(pair_->a().ipv4(), a.av.dgid);
    a.max_dest_rd_atomic = 16;
    a.min_rnr_timer = 1;
    auto st = dev_->modify_qp(qp_, a,
                              QpAttr::kState | QpAttr::kAv | QpAttr::kPathMtu | QpAttr::kDestQpn |
                                  QpAttr::kRqPsn | QpAttr::kMaxDestRdAtomic | QpAttr::kMinRnrTimer);
    ASSERT_TRUE(st.is_ok()) << st.message();
    a.state = QpState::kRts;
    a.sq_psn = 0;
    a.timeout = 14;
    a.retry_cnt = 7;
    a.rnr_retry = 7;
    a.max_rd_atomic = 16;
    st = dev_->modify_qp(qp_, a,
                         QpAttr::kState | QpAttr::kSqPsn | QpAttr::kTimeout | QpAttr::kRetryCnt |
                             QpAttr::kRnrRetry | QpAttr::kMaxQpRdAtomic);
    ASSERT_TRUE(st.is_ok()) << st.message();
    std::printf("[  NOTE    ] capture QPN 0x%x %s, rkey 0x%x %s\n", cap_qpn_,
                rewrote_qpn_ ? "rewritten" : "matched by creating QPs", cap_rkey_,
                cap_rkey_ == 0  ? "(none)"
                : rewrote_rkey_ ? "rewritten"
                                : "matched by registration");
  }

  // Readdresses each frame to port b (and from port a), rewriting QPN/rkey
  // when they could not be matched; IPv4 checksum and ICRC recomputed.
  void rewrite() {
    Port& a = pair_->a();
    Port& b = pair_->b();
    for (Frame& f : frames_) {
      wire::PacketView v;
      ASSERT_TRUE(parse(f.bytes, &v));
      auto& eth = *reinterpret_cast<wire::EthHdr*>(v.frame);
      eth.dst = b.mac();
      eth.src = a.mac();
      auto& ip = *reinterpret_cast<wire::Ipv4Hdr*>(v.frame + v.l3_off);
      ip.src = Be32(a.ipv4());
      ip.dst = Be32(b.ipv4());
      ip.checksum = Be16(0);
      ip.checksum = Be16(wire::ipv4_checksum(ip));
      auto& bth = *reinterpret_cast<wire::Bth*>(v.frame + v.bth_off);
      if (rewrote_qpn_) bth.set_dest_qp(qp_->qpn());
      if (rewrote_rkey_ && v.op->has(wire::kOpReth))
        const_cast<wire::Reth&>(v.reth()).rkey = Be32(mr_key_);
      if (rewrote_rkey_ && v.op->has(wire::kOpAtomic))
        const_cast<wire::AtomicEth&>(v.atomic_eth()).rkey = Be32(mr_key_);
      wire::icrc_write(v.frame + v.l3_off, v.icrc_off - v.l3_off, false);
      ASSERT_TRUE(parse(f.bytes, &v)) << "rewritten frame no longer parses";
    }
  }

  // Sends every frame from port a, drives the responder and collects what
  // comes back to port a (parsed copies).
  void inject_and_poll() {
    Port& a = pair_->a();
    // The responder learns port a's MAC first: an ACK built while ARP is
    // pending is not sent (the requester's retransmission would recover it;
    // a replayed capture has none).
    bool resolved = false;
    for (int i = 0; i < 2000 && !resolved; ++i) {
      const Nanos now = monotonic_now();
      {
        auto lock = dev_->lock_engine();
        wire::MacAddr mac;
        resolved = dev_->port().resolve(a.ipv4(), &mac, now) == ArpResult::kResolved;
        dev_->poll(now);
      }
      rte_mbuf* ms[32];
      wire::PacketView vs[32];
      const uint16_t n = a.receive(ms, vs, 32, now);
      for (uint16_t k = 0; k < n; ++k) rte_pktmbuf_free(ms[k]);
    }
    ASSERT_TRUE(resolved) << "responder never learned port a's MAC";
    for (Frame& f : frames_) {
      rte_mbuf* m = a.alloc_mbuf();
      ASSERT_NE(m, nullptr);
      char* p = rte_pktmbuf_append(m, uint16_t(f.bytes.size()));
      ASSERT_NE(p, nullptr);
      std::memcpy(p, f.bytes.data(), f.bytes.size());
      ASSERT_EQ(a.transmit(&m, 1), 1);
    }
    Nanos now = monotonic_now();
    for (int i = 0; i < 2000; ++i) {
      now = monotonic_now();
      {
        auto lock = dev_->lock_engine();
        dev_->poll(now);
      }
      rte_mbuf* ms[32];
      wire::PacketView vs[32];
      const uint16_t n = a.receive(ms, vs, 32, now);
      for (uint16_t k = 0; k < n; ++k) {
        replies_.push_back({std::vector<uint8_t>(vs[k].frame, vs[k].frame + vs[k].frame_len)});
        rte_pktmbuf_free(ms[k]);
      }
      if (i > 100 && replies_.size() >= want_replies_) break;
    }
  }

  void expect_accepted() {
    const PortCounters& pc = pair_->b().counters();
    EXPECT_EQ(pc.rx_dropped(), 0u) << format_counters(pc);
    EXPECT_EQ(pc.rx_roce, frames_.size()) << format_counters(pc);
    const EngineCounters& ec = dev_->counters();
    EXPECT_EQ(ec.rx_no_qp + ec.rx_bad_transport + ec.rx_bad_state + ec.rx_bad_pkey, 0u);
    EXPECT_EQ(qp_->state(), QpState::kRts);
    for (Frame& r : replies_) {
      wire::PacketView v;
      ASSERT_TRUE(parse(r.bytes, &v));
      ASSERT_TRUE(v.op->has(wire::kOpResponse)) << v.op->name;
      if (v.op->has(wire::kOpAck)) {
        EXPECT_EQ(v.aeth().syndrome() & 0x60, 0) << "NAK from the responder";
      }
    }
  }

  size_t count_replies(uint32_t flag) {
    size_t n = 0;
    for (Frame& r : replies_) {
      wire::PacketView v;
      if (parse(r.bytes, &v) && v.op->has(flag)) ++n;
    }
    return n;
  }

  std::unique_ptr<PortPair> pair_;
  std::unique_ptr<Device> dev_;
  CompletionQueue* cq_ = nullptr;
  Qp* qp_ = nullptr;
  std::vector<Frame> frames_, replies_;
  size_t want_replies_ = 1;
  uint32_t cap_qpn_ = 0, first_psn_ = 0, cap_rkey_ = 0;
  uint64_t va_lo_ = 0, va_hi_ = 0;
  std::vector<uint8_t> recv_buf_, mr_;
  uint32_t recv_key_ = 0, mr_key_ = 0;
  bool rewrote_qpn_ = false, rewrote_rkey_ = false;
};

TEST_F(ReplayTest, PingpongRcSendsCompleteReceives) {
  load("pingpong_rc.pcap", [](const wire::OpcodeInfo& op) { return op.has(wire::kOpComp); });
  if (IsSkipped() || HasFatalFailure()) return;
  make_responder();
  ASSERT_FALSE(HasFatalFailure());
  const uint32_t slot = 4096;
  for (size_t i = 0; i < frames_.size(); ++i) {
    Sge s{reinterpret_cast<uint64_t>(recv_buf_.data()) + i * slot, slot, recv_key_};
    ASSERT_EQ(qp_->post_recv(100 + i, &s, 1), 0);
  }
  rewrite();
  want_replies_ = 1;
  inject_and_poll();
  expect_accepted();
  std::vector<Cqe> got(64);
  const int n = cq_->poll(got.data(), 64);
  ASSERT_EQ(size_t(n), frames_.size());
  for (int i = 0; i < n; ++i) {
    wire::PacketView v;
    ASSERT_TRUE(parse(frames_[i].bytes, &v));
    EXPECT_EQ(got[i].status, WcStatus::kSuccess);
    EXPECT_EQ(got[i].wr_id, 100u + i);
    EXPECT_EQ(got[i].byte_len, v.payload_len);
    EXPECT_EQ(0, std::memcmp(recv_buf_.data() + i * slot, v.payload(), v.payload_len));
  }
  EXPECT_GE(count_replies(wire::kOpAck), 1u);
}

TEST_F(ReplayTest, WriteLatWritesLandInTheMr) {
  load("rdma_write_lat.pcap", [](const wire::OpcodeInfo& op) { return op.has(wire::kOpReth); });
  if (IsSkipped() || HasFatalFailure()) return;
  make_responder();
  ASSERT_FALSE(HasFatalFailure());
  const std::vector<uint8_t> initial = mr_;
  rewrite();
  inject_and_poll();
  expect_accepted();
  EXPECT_NE(mr_, initial) << "no WRITE landed";
  // Every WRITE's payload is at its VA (the last one at an address wins).
  std::vector<uint8_t> expect = mr_;
  for (Frame& f : frames_) {
    wire::PacketView v;
    ASSERT_TRUE(parse(f.bytes, &v));
    ASSERT_TRUE(v.op->has(wire::kOpReth));
    std::memcpy(expect.data() + (v.reth().va.get() - va_lo_), v.payload(), v.payload_len);
  }
  EXPECT_EQ(mr_, expect);
  EXPECT_GT(frames_.size(), 0u);
}

TEST_F(ReplayTest, ReadLatProducesReadResponses) {
  load("rdma_read_lat.pcap", [](const wire::OpcodeInfo& op) { return op.has(wire::kOpRead); });
  if (IsSkipped() || HasFatalFailure()) return;
  make_responder();
  ASSERT_FALSE(HasFatalFailure());
  rewrite();
  want_replies_ = frames_.size();
  inject_and_poll();
  expect_accepted();
  size_t responses = 0;
  for (Frame& r : replies_) {
    wire::PacketView v;
    ASSERT_TRUE(parse(r.bytes, &v));
    if (!v.op->has(wire::kOpReadResp)) continue;
    ++responses;
    // Each READ here fits one packet: the response carries the MR bytes at the request's VA.
    wire::PacketView q;
    ASSERT_LT(responses - 1, frames_.size());
    ASSERT_TRUE(parse(frames_[responses - 1].bytes, &q));
    EXPECT_EQ(v.bth().psn(), q.bth().psn());
    ASSERT_EQ(v.payload_len, q.reth().dma_length.get());
    EXPECT_EQ(0,
              std::memcmp(v.payload(), mr_.data() + (q.reth().va.get() - va_lo_), v.payload_len));
  }
  EXPECT_EQ(responses, frames_.size());
}

TEST_F(ReplayTest, AtomicBwFetchAddsApply) {
  load("rdma_atomic_bw.pcap", [](const wire::OpcodeInfo& op) { return op.has(wire::kOpAtomic); });
  if (IsSkipped() || HasFatalFailure()) return;
  make_responder();
  ASSERT_FALSE(HasFatalFailure());
  std::vector<uint8_t> before = mr_;
  rewrite();
  want_replies_ = frames_.size();
  inject_and_poll();
  expect_accepted();
  // Apply the requests to a copy in order and compare; each reply returns the original.
  std::map<uint64_t, uint64_t> origs;
  for (Frame& f : frames_) {
    wire::PacketView v;
    ASSERT_TRUE(parse(f.bytes, &v));
    ASSERT_TRUE(v.op->has(wire::kOpAtomic));
    const auto& at = v.atomic_eth();
    uint8_t* p = before.data() + (at.va.get() - va_lo_);
    uint64_t cur;
    std::memcpy(&cur, p, 8);
    origs[v.bth().psn()] = cur;
    if (v.bth().opcode == wire::op::kFetchAdd)
      cur += at.swap_add.get();
    else if (cur == at.compare.get())
      cur = at.swap_add.get();
    std::memcpy(p, &cur, 8);
  }
  EXPECT_EQ(mr_, before);
  size_t acks = 0;
  for (Frame& r : replies_) {
    wire::PacketView v;
    ASSERT_TRUE(parse(r.bytes, &v));
    if (!v.op->has(wire::kOpAck) || v.bth().opcode != wire::op::kAtomicAck) continue;
    ++acks;
    EXPECT_EQ(v.atomic_ack().orig.get(), origs[v.bth().psn()]) << "psn " << v.bth().psn();
  }
  EXPECT_EQ(acks, frames_.size());
}

}  // namespace
}  // namespace droce::nic::test
