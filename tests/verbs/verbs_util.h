/* Helpers for the C tests of the drop-in libibverbs: checks that stop the
 * case with file:line, bounded waits for completions and events, and RC/UD
 * queue pairs connected through droce0's loopback port. Plain C against the
 * system <infiniband/verbs.h>, as any rdma-core program. */
#ifndef DROCE_TESTS_VERBS_VERBS_UTIL_H_
#define DROCE_TESTS_VERBS_VERBS_UTIL_H_

#include <endian.h>
#include <errno.h>
#include <infiniband/verbs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                          \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      fprintf(stderr, "%s:%d: CHECK failed: %s (errno %d: %s)\n", __FILE__, __LINE__, #cond, \
              errno, strerror(errno));                                                       \
      exit(1);                                                                               \
    }                                                                                        \
  } while (0)

/* Checks a call returning 0 or a positive errno (libibverbs convention). */
#define CHECK_RC(call, want)                                                                       \
  do {                                                                                             \
    int rc_ = (call);                                                                              \
    if (rc_ != (want)) {                                                                           \
      fprintf(stderr, "%s:%d: %s returned %d (%s), expected %d (%s)\n", __FILE__, __LINE__, #call, \
              rc_, rc_ > 0 ? strerror(rc_) : "", (want), (want) > 0 ? strerror(want) : "");        \
      exit(1);                                                                                     \
    }                                                                                              \
  } while (0)

/* Checks that a create/reg call returned NULL with errno == want. */
#define CHECK_NULL_ERRNO(expr, want)                                                              \
  do {                                                                                            \
    errno = 0;                                                                                    \
    const void* p_ = (const void*)(expr);                                                         \
    if (p_ != NULL || errno != (want)) {                                                          \
      fprintf(stderr, "%s:%d: %s gave %p errno %d (%s), expected NULL errno %d (%s)\n", __FILE__, \
              __LINE__, #expr, p_, errno, strerror(errno), (want), strerror(want));               \
      exit(1);                                                                                    \
    }                                                                                             \
  } while (0)

enum { kWaitMs = 10000 };

struct dev {
  struct ibv_device** list;
  struct ibv_context* ctx;
  struct ibv_pd* pd;
  union ibv_gid gid; /* index 0 */
};

/* Opens droce0 and allocates a PD. */
void dev_open(struct dev* d);
void dev_close(struct dev* d);

/* A registered buffer. */
struct buf {
  uint8_t* data;
  size_t size;
  struct ibv_mr* mr;
};
void buf_alloc(struct dev* d, struct buf* b, size_t size, int access);
void buf_free(struct buf* b);

struct qp_opts {
  enum ibv_qp_type type;
  int depth; /* send and receive WRs */
  int max_inline;
  int rnr_retry;       /* RC */
  int min_rnr_timer;   /* RC responder */
  struct ibv_srq* srq; /* NULL: own receive queue */
  struct ibv_cq* cq;   /* NULL: a new CQ of 4 * depth */
};
struct qp_opts qp_defaults(enum ibv_qp_type type);

struct end {
  struct ibv_cq* cq; /* send and receive */
  struct ibv_qp* qp;
};
/* Creates a QP (and its CQ unless given). */
void end_create(struct dev* d, struct end* e, const struct qp_opts* o);
void end_destroy(struct end* e, int destroy_cq);
/* RESET -> INIT -> RTR -> RTS towards remote_qpn at the port's own GID (RC/UC),
 * or up to RTS (UD, Q_Key 0x11111111). */
void end_connect(struct dev* d, struct end* e, const struct qp_opts* o, uint32_t remote_qpn);

/* Polls cq (which drives the engine) until n completions arrived or kWaitMs
 * passed; returns how many arrived. */
int wait_wc(struct ibv_cq* cq, struct ibv_wc* wc, int n);
/* Polls for ms and returns how many completions arrived (expect none). */
int drain_wc(struct ibv_cq* cq, int ms);
/* Waits until fd is readable or ms passed; 1 when readable. */
int wait_fd(int fd, int ms);

void post_recv(struct ibv_qp* qp, uint64_t wr_id, struct buf* b, size_t off, uint32_t len);
/* Posts one send WR; returns ibv_post_send's result. */
int post_send(struct ibv_qp* qp, uint64_t wr_id, enum ibv_wr_opcode op, struct buf* b, size_t off,
              uint32_t len, int flags, uint64_t raddr, uint32_t rkey);

enum ibv_qp_state qp_state(struct ibv_qp* qp);

/* The named case, or 2 when there is no such case. */
struct test_case {
  const char* name;
  void (*fn)(void);
};
int run_case(const struct test_case* cases, int argc, char** argv);

#endif /* DROCE_TESTS_VERBS_VERBS_UTIL_H_ */
