// SMC-R link groups with two links (RFC 7609 section 4.4: ADD LINK, DELETE
// LINK; Linux's smc_llc.c / smc_core.c redundancy) over two droce devices of
// one process, each a net_ring port looped to itself: the second link comes
// up after first contact, connections spread over both links, and when one
// link dies mid-stream (its port set down, or a failed completion) every
// connection continues on the other link with no byte lost or duplicated;
// the dead link is removed (QP to ERR, drained, destroyed). With no link
// left the group ends and its sockets report ECONNRESET, never hang.
#include <rte_ethdev.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "smc/core.h"
#include "tests/common/process.h"
#include "tests/smc/smc_fixture.h"

namespace droce::smc::test {
namespace {

// Two devices before EAL starts (it starts with the first runtime): droce0
// on net_ring0 and droce1 on net_ring1.
const bool g_eal_env = [] {
  const std::string args =
      "--no-huge --no-pci -m 256 --no-telemetry --log-level=*:error --vdev=net_ring0 --vdev=net_ring1 "
      "--file-prefix smc-failover-" +
      std::to_string(getpid());
  setenv("DROCE_EAL_ARGS", args.c_str(), 1);
  // A runtime directory of a prefix the test names is the test's to remove.
  std::atexit([] { droce::test::remove_dpdk_runtime_dir("smc-failover-" + std::to_string(getpid())); });
  return true;
}();

// Sends all of data; the first error (negative errno) or 0.
long send_all(Socket* s, const std::vector<uint8_t>& data, size_t chunk) {
  size_t off = 0;
  while (off < data.size()) {
    const long n = s->send(data.data() + off, std::min(chunk, data.size() - off), 0);
    if (n <= 0) return n;
    off += size_t(n);
  }
  return 0;
}

// Receives until `want` bytes, end of stream or an error; `got` counts
// bytes as they arrive (other threads watch the stream's progress).
std::vector<uint8_t> recv_upto(Socket* s, size_t want, std::atomic<size_t>* got, long* last) {
  std::vector<uint8_t> out(want);
  size_t off = 0;
  *last = 1;
  while (off < want) {
    const long n = s->recv(out.data() + off, std::min<size_t>(want - off, 65536), 0);
    if (n <= 0) {
      *last = n;
      break;
    }
    off += size_t(n);
    got->store(off, std::memory_order_relaxed);
  }
  out.resize(off);
  return out;
}

uint16_t port_of(const char* devname) {
  // droce numbers its devices in DPDK's port order: droceN is ethdev port N.
  return uint16_t(std::atoi(devname + std::strlen("droce")));
}

class SmcFailover : public ::testing::Test {
 protected:
  void SetUp() override {
    Config c = test_config();
    c.device = "";  // every device: droce0 and droce1
    client_ = make_runtime(c);
    server_ = make_runtime(c);
    ASSERT_NE(client_, nullptr);
    ASSERT_NE(server_, nullptr);
    ASSERT_EQ(client_->devices().size(), 2u);
    ASSERT_EQ(server_->devices().size(), 2u);
    // A port the previous test set down is up again (the engine checks the
    // link periodically).
    ASSERT_TRUE(eventually([&] { return server_->devices()[0]->port_active() && server_->devices()[1]->port_active(); },
                           5000));
    listener_ = listen_on(server_.get(), &port_);
  }
  void TearDown() override {
    listener_.reset();
    client_.reset();
    server_.reset();
    // Ports a test set down come back up for the next test.
    for (uint16_t p = 0; p < 2; ++p) rte_eth_dev_set_link_up(p);
  }

  void connect_pair(std::shared_ptr<Socket>* c, std::shared_ptr<Socket>* s) {
    int err = 0;
    *c = Socket::create(client_.get(), 0, 0, &err);
    ASSERT_NE(*c, nullptr);
    const sockaddr_in sa = loopback(port_);
    std::thread t([&] { *s = listener_->accept(nullptr, nullptr, 0, &err); });
    EXPECT_EQ((*c)->connect(reinterpret_cast<const sockaddr*>(&sa), sizeof(sa)), 0);
    t.join();
    ASSERT_NE(*s, nullptr) << err;
  }

  static LinkGroup* only_lgr(Runtime* rt) {
    LinkGroup* found = nullptr;
    int n = 0;
    rt->for_each_lgr([&](LinkGroup* g) {
      found = g;
      ++n;
    });
    return n == 1 ? found : nullptr;
  }

  // Both sides' group has `n` active links.
  bool links_active(size_t n, int ms) {
    return eventually(
        [&] {
          LinkGroup* c = only_lgr(client_.get());
          LinkGroup* s = only_lgr(server_.get());
          return c != nullptr && s != nullptr && c->active_links() == n && s->active_links() == n;
        },
        ms);
  }

  std::unique_ptr<Runtime> client_, server_;
  std::shared_ptr<Socket> listener_;
  int port_ = 0;
};

TEST_F(SmcFailover, FirstContactAddsASecondLinkOnTheOtherDevice) {
  std::shared_ptr<Socket> c, s;
  connect_pair(&c, &s);
  ASSERT_TRUE(links_active(2, 5000)) << "the server did not add a second link";
  for (Runtime* rt : {client_.get(), server_.get()}) {
    LinkGroup* g = only_lgr(rt);
    ASSERT_NE(g, nullptr);
    Link* a = g->link(0);
    Link* b = g->link(1);
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    EXPECT_NE(a->device(), b->device()) << "both links on " << a->device()->name;
    EXPECT_NE(a->link_id(), b->link_id());
    EXPECT_NE(a->link_id(), 0);
    EXPECT_NE(b->link_id(), 0);
    const std::string js = rt->stat_json();
    EXPECT_NE(js.find("\"name\":\"droce0\""), std::string::npos) << js;
    EXPECT_NE(js.find("\"name\":\"droce1\""), std::string::npos) << js;
    EXPECT_NE(js.find("\"links_added\":1"), std::string::npos) << js;
  }
  EXPECT_EQ(server_->counters().links_added.load(), 1u);
  EXPECT_EQ(client_->counters().links_added.load(), 1u);
  // The peer's link of each link number is on the same device pair: the
  // server's droce1 link talks to the client's droce1 link.
  LinkGroup* cg = only_lgr(client_.get());
  LinkGroup* sg = only_lgr(server_.get());
  for (int i = 0; i < 2; ++i) {
    Link* cl = cg->link(i);
    Link* sl = sg->link_by_id(cl->link_id());
    ASSERT_NE(sl, nullptr);
    EXPECT_EQ(sl->peer_qpn(), cl->qpn());
    EXPECT_EQ(cl->peer_qpn(), sl->qpn());
  }

  // Data over a connection made after the second link came up.
  std::shared_ptr<Socket> c2, s2;
  connect_pair(&c2, &s2);
  const auto data = pattern(1 << 20, 7);
  std::atomic<size_t> got{0};
  long last = 0;
  std::vector<uint8_t> back;
  std::thread r([&] { back = recv_upto(s2.get(), data.size(), &got, &last); });
  EXPECT_EQ(send_all(c2.get(), data, 100000), 0);
  r.join();
  EXPECT_TRUE(back == data);
}

// Three connections stream both ways; the port under the first link goes
// down when a third of the bytes have arrived.
void stream_through_failure(SmcFailover* t, const std::function<void()>& break_link, size_t bytes,
                            std::vector<std::shared_ptr<Socket>>* cs, std::vector<std::shared_ptr<Socket>>* ss) {
  const int kConns = int(cs->size());
  std::vector<std::vector<uint8_t>> up(kConns), down(kConns), up_got(kConns), down_got(kConns);
  std::vector<std::atomic<size_t>> up_n(kConns), down_n(kConns);
  std::vector<long> up_last(kConns), down_last(kConns), up_sent(kConns), down_sent(kConns);
  std::vector<std::thread> th;
  for (int i = 0; i < kConns; ++i) {
    up[i] = pattern(bytes, 100 + i);
    down[i] = pattern(bytes / 4, 200 + i);
    th.emplace_back([&, i] { up_got[i] = recv_upto((*ss)[i].get(), bytes, &up_n[i], &up_last[i]); });
    th.emplace_back([&, i] { down_got[i] = recv_upto((*cs)[i].get(), bytes / 4, &down_n[i], &down_last[i]); });
    th.emplace_back([&, i] { up_sent[i] = send_all((*cs)[i].get(), up[i], 48 * 1024); });
    th.emplace_back([&, i] { down_sent[i] = send_all((*ss)[i].get(), down[i], 20000); });
  }
  ASSERT_TRUE(eventually([&] { return up_n[0].load() >= bytes / 3; }, 60000)) << "stream did not start";
  break_link();
  for (auto& x : th) x.join();
  for (int i = 0; i < kConns; ++i) {
    EXPECT_EQ(up_sent[i], 0) << "connection " << i << ": send failed: " << std::strerror(int(-up_sent[i]));
    EXPECT_EQ(down_sent[i], 0) << "connection " << i << ": send failed: " << std::strerror(int(-down_sent[i]));
    EXPECT_EQ(up_got[i].size(), bytes) << "connection " << i << " (recv returned " << up_last[i] << ")";
    EXPECT_TRUE(up_got[i] == up[i]) << "connection " << i << ": bytes lost, duplicated or reordered";
    EXPECT_EQ(down_got[i].size(), bytes / 4) << "connection " << i << " (recv returned " << down_last[i] << ")";
    EXPECT_TRUE(down_got[i] == down[i]) << "connection " << i << ": bytes lost, duplicated or reordered";
  }
  (void)t;
}

TEST_F(SmcFailover, PortDownMidStreamMovesEveryConnectionWithNoByteLost) {
  std::vector<std::shared_ptr<Socket>> cs(3), ss(3);
  for (int i = 0; i < 3; ++i) connect_pair(&cs[i], &ss[i]);
  ASSERT_TRUE(links_active(2, 5000));
  // New connections spread over the two links (least used first).
  for (int i = 0; i < 3; ++i) {
    cs.emplace_back();
    ss.emplace_back();
    connect_pair(&cs.back(), &ss.back());
  }
  LinkGroup* cg = only_lgr(client_.get());
  LinkGroup* sg = only_lgr(server_.get());
  ASSERT_NE(cg, nullptr);
  ASSERT_NE(sg, nullptr);
  const std::string dead_dev = sg->link(0)->device()->name;
  const uint32_t dead_qpn = sg->link(0)->qpn();
  // New connections spread over both links: some must move.
  size_t on_dead = 0, on_other = 0;
  for (LinkGroup* g : {cg, sg}) {
    g->for_each_connection([&](Connection* conn) { (conn->link() == g->link(0) ? on_dead : on_other)++; });
  }
  EXPECT_GT(on_dead, 0u);
  EXPECT_GT(on_other, 0u);
  stream_through_failure(
      this, [&] { ASSERT_EQ(rte_eth_dev_set_link_down(port_of(dead_dev.c_str())), 0); }, 16u << 20, &cs, &ss);
  ASSERT_TRUE(links_active(1, 10000)) << "the dead link was not removed";
  for (LinkGroup* g : {cg, sg}) {
    Link* alive = g->active_link();
    ASSERT_NE(alive, nullptr);
    EXPECT_NE(alive->device()->name, dead_dev);
    // The dead link stays listed (stat shows it) as freed: QP destroyed,
    // buffers deregistered.
    int live = 0;
    for (int i = 0; i < kMaxLinks; ++i) live += g->link(i) != nullptr && g->link(i)->state() != LinkState::kFreed;
    EXPECT_EQ(live, 1) << "the dead link's resources were not freed";
  }
  EXPECT_EQ(cg->failovers() + sg->failovers(), on_dead) << "not every connection of the dead link moved";
  EXPECT_GE(server_->counters().links_lost.load(), 1u);
  EXPECT_GE(client_->counters().links_lost.load(), 1u);
  const std::string js = server_->stat_json();
  EXPECT_NE(js.find("\"state\":\"down\""), std::string::npos) << js;
  EXPECT_NE(js.find("\"state\":\"freed\",\"qpn\":" + std::to_string(dead_qpn) + ","), std::string::npos) << js;
  // The group goes on: a new connection uses the surviving link.
  std::shared_ptr<Socket> c, s;
  connect_pair(&c, &s);
  EXPECT_EQ(c->send("x", 1, 0), 1);
  char b = 0;
  EXPECT_EQ(s->recv(&b, 1, 0), 1);
  EXPECT_EQ(b, 'x');
  EXPECT_EQ(server_->counters().smc_connections.load(), 7u);
}

TEST_F(SmcFailover, FailedCompletionOnOneLinkFailsOverToTheOther) {
  std::vector<std::shared_ptr<Socket>> cs(4), ss(4);
  for (int i = 0; i < 4; ++i) connect_pair(&cs[i], &ss[i]);
  ASSERT_TRUE(links_active(2, 5000));
  LinkGroup* cg = only_lgr(client_.get());
  ASSERT_NE(cg, nullptr);
  Link* victim = cg->link(1);
  ASSERT_NE(victim, nullptr);
  const uint8_t victim_id = victim->link_id();
  // As a send completion with an error status does (Link::fail from poll).
  stream_through_failure(this, [&] { victim->fail("injected by the test"); }, 8u << 20, &cs, &ss);
  ASSERT_TRUE(links_active(1, 10000));
  EXPECT_EQ(cg->link_by_id(victim_id), nullptr);
  LinkGroup* sg = only_lgr(server_.get());
  ASSERT_NE(sg, nullptr);
  EXPECT_EQ(sg->link_by_id(victim_id), nullptr) << "the peer kept the deleted link";
  EXPECT_GE(cg->failovers() + sg->failovers(), 1u);
}

TEST_F(SmcFailover, BothPortsDownEndsTheGroupWithEconnresetAndNoHang) {
  std::shared_ptr<Socket> c, s;
  connect_pair(&c, &s);
  ASSERT_TRUE(links_active(2, 5000));
  const auto data = pattern(64u << 20, 3);
  std::atomic<size_t> got{0};
  long last = 0;
  long sent = 1;
  std::thread r([&] { recv_upto(s.get(), data.size(), &got, &last); });
  std::thread w([&] { sent = send_all(c.get(), data, 65536); });
  ASSERT_TRUE(eventually([&] { return got.load() >= (1u << 20); }, 30000));
  ASSERT_EQ(rte_eth_dev_set_link_down(0), 0);
  ASSERT_EQ(rte_eth_dev_set_link_down(1), 0);
  // The close wait and LLC waits bound how long the ends take to notice.
  w.join();
  r.join();
  EXPECT_LT(got.load(), data.size());
  EXPECT_EQ(sent, -ECONNRESET) << std::strerror(int(-sent));
  EXPECT_EQ(last, -ECONNRESET) << "recv returned " << last;
  // Closing the sockets frees what is left of both groups.
  EXPECT_EQ(c->close(), 0);
  EXPECT_EQ(s->close(), 0);
  c.reset();
  s.reset();
  EXPECT_TRUE(eventually([&] { return only_lgr(client_.get()) == nullptr && only_lgr(server_.get()) == nullptr; },
                         10000))
      << "a link group outlived both its links\n" << client_->stat_json() << "\n" << server_->stat_json();
}

TEST_F(SmcFailover, OneDeviceConfiguredKeepsOneLink) {
  // SMC_DEVICE=droce0: the ADD LINK offer finds no second device on the
  // client and is rejected; the group keeps its one link.
  listener_.reset();
  client_.reset();
  server_.reset();
  Config c = test_config();
  c.device = "droce0";
  client_ = make_runtime(c);
  server_ = make_runtime(c);
  ASSERT_NE(client_, nullptr);
  ASSERT_NE(server_, nullptr);
  EXPECT_EQ(client_->devices().size(), 1u);
  listener_ = listen_on(server_.get(), &port_);
  std::shared_ptr<Socket> cl, sv;
  connect_pair(&cl, &sv);
  EXPECT_EQ(cl->send("ab", 2, 0), 2);
  std::atomic<size_t> got{0};
  long last = 0;
  EXPECT_EQ(recv_upto(sv.get(), 2, &got, &last), (std::vector<uint8_t>{'a', 'b'}));
  ASSERT_TRUE(links_active(1, 2000));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // an ADD LINK would have come by now
  EXPECT_EQ(only_lgr(server_.get())->active_links(), 1u);
  EXPECT_EQ(server_->counters().links_added.load(), 0u);
}

}  // namespace
}  // namespace droce::smc::test
