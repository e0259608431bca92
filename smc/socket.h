// Socket: one SMC-R socket with TCP fallback, the object behind smc.h's
// descriptors (the role of Linux 6.1 af_smc.c). Its descriptor is the user
// end of a socketpair whose readiness mirrors the connection's: a byte
// queued toward it makes it readable, a full send queue makes it not
// writable. A connection that falls back to TCP takes the TCP socket's file
// under the same descriptor number (dup2), so poll/epoll see TCP directly.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "smc/clc.h"
#include "smc/core.h"

namespace droce::smc {

class Runtime;

class Socket {
 public:
  enum class Kind : uint8_t { kFresh, kListening, kSmc, kTcp };

  // rt may be null: SMC-R is unavailable and every connection is TCP
  // (no_smc_reason says why).
  static std::shared_ptr<Socket> create(Runtime* rt, uint32_t no_smc_reason, int flags, int* err);
  ~Socket();
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;

  int fd() const { return fd_; }
  Kind kind() const { return kind_.load(std::memory_order_acquire); }

  // Each returns 0 / a count, or -errno.
  int bind(const sockaddr* addr, socklen_t len);
  int listen(int backlog);
  // A connected socket from the accept queue (nullptr with *err).
  std::shared_ptr<Socket> accept(sockaddr* addr, socklen_t* len, int flags, int* err);
  int connect(const sockaddr* addr, socklen_t len);
  long send(const void* buf, size_t len, int flags);
  long recv(void* buf, size_t len, int flags);
  int shutdown(int how);
  // Closes the descriptor. An SMC-R connection closes in the background
  // (peer_conn_closed, then the peer's close or SMC_CLOSE_WAIT_MS).
  int close();
  int set_nonblock(bool on);
  int set_tcp();
  int setsockopt(int level, int name, const void* val, socklen_t len);
  int getsockname(sockaddr* addr, socklen_t* len);
  int getpeername(sockaddr* addr, socklen_t* len);
  int getsockopt(int level, int name, void* val, socklen_t* len);
  // Bytes recv would return now (FIONREAD), or -errno.
  long available();
  bool nonblocking() const { return nonblock_; }
  // The TCP socket beneath (CLC; the data path too after a fallback).
  int tcp_fd() const { return kind() == Kind::kTcp ? fd_ : tcp_fd_; }

  // Transport facts for smc_get_info / droce-smc.
  bool uses_smc() const { return kind() == Kind::kSmc; }
  uint32_t fallback_reason() const { return fallback_reason_; }
  uint32_t peer_diagnosis() const { return peer_diagnosis_; }
  int version() const { return version_; }
  bool first_contact() const { return first_contact_; }
  Connection* connection() const { return conn_; }

 private:
  struct ListenState;
  class Mirror;
  Socket(Runtime* rt, uint32_t no_smc_reason);
  // Takes over a connected TCP descriptor as a plain TCP socket.
  void become_tcp(int tcp_fd, uint32_t reason, uint32_t peer_diag);
  void become_smc(const ClcOutcome& o, int tcp_fd);
  static void accept_loop(std::shared_ptr<ListenState> ls);
  static void handshake(std::shared_ptr<ListenState> ls, int tcp_fd);
  void update_listen_readiness();

  Runtime* const rt_;
  uint32_t no_smc_reason_;
  std::atomic<Kind> kind_{Kind::kFresh};
  int fd_ = -1;       // the descriptor the application holds
  int int_fd_ = -1;   // our end of the socketpair (-1 once TCP)
  // A private duplicate of fd_ through which readiness is mirrored, so that
  // the application may dup() and close its descriptor numbers freely.
  int mirror_fd_ = -1;
  int tcp_fd_ = -1;   // the TCP socket (CLC, or the data path after fallback)
  bool nonblock_ = false;
  bool tcp_only_ = false;
  bool rd_shutdown_ = false;
  bool capability_local_ = true;  // Config::capability_local when rt_ is null
  Connection* conn_ = nullptr;  // owner reference while kSmc
  Mirror* mirror_ = nullptr;    // owned by conn_
  uint32_t fallback_reason_ = 0;
  uint32_t peer_diagnosis_ = 0;
  int version_ = 0;
  bool first_contact_ = false;
  std::shared_ptr<ListenState> listen_;
  uint16_t listen_port_ = 0;  // announced for capability (Config::capability_local)
  std::mutex mu_;  // guards kind changes and close
};

// The process-wide runtime the C API uses (created on first use from the
// environment; nullptr when SMC-R is unavailable, with the reason).
Runtime* default_runtime(uint32_t* no_smc_reason);

// The descriptors the C API and the preload shim handed out. Several
// descriptors (dup) may name one socket; the socket closes with its last.
namespace fd_table {
void put(int fd, const std::shared_ptr<Socket>& s);
std::shared_ptr<Socket> get(int fd);
// Without taking the lock: false means fd is certainly not ours.
bool maybe(int fd);
// Forgets fd; returns its socket and whether no other descriptor names it.
std::shared_ptr<Socket> take(int fd, bool* last);
}  // namespace fd_table

}  // namespace droce::smc
