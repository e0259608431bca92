/* Helpers for the C tests of the drop-in libibverbs (see verbs_util.h). */
#include "tests/verbs/verbs_util.h"

#include <poll.h>
#include <time.h>

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void dev_open(struct dev* d) {
  int n = 0;
  memset(d, 0, sizeof(*d));
  d->list = ibv_get_device_list(&n);
  CHECK(d->list != NULL);
  CHECK(n >= 1);
  CHECK(strcmp(ibv_get_device_name(d->list[0]), "droce0") == 0);
  d->ctx = ibv_open_device(d->list[0]);
  CHECK(d->ctx != NULL);
  d->pd = ibv_alloc_pd(d->ctx);
  CHECK(d->pd != NULL);
  CHECK_RC(ibv_query_gid(d->ctx, 1, 0, &d->gid), 0);
}

void dev_close(struct dev* d) {
  CHECK_RC(ibv_dealloc_pd(d->pd), 0);
  CHECK_RC(ibv_close_device(d->ctx), 0);
  ibv_free_device_list(d->list);
}

void buf_alloc(struct dev* d, struct buf* b, size_t size, int access) {
  b->size = size;
  b->data = aligned_alloc(4096, (size + 4095) / 4096 * 4096);
  CHECK(b->data != NULL);
  memset(b->data, 0, size);
  b->mr = ibv_reg_mr(d->pd, b->data, size, access);
  CHECK(b->mr != NULL);
}

void buf_free(struct buf* b) {
  CHECK_RC(ibv_dereg_mr(b->mr), 0);
  free(b->data);
}

struct qp_opts qp_defaults(enum ibv_qp_type type) {
  struct qp_opts o;
  memset(&o, 0, sizeof(o));
  o.type = type;
  o.depth = 64;
  o.max_inline = 64;
  o.rnr_retry = 7;
  o.min_rnr_timer = 1;
  return o;
}

void end_create(struct dev* d, struct end* e, const struct qp_opts* o) {
  memset(e, 0, sizeof(*e));
  e->cq = o->cq != NULL ? o->cq : ibv_create_cq(d->ctx, 4 * o->depth, NULL, NULL, 0);
  CHECK(e->cq != NULL);
  struct ibv_qp_init_attr init;
  memset(&init, 0, sizeof(init));
  init.send_cq = e->cq;
  init.recv_cq = e->cq;
  init.srq = o->srq;
  init.cap.max_send_wr = (uint32_t)o->depth;
  init.cap.max_recv_wr = o->srq != NULL ? 0 : (uint32_t)o->depth;
  init.cap.max_send_sge = 4;
  init.cap.max_recv_sge = 4;
  init.cap.max_inline_data = (uint32_t)o->max_inline;
  init.qp_type = o->type;
  e->qp = ibv_create_qp(d->pd, &init);
  CHECK(e->qp != NULL);
  CHECK(init.cap.max_send_wr >= (uint32_t)o->depth);
  CHECK(init.cap.max_inline_data >= (uint32_t)o->max_inline);
}

void end_destroy(struct end* e, int destroy_cq) {
  CHECK_RC(ibv_destroy_qp(e->qp), 0);
  if (destroy_cq) CHECK_RC(ibv_destroy_cq(e->cq), 0);
}

void end_connect(struct dev* d, struct end* e, const struct qp_opts* o, uint32_t remote_qpn) {
  struct ibv_qp_attr a;
  memset(&a, 0, sizeof(a));
  a.qp_state = IBV_QPS_INIT;
  a.pkey_index = 0;
  a.port_num = 1;
  int mask = IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT;
  if (o->type == IBV_QPT_UD) {
    a.qkey = 0x11111111;
    mask |= IBV_QP_QKEY;
  } else {
    a.qp_access_flags = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC;
    mask |= IBV_QP_ACCESS_FLAGS;
  }
  CHECK_RC(ibv_modify_qp(e->qp, &a, mask), 0);
  memset(&a, 0, sizeof(a));
  a.qp_state = IBV_QPS_RTR;
  mask = IBV_QP_STATE;
  if (o->type != IBV_QPT_UD) {
    a.path_mtu = IBV_MTU_1024;
    a.dest_qp_num = remote_qpn;
    a.rq_psn = 0x1234;
    a.ah_attr.is_global = 1;
    a.ah_attr.grh.dgid = d->gid;
    a.ah_attr.grh.hop_limit = 64;
    a.ah_attr.grh.sgid_index = 0;
    a.ah_attr.port_num = 1;
    mask |= IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN;
    if (o->type == IBV_QPT_RC) {
      a.max_dest_rd_atomic = 16;
      a.min_rnr_timer = (uint8_t)o->min_rnr_timer;
      mask |= IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER;
    }
  }
  CHECK_RC(ibv_modify_qp(e->qp, &a, mask), 0);
  memset(&a, 0, sizeof(a));
  a.qp_state = IBV_QPS_RTS;
  a.sq_psn = 0x1234;
  mask = IBV_QP_STATE | IBV_QP_SQ_PSN;
  if (o->type == IBV_QPT_RC) {
    a.timeout = 14;
    a.retry_cnt = 7;
    a.rnr_retry = (uint8_t)o->rnr_retry;
    a.max_rd_atomic = 16;
    mask |= IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_MAX_QP_RD_ATOMIC;
  }
  CHECK_RC(ibv_modify_qp(e->qp, &a, mask), 0);
  CHECK(e->qp->state == IBV_QPS_RTS);
}

int wait_wc(struct ibv_cq* cq, struct ibv_wc* wc, int n) {
  const long long end = now_ms() + kWaitMs;
  int got = 0;
  while (got < n && now_ms() < end) {
    const int r = ibv_poll_cq(cq, n - got, wc + got);
    CHECK(r >= 0);
    got += r;
  }
  return got;
}

int drain_wc(struct ibv_cq* cq, int ms) {
  const long long end = now_ms() + ms;
  int got = 0;
  struct ibv_wc wc[16];
  while (now_ms() < end) {
    const int r = ibv_poll_cq(cq, 16, wc);
    CHECK(r >= 0);
    got += r;
  }
  return got;
}

int wait_fd(int fd, int ms) {
  struct pollfd p = {fd, POLLIN, 0};
  return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

void post_recv(struct ibv_qp* qp, uint64_t wr_id, struct buf* b, size_t off, uint32_t len) {
  struct ibv_sge sge = {(uintptr_t)(b->data + off), len, b->mr->lkey};
  struct ibv_recv_wr wr, *bad = NULL;
  memset(&wr, 0, sizeof(wr));
  wr.wr_id = wr_id;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  CHECK_RC(ibv_post_recv(qp, &wr, &bad), 0);
}

int post_send(struct ibv_qp* qp, uint64_t wr_id, enum ibv_wr_opcode op, struct buf* b, size_t off,
              uint32_t len, int flags, uint64_t raddr, uint32_t rkey) {
  struct ibv_sge sge = {(uintptr_t)(b->data + off), len, b->mr->lkey};
  struct ibv_send_wr wr, *bad = NULL;
  memset(&wr, 0, sizeof(wr));
  wr.wr_id = wr_id;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.opcode = op;
  wr.send_flags = (unsigned)flags;
  wr.wr.rdma.remote_addr = raddr;
  wr.wr.rdma.rkey = rkey;
  const int rc = ibv_post_send(qp, &wr, &bad);
  if (rc != 0) CHECK(bad == &wr);
  return rc;
}

enum ibv_qp_state qp_state(struct ibv_qp* qp) {
  struct ibv_qp_attr a;
  struct ibv_qp_init_attr init;
  CHECK_RC(ibv_query_qp(qp, &a, IBV_QP_STATE | IBV_QP_CUR_STATE, &init), 0);
  CHECK(a.cur_qp_state == a.qp_state); /* the real state, not left unset */
  return a.qp_state;
}

int run_case(const struct test_case* cases, int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s CASE\n", argv[0]);
    return 2;
  }
  for (const struct test_case* c = cases; c->name != NULL; ++c) {
    if (strcmp(c->name, argv[1]) == 0) {
      c->fn();
      printf("%s: ok\n", c->name);
      return 0;
    }
  }
  fprintf(stderr, "no case %s\n", argv[1]);
  return 2;
}
