// The rsocket entry points librdmacm.so.1 exports. droce has no rsocket
// protocol yet: rsocket() fails with ENOSYS, so no descriptor is ever an
// rsocket; calls on a descriptor fail with EBADF ("not an rsocket"), and
// rpoll / rselect on ordinary descriptors are poll / select, which is what
// rdma-core's do with no rsocket among them (rping and others import rpoll).
#include <poll.h>
#include <rdma/rsocket.h>
#include <sys/select.h>

#include <cerrno>

namespace {

int no_rsocket() {
  errno = EBADF;
  return -1;
}

}  // namespace

extern "C" {

int rsocket(int, int, int) {
  errno = ENOSYS;
  return -1;
}
int rbind(int, const struct sockaddr*, socklen_t) { return no_rsocket(); }
int rlisten(int, int) { return no_rsocket(); }
int raccept(int, struct sockaddr*, socklen_t*) { return no_rsocket(); }
int rconnect(int, const struct sockaddr*, socklen_t) { return no_rsocket(); }
int rshutdown(int, int) { return no_rsocket(); }
int rclose(int) { return no_rsocket(); }
ssize_t rrecv(int, void*, size_t, int) { return no_rsocket(); }
ssize_t rrecvfrom(int, void*, size_t, int, struct sockaddr*, socklen_t*) { return no_rsocket(); }
ssize_t rrecvmsg(int, struct msghdr*, int) { return no_rsocket(); }
ssize_t rsend(int, const void*, size_t, int) { return no_rsocket(); }
ssize_t rsendto(int, const void*, size_t, int, const struct sockaddr*, socklen_t) { return no_rsocket(); }
ssize_t rsendmsg(int, const struct msghdr*, int) { return no_rsocket(); }
ssize_t rread(int, void*, size_t) { return no_rsocket(); }
ssize_t rreadv(int, const struct iovec*, int) { return no_rsocket(); }
ssize_t rwrite(int, const void*, size_t) { return no_rsocket(); }
ssize_t rwritev(int, const struct iovec*, int) { return no_rsocket(); }
int rpoll(struct pollfd* fds, nfds_t nfds, int timeout) { return poll(fds, nfds, timeout); }
int rselect(int nfds, fd_set* readfds, fd_set* writefds, fd_set* exceptfds, struct timeval* timeout) {
  return select(nfds, readfds, writefds, exceptfds, timeout);
}
int rgetpeername(int, struct sockaddr*, socklen_t*) { return no_rsocket(); }
int rgetsockname(int, struct sockaddr*, socklen_t*) { return no_rsocket(); }
int rsetsockopt(int, int, int, const void*, socklen_t) { return no_rsocket(); }
int rgetsockopt(int, int, int, void*, socklen_t*) { return no_rsocket(); }
int rfcntl(int, int, ...) { return no_rsocket(); }
off_t riomap(int, void*, size_t, int, int, off_t) { return no_rsocket(); }
int riounmap(int, void*, size_t) { return no_rsocket(); }
size_t riowrite(int, const void*, size_t, off_t, int) {
  errno = EBADF;
  return 0;
}

}  // extern "C"
