// SMC-R between two runtimes of one process over droce's loopback port: the
// handshake (first contact, then a reused link group), data both ways
// verified byte for byte, orderly close, and fallbacks.
#include <poll.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#include "tests/smc/smc_fixture.h"

namespace droce::smc::test {
namespace {

class SmcLoopback : public ::testing::Test {
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

  // Connects a client socket to `listener` and accepts it.
  void connect_pair(const std::shared_ptr<Socket>& listener, int port, std::shared_ptr<Socket>* c,
                    std::shared_ptr<Socket>* s) {
    int err = 0;
    *c = Socket::create(client_.get(), 0, 0, &err);
    ASSERT_NE(*c, nullptr);
    const sockaddr_in sa = loopback(port);
    std::thread t([&] { *s = listener->accept(nullptr, nullptr, 0, &err); });
    EXPECT_EQ((*c)->connect(reinterpret_cast<const sockaddr*>(&sa), sizeof(sa)), 0);
    t.join();
    ASSERT_NE(*s, nullptr) << err;
  }

  std::unique_ptr<Runtime> client_, server_;
};

void send_all(Socket* s, const std::vector<uint8_t>& data, size_t chunk) {
  size_t off = 0;
  while (off < data.size()) {
    const long n = s->send(data.data() + off, std::min(chunk, data.size() - off), 0);
    ASSERT_GT(n, 0) << "send: " << std::strerror(int(-n));
    off += size_t(n);
  }
}

std::vector<uint8_t> recv_n(Socket* s, size_t want) {
  std::vector<uint8_t> out(want);
  size_t off = 0;
  while (off < want) {
    const long n = s->recv(out.data() + off, want - off, 0);
    if (n <= 0) {
      ADD_FAILURE() << "recv returned " << n << " after " << off << " of " << want << " bytes";
      out.resize(off);
      return out;
    }
    off += size_t(n);
  }
  return out;
}

TEST_F(SmcLoopback, FirstContactThenReuseAndDataBothWays) {
  int port = 0;
  auto listener = listen_on(server_.get(), &port);
  ASSERT_GT(port, 0);
  std::shared_ptr<Socket> c, s;
  connect_pair(listener, port, &c, &s);
  ASSERT_TRUE(c->uses_smc()) << "client fell back: " << std::hex << c->fallback_reason();
  ASSERT_TRUE(s->uses_smc()) << "server fell back: " << std::hex << s->fallback_reason();
  EXPECT_TRUE(c->first_contact());
  EXPECT_EQ(c->version(), 2);

  // 4 MiB each way, several times the 64 KiB buffers: the rings wrap and the
  // window rule must keep both sides going.
  const auto up = pattern(4 << 20, 1), down = pattern(4 << 20, 2);
  std::vector<uint8_t> got_up, got_down;
  std::thread srv([&] {
    got_up = recv_n(s.get(), up.size());
    send_all(s.get(), down, 100000);
  });
  send_all(c.get(), up, 65536);
  got_down = recv_n(c.get(), down.size());
  srv.join();
  EXPECT_TRUE(got_up == up);
  EXPECT_TRUE(got_down == down);

  // A second connection reuses the link group.
  std::shared_ptr<Socket> c2, s2;
  connect_pair(listener, port, &c2, &s2);
  ASSERT_TRUE(c2->uses_smc());
  EXPECT_FALSE(c2->first_contact());
  const auto small = pattern(1000, 3);
  send_all(c2.get(), small, 1000);
  EXPECT_TRUE(recv_n(s2.get(), small.size()) == small);

  // Orderly close: the peer reads end of stream.
  EXPECT_EQ(c->close(), 0);
  uint8_t b;
  EXPECT_EQ(s->recv(&b, 1, 0), 0);
  EXPECT_EQ(s->close(), 0);
  EXPECT_EQ(c2->close(), 0);
  EXPECT_EQ(s2->close(), 0);
  EXPECT_EQ(listener->close(), 0);
}

TEST(SmcSpinBudget, DoublesOnSatisfiedWaitsHalvesOnMissedOnesWithinItsBounds) {
  SpinBudget b(500);
  EXPECT_EQ(b.us(), 500);
  b.missed();
  EXPECT_EQ(b.us(), 500) << "never below the setting";
  b.satisfied();
  EXPECT_EQ(b.us(), 1000);
  for (int i = 0; i < 10; ++i) b.satisfied();
  EXPECT_EQ(b.us(), 500 * SpinBudget::kMaxFactor) << "never above kMaxFactor times the setting";
  b.missed();
  EXPECT_EQ(b.us(), 250 * SpinBudget::kMaxFactor);
  for (int i = 0; i < 10; ++i) b.missed();
  EXPECT_EQ(b.us(), 500);
  SpinBudget off(0);  // SMC_BUSY_POLL_US=0: never polls
  off.satisfied();
  EXPECT_EQ(off.us(), 0);
}

// A connection whose waits end within its poll polls longer next time
// (SpinBudget); one whose wait runs out of it polls half as long. The
// setting here is 20 ms, so that a peer answering 1 ms after the wait began
// falls within it even on a loaded machine.
TEST_F(SmcLoopback, WaitsThatThePollSatisfiesLengthenItAndOneThatRunsOutHalvesIt) {
  client_.reset();
  server_.reset();
  Config cfg = test_config();
  cfg.busy_poll_us = 20000;
  client_ = make_runtime(cfg);
  server_ = make_runtime(cfg);
  ASSERT_NE(client_, nullptr);
  ASSERT_NE(server_, nullptr);
  const int base = cfg.busy_poll_us;
  int port = 0;
  auto listener = listen_on(server_.get(), &port);
  std::shared_ptr<Socket> c, s;
  connect_pair(listener, port, &c, &s);
  ASSERT_TRUE(s->uses_smc());
  Connection* sc = s->connection();
  ASSERT_NE(sc, nullptr);
  EXPECT_EQ(sc->spin_budget_us(), base);

  // One byte, sent by another thread delay_ms after this call; the receiver
  // blocks in recv meanwhile.
  auto late_byte = [&](int delay_ms, uint8_t v) {
    std::thread late([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
      EXPECT_EQ(c->send(&v, 1, 0), 1);
    });
    uint8_t b = 0;
    EXPECT_EQ(s->recv(&b, 1, 0), 1);
    EXPECT_EQ(b, v);
    late.join();
  };
  // Answers 1 ms into the wait: within the poll (one such wait is enough).
  int highest = base;
  for (int i = 0; i < 4; ++i) {
    late_byte(1, uint8_t(i));
    highest = std::max(highest, sc->spin_budget_us());
  }
  EXPECT_GT(highest, base) << "no wait ended within its poll";
  EXPECT_LE(highest, base * SpinBudget::kMaxFactor);
  // An answer later than the whole poll: the budget halves (not below the
  // setting).
  const int before = sc->spin_budget_us();
  late_byte(before / 1000 + 30, 9);
  EXPECT_EQ(sc->spin_budget_us(), std::max(before / 2, base));

  // Data still flows, byte for byte.
  const auto data = pattern(1 << 20, 4);
  std::vector<uint8_t> got;
  std::thread srv([&] { got = recv_n(s.get(), data.size()); });
  send_all(c.get(), data, 65536);
  srv.join();
  EXPECT_TRUE(got == data);
  EXPECT_EQ(c->close(), 0);
  EXPECT_EQ(s->close(), 0);
  EXPECT_EQ(listener->close(), 0);
}

TEST_F(SmcLoopback, PollReportsReadableAndWritable) {
  int port = 0;
  auto listener = listen_on(server_.get(), &port);
  std::shared_ptr<Socket> c, s;
  connect_pair(listener, port, &c, &s);
  ASSERT_TRUE(c->uses_smc());
  pollfd p{s->fd(), POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 0), 0) << "readable before any data";
  pollfd w{c->fd(), POLLOUT, 0};
  EXPECT_EQ(::poll(&w, 1, 0), 1);
  EXPECT_TRUE(w.revents & POLLOUT);
  const char msg[] = "hello";
  ASSERT_EQ(c->send(msg, sizeof(msg), 0), long(sizeof(msg)));
  EXPECT_EQ(::poll(&p, 1, 5000), 1);
  EXPECT_TRUE(p.revents & POLLIN);
  char buf[16];
  EXPECT_EQ(s->recv(buf, sizeof(buf), 0), long(sizeof(msg)));
  p.revents = 0;
  EXPECT_EQ(::poll(&p, 1, 0), 0) << "still readable after the data was read";
  // Fill the sender until it would block: then it is not writable.
  ASSERT_EQ(c->set_nonblock(true), 0);
  std::vector<uint8_t> junk(65536);
  long n;
  size_t total = 0;
  while ((n = c->send(junk.data(), junk.size(), 0)) > 0) total += size_t(n);
  EXPECT_EQ(n, -EAGAIN);
  EXPECT_GT(total, 0u);
  w.revents = 0;
  EXPECT_EQ(::poll(&w, 1, 0), 0) << "writable while send would block";
  // Reading on the other side frees space: writable again.
  std::vector<uint8_t> sink(total);
  size_t got = 0;
  while (got < total) {
    const long r = s->recv(sink.data(), sink.size(), 0);
    ASSERT_GT(r, 0);
    got += size_t(r);
  }
  EXPECT_EQ(::poll(&w, 1, 5000), 1);
  c->close();
  s->close();
  listener->close();
}

TEST_F(SmcLoopback, TcpOnlyListenerMeansFallback) {
  int port = 0;
  auto listener = listen_on(server_.get(), &port, /*tcp_only=*/true);
  std::shared_ptr<Socket> c, s;
  connect_pair(listener, port, &c, &s);
  EXPECT_FALSE(c->uses_smc());
  EXPECT_EQ(c->fallback_reason(), wire::decline::kPeerNoSmc);
  // Plain TCP keeps working, with the proposal bytes consumed by nobody:
  // the server, not speaking SMC, reads them as data first.
  std::vector<uint8_t> proposal(1024);
  const long n = s->recv(proposal.data(), proposal.size(), 0);
  ASSERT_GT(n, 8);
  EXPECT_EQ(std::memcmp(proposal.data(), wire::kEyecatcherSmcr.data(), 4), 0);
  c->close();
  s->close();
  listener->close();
}

// Capability without TCP option 254: a client proposes SMC-R to a loopback
// port only when an SMC-R listener announced it, so a plain TCP server never
// reads a Proposal (its data stays intact) and the client falls back at once.
TEST(SmcCapability, NoProposalToAPortNobodyAnnounced) {
  Config c = test_config();
  c.capability_local = true;
  // A client that waited for a CLC answer would take the whole wait: make it
  // a minute, so that "at once" is told apart with no tight timing.
  c.clc_wait_ms = 60000;
  auto client = make_runtime(c);
  auto server = make_runtime(c);
  int port = 0;
  auto plain = listen_on(server.get(), &port, /*tcp_only=*/true);
  int err = 0;
  auto s = Socket::create(client.get(), 0, 0, &err);
  std::shared_ptr<Socket> a;
  std::thread t([&] { a = plain->accept(nullptr, nullptr, 0, &err); });
  const sockaddr_in sa = loopback(port);
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(s->connect(reinterpret_cast<const sockaddr*>(&sa), sizeof(sa)), 0);
  t.join();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(30)) << "it waited for a CLC answer";
  EXPECT_FALSE(s->uses_smc());
  EXPECT_EQ(s->fallback_reason(), wire::decline::kPeerNoSmc);
  const char hello[] = "PING\r\n";
  ASSERT_EQ(s->send(hello, sizeof(hello) - 1, 0), long(sizeof(hello) - 1));
  char got[16] = {};
  EXPECT_EQ(a->recv(got, sizeof(got), 0), long(sizeof(hello) - 1));
  EXPECT_STREQ(got, hello) << "the server reads the client's bytes, no Proposal before them";
  s->close();
  a->close();
  plain->close();
  // An SMC-R listener announces its port: the same client now proposes.
  auto smc = listen_on(server.get(), &port);
  auto s2 = Socket::create(client.get(), 0, 0, &err);
  std::shared_ptr<Socket> a2;
  std::thread t2([&] { a2 = smc->accept(nullptr, nullptr, 0, &err); });
  const sockaddr_in sa2 = loopback(port);
  ASSERT_EQ(s2->connect(reinterpret_cast<const sockaddr*>(&sa2), sizeof(sa2)), 0);
  t2.join();
  EXPECT_TRUE(s2->uses_smc());
  s2->close();
  a2->close();
  smc->close();
}

}  // namespace
}  // namespace droce::smc::test
