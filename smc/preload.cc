// libdroce-smc-preload.so: SMC-R for unmodified TCP programs (as Linux's
// smc_run does with its preload library). With LD_PRELOAD, every
// socket(AF_INET, SOCK_STREAM) the program opens is an smc.h socket: SMC-R
// when the peer runs under the shim too (or is another droce-smc program),
// TCP with a Linux reason code otherwise. The program's calls on those
// descriptors (read, write, send, recv, the msg and vector forms, sendfile,
// splice, accept, connect, fcntl/ioctl non-blocking and FIONREAD, dup, close,
// socket options and names) are carried to the socket; poll, epoll and select
// need no interposition, since the descriptor's readiness mirrors the
// connection's. Everything else goes to libc untouched.
//
// Calls made by droce itself (smc/, DPDK, the drop-in libibverbs) reach these
// wrappers too: a thread-local depth counter sends them straight to libc
// while the shim is inside an smc call, and the wrappers act only on
// descriptors the shim handed out.
#include <dlfcn.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "smc/log.h"
#include "smc/smc.h"
#include "smc/socket.h"

namespace {

using droce::smc::Socket;
namespace fd_table = droce::smc::fd_table;

// libc's functions, looked up once.
template <typename F>
F real(const char* name) {
  static_assert(sizeof(F) == sizeof(void*));
  void* p = dlsym(RTLD_NEXT, name);
  F f;
  std::memcpy(&f, &p, sizeof(f));
  return f;
}
#define REAL(fn) static const auto real_##fn = real<decltype(&::fn)>(#fn)

thread_local int t_depth = 0;  // > 0: inside an smc call: pass everything through
struct Inside {
  Inside() { ++t_depth; }
  ~Inside() { --t_depth; }
};

// The socket behind fd when it is one of ours and the call is the program's.
std::shared_ptr<Socket> ours(int fd) {
  if (t_depth > 0 || !fd_table::maybe(fd)) return nullptr;
  return fd_table::get(fd);
}

template <typename T>
T ret(T v) {
  if (v < 0) {
    errno = int(-v);
    return T(-1);
  }
  return v;
}

// A vector of buffers through one send (copied into one contiguous buffer
// only when there are several).
ssize_t send_iov(Socket& s, const iovec* iov, int n, int flags) {
  if (n == 1) return ret(ssize_t(s.send(iov[0].iov_base, iov[0].iov_len, flags)));
  size_t total = 0;
  for (int i = 0; i < n; ++i) total += iov[i].iov_len;
  std::vector<uint8_t> buf(total);
  size_t off = 0;
  for (int i = 0; i < n; ++i) {
    if (iov[i].iov_len > 0) std::memcpy(buf.data() + off, iov[i].iov_base, iov[i].iov_len);
    off += iov[i].iov_len;
  }
  return ret(ssize_t(s.send(buf.data(), total, flags)));
}

ssize_t recv_iov(Socket& s, const iovec* iov, int n, int flags) {
  if (n == 1) return ret(ssize_t(s.recv(iov[0].iov_base, iov[0].iov_len, flags)));
  size_t total = 0;
  for (int i = 0; i < n; ++i) total += iov[i].iov_len;
  std::vector<uint8_t> buf(total);
  const long got = s.recv(buf.data(), total, flags);
  if (got <= 0) return ret(ssize_t(got));
  size_t off = 0;
  for (int i = 0; i < n && off < size_t(got); ++i) {
    const size_t c = std::min(iov[i].iov_len, size_t(got) - off);
    std::memcpy(iov[i].iov_base, buf.data() + off, c);
    off += c;
  }
  return ssize_t(got);
}

}  // namespace

extern "C" {

int socket(int domain, int type, int protocol) {
  REAL(socket);
  const int base = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (t_depth > 0 || domain != AF_INET || base != SOCK_STREAM || (protocol != 0 && protocol != IPPROTO_TCP)) {
    return real_socket(domain, type, protocol);
  }
  Inside in;
  return smc_socket(type & (SOCK_NONBLOCK | SOCK_CLOEXEC));
}

int close(int fd) {
  REAL(close);
  if (!ours(fd)) return real_close(fd);
  Inside in;
  return smc_close(fd);
}

int bind(int fd, const struct sockaddr* a, socklen_t l) {
  REAL(bind);
  auto s = ours(fd);
  if (!s) return real_bind(fd, a, l);
  Inside in;
  return ret(s->bind(a, l));
}

int listen(int fd, int backlog) {
  REAL(listen);
  auto s = ours(fd);
  if (!s) return real_listen(fd, backlog);
  Inside in;
  return ret(s->listen(backlog));
}

int accept4(int fd, struct sockaddr* a, socklen_t* l, int flags) {
  REAL(accept4);
  if (!ours(fd)) return real_accept4(fd, a, l, flags);
  Inside in;
  return smc_accept(fd, a, l, flags);
}

int accept(int fd, struct sockaddr* a, socklen_t* l) {
  REAL(accept);
  if (!ours(fd)) return real_accept(fd, a, l);
  Inside in;
  return smc_accept(fd, a, l, 0);
}

int connect(int fd, const struct sockaddr* a, socklen_t l) {
  REAL(connect);
  auto s = ours(fd);
  if (!s) return real_connect(fd, a, l);
  Inside in;
  return ret(s->connect(a, l));
}

int shutdown(int fd, int how) {
  REAL(shutdown);
  auto s = ours(fd);
  if (!s) return real_shutdown(fd, how);
  Inside in;
  return ret(s->shutdown(how));
}

ssize_t read(int fd, void* b, size_t n) {
  REAL(read);
  auto s = ours(fd);
  if (!s || s->kind() == Socket::Kind::kTcp) return real_read(fd, b, n);  // a fallback: the descriptor is the TCP socket
  Inside in;
  return ret(ssize_t(s->recv(b, n, 0)));
}

ssize_t write(int fd, const void* b, size_t n) {
  REAL(write);
  auto s = ours(fd);
  if (!s || s->kind() == Socket::Kind::kTcp) return real_write(fd, b, n);  // a fallback: the descriptor is the TCP socket
  Inside in;
  return ret(ssize_t(s->send(b, n, 0)));
}

ssize_t recv(int fd, void* b, size_t n, int flags) {
  REAL(recv);
  auto s = ours(fd);
  if (!s || s->kind() == Socket::Kind::kTcp) return real_recv(fd, b, n, flags);  // a fallback: the descriptor is the TCP socket
  Inside in;
  return ret(ssize_t(s->recv(b, n, flags)));
}

ssize_t send(int fd, const void* b, size_t n, int flags) {
  REAL(send);
  auto s = ours(fd);
  if (!s || s->kind() == Socket::Kind::kTcp) return real_send(fd, b, n, flags);  // a fallback: the descriptor is the TCP socket
  Inside in;
  return ret(ssize_t(s->send(b, n, flags)));
}

ssize_t recvfrom(int fd, void* b, size_t n, int flags, struct sockaddr* a, socklen_t* l) {
  REAL(recvfrom);
  auto s = ours(fd);
  if (!s) return real_recvfrom(fd, b, n, flags, a, l);
  Inside in;
  const ssize_t r = ret(ssize_t(s->recv(b, n, flags)));
  if (r >= 0 && a != nullptr && l != nullptr) s->getpeername(a, l);
  return r;
}

ssize_t sendto(int fd, const void* b, size_t n, int flags, const struct sockaddr* a, socklen_t l) {
  REAL(sendto);
  auto s = ours(fd);
  if (!s) return real_sendto(fd, b, n, flags, a, l);
  Inside in;
  return ret(ssize_t(s->send(b, n, flags)));  // a stream socket ignores the address
}

ssize_t readv(int fd, const struct iovec* iov, int n) {
  REAL(readv);
  auto s = ours(fd);
  if (!s) return real_readv(fd, iov, n);
  Inside in;
  return recv_iov(*s, iov, n, 0);
}

ssize_t writev(int fd, const struct iovec* iov, int n) {
  REAL(writev);
  auto s = ours(fd);
  if (!s) return real_writev(fd, iov, n);
  Inside in;
  return send_iov(*s, iov, n, 0);
}

ssize_t recvmsg(int fd, struct msghdr* m, int flags) {
  REAL(recvmsg);
  auto s = ours(fd);
  if (!s) return real_recvmsg(fd, m, flags);
  Inside in;
  m->msg_controllen = 0;  // no ancillary data on SMC-R
  m->msg_flags = 0;
  return recv_iov(*s, m->msg_iov, int(m->msg_iovlen), flags);
}

ssize_t sendmsg(int fd, const struct msghdr* m, int flags) {
  REAL(sendmsg);
  auto s = ours(fd);
  if (!s) return real_sendmsg(fd, m, flags);
  Inside in;
  return send_iov(*s, m->msg_iov, int(m->msg_iovlen), flags);
}

// A file into an SMC-R socket: read it in chunks and send them (the data
// cannot be spliced into RDMA memory by the kernel).
ssize_t sendfile(int out_fd, int in_fd, off_t* offset, size_t count) {
  REAL(sendfile);
  REAL(pread);
  REAL(read);
  auto s = ours(out_fd);
  if (!s) return real_sendfile(out_fd, in_fd, offset, count);
  Inside in;
  std::vector<uint8_t> buf(std::min<size_t>(count, 256 * 1024));
  size_t done = 0;
  while (done < count) {
    const size_t want = std::min(buf.size(), count - done);
    const ssize_t r = offset != nullptr ? real_pread(in_fd, buf.data(), want, *offset + off_t(done))
                                        : real_read(in_fd, buf.data(), want);
    if (r < 0) return done > 0 ? ssize_t(done) : -1;
    if (r == 0) break;
    const long w = s->send(buf.data(), size_t(r), 0);
    if (w < 0) {
      if (done > 0) break;
      errno = int(-w);
      return -1;
    }
    done += size_t(w);
    if (w < r) break;  // non-blocking socket full
  }
  if (offset != nullptr) *offset += off_t(done);
  return ssize_t(done);
}

ssize_t sendfile64(int out_fd, int in_fd, off64_t* offset, size_t count) {
  static const auto real_sendfile64 = real<ssize_t (*)(int, int, off64_t*, size_t)>("sendfile64");
  if (!ours(out_fd)) return real_sendfile64(out_fd, in_fd, offset, count);
  return sendfile(out_fd, in_fd, reinterpret_cast<off_t*>(offset), count);
}

// Fortified forms (_FORTIFY_SOURCE) of read and recv.
ssize_t __read_chk(int fd, void* b, size_t n, size_t buflen) {
  if (n > buflen) __builtin_trap();
  return read(fd, b, n);
}

ssize_t __recv_chk(int fd, void* b, size_t n, size_t buflen, int flags) {
  if (n > buflen) __builtin_trap();
  return recv(fd, b, n, flags);
}

ssize_t splice(int fd_in, loff_t* off_in, int fd_out, loff_t* off_out, size_t len, unsigned int flags) {
  REAL(splice);
  REAL(read);
  REAL(write);
  auto sin = ours(fd_in);
  auto sout = ours(fd_out);
  if (!sin && !sout) return real_splice(fd_in, off_in, fd_out, off_out, len, flags);
  Inside in;
  if (off_in != nullptr || off_out != nullptr) return errno = EINVAL, -1;  // sockets and pipes have none
  std::vector<uint8_t> buf(std::min<size_t>(len, 65536));
  const long r = sin ? sin->recv(buf.data(), buf.size(), 0) : long(real_read(fd_in, buf.data(), buf.size()));
  if (r < 0) return sin ? ret(ssize_t(r)) : -1;
  if (r == 0) return 0;
  const long w = sout ? sout->send(buf.data(), size_t(r), 0) : long(real_write(fd_out, buf.data(), size_t(r)));
  if (w < 0) return sout ? ret(ssize_t(w)) : -1;
  return ssize_t(w);
}

int setsockopt(int fd, int level, int name, const void* v, socklen_t l) {
  REAL(setsockopt);
  auto s = ours(fd);
  if (!s) return real_setsockopt(fd, level, name, v, l);
  Inside in;
  return ret(s->setsockopt(level, name, v, l));
}

int getsockopt(int fd, int level, int name, void* v, socklen_t* l) {
  REAL(getsockopt);
  auto s = ours(fd);
  if (!s) return real_getsockopt(fd, level, name, v, l);
  Inside in;
  if (level == SOL_SOCKET && name == SO_ERROR && s->kind() == Socket::Kind::kSmc && v != nullptr && l != nullptr &&
      *l >= socklen_t(sizeof(int))) {
    const int e = s->connection() != nullptr ? s->connection()->error() : 0;
    std::memcpy(v, &e, sizeof(e));
    *l = sizeof(int);
    return 0;
  }
  return ret(s->getsockopt(level, name, v, l));
}

int getsockname(int fd, struct sockaddr* a, socklen_t* l) {
  REAL(getsockname);
  auto s = ours(fd);
  if (!s) return real_getsockname(fd, a, l);
  Inside in;
  return ret(s->getsockname(a, l));
}

int getpeername(int fd, struct sockaddr* a, socklen_t* l) {
  REAL(getpeername);
  auto s = ours(fd);
  if (!s) return real_getpeername(fd, a, l);
  Inside in;
  return ret(s->getpeername(a, l));
}

// fcntl and fcntl64 (programs built with 64-bit file offsets import the
// latter; on x86-64 both take the same arguments).
static int fcntl_common(int (*real_fn)(int, int, ...), int fd, int cmd, long arg) {
  auto s = ours(fd);
  if (!s) return real_fn(fd, cmd, arg);
  Inside in;
  switch (cmd) {
    case F_GETFL: {
      const int f = real_fn(fd, F_GETFL, 0);
      return f < 0 ? f : ((f & ~O_NONBLOCK) | (s->nonblocking() ? O_NONBLOCK : 0));
    }
    case F_SETFL:
      if (s->kind() == Socket::Kind::kTcp) return real_fn(fd, F_SETFL, arg);
      return ret(s->set_nonblock((arg & O_NONBLOCK) != 0));
    case F_DUPFD:
    case F_DUPFD_CLOEXEC: {
      const int n = real_fn(fd, cmd, arg);
      if (n >= 0) fd_table::put(n, s);
      return n;
    }
    default:
      return real_fn(fd, cmd, arg);
  }
}

int fcntl(int fd, int cmd, ...) {
  REAL(fcntl);
  va_list ap;
  va_start(ap, cmd);
  const long arg = va_arg(ap, long);
  va_end(ap);
  return fcntl_common(real_fcntl, fd, cmd, arg);
}

int fcntl64(int fd, int cmd, ...) {
  static const auto real_fcntl64 = real<int (*)(int, int, ...)>("fcntl64");
  va_list ap;
  va_start(ap, cmd);
  const long arg = va_arg(ap, long);
  va_end(ap);
  return fcntl_common(real_fcntl64, fd, cmd, arg);
}

int ioctl(int fd, unsigned long req, ...) {
  REAL(ioctl);
  va_list ap;
  va_start(ap, req);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  auto s = ours(fd);
  if (!s || s->kind() == Socket::Kind::kTcp) return real_ioctl(fd, req, arg);
  Inside in;
  switch (req) {
    case FIONBIO:
      return ret(s->set_nonblock(*static_cast<int*>(arg) != 0));
    case FIONREAD: {
      const long n = s->available();
      if (n < 0) return errno = int(-n), -1;
      *static_cast<int*>(arg) = int(n);
      return 0;
    }
    default:
      return real_ioctl(fd, req, arg);
  }
}

int dup(int fd) {
  REAL(dup);
  auto s = ours(fd);
  const int n = real_dup(fd);
  if (s && n >= 0) fd_table::put(n, s);
  return n;
}

int dup2(int fd, int nfd) {
  REAL(dup2);
  auto s = ours(fd);
  if (fd != nfd && ours(nfd)) close(nfd);
  const int n = real_dup2(fd, nfd);
  if (s && n >= 0 && fd != nfd) fd_table::put(n, s);
  return n;
}

int dup3(int fd, int nfd, int flags) {
  REAL(dup3);
  auto s = ours(fd);
  if (fd != nfd && ours(nfd)) close(nfd);
  const int n = real_dup3(fd, nfd, flags);
  if (s && n >= 0) fd_table::put(n, s);
  return n;
}

}  // extern "C"
