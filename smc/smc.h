/* droce SMC-R: a socket-shaped C API over SMC-R (RFC 7609) with TCP
 * fallback. Each call mirrors its BSD socket namesake: 0 / a count / a
 * descriptor on success, -1 with errno set on failure (EAGAIN, EPIPE,
 * ECONNRESET, EINVAL, EBADF ...).
 *
 * The descriptor smc_socket() returns is a real file descriptor: poll,
 * epoll and select report it readable when smc_recv() would not block
 * (data, end of stream, error) and writable when smc_send() would not block.
 * Read and write it only through this API. When a connection falls back to
 * TCP, the descriptor becomes the TCP socket itself (same number).
 *
 * Environment: SMC_DEVICE, SMC_GID_INDEX, SMC_UEID, SMC_WMEM, SMC_RMEM,
 * SMC_CLC_WAIT_MS, SMC_LLC_WAIT_MS, SMC_CLOSE_WAIT_MS, SMC_LGR_IDLE_MS,
 * SMC_BUSY_POLL_US, SMC_VERSIONS, SMC_MTU, SMC_LOG (README "SMC-R"). */
#ifndef DROCE_SMC_SMC_H
#define DROCE_SMC_SMC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* flags: SOCK_NONBLOCK, SOCK_CLOEXEC (as socket(2)'s type flags). */
int smc_socket(int flags);
int smc_bind(int fd, const struct sockaddr* addr, socklen_t len);
int smc_listen(int fd, int backlog);
/* flags: SOCK_NONBLOCK, SOCK_CLOEXEC for the new descriptor (accept4). */
int smc_accept(int fd, struct sockaddr* addr, socklen_t* len, int flags);
/* Connects and runs the CLC handshake; blocks (also on a non-blocking
 * socket) for at most the TCP connect time plus the CLC and LLC waits. */
int smc_connect(int fd, const struct sockaddr* addr, socklen_t len);
/* flags: MSG_DONTWAIT, MSG_NOSIGNAL (send); MSG_DONTWAIT, MSG_PEEK (recv). */
ssize_t smc_send(int fd, const void* buf, size_t len, int flags);
ssize_t smc_recv(int fd, void* buf, size_t len, int flags);
int smc_shutdown(int fd, int how);
int smc_close(int fd);
/* O_NONBLOCK on or off, as fcntl(F_SETFL). */
int smc_set_nonblock(int fd, int on);
/* setsockopt on the TCP socket beneath (SO_REUSEADDR, TCP_NODELAY ...). */
int smc_setsockopt(int fd, int level, int name, const void* val, socklen_t len);
int smc_getsockname(int fd, struct sockaddr* addr, socklen_t* len);
int smc_getpeername(int fd, struct sockaddr* addr, socklen_t* len);

/* Transport of a connected descriptor. */
enum smc_transport { SMC_TRANSPORT_NONE = 0, SMC_TRANSPORT_SMC = 1, SMC_TRANSPORT_TCP = 2 };
struct smc_info {
  int transport;            /* enum smc_transport */
  uint32_t fallback_reason; /* Linux decline code when TCP was used (0: forced by smc_set_tcp) */
  uint32_t peer_diagnosis;  /* the peer's decline code when it declined */
  int version;              /* SMC-R version in use */
  int first_contact;        /* this connection created its link group */
  uint32_t token;           /* local RMBE alert token */
};
int smc_get_info(int fd, struct smc_info* info);
/* Before connect/listen: use plain TCP for this socket (no CLC at all). */
int smc_set_tcp(int fd);
/* Linux's text for a decline / fallback code. */
const char* smc_reason_text(uint32_t code);

#ifdef __cplusplus
}
#endif

#endif /* DROCE_SMC_SMC_H */
