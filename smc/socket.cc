// Socket and the C API of smc.h (see socket.h).
#include "smc/socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <unordered_map>

#include "smc/log.h"
#include "smc/runtime.h"
#include "smc/smc.h"

namespace droce::smc {

// ---------------------------------------------------------------------------
// Readiness mirror: the socketpair's user end is readable while a byte from
// our end is queued to it, and not writable while we have filled its send
// queue. Changes only on transitions, so a busy connection costs nothing.
class Socket::Mirror : public Connection::ReadyListener {
 public:
  Mirror(int user_fd, int int_fd) : user_fd_(user_fd), int_fd_(int_fd) {}
  void on_ready(Connection& c) override {
    std::lock_guard<std::mutex> lk(mu_);
    if (detached_) return;
    set(c.readable(), c.writable());
  }
  // Also used by listening sockets and by the socket itself (no connection).
  void set(bool r, bool w) {
    char junk[512] = {};
    if (r != readable_) {
      if (r) {
        (void)!::write(int_fd_, "r", 1);
      } else {
        while (::read(user_fd_, junk, sizeof(junk)) > 0) {
        }
      }
      readable_ = r;
    }
    if (w != writable_) {
      if (w) {
        while (::read(int_fd_, junk, sizeof(junk)) > 0) {
        }
      } else {
        while (::write(user_fd_, junk, sizeof(junk)) > 0) {
        }
      }
      writable_ = w;
    }
  }
  void set_locked(bool r, bool w) {
    std::lock_guard<std::mutex> lk(mu_);
    if (!detached_) set(r, w);
  }
  // After this, nothing touches the descriptors (they may be closed).
  void detach() {
    std::lock_guard<std::mutex> lk(mu_);
    detached_ = true;
  }

 private:
  std::mutex mu_;
  const int user_fd_;
  const int int_fd_;
  bool readable_ = false;
  bool writable_ = true;
  bool detached_ = false;
};

// State a listener shares with its accept thread and handshakes (they may
// outlive the Socket for a moment).
struct Socket::ListenState {
  Runtime* rt = nullptr;
  uint32_t no_smc_reason = 0;
  bool tcp_only = false;
  bool tcp_option = false;  // marked for TCP option 254: accepted sockets are gated on it
  int tcp_fd = -1;
  int stop_fd = -1;
  std::thread thread;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::shared_ptr<Socket>> queue;
  int handshakes = 0;  // in progress
  bool closed = false;
  std::unique_ptr<Mirror> mirror;
};

namespace {

constexpr int kMaxHandshakes = 64;
// An accepted socket can reach accept() a moment before the kernel has run
// the program's PASSIVE_ESTABLISHED callback for it (the connection is queued
// first); the verdict is waited for this long at most.
constexpr int kAcceptedPeerWaitMs = 1000;

uint32_t forced_tcp_reason() { return 0; }

std::string addr_text(const sockaddr_storage& ss) {
  char b[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, b, sizeof(b));
    port = ntohs(a->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, b, sizeof(b));
    port = ntohs(a->sin6_port);
  }
  return std::string(b) + ":" + std::to_string(port);
}

// "local -> peer" of a TCP socket.
std::string tcp_label(int fd) {
  sockaddr_storage l{}, p{};
  socklen_t ll = sizeof(l), pl = sizeof(p);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&l), &ll);
  ::getpeername(fd, reinterpret_cast<sockaddr*>(&p), &pl);
  return addr_text(l) + " -> " + addr_text(p);
}

void note_fallback(Runtime* rt, int fd, uint32_t reason, uint32_t peer_diag) {
  if (rt == nullptr) return;
  FallbackEvent e;
  e.when_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
  e.label = tcp_label(fd);
  e.reason = reason;
  e.peer_diagnosis = peer_diag;
  rt->fallbacks().note(std::move(e));
}

}  // namespace

Socket::Socket(Runtime* rt, uint32_t no_smc_reason) : rt_(rt), no_smc_reason_(no_smc_reason) {
  // Without a runtime (SMC-R unavailable), the environment's setting still
  // decides whether a Decline may be sent to a peer.
  if (rt == nullptr) {
    std::string err;
    capability_local_ = config_from_env(&err).capability_local;
  }
}

std::shared_ptr<Socket> Socket::create(Runtime* rt, uint32_t no_smc_reason, int flags, int* err) {
  std::shared_ptr<Socket> s(new Socket(rt, no_smc_reason));
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | ((flags & SOCK_CLOEXEC) ? SOCK_CLOEXEC : 0), 0,
                   sv) != 0) {
    *err = errno;
    return nullptr;
  }
  // Small queues: filling one to clear POLLOUT takes a few writes.
  int small = 1;
  ::setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
  ::setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  s->fd_ = sv[0];
  s->int_fd_ = sv[1];
  s->mirror_fd_ = ::fcntl(sv[0], F_DUPFD_CLOEXEC, 0);
  s->nonblock_ = (flags & SOCK_NONBLOCK) != 0;
  s->tcp_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s->tcp_fd_ < 0) {
    *err = errno;
    ::close(sv[0]);
    ::close(sv[1]);
    s->fd_ = s->int_fd_ = -1;
    return nullptr;
  }
  return s;
}

Socket::~Socket() {
  if (fd_ >= 0) close();
}

void Socket::become_tcp(int tcp_fd, uint32_t reason, uint32_t peer_diag) {
  note_fallback(rt_, tcp_fd, reason, peer_diag);
  // The TCP socket's file takes over the application's descriptor number.
  const int flags = ::fcntl(tcp_fd, F_GETFL);
  ::fcntl(tcp_fd, F_SETFL, nonblock_ ? flags | O_NONBLOCK : flags & ~O_NONBLOCK);
  ::dup3(tcp_fd, fd_, (::fcntl(fd_, F_GETFD) & FD_CLOEXEC) ? O_CLOEXEC : 0);
  ::close(tcp_fd);
  if (int_fd_ >= 0) ::close(int_fd_);
  if (mirror_fd_ >= 0) ::close(mirror_fd_);
  int_fd_ = mirror_fd_ = -1;
  tcp_fd_ = fd_;
  fallback_reason_ = reason;
  peer_diagnosis_ = peer_diag;
  kind_.store(Kind::kTcp, std::memory_order_release);
}

void Socket::become_smc(const ClcOutcome& o, int tcp_fd) {
  tcp_fd_ = tcp_fd;
  conn_ = o.conn;
  conn_->set_label(tcp_label(tcp_fd));
  version_ = o.version;
  first_contact_ = o.first_contact;
  auto m = std::make_unique<Mirror>(mirror_fd_, int_fd_);
  mirror_ = m.get();
  conn_->set_ready_listener(std::move(m));
  kind_.store(Kind::kSmc, std::memory_order_release);
  rt_->watch_tcp(conn_, tcp_fd_);
  mirror_->on_ready(*conn_);
}

int Socket::bind(const sockaddr* addr, socklen_t len) {
  if (kind() != Kind::kFresh) return -EINVAL;
  return ::bind(tcp_fd_, addr, len) == 0 ? 0 : -errno;
}

int Socket::setsockopt(int level, int name, const void* val, socklen_t len) {
  std::lock_guard<std::mutex> lk(mu_);
  const int fd = kind() == Kind::kTcp ? fd_ : tcp_fd_;
  return ::setsockopt(fd, level, name, val, len) == 0 ? 0 : -errno;
}

int Socket::getsockname(sockaddr* addr, socklen_t* len) {
  std::lock_guard<std::mutex> lk(mu_);
  const int fd = kind() == Kind::kTcp ? fd_ : kind() == Kind::kListening ? listen_->tcp_fd : tcp_fd_;
  return ::getsockname(fd, addr, len) == 0 ? 0 : -errno;
}

int Socket::getpeername(sockaddr* addr, socklen_t* len) {
  std::lock_guard<std::mutex> lk(mu_);
  const int fd = kind() == Kind::kTcp ? fd_ : tcp_fd_;
  return ::getpeername(fd, addr, len) == 0 ? 0 : -errno;
}

int Socket::getsockopt(int level, int name, void* val, socklen_t* len) {
  std::lock_guard<std::mutex> lk(mu_);
  const int fd = kind() == Kind::kTcp ? fd_ : kind() == Kind::kListening ? listen_->tcp_fd : tcp_fd_;
  return ::getsockopt(fd, level, name, val, len) == 0 ? 0 : -errno;
}

long Socket::available() {
  switch (kind()) {
    case Kind::kTcp: {
      int n = 0;
      return ::ioctl(fd_, FIONREAD, &n) == 0 ? long(n) : -errno;
    }
    case Kind::kSmc:
      return conn_->available();
    default:
      return 0;
  }
}

int Socket::set_tcp() {
  std::lock_guard<std::mutex> lk(mu_);
  if (kind() != Kind::kFresh) return -EINVAL;
  tcp_only_ = true;
  return 0;
}

int Socket::set_nonblock(bool on) {
  std::lock_guard<std::mutex> lk(mu_);
  nonblock_ = on;
  if (kind() == Kind::kTcp) {
    const int f = ::fcntl(fd_, F_GETFL);
    if (::fcntl(fd_, F_SETFL, on ? f | O_NONBLOCK : f & ~O_NONBLOCK) != 0) return -errno;
  }
  return 0;
}

// ---------------------------------------------------------------------------
// Client

int Socket::connect(const sockaddr* addr, socklen_t len) {
  std::lock_guard<std::mutex> lk(mu_);
  if (kind() != Kind::kFresh) return kind() == Kind::kListening ? -EINVAL : -EISCONN;
  TcpOption* const opt = rt_ != nullptr && !tcp_only_ ? rt_->tcp_option() : nullptr;
  if (opt != nullptr) {
    std::string err;
    if (!opt->mark(tcp_fd_, &err)) SMC_LOG("%s", err.c_str());  // then the SYN-ACK lacks it: TCP
  }
  if (::connect(tcp_fd_, addr, len) != 0) return -errno;
  const int tcp = tcp_fd_;
  tcp_fd_ = -1;
  if (tcp_only_) {
    become_tcp(tcp, forced_tcp_reason(), 0);
    return 0;
  }
  if (opt != nullptr) {
    // As Linux's __smc_connect: no option in the SYN-ACK, no Proposal.
    if (opt->peer(tcp) != TcpOption::Peer::kSmc) {
      rt_->fallbacks().add(wire::decline::kPeerNoSmc);
      SMC_LOG("falling back to TCP: %s (%08x): the SYN-ACK carried no TCP option 254",
              fallback_reason_text(wire::decline::kPeerNoSmc), wire::decline::kPeerNoSmc);
      become_tcp(tcp, wire::decline::kPeerNoSmc, 0);
      return 0;
    }
  } else if (!Runtime::peer_may_speak_smc(rt_ != nullptr ? rt_->config().capability_local : capability_local_, addr,
                                          len)) {
    // Nobody on this host announced an SMC-R listener on that port: no
    // Proposal (a plain TCP server would read it as data), as Linux does
    // when the SYN-ACK lacks TCP option 254.
    if (rt_ != nullptr) rt_->fallbacks().add(wire::decline::kPeerNoSmc);
    SMC_LOG("falling back to TCP: %s (%08x): no SMC-R listener announced on this port",
            fallback_reason_text(wire::decline::kPeerNoSmc), wire::decline::kPeerNoSmc);
    become_tcp(tcp, wire::decline::kPeerNoSmc, 0);
    return 0;
  }
  if (rt_ == nullptr) {
    // No device: a Linux client sends a Decline instead of a Proposal (A18).
    wire::ClcDecline d;
    d.version = 1;
    d.diag = no_smc_reason_;
    uint8_t buf[wire::kClcDeclineV2Len];
    const size_t n = wire::encode_decline(d, buf);
    if (n == 0 || ::send(tcp, buf, n, MSG_NOSIGNAL) != ssize_t(n)) {
      ::close(tcp);
      return -ECONNRESET;
    }
    become_tcp(tcp, no_smc_reason_, 0);
    return 0;
  }
  const ClcOutcome o = clc_connect(*rt_, tcp);
  if (o.error != 0) {
    ::close(tcp);
    tcp_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);  // may be retried, as after a failed connect
    return -o.error;
  }
  if (!o.smc) {
    become_tcp(tcp, o.fallback_reason, o.peer_diagnosis);
    return 0;
  }
  become_smc(o, tcp);
  return 0;
}

// ---------------------------------------------------------------------------
// Server

int Socket::listen(int backlog) {
  std::lock_guard<std::mutex> lk(mu_);
  if (kind() == Kind::kListening) return 0;
  if (kind() != Kind::kFresh) return -EINVAL;
  // Marked before listen(): the program turns SYN-ACK options on when it
  // sees the listen.
  TcpOption* const opt = rt_ != nullptr && !tcp_only_ ? rt_->tcp_option() : nullptr;
  if (opt != nullptr) {
    std::string err;
    if (!opt->mark(tcp_fd_, &err)) SMC_LOG("%s", err.c_str());  // then no SYN-ACK carries it: TCP
  }
  if (::listen(tcp_fd_, backlog) != 0) return -errno;
  auto ls = std::make_shared<ListenState>();
  ls->rt = rt_;
  ls->no_smc_reason = no_smc_reason_;
  ls->tcp_only = tcp_only_;
  ls->tcp_option = opt != nullptr;
  ls->tcp_fd = tcp_fd_;
  ls->stop_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  ls->mirror = std::make_unique<Mirror>(mirror_fd_, int_fd_);
  listen_ = ls;
  kind_.store(Kind::kListening, std::memory_order_release);
  // With TCP option 254 no announcement: a client in peek mode would send
  // a Proposal after a SYN without the option, which is never read.
  if (rt_ != nullptr && !tcp_only_ && opt == nullptr) {
    sockaddr_in sa{};
    socklen_t sl = sizeof(sa);
    if (::getsockname(tcp_fd_, reinterpret_cast<sockaddr*>(&sa), &sl) == 0 && sa.sin_family == AF_INET) {
      listen_port_ = ntohs(sa.sin_port);
      rt_->register_listener(listen_port_);
    }
  }
  ls->thread = std::thread([ls] { accept_loop(ls); });
  return 0;
}

void Socket::accept_loop(std::shared_ptr<ListenState> ls) {
  for (;;) {
    pollfd p[2] = {{ls->tcp_fd, POLLIN, 0}, {ls->stop_fd, POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (p[1].revents != 0) return;
    const int fd = ::accept4(ls->tcp_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE) {
        ::poll(nullptr, 0, 10);
        continue;
      }
      return;
    }
    std::unique_lock<std::mutex> lk(ls->mu);
    // Bounded handshakes in flight; the next waits (its client's CLC wait
    // runs meanwhile).
    ls->cv.wait(lk, [&] { return ls->handshakes < kMaxHandshakes || ls->closed; });
    if (ls->closed) {
      ::close(fd);
      return;
    }
    ++ls->handshakes;
    lk.unlock();
    std::thread([ls, fd] { handshake(ls, fd); }).detach();
  }
}

void Socket::handshake(std::shared_ptr<ListenState> ls, int fd) {
  std::shared_ptr<Socket> s(new Socket(ls->rt, ls->no_smc_reason));
  s->fd_ = -1;
  bool ok = true;
  if (ls->tcp_only || ls->rt == nullptr) {
    s->fd_ = fd;
    s->tcp_fd_ = fd;
    s->fallback_reason_ = ls->tcp_only ? forced_tcp_reason() : ls->no_smc_reason;
    s->kind_.store(Kind::kTcp, std::memory_order_release);
  } else {
    // As Linux's smc_listen_work: no option in the SYN, no Proposal read.
    const bool signalled = !ls->tcp_option || ls->rt->tcp_option()->peer(fd, kAcceptedPeerWaitMs) == TcpOption::Peer::kSmc;
    if (!signalled) SMC_LOG("the SYN carried no TCP option 254: the Proposal is not read");
    const ClcOutcome o = clc_accept(*ls->rt, fd, signalled);
    if (o.error != 0) {
      ::close(fd);
      ok = false;
    } else if (!o.smc) {
      note_fallback(ls->rt, fd, o.fallback_reason, o.peer_diagnosis);
      s->fd_ = fd;
      s->tcp_fd_ = fd;
      s->fallback_reason_ = o.fallback_reason;
      s->peer_diagnosis_ = o.peer_diagnosis;
      s->kind_.store(Kind::kTcp, std::memory_order_release);
    } else {
      int sv[2];
      if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
        o.conn->abort("no descriptors");
        o.conn->release();
        ::close(fd);
        ok = false;
      } else {
        int small = 1;
        ::setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
        ::setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
        s->fd_ = sv[0];
        s->int_fd_ = sv[1];
        s->mirror_fd_ = ::fcntl(sv[0], F_DUPFD_CLOEXEC, 0);
        s->become_smc(o, fd);
      }
    }
  }
  std::unique_lock<std::mutex> lk(ls->mu);
  --ls->handshakes;
  ls->cv.notify_all();
  if (!ok) return;
  if (ls->closed) {
    lk.unlock();
    s->close();
    return;
  }
  ls->queue.push_back(std::move(s));
  ls->mirror->set_locked(true, true);
  ls->cv.notify_all();
}

std::shared_ptr<Socket> Socket::accept(sockaddr* addr, socklen_t* len, int flags, int* err) {
  std::shared_ptr<ListenState> ls;
  {
    std::lock_guard<std::mutex> lk(mu_);
    ls = listen_;
  }
  if (!ls || kind() != Kind::kListening) {
    *err = EINVAL;
    return nullptr;
  }
  std::unique_lock<std::mutex> lk(ls->mu);
  if (ls->queue.empty()) {
    if (nonblock_) {
      *err = EAGAIN;
      return nullptr;
    }
    ls->cv.wait(lk, [&] { return !ls->queue.empty() || ls->closed; });
    if (ls->queue.empty()) {
      *err = EINVAL;
      return nullptr;
    }
  }
  std::shared_ptr<Socket> s = std::move(ls->queue.front());
  ls->queue.pop_front();
  ls->mirror->set_locked(!ls->queue.empty(), true);
  lk.unlock();
  if (addr != nullptr && len != nullptr) {
    const int fd = s->kind() == Kind::kSmc ? s->tcp_fd_ : s->fd_;
    ::getpeername(fd, addr, len);
  }
  if (flags & SOCK_NONBLOCK) s->set_nonblock(true);
  if (!(flags & SOCK_CLOEXEC)) ::fcntl(s->fd_, F_SETFD, 0);
  return s;
}

// ---------------------------------------------------------------------------
// Data

long Socket::send(const void* buf, size_t len, int flags) {
  switch (kind()) {
    case Kind::kTcp: {
      const ssize_t n = ::send(fd_, buf, len, flags);
      return n >= 0 ? long(n) : -errno;
    }
    case Kind::kSmc: {
      const long n = conn_->send(buf, len, nonblock_ || (flags & MSG_DONTWAIT));
      if (n == -EPIPE && !(flags & MSG_NOSIGNAL)) ::raise(SIGPIPE);
      if (n == -EAGAIN || n > 0) mirror_->on_ready(*conn_);
      return n;
    }
    default:
      return -ENOTCONN;
  }
}

long Socket::recv(void* buf, size_t len, int flags) {
  switch (kind()) {
    case Kind::kTcp: {
      const ssize_t n = ::recv(fd_, buf, len, flags);
      return n >= 0 ? long(n) : -errno;
    }
    case Kind::kSmc: {
      if (rd_shutdown_) return 0;
      const bool nonblock = nonblock_ || (flags & MSG_DONTWAIT);
      long n = conn_->recv(buf, len, nonblock, (flags & MSG_PEEK) != 0);
      // MSG_WAITALL: on until len bytes, end of stream or an error.
      while ((flags & MSG_WAITALL) && !(flags & MSG_PEEK) && !nonblock && n > 0 && size_t(n) < len) {
        const long more = conn_->recv(static_cast<uint8_t*>(buf) + n, len - size_t(n), false, false);
        if (more <= 0) break;
        n += more;
      }
      mirror_->on_ready(*conn_);
      return n;
    }
    default:
      return -ENOTCONN;
  }
}

int Socket::shutdown(int how) {
  switch (kind()) {
    case Kind::kTcp:
      return ::shutdown(fd_, how) == 0 ? 0 : -errno;
    case Kind::kSmc: {
      if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR) return -EINVAL;
      if (how != SHUT_WR) rd_shutdown_ = true;
      int rc = 0;
      if (how != SHUT_RD) rc = conn_->shutdown_write();
      mirror_->on_ready(*conn_);
      return rc;
    }
    default:
      return -ENOTCONN;
  }
}

int Socket::close() {
  std::unique_lock<std::mutex> lk(mu_);
  if (fd_ < 0) return -EBADF;
  switch (kind()) {
    case Kind::kSmc: {
      mirror_->detach();
      conn_->close();
      // The connection lives on until the peer's close or the close wait
      // (invariant 6); the runtime then releases it and closes the CLC
      // socket with it.
      rt_->schedule_close_timer(conn_, rt_->now_ms() + rt_->config().close_wait_ms, tcp_fd_);
      conn_ = nullptr;
      mirror_ = nullptr;
      tcp_fd_ = -1;
      break;
    }
    case Kind::kListening: {
      if (listen_port_ != 0) rt_->unregister_listener(listen_port_);
      std::shared_ptr<ListenState> ls = listen_;
      const uint64_t one = 1;
      (void)!::write(ls->stop_fd, &one, sizeof(one));
      if (ls->thread.joinable()) ls->thread.join();
      std::deque<std::shared_ptr<Socket>> q;
      {
        std::lock_guard<std::mutex> ll(ls->mu);
        ls->closed = true;
        ls->mirror->detach();
        q.swap(ls->queue);
        ls->cv.notify_all();
      }
      for (auto& s : q) s->close();
      ::close(ls->stop_fd);
      ::close(ls->tcp_fd);
      tcp_fd_ = -1;
      break;
    }
    case Kind::kTcp:
      tcp_fd_ = -1;  // fd_ is the TCP socket
      break;
    case Kind::kFresh:
      break;
  }
  if (tcp_fd_ >= 0) ::close(tcp_fd_);
  tcp_fd_ = -1;
  if (int_fd_ >= 0) ::close(int_fd_);
  if (mirror_fd_ >= 0) ::close(mirror_fd_);
  int_fd_ = mirror_fd_ = -1;
  ::close(fd_);
  fd_ = -1;
  return 0;
}

// ---------------------------------------------------------------------------
// The process's runtime

namespace {

std::mutex g_rt_mu;
Runtime* g_rt = nullptr;
bool g_rt_tried = false;
uint32_t g_no_smc_reason = 0;

void end_runtime() {
  // Orderly DELETE LINK to every peer, links torn down; the object stays
  // (connections the program never closed may still point into it).
  std::lock_guard<std::mutex> lk(g_rt_mu);
  if (g_rt != nullptr) {
    g_rt->unregister_all_listeners();
    g_rt->terminate_all(true);
  }
}

}  // namespace

namespace fd_table {
namespace {
std::mutex g_mu;
std::unordered_map<int, std::shared_ptr<Socket>> g_fds;
constexpr int kFastFds = 65536;
std::atomic<uint8_t> g_fast[kFastFds];  // 1: fd may be ours
}  // namespace

void put(int fd, const std::shared_ptr<Socket>& s) {
  std::lock_guard<std::mutex> lk(g_mu);
  g_fds[fd] = s;
  if (fd >= 0 && fd < kFastFds) g_fast[fd].store(1, std::memory_order_release);
}

std::shared_ptr<Socket> get(int fd) {
  if (!maybe(fd)) return nullptr;
  std::lock_guard<std::mutex> lk(g_mu);
  auto it = g_fds.find(fd);
  return it == g_fds.end() ? nullptr : it->second;
}

bool maybe(int fd) { return fd < 0 || fd >= kFastFds || g_fast[fd].load(std::memory_order_acquire) != 0; }

std::shared_ptr<Socket> take(int fd, bool* last) {
  std::lock_guard<std::mutex> lk(g_mu);
  auto it = g_fds.find(fd);
  if (it == g_fds.end()) return nullptr;
  std::shared_ptr<Socket> s = std::move(it->second);
  g_fds.erase(it);
  if (fd >= 0 && fd < kFastFds) g_fast[fd].store(0, std::memory_order_release);
  *last = true;
  for (auto& [f, o] : g_fds) {
    if (o == s) *last = false;
  }
  return s;
}
}  // namespace fd_table

Runtime* default_runtime(uint32_t* no_smc_reason) {
  std::lock_guard<std::mutex> lk(g_rt_mu);
  if (!g_rt_tried) {
    g_rt_tried = true;
    std::string err;
    const Config cfg = config_from_env(&err);
    if (!err.empty()) {
      std::fprintf(stderr, "droce-smc: %s; SMC-R disabled, using TCP\n", err.c_str());
      g_no_smc_reason = wire::decline::kCnfErr;
    } else {
      g_rt = Runtime::create(cfg, &err).release();
      if (g_rt == nullptr) {
        SMC_LOG("SMC-R unavailable (%s); using TCP", err.c_str());
        g_no_smc_reason = wire::decline::kNoSmcRDev;
      } else {
        // Every process using the API shows up in `droce-smc stat`.
        if (!g_rt->enable_stat_socket(&err)) SMC_LOG("%s (droce-smc stat will not see this process)", err.c_str());
        std::atexit(end_runtime);
      }
    }
  }
  *no_smc_reason = g_no_smc_reason;
  return g_rt;
}

}  // namespace droce::smc

// ---------------------------------------------------------------------------
// C API

namespace {

using droce::smc::Socket;

std::shared_ptr<Socket> lookup(int fd) { return droce::smc::fd_table::get(fd); }

template <typename T>
T ret(T v) {
  if (v < 0) {
    errno = int(-v);
    return T(-1);
  }
  return v;
}

}  // namespace

extern "C" {

int smc_socket(int flags) {
  uint32_t reason = 0;
  droce::smc::Runtime* rt = droce::smc::default_runtime(&reason);
  int err = 0;
  auto s = Socket::create(rt, reason, flags, &err);
  if (!s) {
    errno = err;
    return -1;
  }
  droce::smc::fd_table::put(s->fd(), s);
  return s->fd();
}

int smc_bind(int fd, const struct sockaddr* addr, socklen_t len) {
  auto s = lookup(fd);
  return s ? ret(s->bind(addr, len)) : (errno = EBADF, -1);
}

int smc_listen(int fd, int backlog) {
  auto s = lookup(fd);
  return s ? ret(s->listen(backlog)) : (errno = EBADF, -1);
}

int smc_accept(int fd, struct sockaddr* addr, socklen_t* len, int flags) {
  auto s = lookup(fd);
  if (!s) return errno = EBADF, -1;
  int err = 0;
  auto c = s->accept(addr, len, flags, &err);
  if (!c) return errno = err, -1;
  droce::smc::fd_table::put(c->fd(), c);
  return c->fd();
}

int smc_connect(int fd, const struct sockaddr* addr, socklen_t len) {
  auto s = lookup(fd);
  return s ? ret(s->connect(addr, len)) : (errno = EBADF, -1);
}

ssize_t smc_send(int fd, const void* buf, size_t len, int flags) {
  auto s = lookup(fd);
  return s ? ret(ssize_t(s->send(buf, len, flags))) : (errno = EBADF, -1);
}

ssize_t smc_recv(int fd, void* buf, size_t len, int flags) {
  auto s = lookup(fd);
  return s ? ret(ssize_t(s->recv(buf, len, flags))) : (errno = EBADF, -1);
}

int smc_shutdown(int fd, int how) {
  auto s = lookup(fd);
  return s ? ret(s->shutdown(how)) : (errno = EBADF, -1);
}

int smc_close(int fd) {
  bool last = false;
  std::shared_ptr<Socket> s = droce::smc::fd_table::take(fd, &last);
  if (!s) return errno = EBADF, -1;
  if (!last || fd != s->fd()) {
    // Another descriptor (dup) still names the socket, or this one is a
    // duplicate: only the number goes.
    if (fd != s->fd()) ::close(fd);
    if (last) return ret(s->close());
    return 0;
  }
  return ret(s->close());
}

int smc_set_nonblock(int fd, int on) {
  auto s = lookup(fd);
  return s ? ret(s->set_nonblock(on != 0)) : (errno = EBADF, -1);
}

int smc_set_tcp(int fd) {
  auto s = lookup(fd);
  return s ? ret(s->set_tcp()) : (errno = EBADF, -1);
}

int smc_setsockopt(int fd, int level, int name, const void* val, socklen_t len) {
  auto s = lookup(fd);
  return s ? ret(s->setsockopt(level, name, val, len)) : (errno = EBADF, -1);
}

int smc_getsockname(int fd, struct sockaddr* addr, socklen_t* len) {
  auto s = lookup(fd);
  return s ? ret(s->getsockname(addr, len)) : (errno = EBADF, -1);
}

int smc_getpeername(int fd, struct sockaddr* addr, socklen_t* len) {
  auto s = lookup(fd);
  return s ? ret(s->getpeername(addr, len)) : (errno = EBADF, -1);
}

int smc_get_info(int fd, struct smc_info* info) {
  auto s = lookup(fd);
  if (!s) return errno = EBADF, -1;
  *info = smc_info{};
  switch (s->kind()) {
    case Socket::Kind::kSmc:
      info->transport = SMC_TRANSPORT_SMC;
      info->version = s->version();
      info->first_contact = s->first_contact();
      info->token = s->connection() ? s->connection()->token() : 0;
      break;
    case Socket::Kind::kTcp:
      info->transport = SMC_TRANSPORT_TCP;
      info->fallback_reason = s->fallback_reason();
      info->peer_diagnosis = s->peer_diagnosis();
      break;
    default:
      info->transport = SMC_TRANSPORT_NONE;
      break;
  }
  return 0;
}

const char* smc_reason_text(uint32_t code) { return droce::smc::fallback_reason_text(code); }

}  // extern "C"
