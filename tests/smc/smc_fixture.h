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
#include <thread>

#include "smc/runtime.h"
#include "smc/socket.h"

namespace droce::smc::test {

inline Config test_config() {
  std::string err;
  Config c = config_from_env(&err);
  c.clc_wait_ms = 3000;
  c.llc_wait_ms = 2000;
  c.close_wait_ms = 2000;
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
