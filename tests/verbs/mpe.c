/* IBTA annex A19 ATOMIC_WRITE through the drop-in libibverbs: rdma-core v44's
 * ibv_wr_atomic_write between two RC QPs on droce0's loopback port, its
 * completion (IBV_WC_ATOMIC_WRITE), the responder's rejections (misaligned:
 * REM_INV_REQ_ERR; bad rkey: REM_ACCESS_ERR) and the send_ops_flags rules.
 * v44's header has no ibv_wr_flush, so FLUSH is tested in the engine only
 * (tests/nic/engine/mpe_test.cc). Usage: verbs_mpe CASE. */
#include "tests/verbs/verbs_util.h"

enum {
  kAll = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ |
         IBV_ACCESS_REMOTE_ATOMIC
};
/* rdma-core v45's IBV_QP_EX_WITH_FLUSH, not in v44's header. */
enum { kQpExWithFlush = 1 << 11 };

struct pair {
  struct dev d;
  struct qp_opts o;
  struct ibv_cq* cq;
  struct ibv_qp_ex* x; /* a: the requester, created with send_ops_flags */
  struct end a, b;
  struct buf ba, bb;
};

static struct ibv_qp* create_ex(struct dev* d, struct ibv_cq* cq, enum ibv_qp_type type,
                                uint64_t ops) {
  struct ibv_qp_init_attr_ex qx;
  memset(&qx, 0, sizeof(qx));
  qx.send_cq = cq;
  qx.recv_cq = cq;
  qx.cap.max_send_wr = 64;
  qx.cap.max_recv_wr = 64;
  qx.cap.max_send_sge = 1;
  qx.cap.max_recv_sge = 1;
  qx.qp_type = type;
  qx.comp_mask = IBV_QP_INIT_ATTR_PD | IBV_QP_INIT_ATTR_SEND_OPS_FLAGS;
  qx.pd = d->pd;
  qx.send_ops_flags = ops;
  return ibv_create_qp_ex(d->ctx, &qx);
}

static void pair_open(struct pair* p) {
  dev_open(&p->d);
  p->o = qp_defaults(IBV_QPT_RC);
  p->cq = ibv_create_cq(p->d.ctx, 256, NULL, NULL, 0);
  CHECK(p->cq != NULL);
  struct ibv_qp* qp =
      create_ex(&p->d, p->cq, IBV_QPT_RC, IBV_QP_EX_WITH_ATOMIC_WRITE | IBV_QP_EX_WITH_RDMA_WRITE);
  CHECK(qp != NULL);
  p->x = ibv_qp_to_qp_ex(qp);
  CHECK(p->x != NULL);
  p->a.cq = p->cq;
  p->a.qp = qp;
  end_create(&p->d, &p->b, &p->o);
  end_connect(&p->d, &p->a, &p->o, p->b.qp->qp_num);
  end_connect(&p->d, &p->b, &p->o, p->a.qp->qp_num);
  buf_alloc(&p->d, &p->ba, 4096, kAll);
  buf_alloc(&p->d, &p->bb, 4096, kAll);
}

static void pair_close(struct pair* p) {
  end_destroy(&p->a, 1);
  end_destroy(&p->b, 1);
  buf_free(&p->ba);
  buf_free(&p->bb);
  dev_close(&p->d);
}

static void atomic_write(struct pair* p, uint64_t wr_id, uint32_t rkey, uint64_t addr,
                         const void* value) {
  ibv_wr_start(p->x);
  p->x->wr_id = wr_id;
  p->x->wr_flags = IBV_SEND_SIGNALED;
  ibv_wr_atomic_write(p->x, rkey, addr, value);
  CHECK_RC(ibv_wr_complete(p->x), 0);
}

static void test_atomic_write(void) {
  struct pair p;
  pair_open(&p);
  memset(p.bb.data, 0x5A, 4096);
  /* The 8 bytes land as given, whatever their byte order. */
  const uint8_t v1[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  atomic_write(&p, 1, p.bb.mr->rkey, (uintptr_t)p.bb.data + 64, v1);
  struct ibv_wc wc[4];
  CHECK(wait_wc(p.cq, wc, 1) == 1);
  CHECK(wc[0].wr_id == 1 && wc[0].status == IBV_WC_SUCCESS);
  CHECK(wc[0].opcode == IBV_WC_ATOMIC_WRITE);
  CHECK(wc[0].qp_num == p.a.qp->qp_num);
  CHECK(memcmp(p.bb.data + 64, v1, 8) == 0);
  for (int i = 0; i < 4096; ++i) {
    if (i >= 64 && i < 72) continue;
    CHECK(p.bb.data[i] == 0x5A);
  }

  /* A batch: a WRITE then an ATOMIC_WRITE flag after it, as a consumer
   * publishing data would; both complete in order, the flag last. */
  memset(p.ba.data, 0x33, 1024);
  const uint64_t flag = 0xF1A6F1A6F1A6F1A6ull;
  ibv_wr_start(p.x);
  p.x->wr_id = 2;
  p.x->wr_flags = IBV_SEND_SIGNALED;
  ibv_wr_rdma_write(p.x, p.bb.mr->rkey, (uintptr_t)p.bb.data + 1024);
  ibv_wr_set_sge(p.x, p.ba.mr->lkey, (uintptr_t)p.ba.data, 1024);
  p.x->wr_id = 3;
  ibv_wr_atomic_write(p.x, p.bb.mr->rkey, (uintptr_t)p.bb.data + 8, &flag);
  CHECK_RC(ibv_wr_complete(p.x), 0);
  CHECK(wait_wc(p.cq, wc, 2) == 2);
  CHECK(wc[0].wr_id == 2 && wc[0].status == IBV_WC_SUCCESS && wc[0].opcode == IBV_WC_RDMA_WRITE);
  CHECK(wc[1].wr_id == 3 && wc[1].status == IBV_WC_SUCCESS && wc[1].opcode == IBV_WC_ATOMIC_WRITE);
  CHECK(memcmp(p.bb.data + 8, &flag, 8) == 0);
  CHECK(memcmp(p.bb.data + 1024, p.ba.data, 1024) == 0);
  CHECK(drain_wc(p.cq, 50) == 0);
  CHECK(qp_state(p.a.qp) == IBV_QPS_RTS && qp_state(p.b.qp) == IBV_QPS_RTS);
  pair_close(&p);
}

static void error_case(int misaligned) {
  struct pair p;
  pair_open(&p);
  memset(p.bb.data, 0x22, 4096);
  const uint64_t v = 1;
  if (misaligned) {
    atomic_write(&p, 7, p.bb.mr->rkey, (uintptr_t)p.bb.data + 4, &v);
  } else {
    atomic_write(&p, 7, p.bb.mr->rkey ^ 0x100, (uintptr_t)p.bb.data, &v);
  }
  struct ibv_wc wc[2];
  CHECK(wait_wc(p.cq, wc, 1) == 1);
  CHECK(wc[0].wr_id == 7);
  CHECK(wc[0].status == (misaligned ? IBV_WC_REM_INV_REQ_ERR : IBV_WC_REM_ACCESS_ERR));
  for (int i = 0; i < 4096; ++i) CHECK(p.bb.data[i] == 0x22);
  CHECK(qp_state(p.a.qp) == IBV_QPS_ERR);
  CHECK(qp_state(p.b.qp) == IBV_QPS_ERR);
  pair_close(&p);
}
static void test_misaligned(void) { error_case(1); }
static void test_bad_rkey(void) { error_case(0); }

static void test_send_ops(void) {
  struct dev d;
  dev_open(&d);
  struct ibv_cq* cq = ibv_create_cq(d.ctx, 16, NULL, NULL, 0);
  CHECK(cq != NULL);
  /* FLUSH (v45) is not offered through this header's API. */
  CHECK_NULL_ERRNO(create_ex(&d, cq, IBV_QPT_RC, kQpExWithFlush), EOPNOTSUPP);
  /* ATOMIC_WRITE is offered; on a UD QP the WR itself is refused. */
  struct ibv_qp* ud = create_ex(&d, cq, IBV_QPT_UD, IBV_QP_EX_WITH_ATOMIC_WRITE | IBV_QP_EX_WITH_SEND);
  CHECK(ud != NULL);
  struct qp_opts o = qp_defaults(IBV_QPT_UD);
  struct end e = {cq, ud};
  end_connect(&d, &e, &o, 0);
  struct ibv_qp_ex* x = ibv_qp_to_qp_ex(ud);
  CHECK(x != NULL);
  const uint64_t v = 1;
  ibv_wr_start(x);
  ibv_wr_atomic_write(x, 1, 0x1000, &v);
  CHECK_RC(ibv_wr_complete(x), EINVAL);
  CHECK(drain_wc(cq, 50) == 0);
  CHECK_RC(ibv_destroy_qp(ud), 0);
  CHECK_RC(ibv_destroy_cq(cq), 0);
  dev_close(&d);
}

/* The same through ibv_post_send(IBV_WR_ATOMIC_WRITE): the 8 bytes of the
 * one 8-byte SGE, read at post time (key-checked), or inline. */
static void test_post_send(void) {
  struct pair p;
  pair_open(&p);
  /* Advertised as rxe does: IB_UVERBS_DEVICE_ATOMIC_WRITE (1 << 40). */
  struct ibv_device_attr_ex dx;
  CHECK_RC(ibv_query_device_ex(p.d.ctx, NULL, &dx), 0);
  CHECK((dx.device_cap_flags_ex >> 40) & 1);
  memset(p.bb.data, 0x5A, 4096);
  const uint8_t v[8] = {9, 8, 7, 6, 5, 4, 3, 2};
  memcpy(p.ba.data, v, 8);
  struct ibv_sge sge = {(uintptr_t)p.ba.data, 8, p.ba.mr->lkey};
  struct ibv_send_wr wr, *bad = NULL;
  memset(&wr, 0, sizeof(wr));
  wr.wr_id = 11;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.opcode = IBV_WR_ATOMIC_WRITE;
  wr.send_flags = IBV_SEND_SIGNALED;
  wr.wr.rdma.remote_addr = (uintptr_t)p.bb.data + 128;
  wr.wr.rdma.rkey = p.bb.mr->rkey;
  CHECK_RC(ibv_post_send(p.a.qp, &wr, &bad), 0);
  memset(p.ba.data, 0, 8); /* taken at post time: changing the source now is fine */
  struct ibv_wc wc;
  CHECK(wait_wc(p.cq, &wc, 1) == 1);
  CHECK(wc.wr_id == 11 && wc.status == IBV_WC_SUCCESS && wc.opcode == IBV_WC_ATOMIC_WRITE);
  CHECK(memcmp(p.bb.data + 128, v, 8) == 0);
  CHECK(p.bb.data[127] == 0x5A && p.bb.data[136] == 0x5A);

  /* Inline: straight from the address, no key. */
  const uint64_t inl = 0x0123456789ABCDEFull;
  sge.addr = (uintptr_t)&inl;
  sge.lkey = 0;
  wr.wr_id = 12;
  wr.send_flags = IBV_SEND_SIGNALED | IBV_SEND_INLINE;
  wr.wr.rdma.remote_addr = (uintptr_t)p.bb.data + 256;
  CHECK_RC(ibv_post_send(p.a.qp, &wr, &bad), 0);
  CHECK(wait_wc(p.cq, &wc, 1) == 1);
  CHECK(wc.wr_id == 12 && wc.status == IBV_WC_SUCCESS && wc.opcode == IBV_WC_ATOMIC_WRITE);
  CHECK(memcmp(p.bb.data + 256, &inl, 8) == 0);

  /* Refused at post, nothing sent, the QP goes on: a wrong lkey, a source
   * outside its MR, a length other than 8. */
  wr.send_flags = IBV_SEND_SIGNALED;
  sge.addr = (uintptr_t)p.ba.data;
  sge.lkey = p.ba.mr->lkey + 1;
  CHECK_RC(ibv_post_send(p.a.qp, &wr, &bad), EINVAL);
  CHECK(bad == &wr);
  sge.lkey = p.ba.mr->lkey;
  sge.addr = (uintptr_t)p.ba.data + 4092;
  CHECK_RC(ibv_post_send(p.a.qp, &wr, &bad), EINVAL);
  sge.addr = (uintptr_t)p.ba.data;
  sge.length = 4;
  CHECK_RC(ibv_post_send(p.a.qp, &wr, &bad), EINVAL);
  CHECK(drain_wc(p.cq, 50) == 0);
  CHECK(qp_state(p.a.qp) == IBV_QPS_RTS);
  pair_close(&p);
}

static const struct test_case kCases[] = {
    {"atomic_write", test_atomic_write},
    {"misaligned", test_misaligned},
    {"bad_rkey", test_bad_rkey},
    {"send_ops", test_send_ops},
    {"post_send", test_post_send},
    {NULL, NULL},
};

int main(int argc, char** argv) { return run_case(kCases, argc, argv); }
