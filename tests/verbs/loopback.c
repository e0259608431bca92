/* Data through the drop-in libibverbs in one process: two QPs on droce0,
 * whose default port loops back to itself (issue 5 section 4). RC SEND/RECV,
 * RDMA WRITE/READ and atomics, UD with the GRH, SRQ, the ibv_wr_* and
 * ibv_cq_ex APIs, error completions, and the error-state flush rules of
 * DESIGN.md section 4 seen with ibv_poll_cq and with completion events
 * (the pingpong programs' exchanges are in pingpong.c). Compiled as C against
 * the system header. Usage: verbs_loopback CASE. */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "tests/verbs/verbs_util.h"

enum {
  kAll = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ |
         IBV_ACCESS_REMOTE_ATOMIC
};

struct pair {
  struct dev d;
  struct qp_opts o;
  struct end a, b;
  struct buf ba, bb;
};

static void pair_open(struct pair* p, enum ibv_qp_type type, size_t buf_size) {
  dev_open(&p->d);
  p->o = qp_defaults(type);
  end_create(&p->d, &p->a, &p->o);
  end_create(&p->d, &p->b, &p->o);
  end_connect(&p->d, &p->a, &p->o, p->b.qp->qp_num);
  end_connect(&p->d, &p->b, &p->o, p->a.qp->qp_num);
  buf_alloc(&p->d, &p->ba, buf_size, kAll);
  buf_alloc(&p->d, &p->bb, buf_size, kAll);
}

static void pair_close(struct pair* p) {
  end_destroy(&p->a, 1);
  end_destroy(&p->b, 1);
  buf_free(&p->ba);
  buf_free(&p->bb);
  dev_close(&p->d);
}

static void fill(uint8_t* p, size_t n, uint8_t seed) {
  for (size_t i = 0; i < n; ++i) p[i] = (uint8_t)(seed + i * 7);
}

static void test_rc_send(void) {
  struct pair p;
  pair_open(&p, IBV_QPT_RC, 1 << 16);
  struct ibv_wc wc[4];
  const uint32_t sizes[] = {0, 1, 1023, 1024, 1025, 4096, 65536};
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); ++i) {
    const uint32_t n = sizes[i];
    fill(p.ba.data, n, (uint8_t)i);
    memset(p.bb.data, 0, p.bb.size);
    post_recv(p.b.qp, 100 + i, &p.bb, 0, (uint32_t)p.bb.size);
    CHECK_RC(post_send(p.a.qp, 200 + i, IBV_WR_SEND, &p.ba, 0, n, IBV_SEND_SIGNALED, 0, 0), 0);
    CHECK(wait_wc(p.a.cq, wc, 1) == 1);
    CHECK(wc[0].status == IBV_WC_SUCCESS && wc[0].opcode == IBV_WC_SEND && wc[0].wr_id == 200 + i);
    CHECK(wc[0].qp_num == p.a.qp->qp_num);
    CHECK(wait_wc(p.b.cq, wc, 1) == 1);
    CHECK(wc[0].status == IBV_WC_SUCCESS && wc[0].opcode == IBV_WC_RECV && wc[0].wr_id == 100 + i);
    CHECK(wc[0].byte_len == n && !(wc[0].wc_flags & IBV_WC_WITH_IMM));
    CHECK(wc[0].qp_num == p.b.qp->qp_num);
    CHECK(memcmp(p.ba.data, p.bb.data, n) == 0);
  }
  /* SEND with immediate, inline, solicited. */
  post_recv(p.b.qp, 1, &p.bb, 0, 64);
  struct ibv_sge sge = {(uintptr_t)p.ba.data, 16, p.ba.mr->lkey};
  struct ibv_send_wr wr, *bad = NULL;
  memset(&wr, 0, sizeof(wr));
  wr.wr_id = 2;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.opcode = IBV_WR_SEND_WITH_IMM;
  wr.send_flags = IBV_SEND_SIGNALED | IBV_SEND_INLINE | IBV_SEND_SOLICITED;
  wr.imm_data = htobe32(0xC0FFEE);
  memcpy(p.ba.data, "inline payload!", 16);
  CHECK_RC(ibv_post_send(p.a.qp, &wr, &bad), 0);
  memset(p.ba.data, 0, 16); /* inline: the data was copied at post time */
  CHECK(wait_wc(p.b.cq, wc, 1) == 1);
  CHECK(wc[0].status == IBV_WC_SUCCESS && wc[0].byte_len == 16);
  CHECK((wc[0].wc_flags & IBV_WC_WITH_IMM) && wc[0].imm_data == htobe32(0xC0FFEE));
  CHECK(memcmp(p.bb.data, "inline payload!", 16) == 0);
  CHECK(wait_wc(p.a.cq, wc, 1) == 1 && wc[0].wr_id == 2);
  /* Unsignaled sends complete silently; the signaled one after them reports. */
  for (int i = 0; i < 3; ++i) post_recv(p.b.qp, 10 + i, &p.bb, 0, 64);
  CHECK_RC(post_send(p.a.qp, 20, IBV_WR_SEND, &p.ba, 0, 8, 0, 0, 0), 0);
  CHECK_RC(post_send(p.a.qp, 21, IBV_WR_SEND, &p.ba, 0, 8, 0, 0, 0), 0);
  CHECK_RC(post_send(p.a.qp, 22, IBV_WR_SEND, &p.ba, 0, 8, IBV_SEND_SIGNALED, 0, 0), 0);
  CHECK(wait_wc(p.b.cq, wc, 3) == 3);
  CHECK(wc[0].wr_id == 10 && wc[1].wr_id == 11 && wc[2].wr_id == 12);
  CHECK(wait_wc(p.a.cq, wc, 1) == 1 && wc[0].wr_id == 22);
  CHECK(drain_wc(p.a.cq, 50) == 0);
  pair_close(&p);
}

static void test_rc_rdma(void) {
  struct pair p;
  pair_open(&p, IBV_QPT_RC, 1 << 16);
  struct ibv_wc wc[2];
  const uint32_t n = 1 << 16;
  /* WRITE 64 KiB. */
  fill(p.ba.data, n, 3);
  CHECK_RC(post_send(p.a.qp, 1, IBV_WR_RDMA_WRITE, &p.ba, 0, n, IBV_SEND_SIGNALED,
                     (uintptr_t)p.bb.data, p.bb.mr->rkey),
           0);
  CHECK(wait_wc(p.a.cq, wc, 1) == 1);
  CHECK(wc[0].status == IBV_WC_SUCCESS && wc[0].opcode == IBV_WC_RDMA_WRITE);
  CHECK(memcmp(p.ba.data, p.bb.data, n) == 0);
  CHECK(drain_wc(p.b.cq, 20) == 0); /* a plain WRITE consumes no receive */
  /* WRITE with immediate consumes a receive. */
  post_recv(p.b.qp, 7, &p.bb, 0, 0);
  struct ibv_sge sge = {(uintptr_t)p.ba.data, 100, p.ba.mr->lkey};
  struct ibv_send_wr wr, *bad = NULL;
  memset(&wr, 0, sizeof(wr));
  wr.wr_id = 2;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.opcode = IBV_WR_RDMA_WRITE_WITH_IMM;
  wr.send_flags = IBV_SEND_SIGNALED;
  wr.imm_data = htobe32(77);
  wr.wr.rdma.remote_addr = (uintptr_t)p.bb.data + 1000;
  wr.wr.rdma.rkey = p.bb.mr->rkey;
  CHECK_RC(ibv_post_send(p.a.qp, &wr, &bad), 0);
  CHECK(wait_wc(p.b.cq, wc, 1) == 1);
  CHECK(wc[0].status == IBV_WC_SUCCESS && wc[0].opcode == IBV_WC_RECV_RDMA_WITH_IMM);
  CHECK(wc[0].wr_id == 7 && wc[0].imm_data == htobe32(77) && wc[0].byte_len == 100);
  CHECK(memcmp(p.ba.data, p.bb.data + 1000, 100) == 0);
  CHECK(wait_wc(p.a.cq, wc, 1) == 1 && wc[0].wr_id == 2);
  /* READ 64 KiB back. */
  fill(p.bb.data, n, 9);
  memset(p.ba.data, 0, n);
  CHECK_RC(post_send(p.a.qp, 3, IBV_WR_RDMA_READ, &p.ba, 0, n, IBV_SEND_SIGNALED,
                     (uintptr_t)p.bb.data, p.bb.mr->rkey),
           0);
  CHECK(wait_wc(p.a.cq, wc, 1) == 1);
  CHECK(wc[0].status == IBV_WC_SUCCESS && wc[0].opcode == IBV_WC_RDMA_READ && wc[0].byte_len == n);
  CHECK(memcmp(p.ba.data, p.bb.data, n) == 0);
  /* Atomics on an 8-byte aligned word of B. */
  uint64_t* word = (uint64_t*)(p.bb.data + 64);
  *word = 40;
  memset(&wr, 0, sizeof(wr));
  sge.addr = (uintptr_t)p.ba.data;
  sge.length = 8;
  wr.wr_id = 4;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.opcode = IBV_WR_ATOMIC_FETCH_AND_ADD;
  wr.send_flags = IBV_SEND_SIGNALED;
  wr.wr.atomic.remote_addr = (uintptr_t)word;
  wr.wr.atomic.rkey = p.bb.mr->rkey;
  wr.wr.atomic.compare_add = 2;
  CHECK_RC(ibv_post_send(p.a.qp, &wr, &bad), 0);
  CHECK(wait_wc(p.a.cq, wc, 1) == 1);
  CHECK(wc[0].status == IBV_WC_SUCCESS && wc[0].opcode == IBV_WC_FETCH_ADD);
  CHECK(*(uint64_t*)p.ba.data == 40 && *word == 42);
  wr.wr_id = 5;
  wr.opcode = IBV_WR_ATOMIC_CMP_AND_SWP;
  wr.wr.atomic.compare_add = 42;
  wr.wr.atomic.swap = 7;
  CHECK_RC(ibv_post_send(p.a.qp, &wr, &bad), 0);
  CHECK(wait_wc(p.a.cq, wc, 1) == 1);
  CHECK(wc[0].status == IBV_WC_SUCCESS && wc[0].opcode == IBV_WC_COMP_SWAP);
  CHECK(*(uint64_t*)p.ba.data == 42 && *word == 7);

  /* A region registered at an iova is addressed by it. */
  struct ibv_mr* mri = ibv_reg_mr_iova(p.d.pd, p.bb.data, 4096, 0x700000000, kAll);
  CHECK(mri != NULL);
  fill(p.ba.data, 256, 5);
  CHECK_RC(post_send(p.a.qp, 6, IBV_WR_RDMA_WRITE, &p.ba, 0, 256, IBV_SEND_SIGNALED,
                     0x700000000 + 512, mri->rkey),
           0);
  CHECK(wait_wc(p.a.cq, wc, 1) == 1 && wc[0].status == IBV_WC_SUCCESS);
  CHECK(memcmp(p.ba.data, p.bb.data + 512, 256) == 0);
  CHECK_RC(ibv_dereg_mr(mri), 0);
  pair_close(&p);
}

/* The first failing WQE completes with its real status; the rest flush. */
static void test_rc_errors(void) {
  struct pair p;
  pair_open(&p, IBV_QPT_RC, 4096);
  struct ibv_wc wc[8];
  /* Local SGE outside the MR: local protection error, QP to ERR. */
  struct ibv_sge sge = {(uintptr_t)p.ba.data + 4000, 200, p.ba.mr->lkey};
  struct ibv_send_wr wr, *bad = NULL;
  memset(&wr, 0, sizeof(wr));
  wr.wr_id = 1;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.opcode = IBV_WR_RDMA_WRITE;
  wr.send_flags = IBV_SEND_SIGNALED;
  wr.wr.rdma.remote_addr = (uintptr_t)p.bb.data;
  wr.wr.rdma.rkey = p.bb.mr->rkey;
  CHECK_RC(ibv_post_send(p.a.qp, &wr, &bad), 0);
  CHECK_RC(post_send(p.a.qp, 2, IBV_WR_SEND, &p.ba, 0, 8, 0, 0, 0), 0); /* unsignaled */
  CHECK(wait_wc(p.a.cq, wc, 2) == 2);
  CHECK(wc[0].wr_id == 1 && wc[0].status == IBV_WC_LOC_PROT_ERR);
  CHECK(wc[1].wr_id == 2 && wc[1].status == IBV_WC_WR_FLUSH_ERR);
  CHECK(qp_state(p.a.qp) == IBV_QPS_ERR);
  CHECK(drain_wc(p.a.cq, 50) == 0);
  pair_close(&p);

  /* Remote address outside B's MR: remote access error at A, B's QP in ERR
   * with an access-error async event. */
  pair_open(&p, IBV_QPT_RC, 4096);
  const int fl = fcntl(p.d.ctx->async_fd, F_GETFL);
  CHECK(fcntl(p.d.ctx->async_fd, F_SETFL, fl | O_NONBLOCK) == 0);
  post_recv(p.b.qp, 50, &p.bb, 0, 64);
  CHECK_RC(post_send(p.a.qp, 3, IBV_WR_RDMA_WRITE, &p.ba, 0, 100, IBV_SEND_SIGNALED,
                     (uintptr_t)p.bb.data + 4090, p.bb.mr->rkey),
           0);
  CHECK_RC(post_send(p.a.qp, 4, IBV_WR_SEND, &p.ba, 0, 8, IBV_SEND_SIGNALED, 0, 0), 0);
  CHECK(wait_wc(p.a.cq, wc, 2) == 2);
  CHECK(wc[0].wr_id == 3 && wc[0].status == IBV_WC_REM_ACCESS_ERR);
  CHECK(wc[1].wr_id == 4 && wc[1].status == IBV_WC_WR_FLUSH_ERR);
  CHECK(qp_state(p.a.qp) == IBV_QPS_ERR);
  CHECK(wait_wc(p.b.cq, wc, 1) == 1); /* B's receive flushes as B enters ERR */
  CHECK(wc[0].wr_id == 50 && wc[0].status == IBV_WC_WR_FLUSH_ERR);
  CHECK(qp_state(p.b.qp) == IBV_QPS_ERR);
  CHECK(wait_fd(p.d.ctx->async_fd, kWaitMs));
  struct ibv_async_event ev;
  CHECK_RC(ibv_get_async_event(p.d.ctx, &ev), 0);
  CHECK(ev.event_type == IBV_EVENT_QP_ACCESS_ERR && ev.element.qp == p.b.qp);
  ibv_ack_async_event(&ev);
  CHECK(p.b.qp->events_completed == 1);
  pair_close(&p);

  /* A stale rkey (deregistered MR) is refused the same way. */
  pair_open(&p, IBV_QPT_RC, 4096);
  struct buf gone;
  buf_alloc(&p.d, &gone, 4096, kAll);
  const uint32_t stale = gone.mr->rkey;
  buf_free(&gone);
  CHECK_RC(post_send(p.a.qp, 5, IBV_WR_RDMA_READ, &p.ba, 0, 64, IBV_SEND_SIGNALED,
                     (uintptr_t)p.bb.data, stale),
           0);
  CHECK(wait_wc(p.a.cq, wc, 1) == 1 && wc[0].status == IBV_WC_REM_ACCESS_ERR);
  pair_close(&p);
}

/* ibv_modify_qp to ERR with outstanding work: every WR completes, in order,
 * with WR_FLUSH_ERR (signaled or not), receives too, and work posted later
 * completes the same way; nothing completes twice. */
static void flush_case(int use_events) {
  struct dev d;
  dev_open(&d);
  struct ibv_comp_channel* ch = NULL;
  struct qp_opts o = qp_defaults(IBV_QPT_RC);
  o.min_rnr_timer = 14; /* B answers RNR; A keeps retrying (rnr_retry 7 = for ever) */
  if (use_events) {
    ch = ibv_create_comp_channel(d.ctx);
    CHECK(ch != NULL);
    o.cq = ibv_create_cq(d.ctx, 256, (void*)0x5a, ch, 0);
    CHECK(o.cq != NULL);
  }
  struct end a, b;
  end_create(&d, &a, &o);
  struct qp_opts ob = qp_defaults(IBV_QPT_RC);
  ob.min_rnr_timer = 14;
  end_create(&d, &b, &ob);
  end_connect(&d, &a, &o, b.qp->qp_num);
  end_connect(&d, &b, &ob, a.qp->qp_num);
  struct buf buf;
  buf_alloc(&d, &buf, 4096, kAll);

  for (int i = 0; i < 8; ++i) post_recv(a.qp, 100 + (uint64_t)i, &buf, 0, 64);
  for (int i = 0; i < 6; ++i) {
    /* Alternate signaled and unsignaled: B has no receive posted, so none can finish. */
    CHECK_RC(post_send(a.qp, 200 + (uint64_t)i, IBV_WR_SEND, &buf, 0, 32,
                       (i % 2) ? 0 : IBV_SEND_SIGNALED, 0, 0),
             0);
  }
  CHECK(drain_wc(a.cq, 100) == 0);
  if (use_events) CHECK_RC(ibv_req_notify_cq(a.cq, 0), 0);

  struct ibv_qp_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.qp_state = IBV_QPS_ERR;
  CHECK_RC(ibv_modify_qp(a.qp, &attr, IBV_QP_STATE), 0);
  CHECK(a.qp->state == IBV_QPS_ERR && qp_state(a.qp) == IBV_QPS_ERR);

  if (use_events) {
    CHECK(wait_fd(ch->fd, kWaitMs));
    struct ibv_cq* ev_cq = NULL;
    void* ev_ctx = NULL;
    CHECK_RC(ibv_get_cq_event(ch, &ev_cq, &ev_ctx), 0);
    CHECK(ev_cq == a.cq && ev_ctx == (void*)0x5a);
    ibv_ack_cq_events(ev_cq, 1);
    CHECK(a.cq->comp_events_completed == 1);
  }
  struct ibv_wc wc[32];
  CHECK(wait_wc(a.cq, wc, 14) == 14);
  int sends = 0, recvs = 0;
  for (int i = 0; i < 14; ++i) {
    CHECK(wc[i].status == IBV_WC_WR_FLUSH_ERR);
    CHECK(wc[i].qp_num == a.qp->qp_num);
    if (wc[i].wr_id >= 200) {
      CHECK(wc[i].wr_id == 200 + (uint64_t)sends); /* SQ order, every WR */
      ++sends;
    } else {
      CHECK(wc[i].wr_id == 100 + (uint64_t)recvs); /* RQ order */
      CHECK(wc[i].opcode & IBV_WC_RECV);
      ++recvs;
    }
  }
  CHECK(sends == 6 && recvs == 8);

  /* Posted in ERR: accepted, and flushed at once. */
  if (use_events) CHECK_RC(ibv_req_notify_cq(a.cq, 0), 0);
  post_recv(a.qp, 300, &buf, 0, 64);
  CHECK_RC(post_send(a.qp, 301, IBV_WR_SEND, &buf, 0, 8, 0, 0, 0), 0);
  if (use_events) {
    CHECK(wait_fd(ch->fd, kWaitMs));
    struct ibv_cq* ev_cq = NULL;
    void* ev_ctx = NULL;
    CHECK_RC(ibv_get_cq_event(ch, &ev_cq, &ev_ctx), 0);
    CHECK(ev_cq == a.cq);
    ibv_ack_cq_events(ev_cq, 1);
  }
  CHECK(wait_wc(a.cq, wc, 2) == 2);
  CHECK(wc[0].status == IBV_WC_WR_FLUSH_ERR && wc[1].status == IBV_WC_WR_FLUSH_ERR);
  CHECK((wc[0].wr_id == 300 && wc[1].wr_id == 301) || (wc[0].wr_id == 301 && wc[1].wr_id == 300));
  /* Entering ERR again completes nothing twice. */
  CHECK_RC(ibv_modify_qp(a.qp, &attr, IBV_QP_STATE), 0);
  CHECK(drain_wc(a.cq, 100) == 0);
  CHECK(drain_wc(b.cq, 10) == 0);

  /* RESET discards without completions. */
  post_recv(a.qp, 400, &buf, 0, 64);
  CHECK(wait_wc(a.cq, wc, 1) == 1 && wc[0].wr_id == 400);
  attr.qp_state = IBV_QPS_RESET;
  CHECK_RC(ibv_modify_qp(a.qp, &attr, IBV_QP_STATE), 0);
  CHECK(drain_wc(a.cq, 50) == 0);

  end_destroy(&a, 1);
  end_destroy(&b, 1);
  buf_free(&buf);
  if (use_events) CHECK_RC(ibv_destroy_comp_channel(ch), 0);
  dev_close(&d);
}

static void test_flush(void) { flush_case(0); }
static void test_flush_events(void) { flush_case(1); }

/* A completion event wakes a blocking ibv_get_cq_event; solicited-only arms
 * ignore unsolicited completions. */
static void test_events(void) {
  struct dev d;
  dev_open(&d);
  struct ibv_comp_channel* ch = ibv_create_comp_channel(d.ctx);
  CHECK(ch != NULL);
  struct qp_opts o = qp_defaults(IBV_QPT_RC);
  struct end a, b;
  end_create(&d, &a, &o);
  o.cq = ibv_create_cq(d.ctx, 64, NULL, ch, 0);
  CHECK(o.cq != NULL);
  end_create(&d, &b, &o);
  o.cq = NULL;
  end_connect(&d, &a, &o, b.qp->qp_num);
  end_connect(&d, &b, &o, a.qp->qp_num);
  struct buf buf;
  buf_alloc(&d, &buf, 4096, kAll);
  struct ibv_wc wc[2];
  struct ibv_cq* ev_cq;
  void* ev_ctx;

  /* Solicited only: an unsolicited SEND arrives without an event ... */
  CHECK_RC(ibv_req_notify_cq(b.cq, 1), 0);
  post_recv(b.qp, 1, &buf, 0, 64);
  CHECK_RC(post_send(a.qp, 2, IBV_WR_SEND, &buf, 0, 8, IBV_SEND_SIGNALED, 0, 0), 0);
  CHECK(wait_wc(a.cq, wc, 1) == 1 && wc[0].status == IBV_WC_SUCCESS);
  CHECK(!wait_fd(ch->fd, 200));
  CHECK(wait_wc(b.cq, wc, 1) == 1 && wc[0].wr_id == 1);
  /* ... a solicited one fires it. */
  post_recv(b.qp, 3, &buf, 0, 64);
  CHECK_RC(
      post_send(a.qp, 4, IBV_WR_SEND, &buf, 0, 8, IBV_SEND_SIGNALED | IBV_SEND_SOLICITED, 0, 0), 0);
  CHECK(wait_fd(ch->fd, kWaitMs));
  CHECK_RC(ibv_get_cq_event(ch, &ev_cq, &ev_ctx), 0);
  CHECK(ev_cq == b.cq);
  CHECK(wait_wc(b.cq, wc, 1) == 1 && wc[0].wr_id == 3);
  CHECK(wait_wc(a.cq, wc, 1) == 1);

  /* Blocking get: the engine thread delivers while this thread sleeps. The
   * kernel-style flags NEXT_COMP | REPORT_MISSED_EVENTS (6) ask for any
   * completion, as Linux SMC-R passes them. */
  CHECK_RC(ibv_req_notify_cq(b.cq, 6), 0);
  post_recv(b.qp, 5, &buf, 0, 64);
  CHECK_RC(post_send(a.qp, 6, IBV_WR_SEND, &buf, 0, 8, IBV_SEND_SIGNALED, 0, 0), 0);
  alarm(20); /* bounded: a lost event kills the case */
  CHECK_RC(ibv_get_cq_event(ch, &ev_cq, &ev_ctx), 0);
  alarm(0);
  CHECK(ev_cq == b.cq);
  ibv_ack_cq_events(b.cq, 2);
  CHECK(b.cq->comp_events_completed == 2);
  CHECK(wait_wc(b.cq, wc, 1) == 1 && wc[0].wr_id == 5);
  /* REPORT_MISSED_EVENTS says when completions are already waiting. */
  post_recv(b.qp, 7, &buf, 0, 64);
  CHECK_RC(post_send(a.qp, 8, IBV_WR_SEND, &buf, 0, 8, IBV_SEND_SIGNALED, 0, 0), 0);
  CHECK(wait_wc(a.cq, wc, 1) == 1);
  int missed = 0;
  for (int i = 0; i < 1000 && !missed; ++i) {
    missed = ibv_req_notify_cq(b.cq, 6);
    CHECK(missed == 0 || missed == 1);
    if (!missed) usleep(1000);
  }
  CHECK(missed == 1);
  CHECK(wait_wc(b.cq, wc, 1) == 1 && wc[0].wr_id == 7);
  end_destroy(&a, 1);
  end_destroy(&b, 1);
  /* The armed, fired CQ left no stale event behind for the channel. */
  buf_free(&buf);
  CHECK_RC(ibv_destroy_comp_channel(ch), 0);
  dev_close(&d);
}

/* CQ too small for the work: overflow raises IBV_EVENT_CQ_ERR and the QPs on
 * it go to ERR (IBTA 11.4.2.1 class G). */
static void test_cq_overflow(void) {
  struct dev d;
  dev_open(&d);
  struct qp_opts o = qp_defaults(IBV_QPT_RC);
  o.cq = ibv_create_cq(d.ctx, 1, NULL, NULL, 0);
  CHECK(o.cq != NULL && o.cq->cqe >= 1);
  const int cqe = o.cq->cqe;
  struct end a, b;
  end_create(&d, &a, &o);
  o.cq = NULL;
  end_create(&d, &b, &o);
  end_connect(&d, &a, &o, b.qp->qp_num);
  end_connect(&d, &b, &o, a.qp->qp_num);
  struct buf buf;
  buf_alloc(&d, &buf, 4096, kAll);
  for (int i = 0; i < cqe + 3; ++i) {
    CHECK_RC(post_send(a.qp, (uint64_t)i, IBV_WR_RDMA_WRITE, &buf, 0, 8, IBV_SEND_SIGNALED,
                       (uintptr_t)buf.data + 64, buf.mr->rkey),
             0);
  }
  CHECK(wait_fd(d.ctx->async_fd, kWaitMs));
  struct ibv_async_event ev;
  int saw_cq_err = 0, saw_qp_fatal = 0;
  for (int i = 0; i < 2; ++i) {
    CHECK(wait_fd(d.ctx->async_fd, kWaitMs));
    CHECK_RC(ibv_get_async_event(d.ctx, &ev), 0);
    if (ev.event_type == IBV_EVENT_CQ_ERR) {
      CHECK(ev.element.cq == a.cq);
      saw_cq_err = 1;
    } else {
      CHECK(ev.event_type == IBV_EVENT_QP_FATAL && ev.element.qp == a.qp);
      saw_qp_fatal = 1;
    }
    ibv_ack_async_event(&ev);
  }
  CHECK(saw_cq_err && saw_qp_fatal);
  CHECK(a.cq->async_events_completed == 1);
  CHECK(qp_state(a.qp) == IBV_QPS_ERR);
  struct ibv_wc wc[8];
  CHECK(wait_wc(a.cq, wc, cqe) == cqe); /* what fitted */
  end_destroy(&a, 1);
  end_destroy(&b, 1);
  buf_free(&buf);
  dev_close(&d);
}

static void test_srq(void) {
  struct dev d;
  dev_open(&d);
  struct ibv_srq_init_attr si;
  memset(&si, 0, sizeof(si));
  si.attr.max_wr = 16;
  si.attr.max_sge = 1;
  struct ibv_srq* srq = ibv_create_srq(d.pd, &si);
  CHECK(srq != NULL);
  struct qp_opts o = qp_defaults(IBV_QPT_RC);
  struct end a1, a2, b1, b2;
  end_create(&d, &a1, &o);
  end_create(&d, &a2, &o);
  o.srq = srq;
  end_create(&d, &b1, &o);
  o.cq = b1.cq;
  end_create(&d, &b2, &o); /* both receivers share the SRQ and a CQ */
  o.srq = NULL;
  o.cq = NULL;
  end_connect(&d, &a1, &o, b1.qp->qp_num);
  end_connect(&d, &b1, &o, a1.qp->qp_num);
  end_connect(&d, &a2, &o, b2.qp->qp_num);
  end_connect(&d, &b2, &o, a2.qp->qp_num);
  struct buf buf, rbuf;
  buf_alloc(&d, &buf, 4096, kAll);
  buf_alloc(&d, &rbuf, 8 * 256, kAll);
  for (int i = 0; i < 8; ++i) {
    struct ibv_sge sge = {(uintptr_t)rbuf.data + (size_t)i * 256, 256, rbuf.mr->lkey};
    struct ibv_recv_wr wr = {.wr_id = (uint64_t)i, .sg_list = &sge, .num_sge = 1}, *bad = NULL;
    CHECK_RC(ibv_post_srq_recv(srq, &wr, &bad), 0);
  }
  struct ibv_srq_attr sa = {.srq_limit = 6};
  CHECK_RC(ibv_modify_srq(srq, &sa, IBV_SRQ_LIMIT), 0);
  const int fl = fcntl(d.ctx->async_fd, F_GETFL);
  CHECK(fcntl(d.ctx->async_fd, F_SETFL, fl | O_NONBLOCK) == 0);

  memcpy(buf.data, "one", 4);
  CHECK_RC(post_send(a1.qp, 1, IBV_WR_SEND, &buf, 0, 4, IBV_SEND_SIGNALED, 0, 0), 0);
  memcpy(buf.data + 8, "two", 4);
  CHECK_RC(post_send(a2.qp, 2, IBV_WR_SEND, &buf, 8, 4, IBV_SEND_SIGNALED, 0, 0), 0);
  struct ibv_wc wc[4];
  CHECK(wait_wc(b1.cq, wc, 2) == 2);
  CHECK(wc[0].status == IBV_WC_SUCCESS && wc[1].status == IBV_WC_SUCCESS);
  CHECK(wc[0].wr_id == 0 && wc[1].wr_id == 1); /* SRQ WRs in order */
  CHECK((wc[0].qp_num == b1.qp->qp_num && wc[1].qp_num == b2.qp->qp_num) ||
        (wc[0].qp_num == b2.qp->qp_num && wc[1].qp_num == b1.qp->qp_num));
  CHECK(wait_wc(a1.cq, wc, 1) == 1 && wait_wc(a2.cq, wc + 1, 1) == 1);
  /* 6 left of 8 is not below the limit of 6; one more is. */
  struct ibv_async_event ev;
  errno = 0;
  CHECK(ibv_get_async_event(d.ctx, &ev) == -1 && errno == EAGAIN);
  CHECK_RC(post_send(a1.qp, 3, IBV_WR_SEND, &buf, 0, 4, IBV_SEND_SIGNALED, 0, 0), 0);
  CHECK(wait_wc(b1.cq, wc, 1) == 1 && wc[0].wr_id == 2);
  CHECK(wait_fd(d.ctx->async_fd, kWaitMs));
  CHECK_RC(ibv_get_async_event(d.ctx, &ev), 0);
  CHECK(ev.event_type == IBV_EVENT_SRQ_LIMIT_REACHED && ev.element.srq == srq);
  ibv_ack_async_event(&ev);
  CHECK_RC(ibv_query_srq(srq, &sa), 0);
  CHECK(sa.srq_limit == 0); /* the limit disarms when it fires */
  CHECK_RC(ibv_destroy_srq(srq), EBUSY);
  end_destroy(&b2, 0);
  end_destroy(&b1, 1);
  end_destroy(&a1, 1);
  end_destroy(&a2, 1);
  CHECK_RC(ibv_destroy_srq(srq), 0);
  buf_free(&buf);
  buf_free(&rbuf);
  dev_close(&d);
}

static void test_ud(void) {
  struct pair p;
  pair_open(&p, IBV_QPT_UD, 4096);
  struct ibv_ah_attr aa;
  memset(&aa, 0, sizeof(aa));
  aa.is_global = 1;
  aa.grh.dgid = p.d.gid;
  aa.grh.hop_limit = 64;
  aa.port_num = 1;
  struct ibv_ah* ah = ibv_create_ah(p.d.pd, &aa);
  CHECK(ah != NULL);
  post_recv(p.b.qp, 1, &p.bb, 0, 40 + 512);
  fill(p.ba.data, 300, 1);
  struct ibv_sge sge = {(uintptr_t)p.ba.data, 300, p.ba.mr->lkey};
  struct ibv_send_wr wr, *bad = NULL;
  memset(&wr, 0, sizeof(wr));
  wr.wr_id = 2;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.opcode = IBV_WR_SEND;
  wr.send_flags = IBV_SEND_SIGNALED;
  wr.wr.ud.ah = ah;
  wr.wr.ud.remote_qpn = p.b.qp->qp_num;
  wr.wr.ud.remote_qkey = 0x11111111;
  CHECK_RC(ibv_post_send(p.a.qp, &wr, &bad), 0);
  struct ibv_wc wc[2];
  CHECK(wait_wc(p.a.cq, wc, 1) == 1 && wc[0].status == IBV_WC_SUCCESS);
  CHECK(wait_wc(p.b.cq, wc, 1) == 1);
  CHECK(wc[0].status == IBV_WC_SUCCESS && wc[0].byte_len == 40 + 300);
  CHECK(wc[0].wc_flags & IBV_WC_GRH);
  CHECK(wc[0].src_qp == p.a.qp->qp_num);
  CHECK(memcmp(p.bb.data + 40, p.ba.data, 300) == 0);
  /* Reply with an AH built from the completion and the GRH. */
  struct ibv_ah* back = ibv_create_ah_from_wc(p.d.pd, &wc[0], (struct ibv_grh*)p.bb.data, 1);
  CHECK(back != NULL);
  struct ibv_ah_attr from;
  CHECK_RC(ibv_init_ah_from_wc(p.d.ctx, 1, &wc[0], (struct ibv_grh*)p.bb.data, &from), 0);
  CHECK(from.is_global && memcmp(from.grh.dgid.raw, p.d.gid.raw, 16) == 0 &&
        from.grh.sgid_index == 0);
  post_recv(p.a.qp, 3, &p.ba, 1024, 40 + 64);
  wr.wr_id = 4;
  wr.wr.ud.ah = back;
  wr.wr.ud.remote_qpn = wc[0].src_qp;
  sge.length = 64;
  CHECK_RC(ibv_post_send(p.b.qp, &wr, &bad), 0);
  CHECK(wait_wc(p.a.cq, wc, 1) == 1 && wc[0].wr_id == 3 && wc[0].status == IBV_WC_SUCCESS);
  CHECK(wait_wc(p.b.cq, wc, 1) == 1 && wc[0].wr_id == 4);
  /* A UD message larger than the path MTU is refused at post time. */
  sge.length = 2048;
  CHECK_RC(ibv_post_send(p.a.qp, &wr, &bad), EINVAL);
  wr.wr.ud.ah = NULL;
  sge.length = 8;
  CHECK_RC(ibv_post_send(p.a.qp, &wr, &bad), EINVAL);
  CHECK_RC(ibv_destroy_ah(back), 0);
  CHECK_RC(ibv_destroy_ah(ah), 0);
  pair_close(&p);
}

/* The extended APIs: ibv_wr_* on a QP made with ibv_create_qp_ex, read back
 * with ibv_start_poll / ibv_next_poll on a CQ made with ibv_create_cq_ex. */
static void test_ex(void) {
  struct dev d;
  dev_open(&d);
  struct ibv_cq_init_attr_ex cx;
  memset(&cx, 0, sizeof(cx));
  cx.cqe = 64;
  cx.wc_flags = IBV_WC_EX_WITH_BYTE_LEN | IBV_WC_EX_WITH_QP_NUM | IBV_WC_EX_WITH_IMM;
  struct ibv_cq_ex* cqx = ibv_create_cq_ex(d.ctx, &cx);
  CHECK(cqx != NULL);
  struct ibv_qp_init_attr_ex qx;
  memset(&qx, 0, sizeof(qx));
  qx.send_cq = ibv_cq_ex_to_cq(cqx);
  qx.recv_cq = ibv_cq_ex_to_cq(cqx);
  qx.cap.max_send_wr = 16;
  qx.cap.max_recv_wr = 16;
  qx.cap.max_send_sge = 2;
  qx.cap.max_recv_sge = 1;
  qx.cap.max_inline_data = 64;
  qx.qp_type = IBV_QPT_RC;
  qx.comp_mask = IBV_QP_INIT_ATTR_PD | IBV_QP_INIT_ATTR_SEND_OPS_FLAGS;
  qx.pd = d.pd;
  qx.send_ops_flags = IBV_QP_EX_WITH_BIND_MW;
  CHECK_NULL_ERRNO(ibv_create_qp_ex(d.ctx, &qx), EOPNOTSUPP);
  qx.send_ops_flags =
      IBV_QP_EX_WITH_SEND | IBV_QP_EX_WITH_RDMA_WRITE | IBV_QP_EX_WITH_SEND_WITH_IMM;
  struct ibv_qp* qp = ibv_create_qp_ex(d.ctx, &qx);
  CHECK(qp != NULL);
  struct ibv_qp_ex* x = ibv_qp_to_qp_ex(qp);
  CHECK(x != NULL && &x->qp_base == qp);
  struct qp_opts o = qp_defaults(IBV_QPT_RC);
  struct end a = {ibv_cq_ex_to_cq(cqx), qp}, b;
  end_create(&d, &b, &o);
  end_connect(&d, &a, &o, b.qp->qp_num);
  end_connect(&d, &b, &o, a.qp->qp_num);
  struct buf buf;
  buf_alloc(&d, &buf, 8192, kAll);
  post_recv(b.qp, 1, &buf, 4096, 64);

  /* An aborted batch posts nothing. */
  ibv_wr_start(x);
  x->wr_id = 99;
  x->wr_flags = IBV_SEND_SIGNALED;
  ibv_wr_send(x);
  ibv_wr_set_sge(x, buf.mr->lkey, (uintptr_t)buf.data, 8);
  ibv_wr_abort(x);
  CHECK(drain_wc(b.cq, 50) == 0);

  memcpy(buf.data, "hello ex", 8);
  ibv_wr_start(x);
  x->wr_id = 10;
  x->wr_flags = IBV_SEND_SIGNALED;
  ibv_wr_send_imm(x, htobe32(5));
  ibv_wr_set_sge(x, buf.mr->lkey, (uintptr_t)buf.data, 8);
  x->wr_id = 11;
  ibv_wr_rdma_write(x, buf.mr->rkey, (uintptr_t)buf.data + 2048);
  ibv_wr_set_inline_data(x, "inline!", 8);
  CHECK_RC(ibv_wr_complete(x), 0);

  struct ibv_wc wc[2];
  CHECK(wait_wc(b.cq, wc, 1) == 1);
  CHECK(wc[0].status == IBV_WC_SUCCESS && wc[0].byte_len == 8 && wc[0].imm_data == htobe32(5));
  CHECK(memcmp(buf.data + 4096, "hello ex", 8) == 0);
  int got = 0, rc;
  struct ibv_poll_cq_attr pa = {0};
  uint64_t ids[2] = {0, 0};
  for (long tries = 0; tries < 10000000 && got < 2; ++tries) {
    rc = ibv_start_poll(cqx, &pa);
    if (rc == ENOENT) continue;
    CHECK_RC(rc, 0);
    do {
      CHECK(cqx->status == IBV_WC_SUCCESS);
      CHECK(ibv_wc_read_qp_num(cqx) == qp->qp_num);
      const enum ibv_wc_opcode op = ibv_wc_read_opcode(cqx);
      CHECK(op == (cqx->wr_id == 10 ? IBV_WC_SEND : IBV_WC_RDMA_WRITE));
      ids[got++] = cqx->wr_id;
      rc = got < 2 ? ibv_next_poll(cqx) : ENOENT;
    } while (rc == 0);
    ibv_end_poll(cqx);
  }
  CHECK(got == 2 && ids[0] == 10 && ids[1] == 11);
  CHECK(memcmp(buf.data + 2048, "inline!", 8) == 0);

  /* A builder error (too many SGEs) fails the whole batch at complete. */
  struct ibv_sge three[3] = {{(uintptr_t)buf.data, 1, buf.mr->lkey},
                             {(uintptr_t)buf.data, 1, buf.mr->lkey},
                             {(uintptr_t)buf.data, 1, buf.mr->lkey}};
  ibv_wr_start(x);
  ibv_wr_send(x);
  ibv_wr_set_sge_list(x, 3, three);
  CHECK_RC(ibv_wr_complete(x), EINVAL);
  CHECK(drain_wc(b.cq, 50) == 0);

  end_destroy(&a, 1);
  end_destroy(&b, 1);
  buf_free(&buf);
  dev_close(&d);
}

/* A full send queue, refilled as completions come: each completion polled
 * gives back its WQE's slot, so posting one WR per completion never finds
 * the queue full (ENOMEM). The engine thread completes WRs while this thread
 * polls and posts: a completion made visible before its slot was freed
 * shows as ENOMEM here. Bounded: 200 000 completions or 15 s. */
static void test_sq_reuse(void) {
  struct pair p;
  pair_open(&p, IBV_QPT_RC, 4096);
  const int depth = p.o.depth;
  uint64_t posted = 0, done = 0;
  for (int i = 0; i < depth; ++i) {
    CHECK_RC(post_send(p.a.qp, posted, IBV_WR_RDMA_WRITE, &p.ba, 0, 8, IBV_SEND_SIGNALED,
                       (uintptr_t)p.bb.data, p.bb.mr->rkey),
             0);
    ++posted;
  }
  struct timespec t0, now;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (done >= 200000 || now.tv_sec - t0.tv_sec >= 15) break;
    struct ibv_wc wc[16];
    const int n = ibv_poll_cq(p.a.cq, 16, wc);
    CHECK(n >= 0);
    for (int i = 0; i < n; ++i) {
      CHECK(wc[i].status == IBV_WC_SUCCESS);
      CHECK(wc[i].wr_id == done);
      ++done;
    }
    for (int i = 0; i < n; ++i) {
      const int rc = post_send(p.a.qp, posted, IBV_WR_RDMA_WRITE, &p.ba, 0, 8, IBV_SEND_SIGNALED,
                               (uintptr_t)p.bb.data, p.bb.mr->rkey);
      if (rc != 0) {
        fprintf(stderr, "post %d of %d after %llu completions: %s (the polled completion's slot was not free)\n",
                i + 1, n, (unsigned long long)done, strerror(rc));
        exit(1);
      }
      ++posted;
    }
  }
  printf("sq_reuse: %llu completions, every polled slot reusable at once\n", (unsigned long long)done);
  CHECK(done >= 10000); /* the loop ran, whatever the machine's load */
  struct ibv_wc wc[64];
  CHECK(wait_wc(p.a.cq, wc, (int)(posted - done)) == (int)(posted - done));
  pair_close(&p);
}

/* Four threads of one program on one context of droce0, each with an RC QP
 * pair and CQs of its own (two of them waiting through a completion channel
 * of their own, two polling, which drives the engine inline), run WRITE +
 * SEND rounds with every completion and byte checked, while the main thread
 * issues control verbs on the same context (query, reg/dereg MR, create /
 * destroy CQ). Also run under ThreadSanitizer (label tsan). */
enum { kThreads = 4, kThreadRounds = 150, kThreadBuf = 8192 };

struct lane {
  struct dev* d;
  int id;
  struct ibv_comp_channel* ch; /* NULL: poll */
  struct end a, b;
  struct buf ba, bb;
  int rounds;
};

/* One completion on e's CQ, through its channel when the lane has one. */
static void lane_wait(struct lane* l, struct end* e, struct ibv_wc* wc) {
  if (l->ch == NULL || e != &l->b) {
    CHECK(wait_wc(e->cq, wc, 1) == 1);
    return;
  }
  for (;;) {
    if (ibv_poll_cq(e->cq, 1, wc) == 1) return;
    CHECK_RC(ibv_req_notify_cq(e->cq, 0), 0);
    /* A completion that arrived before the CQ was armed raises no event. */
    if (ibv_poll_cq(e->cq, 1, wc) == 1) return;
    CHECK(wait_fd(l->ch->fd, kWaitMs));
    struct ibv_cq* ev_cq;
    void* ev_ctx;
    CHECK_RC(ibv_get_cq_event(l->ch, &ev_cq, &ev_ctx), 0);
    CHECK(ev_cq == e->cq);
    ibv_ack_cq_events(ev_cq, 1);
  }
}

static atomic_int g_lanes_running;
/* Control verbs done by the main thread so far: each lane waits halfway for
 * the first one, so that they run beside the lanes however the threads are
 * scheduled (on a loaded machine the lanes could otherwise be done first). */
static atomic_int g_control_done;

static void* lane_run(void* arg) {
  struct lane* l = arg;
  struct ibv_wc wc;
  for (int r = 0; r < kThreadRounds; ++r) {
    for (int w = 0; r == kThreadRounds / 2 && atomic_load(&g_control_done) == 0 && w < 10000; ++w)
      usleep(1000); /* at most 10 s */
    const uint32_t wlen = 2000 + 100 * (uint32_t)l->id, slen = 300 + (uint32_t)(r % 50);
    const uint8_t seed = (uint8_t)(l->id * 64 + r);
    fill(l->ba.data, wlen, seed);
    fill(l->ba.data + 4096, slen, (uint8_t)(seed + 1));
    post_recv(l->b.qp, (uint64_t)r, &l->bb, 4096, 4096);
    CHECK_RC(post_send(l->a.qp, 2 * (uint64_t)r, IBV_WR_RDMA_WRITE, &l->ba, 0, wlen,
                       IBV_SEND_SIGNALED, (uintptr_t)l->bb.data, l->bb.mr->rkey),
             0);
    CHECK_RC(post_send(l->a.qp, 2 * (uint64_t)r + 1, IBV_WR_SEND, &l->ba, 4096, slen,
                       IBV_SEND_SIGNALED, 0, 0),
             0);
    lane_wait(l, &l->b, &wc);
    CHECK(wc.status == IBV_WC_SUCCESS && wc.opcode == IBV_WC_RECV && wc.wr_id == (uint64_t)r);
    CHECK(wc.byte_len == slen && wc.qp_num == l->b.qp->qp_num);
    /* RC order: the WRITE before the SEND is in place once the SEND is. */
    CHECK(memcmp(l->bb.data, l->ba.data, wlen) == 0);
    CHECK(memcmp(l->bb.data + 4096, l->ba.data + 4096, slen) == 0);
    for (int k = 0; k < 2; ++k) {
      lane_wait(l, &l->a, &wc);
      CHECK(wc.status == IBV_WC_SUCCESS && wc.wr_id == 2 * (uint64_t)r + (uint64_t)k);
      CHECK(wc.opcode == (k ? IBV_WC_SEND : IBV_WC_RDMA_WRITE) && wc.qp_num == l->a.qp->qp_num);
    }
    l->rounds = r + 1;
  }
  atomic_fetch_sub(&g_lanes_running, 1);
  return NULL;
}

static void test_threads(void) {
  struct dev d;
  dev_open(&d);
  struct lane lanes[kThreads];
  pthread_t th[kThreads];
  for (int i = 0; i < kThreads; ++i) {
    struct lane* l = &lanes[i];
    memset(l, 0, sizeof(*l));
    l->d = &d;
    l->id = i;
    struct qp_opts o = qp_defaults(IBV_QPT_RC);
    o.depth = 8;
    end_create(&d, &l->a, &o);
    if (i % 2 == 0) {
      l->ch = ibv_create_comp_channel(d.ctx);
      CHECK(l->ch != NULL);
      o.cq = ibv_create_cq(d.ctx, 32, NULL, l->ch, 0);
      CHECK(o.cq != NULL);
    }
    end_create(&d, &l->b, &o);
    o.cq = NULL;
    end_connect(&d, &l->a, &o, l->b.qp->qp_num);
    end_connect(&d, &l->b, &o, l->a.qp->qp_num);
    buf_alloc(&d, &l->ba, kThreadBuf, kAll);
    buf_alloc(&d, &l->bb, kThreadBuf, kAll);
  }
  atomic_store(&g_lanes_running, kThreads);
  atomic_store(&g_control_done, 0);
  for (int i = 0; i < kThreads; ++i) CHECK(pthread_create(&th[i], NULL, lane_run, &lanes[i]) == 0);
  /* Control verbs beside them until they are done (each wait of theirs is
   * bounded by kWaitMs, and so is this loop). */
  int commands = 0;
  const time_t give_up = time(NULL) + 120;
  while (atomic_load(&g_lanes_running) > 0 && time(NULL) < give_up) {
    struct ibv_qp_attr attr;
    struct ibv_qp_init_attr init;
    CHECK_RC(ibv_query_qp(lanes[commands % kThreads].a.qp, &attr, IBV_QP_STATE, &init), 0);
    CHECK(attr.qp_state == IBV_QPS_RTS);
    struct ibv_port_attr pa;
    CHECK_RC(ibv_query_port(d.ctx, 1, &pa), 0);
    struct ibv_cq* cq = ibv_create_cq(d.ctx, 8, NULL, NULL, 0);
    CHECK(cq != NULL);
    struct buf b;
    buf_alloc(&d, &b, 4096, kAll);
    buf_free(&b);
    CHECK_RC(ibv_destroy_cq(cq), 0);
    ++commands;
    atomic_store(&g_control_done, commands);
    usleep(1000);
  }
  for (int i = 0; i < kThreads; ++i) CHECK(pthread_join(th[i], NULL) == 0);
  for (int i = 0; i < kThreads; ++i) {
    struct lane* l = &lanes[i];
    CHECK(l->rounds == kThreadRounds);
    end_destroy(&l->a, 1);
    end_destroy(&l->b, 1);
    if (l->ch != NULL) CHECK_RC(ibv_destroy_comp_channel(l->ch), 0);
    buf_free(&l->ba);
    buf_free(&l->bb);
  }
  printf("threads: %d threads x %d rounds, %d control verbs beside them\n", kThreads,
         kThreadRounds, commands);
  CHECK(commands > 0);
  dev_close(&d);
}

/* A QP and its CQ destroyed while its peer keeps sending to it: b's thread
 * streams SENDs and 1 KiB WRITEs at a; once a has taken 20 SENDs (each
 * checked), the main thread destroys a's QP and CQ mid-stream. Nothing
 * crashes (ASan, TSan), no byte lands in a's memory after ibv_destroy_qp
 * returned, and b's QP runs out of retries once and flushes the rest (each
 * WR completed once). Also run under ThreadSanitizer (label tsan). */
enum { kDbSlots = 32, kDbMsg = 256, kDbWrite = 1024, kDbTarget = 16 * kDbWrite };

struct db_sender {
  struct end* b;
  struct buf* src;
  struct buf* target; /* a's memory */
  uint64_t posted, ok, retry_exceeded, flushed, other;
};

static void* db_send(void* arg) {
  struct db_sender* s = arg;
  const time_t give_up = time(NULL) + 60;
  int outstanding = 0, failed = 0;
  while ((outstanding > 0 || !failed) && time(NULL) < give_up) {
    if (!failed && outstanding < 16) {
      const uint64_t n = s->posted;
      const int rc =
          n % 2 ? post_send(s->b->qp, n, IBV_WR_RDMA_WRITE, s->src, 0, kDbWrite, IBV_SEND_SIGNALED,
                            (uintptr_t)(s->target->data + kDbSlots * kDbMsg +
                                        (n / 2 % (kDbTarget / kDbWrite)) * kDbWrite),
                            s->target->mr->rkey)
                : post_send(s->b->qp, n, IBV_WR_SEND, s->src, 0, kDbMsg, IBV_SEND_SIGNALED, 0, 0);
      if (rc == 0) {
        ++s->posted;
        ++outstanding;
      }
    }
    struct ibv_wc wc[16];
    const int got = ibv_poll_cq(s->b->cq, 16, wc);
    CHECK(got >= 0);
    for (int i = 0; i < got; ++i) {
      --outstanding;
      switch (wc[i].status) {
        case IBV_WC_SUCCESS: ++s->ok; break;
        case IBV_WC_RETRY_EXC_ERR: ++s->retry_exceeded; failed = 1; break;
        case IBV_WC_WR_FLUSH_ERR: ++s->flushed; failed = 1; break;
        default: ++s->other; failed = 1; break;
      }
    }
  }
  CHECK(outstanding == 0);
  return NULL;
}

static void test_destroy_busy(void) {
  struct dev d;
  dev_open(&d);
  struct qp_opts o = qp_defaults(IBV_QPT_RC);
  struct end a, b;
  end_create(&d, &a, &o);
  end_create(&d, &b, &o);
  end_connect(&d, &a, &o, b.qp->qp_num);
  end_connect(&d, &b, &o, a.qp->qp_num);
  struct buf ba, bb;
  buf_alloc(&d, &ba, kDbSlots * kDbMsg + kDbTarget, kAll);
  buf_alloc(&d, &bb, kDbWrite, kAll);
  fill(bb.data, kDbWrite, 9);
  for (int i = 0; i < kDbSlots; ++i) post_recv(a.qp, (uint64_t)i, &ba, (size_t)i * kDbMsg, kDbMsg);

  struct db_sender s = {&b, &bb, &ba, 0, 0, 0, 0, 0};
  pthread_t ts;
  CHECK(pthread_create(&ts, NULL, db_send, &s) == 0);
  /* a takes 20 SENDs (each checked), then stops posting receives. */
  struct ibv_wc wc;
  for (int i = 0; i < 20; ++i) {
    CHECK(wait_wc(a.cq, &wc, 1) == 1);
    CHECK(wc.status == IBV_WC_SUCCESS && wc.opcode == IBV_WC_RECV && wc.wr_id == (uint64_t)i);
    CHECK(wc.byte_len == kDbMsg && memcmp(ba.data + (size_t)i * kDbMsg, bb.data, kDbMsg) == 0);
  }
  /* Destroyed while b's frames for it keep coming (RNR retries, WRITEs). */
  CHECK_RC(ibv_destroy_qp(a.qp), 0);
  memset(ba.data, 0xEE, ba.size);
  CHECK_RC(ibv_destroy_cq(a.cq), 0);
  CHECK(pthread_join(ts, NULL) == 0);
  usleep(20000); /* frames still in flight arrive */
  for (size_t i = 0; i < ba.size; ++i) CHECK(ba.data[i] == 0xEE);
  printf("destroy_busy: b posted %llu: %llu ok, %llu retry exceeded, %llu flushed\n",
         (unsigned long long)s.posted, (unsigned long long)s.ok,
         (unsigned long long)s.retry_exceeded, (unsigned long long)s.flushed);
  CHECK(s.ok >= 20 && s.retry_exceeded == 1 && s.other == 0);
  CHECK(s.ok + s.retry_exceeded + s.flushed == s.posted);
  CHECK(qp_state(b.qp) == IBV_QPS_ERR);
  end_destroy(&b, 1);
  buf_free(&ba);
  buf_free(&bb);
  dev_close(&d);
}

static const struct test_case kCases[] = {
    {"rc_send", test_rc_send},
    {"rc_rdma", test_rc_rdma},
    {"rc_errors", test_rc_errors},
    {"flush", test_flush},
    {"flush_events", test_flush_events},
    {"events", test_events},
    {"cq_overflow", test_cq_overflow},
    {"srq", test_srq},
    {"ud", test_ud},
    {"ex", test_ex},
    {"sq_reuse", test_sq_reuse},
    {"threads", test_threads},
    {"destroy_busy", test_destroy_busy},
    {NULL, NULL},
};

int main(int argc, char** argv) { return run_case(kCases, argc, argv); }
