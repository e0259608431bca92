// The invariants of DESIGN.md section 6 / issue 10 section 2, each with its
// own test, and the seed race of ../shared/reference/
// seed-smc-cdc-refcount-fix.txt as a deterministic test.
//
// Built twice: normally, and (smc_seed_race_norefcount_test) with
// DROCE_SMC_NO_CDC_REFCOUNT, which removes the CDC's hold on the
// connection; that binary runs only SeedRace.WithoutRefcountAsanReports.
#include <mutex>
#include <vector>

#include "tests/smc/smc_fixture.h"

#if defined(__SANITIZE_ADDRESS__)
#define DROCE_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DROCE_TEST_ASAN 1
#endif
#endif

namespace droce::smc::test {
namespace {

class SmcInvariants : public ::testing::Test {
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
  std::unique_ptr<Runtime> client_, server_;
};

// CDC completions of one link held back by the test (the hook in the
// completion path), delivered on demand.
struct HeldCompletions {
  std::mutex mu;
  std::vector<std::pair<Link*, ibv_wc>> held;
  size_t count() {
    std::lock_guard<std::mutex> lk(mu);
    return held.size();
  }
  void install(Runtime* rt) {
    rt->hooks().set_hold_cdc_completion([this](Link* l, const ibv_wc& wc) {
      std::lock_guard<std::mutex> lk(mu);
      held.emplace_back(l, wc);
      return true;
    });
  }
  void deliver_all(Runtime* rt) {
    std::vector<std::pair<Link*, ibv_wc>> h;
    {
      std::lock_guard<std::mutex> lk(mu);
      h.swap(held);
    }
    for (auto& [l, wc] : h) rt->deliver_held_cdc(l, wc);
  }
};

// The seed race, step by step: a CDC is in flight (its completion held), the
// application closes and releases the connection, then the completion
// arrives. With the refcount the connection outlives the completion.
[[maybe_unused]] void seed_race(Runtime* client, Runtime* server, bool expect_refcount) {
  CorePair p;
  core_pair(client, server, &p);
  ASSERT_TRUE(p.client.smc);
  ASSERT_TRUE(p.server.smc);
  Connection* c = p.client.conn;
  LinkGroup* lgr = c->lgr();
  lgr->use();
  HeldCompletions held;
  held.install(client);
  const char byte = 'x';
  ASSERT_EQ(c->send(&byte, 1, false), 1);
  ASSERT_TRUE(eventually([&] { return held.count() == 1; }, 5000)) << "the CDC's completion never came";
  EXPECT_EQ(c->cdc_pending(), 1u);
  EXPECT_EQ(lgr->live_connections(), 1u);
  // smc_release: the owner lets go while the CDC is in flight.
  c->release();
  if (expect_refcount) {
    // Invariant 1: not freed while the CDC is in flight.
    EXPECT_EQ(lgr->live_connections(), 1u);
  }
  // The completion arrives now (smc_cdc_tx_handler). Without the refcount
  // this touches freed memory.
  held.deliver_all(client);
  EXPECT_EQ(lgr->live_connections(), 0u) << "freed once its last CDC completed";
  lgr->unuse();
  client->hooks().set_hold_cdc_completion(nullptr);
  p.server.conn->release();
}

#ifndef DROCE_SMC_NO_CDC_REFCOUNT

TEST_F(SmcInvariants, SeedRaceConnectionOutlivesItsInFlightCdc) { seed_race(client_.get(), server_.get(), true); }

// (a) Every CDC takes a reference before the post and drops it on its
// completion, whatever the status: flushed CDCs too, so a torn-down link
// frees its connections.
TEST_F(SmcInvariants, FlushedCdcsDropTheirReferences) {
  CorePair p;
  core_pair(client_.get(), server_.get(), &p);
  ASSERT_TRUE(p.client.smc);
  Connection* c = p.client.conn;
  LinkGroup* lgr = c->lgr();
  lgr->use();  // observed after its end: not reaped meanwhile
  Link* link = lgr->active_link();
  ASSERT_NE(link, nullptr);
  // Hold completions, post a few CDCs, then tear the link down: the held
  // ones are delivered as successes, the rest come back flushed or
  // completed; either way every reference goes.
  HeldCompletions held;
  held.install(client_.get());
  std::vector<char> data(100, 'd');
  for (int i = 0; i < 5; ++i) ASSERT_EQ(c->send(data.data(), data.size(), false), 100);
  ASSERT_TRUE(eventually([&] { return held.count() >= 1; }, 5000));
  client_->hooks().set_hold_cdc_completion(nullptr);
  held.deliver_all(client_.get());
  c->release();
  lgr->terminate(false, "test");
  EXPECT_EQ(link->state(), LinkState::kFreed);
  EXPECT_EQ(link->slots_in_flight(), 0u);
  EXPECT_TRUE(eventually([&] { return lgr->live_connections() == 0; }, 5000));
  lgr->unuse();
  p.server.conn->release();
}

// (b) Link teardown: ERR (never RESET), drain, then QP, CQ, MRs, PD.
TEST_F(SmcInvariants, TeardownOrderIsErrDrainQpCqMrPd) {
  CorePair p;
  core_pair(client_.get(), server_.get(), &p);
  ASSERT_TRUE(p.client.smc);
  std::mutex mu;
  std::vector<std::string> steps;
  client_->hooks().trace = [&](Link*, const char* s) {
    std::lock_guard<std::mutex> lk(mu);
    steps.emplace_back(s);
  };
  // Work in flight while the teardown starts.
  std::vector<char> data(30000, 'e');
  ASSERT_EQ(p.client.conn->send(data.data(), data.size(), false), long(data.size()));
  LinkGroup* lgr = p.client.conn->lgr();
  lgr->use();
  Link* link = lgr->active_link();
  ASSERT_NE(link, nullptr);
  p.client.conn->release();
  lgr->terminate(false, "test");
  client_->hooks().trace = nullptr;
  const std::vector<std::string> want = {"qp_err", "drained", "destroy_qp", "destroy_cq", "dereg_mr", "dealloc_pd"};
  EXPECT_EQ(steps, want);
  EXPECT_EQ(link->state(), LinkState::kFreed);
  // Idempotent (invariant 5): again, from another path.
  link->teardown();
  lgr->terminate(true, "again");
  EXPECT_EQ(steps.size(), want.size());
  lgr->unuse();
  p.server.conn->release();
}

// (c) Nothing is posted on a link whose QP is not in RTS.
TEST_F(SmcInvariants, NoPostUnlessRts) {
  LinkGroup* lgr = client_->create_lgr(Role::kClient, true);
  std::string err;
  Link* link = lgr->add_link(client_->device(), &err);
  ASSERT_NE(link, nullptr) << err;
  EXPECT_EQ(link->state(), LinkState::kInit);
  wire::LlcTestLink t;
  t.hdr.type = wire::LlcType::kTestLink;
  t.hdr.v2 = true;
  EXPECT_FALSE(link->send_llc(t, 10));
  EXPECT_LT(link->try_get_slot(), 0);
  EXPECT_GE(link->counters().post_refused.load(), 2u);
  EXPECT_EQ(link->counters().llc_sent.load(), 0u);
  // RTR is not enough either.
  ASSERT_TRUE(link->to_rtr(client_->device()->gid, link->qpn(), link->psn(), 3, &err)) << err;
  EXPECT_FALSE(link->send_llc(t, 10));
  // A failed link refuses as well.
  link->fail("test");
  EXPECT_FALSE(link->send_llc(t, 10));
  EXPECT_EQ(link->counters().llc_sent.load(), 0u);
  lgr->terminate(false, "test");
  lgr->unuse();
}

// (e) Freeing is idempotent; completion handlers tolerate half-built
// connections (no buffers, no link yet).
TEST_F(SmcInvariants, HalfBuiltConnectionsAndDoubleRelease) {
  LinkGroup* lgr = client_->create_lgr(Role::kClient, true);
  Connection* c = lgr->new_connection();
  ASSERT_NE(c, nullptr);
  wire::CdcMsg m;
  m.token = c->token();
  m.prod.count = 100;
  c->on_cdc(m, nullptr);  // no RMB, no link: ignored
  c->on_link_down(ECONNRESET);
  EXPECT_EQ(c->error(), ECONNRESET);
  c->hold();
  c->release();
  c->release();  // second time: nothing
  EXPECT_EQ(lgr->live_connections(), 1u) << "our hold keeps it";
  EXPECT_EQ(lgr->find_connection(m.token), nullptr) << "unregistered at the first release";
  c->put();
  EXPECT_EQ(lgr->live_connections(), 0u);
  lgr->terminate(false, "test");
  lgr->terminate(false, "test");
  lgr->unuse();
}

// (f) Close has a bounded fallback: a peer that never closes does not keep
// the connection (and its buffers) forever.
TEST_F(SmcInvariants, CloseWithSilentPeerEndsWithinCloseWait) {
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
  LinkGroup* lgr = c->connection()->lgr();
  lgr->use();
  const auto t0 = std::chrono::steady_clock::now();
  c->close();  // the server application never closes its side
  ASSERT_TRUE(eventually([&] { return lgr->live_connections() == 0; }, client_->config().close_wait_ms + 3000));
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LE(ms, client_->config().close_wait_ms + 3000);
  lgr->unuse();
  // The server side saw the close (end of stream), and can still close.
  char b;
  EXPECT_EQ(s->recv(&b, 1, 0), 0);
  s->close();
  listener->close();
}

// (d) Device removal as the async event handler runs it: every group with a
// link on the device ends, each link drained and destroyed, no hang.
TEST_F(SmcInvariants, DeviceRemovalTearsDownEveryLink) {
  CorePair p1, p2;
  core_pair(client_.get(), server_.get(), &p1);
  core_pair(client_.get(), server_.get(), &p2);
  ASSERT_TRUE(p1.client.smc && p2.client.smc);
  LinkGroup* lgr = p1.client.conn->lgr();
  lgr->use();
  Link* link = lgr->active_link();
  std::vector<char> data(50000, 'r');
  ASSERT_EQ(p1.client.conn->send(data.data(), data.size(), false), long(data.size()));
  client_->terminate_device("test: device removed");
  EXPECT_EQ(link->state(), LinkState::kFreed);
  // The server learns it when it next sends: the RC retries run out (seven
  // retries of 134 ms), the link fails, its connections with it.
  ASSERT_GT(p1.server.conn->send(data.data(), 100, false), 0);
  EXPECT_EQ(p1.client.conn->error(), ECONNRESET);
  EXPECT_EQ(p2.client.conn->error(), ECONNRESET);
  char b;
  EXPECT_EQ(p2.client.conn->recv(&b, 1, false), -ECONNRESET);
  p1.client.conn->release();
  p2.client.conn->release();
  EXPECT_TRUE(eventually([&] { return lgr->live_connections() == 0; }, 5000));
  lgr->unuse();
  // The server side notices the dead peer (retries exhausted) or the
  // group's DELETE LINK; either way its connections fail.
  EXPECT_TRUE(eventually([&] { return p1.server.conn->error() != 0; }, 10000));
  p1.server.conn->release();
  p2.server.conn->release();
}

#endif  // !DROCE_SMC_NO_CDC_REFCOUNT

#ifdef DROCE_SMC_NO_CDC_REFCOUNT
// Without the refcount, Linux's bug comes back: the completion handler runs
// on a freed connection, and AddressSanitizer says so.
TEST(SeedRace, WithoutRefcountAsanReports) {
#ifndef DROCE_TEST_ASAN
  GTEST_SKIP() << "shows the use-after-free only under AddressSanitizer (the build-asan tree runs it)";
#else
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        Config c = test_config();
        auto client = make_runtime(c);
        auto server = make_runtime(c);
        seed_race(client.get(), server.get(), false);
      },
      "heap-use-after-free");
#endif
}
#endif

}  // namespace
}  // namespace droce::smc::test

namespace droce::smc::test {
namespace {

#ifndef DROCE_SMC_NO_CDC_REFCOUNT
// A peer whose link silently went away (its QP destroyed, no DELETE LINK):
// the keepalive's TEST LINK finds out (Linux's smcr_testlink_time), and the
// connections on the link fail instead of waiting forever.
TEST(SmcKeepalive, SilentPeerIsFoundByTestLink) {
  Config c = test_config();
  c.testlink_ms = 300;
  c.llc_wait_ms = 500;
  auto client = make_runtime(c);
  auto server = make_runtime(c);
  CorePair p;
  core_pair(client.get(), server.get(), &p);
  ASSERT_TRUE(p.client.smc && p.server.smc);
  Link* sl = p.server.conn->lgr()->active_link();
  const uint64_t llc_before = sl->counters().llc_sent.load();
  const auto t0 = std::chrono::steady_clock::now();
  p.client.conn->lgr()->terminate(false, "test: gone without a word");
  ASSERT_TRUE(eventually([&] { return p.server.conn->error() == ECONNRESET; }, 10000));
  EXPECT_GT(sl->counters().llc_sent.load(), llc_before) << "no TEST LINK was sent";
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  p.client.conn->release();
  p.server.conn->release();
}
#endif

}  // namespace
}  // namespace droce::smc::test
