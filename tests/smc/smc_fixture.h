// Test helpers for smc/: two SMC-R runtimes ("systems") in one process on
// droce's loopback port, a listener on 127.0.0.1, and a connected pair of
// sockets between them.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <thread>
#include <vector>

#include "smc/clc.h"
#include "smc/runtime.h"
#include "smc/socket.h"

namespace droce::smc::test {

inline Config test_config() {
  std::string err;
  Config c = config_from_env(&err);
  c.clc_wait_ms = 3000;
  c.llc_wait_ms = 2000;
  c.close_wait_ms = 2000;
  // Raw test servers announce nothing: always propose (tests that check the
  // announcement set capability_local themselves).
  c.capability_local = false;
  // Nor do they carry TCP option 254 (tests/smc/tcp_option_test.cc turns it on).
  c.capability_tcp_option = false;
  return c;
}

inline std::unique_ptr<Runtime> make_runtime(const Config& c) {
  std::string err;
  auto rt = Runtime::create(c, &err);
  EXPECT_NE(rt, nullptr) << err;
  return rt;
}

// A listening socket of `server` on 127.0.0.1 (ephemeral port).
inline std::shared_ptr<Socket> listen_on(Runtime* server, int* port, bool tcp_only = false) {
  int err = 0;
  auto l = Socket::create(server, 0, 0, &err);
  EXPECT_NE(l, nullptr) << err;
  if (tcp_only) l->set_tcp();
  int one = 1;
  l->setsockopt(SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(l->bind(reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
  EXPECT_EQ(l->listen(16), 0);
  socklen_t sl = sizeof(sa);
  EXPECT_EQ(l->getsockname(reinterpret_cast<sockaddr*>(&sa), &sl), 0);
  *port = ntohs(sa.sin_port);
  return l;
}

inline sockaddr_in loopback(int port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(uint16_t(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return sa;
}

}  // namespace droce::smc::test

namespace droce::smc::test {

// A TCP connection on 127.0.0.1 (plain sockets): client and server ends.
struct TcpPair {
  int client = -1, server = -1;
  ~TcpPair() {
    if (client >= 0) ::close(client);
    if (server >= 0) ::close(server);
  }
};

inline bool tcp_pair(TcpPair* p) {
  const int l = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa = loopback(0);
  socklen_t sl = sizeof(sa);
  if (::bind(l, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0 || ::listen(l, 4) != 0 ||
      ::getsockname(l, reinterpret_cast<sockaddr*>(&sa), &sl) != 0) {
    ::close(l);
    return false;
  }
  p->client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const bool ok = ::connect(p->client, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0;
  p->server = ok ? ::accept4(l, nullptr, nullptr, SOCK_CLOEXEC) : -1;
  ::close(l);
  return ok && p->server >= 0;
}

// The CLC handshake between two runtimes over a fresh TCP pair.
struct CorePair {
  TcpPair tcp;
  ClcOutcome client, server;
};

inline void core_pair(Runtime* client, Runtime* server, CorePair* p) {
  ASSERT_TRUE(tcp_pair(&p->tcp));
  std::thread t([&] { p->server = clc_accept(*server, p->tcp.server); });
  p->client = clc_connect(*client, p->tcp.client);
  t.join();
}

// n pseudo-random bytes from seed: data a test checks byte for byte.
inline std::vector<uint8_t> pattern(size_t n, uint32_t seed) {
  std::vector<uint8_t> v(n);
  std::mt19937 rng(seed);
  for (auto& b : v) b = uint8_t(rng());
  return v;
}

// Waits up to ms for pred, polling every millisecond.
template <typename Pred>
bool eventually(Pred pred, int ms) {
  for (int i = 0; i < ms; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return pred();
}

}  // namespace droce::smc::test
