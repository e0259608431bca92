// Bounded stress (issue 10 section 2): connections streaming while link
// groups are torn down and the device is "removed" (the async event's
// handler) at random moments, on a lossy link (DROCE_FAULTS, set by ctest).
// Whatever happens, every byte a receiver gets is the next byte the sender
// sent (no loss inside the delivered prefix, no duplicate, no corruption);
// undisturbed rounds deliver everything; nothing hangs, and at the end no
// connection object is left. Run in build/, build-asan/ and build-tsan/.
#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "tests/smc/smc_fixture.h"

namespace droce::smc::test {
namespace {

using Clock = std::chrono::steady_clock;

uint8_t byte_at(uint32_t conn, uint64_t off) { return uint8_t((off * 2654435761u + conn * 40503u) >> 11); }

struct Stream {
  std::shared_ptr<Socket> tx, rx;
  uint32_t id = 0;
  uint64_t total = 0;
  std::atomic<uint64_t> sent{0}, received{0};
  std::atomic<bool> corrupt{false};
};

TEST(SmcStress, StreamsSurviveTeardownsAndDeviceRemoval) {
  Config cfg = test_config();
  cfg.close_wait_ms = 500;
  cfg.rmb_size = 16384;  // small rings: many wraps, many window updates
  cfg.sndbuf_size = 16384;
  cfg.testlink_ms = 1000;
  cfg.tcp_gone_grace_ms = 300;
  auto client = make_runtime(cfg);
  auto server = make_runtime(cfg);
  ASSERT_NE(client, nullptr);
  ASSERT_NE(server, nullptr);
  int port = 0;
  auto listener = listen_on(server.get(), &port);
  std::mt19937 rng(12345);
  const auto end = Clock::now() + std::chrono::seconds(8);
  int rounds = 0, disturbed = 0, smc_streams = 0;
  uint64_t bytes = 0;
  for (; rounds < 40 && Clock::now() < end; ++rounds) {
    const int k = 2 + int(rng() % 4);
    std::vector<std::unique_ptr<Stream>> streams;
    for (int i = 0; i < k; ++i) {
      auto s = std::make_unique<Stream>();
      s->id = uint32_t(rounds * 16 + i);
      s->total = 20000 + rng() % 400000;
      int err = 0;
      s->tx = Socket::create(client.get(), 0, 0, &err);
      ASSERT_NE(s->tx, nullptr);
      std::thread acc([&] { s->rx = listener->accept(nullptr, nullptr, 0, &err); });
      const sockaddr_in sa = loopback(port);
      const int rc = s->tx->connect(reinterpret_cast<const sockaddr*>(&sa), sizeof(sa));
      acc.join();
      ASSERT_EQ(rc, 0);
      ASSERT_NE(s->rx, nullptr);
      smc_streams += s->tx->uses_smc() ? 1 : 0;
      streams.push_back(std::move(s));
    }
    // The groups to disturb, taken before the threads may close the sockets.
    LinkGroup* client_g = streams[0]->tx->uses_smc() ? streams[0]->tx->connection()->lgr() : nullptr;
    LinkGroup* server_g = streams[0]->rx->uses_smc() ? streams[0]->rx->connection()->lgr() : nullptr;
    if (client_g != nullptr) client_g->use();
    if (server_g != nullptr) server_g->use();
    const bool disturb = rng() % 2 == 0;
    const int what = int(rng() % 4);
    const int after_us = int(rng() % 20000);
    std::vector<std::thread> threads;
    for (auto& sp : streams) {
      Stream* s = sp.get();
      threads.emplace_back([s, seed = rng()] {
        std::mt19937 r(seed);
        std::vector<uint8_t> buf(70000);
        while (s->sent < s->total) {
          const size_t n = std::min<uint64_t>(1 + r() % buf.size(), s->total - s->sent);
          for (size_t i = 0; i < n; ++i) buf[i] = byte_at(s->id, s->sent + i);
          const long w = s->tx->send(buf.data(), n, 0);
          if (w <= 0) break;
          s->sent += uint64_t(w);
        }
        s->tx->shutdown(SHUT_WR);
        // Wait for the peer's end (it reads up to the end of stream, then
        // closes), then close; a failed connection closes at once.
        uint8_t b;
        while (s->tx->recv(&b, 1, 0) > 0) {
        }
        s->tx->close();
      });
      threads.emplace_back([s] {
        std::vector<uint8_t> buf(50000);
        for (;;) {
          const long n = s->rx->recv(buf.data(), buf.size(), 0);
          if (n <= 0) break;
          for (long i = 0; i < n; ++i) {
            if (buf[size_t(i)] != byte_at(s->id, s->received + uint64_t(i))) s->corrupt = true;
          }
          s->received += uint64_t(n);
        }
        // As an application would: done reading, close. A sender still
        // blocked on this peer learns it from the TCP connection's end.
        s->rx->close();
      });
    }
    if (disturb) {
      ++disturbed;
      std::this_thread::sleep_for(std::chrono::microseconds(after_us));
      // Synchronous, so that a quiet round is quiet (no teardown of an
      // earlier round's group still pending); the groups are in use by this
      // round's connections, so they are not deleted under us.
      switch (what) {
        case 0:
          if (client_g != nullptr) client_g->terminate(false, "stress: client link group torn down");
          break;
        case 1:
          if (server_g != nullptr) server_g->terminate(false, "stress: server link group torn down");
          break;
        case 2:
          client->terminate_device("stress: client device removed");
          break;
        default:
          server->terminate_device("stress: server device removed");
          break;
      }
    }
    for (auto& t : threads) t.join();
    if (client_g != nullptr) client_g->unuse();
    if (server_g != nullptr) server_g->unuse();
    for (auto& s : streams) {
      EXPECT_FALSE(s->corrupt) << "stream " << s->id << ": a delivered byte differs from the one sent";
      EXPECT_LE(s->received.load(), s->sent.load()) << "stream " << s->id;
      if (!disturb) {
        EXPECT_EQ(s->received.load(), s->total) << "stream " << s->id << " lost data on a quiet round";
      }
      bytes += s->received;
    }
  }
  listener->close();
  std::printf("%d rounds (%d disturbed), %d SMC-R streams, %llu bytes delivered and checked\n", rounds, disturbed,
              smc_streams, static_cast<unsigned long long>(bytes));
  EXPECT_GT(smc_streams, 0);
  // Every connection object ends once the close waits are over.
  auto live = [](Runtime* rt) {
    uint32_t n = 0;
    rt->for_each_lgr([&](LinkGroup* g) { n += g->live_connections(); });
    return n;
  };
  EXPECT_TRUE(eventually([&] { return live(client.get()) == 0 && live(server.get()) == 0; }, 10000))
      << live(client.get()) << " client and " << live(server.get()) << " server connections left";
}

}  // namespace
}  // namespace droce::smc::test
