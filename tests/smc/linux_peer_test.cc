// What a Linux 6.1 kernel peer showed droce (scripts/interop,
// docs/interop.md), kept here so that it stays fixed without a VM: each test
// is the droce side of one finding, between two runtimes on the loopback
// port.
#include <sys/un.h>

#include <mutex>
#include <vector>

#include "smc/core.h"
#include "tests/smc/smc_fixture.h"

namespace droce::smc::test {
namespace {

class SmcLinuxPeer : public ::testing::Test {
 protected:
  void SetUp() override {
    Config c = test_config();
    client_ = make_runtime(c);
    server_ = make_runtime(c);
    ASSERT_NE(client_, nullptr);
    ASSERT_NE(server_, nullptr);
  }
  void TearDown() override {
    client_.reset();
    server_.reset();
  }
  // A client socket connected over SMC-R to listener (on server_), and the
  // server's end of it.
  void connect_smc(const std::shared_ptr<Socket>& listener, int port, std::shared_ptr<Socket>* c,
                   std::shared_ptr<Socket>* s) {
    int err = 0;
    *c = Socket::create(client_.get(), 0, 0, &err);
    ASSERT_NE(*c, nullptr) << err;
    std::thread t([&] { *s = listener->accept(nullptr, nullptr, 0, &err); });
    const sockaddr_in sa = loopback(port);
    ASSERT_EQ((*c)->connect(reinterpret_cast<const sockaddr*>(&sa), sizeof(sa)), 0);
    t.join();
    ASSERT_TRUE((*c)->uses_smc());
    ASSERT_NE(*s, nullptr);
  }
  std::unique_ptr<Runtime> client_, server_;
};

// A program that closes its connection and ends at once (droce-smc client
// after a pingpong) used to send DELETE LINK right after its close CDC: the
// peer's close CDC then met a destroyed QP. A Linux peer retransmits it and
// its close() waits for the completion without a bound
// (smc_cdc_wait_pend_tx_wr), so the kernel program hung. At program end the
// runtime now lets pending closes finish (within SMC_CLOSE_WAIT_MS) before
// DELETE LINK: the peer closes normally, its connection unharmed.
TEST_F(SmcLinuxPeer, ProgramEndLetsAPendingCloseFinishBeforeDeleteLink) {
  int port = 0;
  auto listener = listen_on(server_.get(), &port);
  std::shared_ptr<Socket> c, s;
  ASSERT_NO_FATAL_FAILURE(connect_smc(listener, port, &c, &s));
  Connection* sc = s->connection();
  sc->hold();
  c->close();  // the client's close waits for the server's
  // The server application closes a little later, as a Linux echo server
  // does once it has read the end of stream.
  std::thread peer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    char b;
    EXPECT_EQ(s->recv(&b, 1, 0), 0) << "the client's close is an end of stream";
    s->close();
  });
  client_->terminate_all(true);  // the program ends (atexit)
  peer.join();
  EXPECT_EQ(sc->error(), 0) << "the server's connection was ended by DELETE LINK before it could close";
  EXPECT_TRUE(eventually([&] { return sc->closed_both_ways(); }, 2000));
  sc->put();
  listener->close();
}

// The same, made certain: both ends have closed, and the link group ends
// under the server's connection (the client program's DELETE LINK) before
// its close timer has let it go. The orderly close stays an orderly close:
// no ECONNRESET for a connection with nothing left to lose. (The test above
// failed so now and then under load: the DELETE LINK came first.)
TEST_F(SmcLinuxPeer, LinkGroupEndingAfterBothClosesLeavesTheConnectionUnharmed) {
  int port = 0;
  auto listener = listen_on(server_.get(), &port);
  std::shared_ptr<Socket> c, s;
  ASSERT_NO_FATAL_FAILURE(connect_smc(listener, port, &c, &s));
  Connection* sc = s->connection();
  sc->hold();
  LinkGroup* lgr = sc->lgr();
  ASSERT_NE(lgr, nullptr);
  lgr->use();
  c->close();
  s->close();
  ASSERT_TRUE(eventually([&] { return sc->closed_both_ways(); }, 5000));
  ASSERT_EQ(sc->error(), 0);
  lgr->terminate(false, "test: the peer's program ended");
  lgr->unuse();
  EXPECT_EQ(sc->error(), 0) << "an orderly close turned into a reset by the link group's end";
  sc->put();
  listener->close();
}

// After its DELETE LINK the ending side used to destroy its QP as soon as
// the DELETE LINK was acknowledged. A Linux peer answers it with SENDs (a
// server with DELETE RKEY and its own DELETE LINK, a client with abort CDCs
// for its open connections); these met no QP, its rxe retransmitted them
// and its close() hung as above. The link now stays up until the peer has
// been quiet for 100 ms. Here the peer's answer (droce's DELETE LINK
// response) is held back 50 ms: the server's progress thread, which sends
// it, is kept in its stat socket's request read (droce-smc stat's socket,
// turned on here for the server runtime) until the test writes the request.
TEST_F(SmcLinuxPeer, DeleteLinkWaitsForThePeersLateAnswer) {
  CorePair p;
  core_pair(client_.get(), server_.get(), &p);
  ASSERT_TRUE(p.client.smc && p.server.smc);
  LinkGroup* lgr = p.client.conn->lgr();
  lgr->use();
  Link* l = lgr->active_link();
  ASSERT_NE(l, nullptr);
  p.client.conn->release();
  const uint64_t before = l->counters().llc_received.load();
  // Stall the server's progress thread in serve_stat.
  std::string err;
  ASSERT_TRUE(server_->enable_stat_socket(&err)) << err;
  const int sfd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  const std::string path = Runtime::stat_dir() + "/" + std::to_string(getpid()) + ".sock";
  std::snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path.c_str());
  ASSERT_EQ(::connect(sfd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0) << path;
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the progress thread takes it
  std::thread release_stall([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    (void)!::write(sfd, "json", 4);
  });
  lgr->terminate(true, "test: program ends");
  release_stall.join();
  ::close(sfd);
  EXPECT_EQ(l->state(), LinkState::kFreed);
  EXPECT_GT(l->counters().llc_received.load(), before) << "the peer's late answer to DELETE LINK was lost";
  lgr->unuse();
  EXPECT_TRUE(eventually([&] { return p.server.conn->error() != 0; }, 5000));
  p.server.conn->release();
}

// The ADD LINK a server sends after first contact, as Linux 6.1 fills it
// (smc_llc_fill_ext_v2; reference A3): client_target_gid holds the
// sender's own GID for the new link, and one rkey triple per connection
// follows (num_rkeys little-endian): 88 bytes after a first contact. droce
// used to put the client's GID there and no rkey (72 bytes), and as a
// client chose its device by that field, which from Linux names Linux's
// own GID. A client with one device rejects it (22 2C 00 C0).
TEST_F(SmcLinuxPeer, AddLinkAfterFirstContactCarriesTheSendersGidAndOneRkey) {
  // Shared with the hook, which the progress thread may still call while
  // the runtime ends (DELETE LINK) after this body's locals are gone.
  struct Seen {
    std::mutex mu;
    std::vector<std::vector<uint8_t>> add_links;
  };
  auto seen = std::make_shared<Seen>();
  std::mutex& mu = seen->mu;
  std::vector<std::vector<uint8_t>>& add_links = seen->add_links;
  client_->hooks().llc_received = [seen](Link*, const uint8_t* m, size_t len) {
    if (len >= 4 && m[0] == 0x22 && (m[3] & 0x80) == 0) {
      std::lock_guard<std::mutex> lk(seen->mu);
      seen->add_links.emplace_back(m, m + len);
    }
  };
  int port = 0;
  auto listener = listen_on(server_.get(), &port);
  int err = 0;
  auto c = Socket::create(client_.get(), 0, 0, &err);
  std::shared_ptr<Socket> s;
  std::thread t([&] { s = listener->accept(nullptr, nullptr, 0, &err); });
  const sockaddr_in sa = loopback(port);
  ASSERT_EQ(c->connect(reinterpret_cast<const sockaddr*>(&sa), sizeof(sa)), 0);
  t.join();
  ASSERT_TRUE(c->uses_smc());
  ASSERT_TRUE(eventually(
      [&] {
        std::lock_guard<std::mutex> lk(mu);
        return !add_links.empty();
      },
      3000))
      << "no ADD LINK after first contact";
  std::vector<uint8_t> m;
  {
    std::lock_guard<std::mutex> lk(mu);
    m = add_links.front();
  }
  ASSERT_EQ(m.size(), 88u);
  EXPECT_EQ(m[1], 88);  // length_v2, little-endian
  EXPECT_EQ(m[2], 0);
  const wire::Gid& server_gid = server_->device()->gid;
  EXPECT_TRUE(std::equal(server_gid.begin(), server_gid.end(), m.begin() + 46)) << "client_target_gid";
  EXPECT_EQ(m[70], 1) << "num_rkeys (LE16)";
  EXPECT_EQ(m[71], 0);
  const uint32_t rkey_existing = uint32_t(m[72]) << 24 | uint32_t(m[73]) << 16 | uint32_t(m[74]) << 8 | m[75];
  EXPECT_EQ(rkey_existing, s->connection()->rmb()->mr[0]->rkey) << "the server's RMB rkey on the first link";
  // One device each: the client rejects and the group keeps one link.
  LinkGroup* g = nullptr;
  server_->for_each_lgr([&](LinkGroup* x) { g = x; });
  ASSERT_NE(g, nullptr);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(g->active_links(), 1u);
  EXPECT_EQ(server_->counters().links_added.load(), 0u);
  c->close();
  s->close();
  listener->close();
}

}  // namespace
}  // namespace droce::smc::test
