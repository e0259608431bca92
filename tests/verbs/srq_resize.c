/* SRQ resize through the drop-in libibverbs (ibv_modify_srq IBV_SRQ_MAX_WR,
 * as rdma_rxe): grown with receives outstanding and SENDs in flight, every
 * message lands in order in the posted buffers; a size below the receives
 * outstanding or the armed limit is EINVAL and changes nothing; the limit
 * event works after a resize; IBV_DEVICE_SRQ_RESIZE is reported.
 * Two RC senders on droce0's loopback port, two receivers sharing the SRQ.
 * Compiled as C against the system header. Usage: verbs_srq_resize CASE. */
#include <fcntl.h>

#include "tests/verbs/verbs_util.h"

enum { kSlot = 64, kSlots = 512, kMsg = 16 };

struct rig {
  struct dev d;
  struct ibv_srq* srq;
  struct end a1, a2, b1, b2; /* a1 -> b1, a2 -> b2; b1 and b2 share the SRQ and b1's CQ */
  struct buf sbuf, rbuf;
  uint64_t next_wr;   /* wr_id (= receive slot) of the next receive posted */
  uint64_t next_take; /* wr_id the next message should land in */
  uint32_t sent;      /* messages sent so far (their number is the payload) */
  uint8_t from_a2[kSlots]; /* per message: sent by a2 (else a1) */
  uint8_t landed[kSlots];  /* per message: seen in a receive buffer */
};

static void rig_open(struct rig* r, uint32_t max_wr) {
  memset(r, 0, sizeof(*r));
  dev_open(&r->d);
  struct ibv_srq_init_attr si;
  memset(&si, 0, sizeof(si));
  si.attr.max_wr = max_wr;
  si.attr.max_sge = 1;
  r->srq = ibv_create_srq(r->d.pd, &si);
  CHECK(r->srq != NULL);
  CHECK(si.attr.max_wr == max_wr); /* powers of two in these tests */
  struct qp_opts o = qp_defaults(IBV_QPT_RC);
  o.depth = 128;
  end_create(&r->d, &r->a1, &o);
  end_create(&r->d, &r->a2, &o);
  o.srq = r->srq;
  end_create(&r->d, &r->b1, &o);
  o.cq = r->b1.cq;
  end_create(&r->d, &r->b2, &o);
  o.srq = NULL;
  o.cq = NULL;
  end_connect(&r->d, &r->a1, &o, r->b1.qp->qp_num);
  end_connect(&r->d, &r->b1, &o, r->a1.qp->qp_num);
  end_connect(&r->d, &r->a2, &o, r->b2.qp->qp_num);
  end_connect(&r->d, &r->b2, &o, r->a2.qp->qp_num);
  buf_alloc(&r->d, &r->sbuf, (size_t)kSlots * kSlot, IBV_ACCESS_LOCAL_WRITE);
  buf_alloc(&r->d, &r->rbuf, (size_t)kSlots * kSlot, IBV_ACCESS_LOCAL_WRITE);
  memset(r->rbuf.data, 0xEE, r->rbuf.size);
}

static void rig_close(struct rig* r) {
  end_destroy(&r->b2, 0);
  end_destroy(&r->b1, 1);
  end_destroy(&r->a1, 1);
  end_destroy(&r->a2, 1);
  CHECK_RC(ibv_destroy_srq(r->srq), 0);
  buf_free(&r->sbuf);
  buf_free(&r->rbuf);
  dev_close(&r->d);
}

/* Posts one receive into the next slot; returns ibv_post_srq_recv's result. */
static int rig_post(struct rig* r) {
  CHECK(r->next_wr < kSlots);
  struct ibv_sge sge = {(uintptr_t)r->rbuf.data + r->next_wr * kSlot, kSlot, r->rbuf.mr->lkey};
  struct ibv_recv_wr wr = {.wr_id = r->next_wr, .sg_list = &sge, .num_sge = 1}, *bad = NULL;
  const int rc = ibv_post_srq_recv(r->srq, &wr, &bad);
  if (rc == 0) ++r->next_wr;
  return rc;
}

/* Sends message number r->sent (kMsg bytes naming it) from a1 or a2. */
static void rig_send(struct rig* r, int from_a2) {
  CHECK(r->sent < kSlots);
  uint8_t* p = r->sbuf.data + (size_t)r->sent * kSlot;
  memset(p, 0, kMsg);
  snprintf((char*)p, kMsg, "msg %u", r->sent);
  struct ibv_qp* qp = from_a2 ? r->a2.qp : r->a1.qp;
  r->from_a2[r->sent] = (uint8_t)(from_a2 != 0);
  CHECK_RC(post_send(qp, r->sent, IBV_WR_SEND, &r->sbuf, (size_t)r->sent * kSlot, kMsg,
                     IBV_SEND_SIGNALED, 0, 0),
           0);
  ++r->sent;
}

/* Waits for n receive completions of messages [first_msg, first_msg + n),
 * then a1_sends and a2_sends send completions. The k-th receive completion
 * is of the next receive posted (SRQ receives are taken in order), and its
 * buffer holds one of those messages whole, from the QP that sent it; with
 * one sender the k-th message lands in it. */
static void rig_expect(struct rig* r, int n, uint32_t first_msg, int a1_sends, int a2_sends) {
  struct ibv_wc wc[kSlots];
  CHECK(n <= kSlots);
  CHECK(wait_wc(r->b1.cq, wc, n) == n);
  for (int k = 0; k < n; ++k) {
    if (wc[k].status != IBV_WC_SUCCESS || wc[k].wr_id != r->next_take ||
        wc[k].byte_len != kMsg) {
      fprintf(stderr, "receive %d: status %d wr_id %llu byte_len %u, expected wr_id %llu\n", k,
              wc[k].status, (unsigned long long)wc[k].wr_id, wc[k].byte_len,
              (unsigned long long)r->next_take);
      exit(1);
    }
    const uint8_t* got = r->rbuf.data + wc[k].wr_id * kSlot;
    unsigned m = 0;
    CHECK(sscanf((const char*)got, "msg %u", &m) == 1);
    CHECK(m >= first_msg && m < first_msg + (uint32_t)n && !r->landed[m]);
    if (a1_sends == 0 || a2_sends == 0) CHECK(m == first_msg + (uint32_t)k);
    r->landed[m] = 1;
    char want[kMsg];
    memset(want, 0, sizeof(want));
    snprintf(want, sizeof(want), "msg %u", m);
    CHECK(memcmp(got, want, kMsg) == 0);
    CHECK(got[kMsg] == 0xEE); /* nothing beyond the message */
    CHECK(wc[k].qp_num == (r->from_a2[m] ? r->b2.qp->qp_num : r->b1.qp->qp_num));
    ++r->next_take;
  }
  CHECK(wait_wc(r->a1.cq, wc, a1_sends) == a1_sends);
  for (int k = 0; k < a1_sends; ++k) CHECK(wc[k].status == IBV_WC_SUCCESS);
  CHECK(wait_wc(r->a2.cq, wc, a2_sends) == a2_sends);
  for (int k = 0; k < a2_sends; ++k) CHECK(wc[k].status == IBV_WC_SUCCESS);
  CHECK(drain_wc(r->b1.cq, 5) == 0);
}

static uint32_t srq_max_wr(struct ibv_srq* srq) {
  struct ibv_srq_attr sa;
  memset(&sa, 0, sizeof(sa));
  CHECK_RC(ibv_query_srq(srq, &sa), 0);
  return sa.max_wr;
}

static int resize(struct ibv_srq* srq, uint32_t max_wr) {
  struct ibv_srq_attr sa = {.max_wr = max_wr};
  return ibv_modify_srq(srq, &sa, IBV_SRQ_MAX_WR);
}

/* Grow: 8 receives posted, 3 taken, resized to 128 with 5 outstanding (the
 * ring had wrapped); the SRQ then holds 128, and 128 messages from both
 * senders land in order. */
static void test_grow(void) {
  struct rig r;
  rig_open(&r, 8);
  for (int i = 0; i < 8; ++i) CHECK_RC(rig_post(&r), 0);
  CHECK_RC(rig_post(&r), ENOMEM); /* full at 8 */
  for (int i = 0; i < 3; ++i) rig_send(&r, 0);
  rig_expect(&r, 3, 0, 3, 0);
  for (int i = 0; i < 3; ++i) CHECK_RC(rig_post(&r), 0); /* wraps the 8-slot ring */
  CHECK_RC(resize(r.srq, 128), 0);
  CHECK(srq_max_wr(r.srq) == 128);
  while (r.next_wr - r.next_take < 128) CHECK_RC(rig_post(&r), 0);
  CHECK_RC(rig_post(&r), ENOMEM);
  for (int i = 0; i < 128; ++i) rig_send(&r, i % 2);
  rig_expect(&r, 128, 3, 64, 64);
  rig_close(&r);
}

/* Resized while SENDs are in flight on a1: each lands in order. */
static void test_grow_in_flight(void) {
  struct rig r;
  rig_open(&r, 32);
  for (int i = 0; i < 32; ++i) CHECK_RC(rig_post(&r), 0);
  for (int i = 0; i < 24; ++i) rig_send(&r, 0);
  CHECK_RC(resize(r.srq, 256), 0); /* the engine may be taking receives right now */
  CHECK(srq_max_wr(r.srq) == 256);
  for (int i = 0; i < 200; ++i) CHECK_RC(rig_post(&r), 0);
  for (int i = 0; i < 100; ++i) rig_send(&r, 0); /* the send queue holds 128 */
  rig_expect(&r, 124, 0, 124, 0);
  for (int i = 0; i < 100; ++i) rig_send(&r, 0);
  CHECK_RC(resize(r.srq, 128), 0); /* shrunk with SENDs in flight: <= 108 outstanding */
  CHECK(srq_max_wr(r.srq) == 128);
  rig_expect(&r, 100, 124, 100, 0);
  rig_close(&r);
}

/* Shrink: below the receives outstanding is EINVAL and changes nothing; to
 * them is fine; the SRQ still works after both. */
static void test_shrink(void) {
  struct rig r;
  rig_open(&r, 64);
  for (int i = 0; i < 30; ++i) CHECK_RC(rig_post(&r), 0);
  for (int i = 0; i < 10; ++i) rig_send(&r, i % 2);
  rig_expect(&r, 10, 0, 5, 5);
  /* 20 outstanding. */
  CHECK_RC(resize(r.srq, 19), EINVAL);
  CHECK(srq_max_wr(r.srq) == 64);
  CHECK_RC(resize(r.srq, 1), EINVAL);
  CHECK_RC(resize(r.srq, 0), EINVAL);
  struct ibv_device_attr da;
  CHECK_RC(ibv_query_device(r.d.ctx, &da), 0);
  CHECK_RC(resize(r.srq, (uint32_t)da.max_srq_wr + 1), EINVAL);
  CHECK(srq_max_wr(r.srq) == 64);
  for (int i = 0; i < 4; ++i) rig_send(&r, 1); /* still works after the refusals */
  rig_expect(&r, 4, 10, 0, 4);
  /* 16 outstanding: shrink to exactly them. */
  CHECK_RC(resize(r.srq, 16), 0);
  CHECK(srq_max_wr(r.srq) == 16);
  CHECK_RC(rig_post(&r), ENOMEM);
  for (int i = 0; i < 16; ++i) rig_send(&r, i % 2);
  rig_expect(&r, 16, 14, 8, 8);
  for (int i = 0; i < 16; ++i) CHECK_RC(rig_post(&r), 0);
  CHECK_RC(rig_post(&r), ENOMEM);
  for (int i = 0; i < 16; ++i) rig_send(&r, 0);
  rig_expect(&r, 16, 30, 16, 0);
  rig_close(&r);
}

/* The limit: a size below the armed limit is EINVAL (rxe); after a resize the
 * limit event fires once when the receives fall below it. */
static void test_limit(void) {
  struct rig r;
  rig_open(&r, 16);
  const int fl = fcntl(r.d.ctx->async_fd, F_GETFL);
  CHECK(fcntl(r.d.ctx->async_fd, F_SETFL, fl | O_NONBLOCK) == 0);
  for (int i = 0; i < 12; ++i) CHECK_RC(rig_post(&r), 0);
  struct ibv_srq_attr sa = {.srq_limit = 10};
  CHECK_RC(ibv_modify_srq(r.srq, &sa, IBV_SRQ_LIMIT), 0);
  CHECK_RC(resize(r.srq, 8), EINVAL); /* below the armed limit */
  CHECK(srq_max_wr(r.srq) == 16);
  CHECK_RC(resize(r.srq, 64), 0);
  memset(&sa, 0, sizeof(sa));
  CHECK_RC(ibv_query_srq(r.srq, &sa), 0);
  CHECK(sa.max_wr == 64 && sa.srq_limit == 10 && sa.max_sge >= 1);
  for (int i = 0; i < 8; ++i) CHECK_RC(rig_post(&r), 0); /* 20 outstanding */
  for (int i = 0; i < 10; ++i) rig_send(&r, i % 2);      /* 10 left: not below 10 */
  rig_expect(&r, 10, 0, 5, 5);
  struct ibv_async_event ev;
  errno = 0;
  CHECK(ibv_get_async_event(r.d.ctx, &ev) == -1 && errno == EAGAIN);
  rig_send(&r, 1); /* 9 left */
  rig_expect(&r, 1, 10, 0, 1);
  CHECK(wait_fd(r.d.ctx->async_fd, kWaitMs));
  CHECK_RC(ibv_get_async_event(r.d.ctx, &ev), 0);
  CHECK(ev.event_type == IBV_EVENT_SRQ_LIMIT_REACHED && ev.element.srq == r.srq);
  ibv_ack_async_event(&ev);
  CHECK_RC(ibv_query_srq(r.srq, &sa), 0);
  CHECK(sa.srq_limit == 0);

  /* MAX_WR and LIMIT in one call: the limit is checked against the new size. */
  sa.max_wr = 16;
  sa.srq_limit = 17;
  CHECK_RC(ibv_modify_srq(r.srq, &sa, IBV_SRQ_MAX_WR | IBV_SRQ_LIMIT), EINVAL);
  CHECK(srq_max_wr(r.srq) == 64);
  sa.srq_limit = 5;
  CHECK_RC(ibv_modify_srq(r.srq, &sa, IBV_SRQ_MAX_WR | IBV_SRQ_LIMIT), 0);
  CHECK_RC(ibv_query_srq(r.srq, &sa), 0);
  CHECK(sa.max_wr == 16 && sa.srq_limit == 5);
  /* 9 outstanding; consuming 5 leaves 4 < 5: one event. */
  for (int i = 0; i < 5; ++i) rig_send(&r, 0);
  rig_expect(&r, 5, 11, 5, 0);
  CHECK(wait_fd(r.d.ctx->async_fd, kWaitMs));
  CHECK_RC(ibv_get_async_event(r.d.ctx, &ev), 0);
  CHECK(ev.event_type == IBV_EVENT_SRQ_LIMIT_REACHED && ev.element.srq == r.srq);
  ibv_ack_async_event(&ev);
  errno = 0;
  CHECK(ibv_get_async_event(r.d.ctx, &ev) == -1 && errno == EAGAIN);
  rig_close(&r);
}

/* The capability bit that says ibv_modify_srq takes IBV_SRQ_MAX_WR. */
static void test_cap(void) {
  struct dev d;
  dev_open(&d);
  struct ibv_device_attr da;
  CHECK_RC(ibv_query_device(d.ctx, &da), 0);
  CHECK(da.device_cap_flags & IBV_DEVICE_SRQ_RESIZE);
  struct ibv_device_attr_ex dx;
  CHECK_RC(ibv_query_device_ex(d.ctx, NULL, &dx), 0);
  CHECK(dx.orig_attr.device_cap_flags & IBV_DEVICE_SRQ_RESIZE);
  dev_close(&d);
}

static const struct test_case kCases[] = {
    {"grow", test_grow},   {"grow_in_flight", test_grow_in_flight},
    {"shrink", test_shrink}, {"limit", test_limit},
    {"cap", test_cap},     {NULL, NULL},
};

int main(int argc, char** argv) { return run_case(kCases, argc, argv); }
