/* Completion timestamps through the drop-in libibverbs: ibv_create_cq_ex with
 * IBV_WC_EX_WITH_COMPLETION_TIMESTAMP (and _WALLCLOCK); each completion's
 * stamp is the device clock that ibv_query_rt_values_ex reads, described by
 * ibv_query_device_ex's hca_core_clock (kHz) and completion_timestamp_mask.
 * RC SENDs on droce0's loopback port. Usage: verbs_cq_timestamp CASE. */
#include <time.h>

#include "tests/verbs/verbs_util.h"

static uint64_t device_clock(struct ibv_context* ctx) {
  struct ibv_values_ex v;
  memset(&v, 0, sizeof(v));
  v.comp_mask = IBV_VALUES_MASK_RAW_CLOCK;
  CHECK_RC(ibv_query_rt_values_ex(ctx, &v), 0);
  CHECK(v.comp_mask == IBV_VALUES_MASK_RAW_CLOCK);
  return (uint64_t)v.raw_clock.tv_sec * 1000000000ull + (uint64_t)v.raw_clock.tv_nsec;
}

static uint64_t realtime_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* hca_core_clock and the mask say what unit the stamps are in: the clock
 * advances by about hca_core_clock * 1000 per second of CLOCK_MONOTONIC. */
static void test_device(void) {
  struct dev d;
  dev_open(&d);
  struct ibv_device_attr_ex dx;
  memset(&dx, 0, sizeof(dx));
  CHECK_RC(ibv_query_device_ex(d.ctx, NULL, &dx), 0);
  CHECK(dx.hca_core_clock == 1000000); /* kHz: one tick a nanosecond */
  CHECK(dx.completion_timestamp_mask == UINT64_MAX);
  const uint64_t t0 = device_clock(d.ctx);
  struct timespec nap = {0, 20 * 1000 * 1000};
  nanosleep(&nap, NULL);
  const uint64_t t1 = device_clock(d.ctx);
  CHECK(t1 - t0 >= 20ull * 1000 * 1000); /* slept 20 ms: at least 20 ms of ticks */
  struct ibv_values_ex v;
  memset(&v, 0, sizeof(v));
  v.comp_mask = 1u << 5; /* unknown */
  CHECK_RC(ibv_query_rt_values_ex(d.ctx, &v), EINVAL);
  memset(&v, 0, sizeof(v));
  CHECK_RC(ibv_query_rt_values_ex(d.ctx, &v), 0);
  CHECK(v.comp_mask == 0);
  dev_close(&d);
}

/* Each completion of a stamped CQ carries the device clock between the
 * readings taken around it; stamps do not go back; the wall clock reading is
 * CLOCK_REALTIME at the same instant. */
static void test_completions(void) {
  struct dev d;
  dev_open(&d);
  struct ibv_cq_init_attr_ex cx;
  memset(&cx, 0, sizeof(cx));
  cx.cqe = 64;
  cx.wc_flags = IBV_WC_EX_WITH_BYTE_LEN | IBV_WC_EX_WITH_COMPLETION_TIMESTAMP |
                IBV_WC_EX_WITH_COMPLETION_TIMESTAMP_WALLCLOCK;
  struct ibv_cq_ex* cqx = ibv_create_cq_ex(d.ctx, &cx);
  CHECK(cqx != NULL);
  struct qp_opts o = qp_defaults(IBV_QPT_RC);
  struct end a, b;
  end_create(&d, &a, &o);
  o.cq = ibv_cq_ex_to_cq(cqx);
  end_create(&d, &b, &o); /* b's receives complete on the stamped CQ */
  o.cq = NULL;
  end_connect(&d, &a, &o, b.qp->qp_num);
  end_connect(&d, &b, &o, a.qp->qp_num);
  struct buf buf;
  buf_alloc(&d, &buf, 8192, IBV_ACCESS_LOCAL_WRITE);
  enum { kN = 8 };
  uint64_t prev = 0;
  for (int i = 0; i < kN; ++i) {
    post_recv(b.qp, (uint64_t)i, &buf, 4096 + (size_t)i * 64, 64);
    const uint64_t before = device_clock(d.ctx);
    const uint64_t wall_before = realtime_ns();
    CHECK_RC(post_send(a.qp, (uint64_t)i, IBV_WR_SEND, &buf, 0, 16, IBV_SEND_SIGNALED, 0, 0), 0);
    struct ibv_poll_cq_attr pa = {0};
    int rc = ENOENT;
    for (int tries = 0; tries < 10000000 && rc == ENOENT; ++tries) rc = ibv_start_poll(cqx, &pa);
    CHECK_RC(rc, 0);
    const uint64_t after = device_clock(d.ctx);
    const uint64_t wall_after = realtime_ns();
    CHECK(cqx->status == IBV_WC_SUCCESS && cqx->wr_id == (uint64_t)i);
    CHECK(ibv_wc_read_byte_len(cqx) == 16);
    const uint64_t ts = ibv_wc_read_completion_ts(cqx);
    const uint64_t wall = ibv_wc_read_completion_wallclock_ns(cqx);
    ibv_end_poll(cqx);
    if (ts < before || ts > after || ts < prev) {
      fprintf(stderr, "completion %d: stamp %llu outside [%llu, %llu] or before %llu\n", i,
              (unsigned long long)ts, (unsigned long long)before, (unsigned long long)after,
              (unsigned long long)prev);
      exit(1);
    }
    prev = ts;
    /* The wall clock conversion: within the CLOCK_REALTIME readings around it
     * (1 ms of slack for the two clocks read at slightly different instants). */
    CHECK(wall + 1000000 >= wall_before && wall <= wall_after + 1000000);
    struct ibv_wc wc;
    CHECK(wait_wc(a.cq, &wc, 1) == 1 && wc.status == IBV_WC_SUCCESS);
  }
  /* ibv_poll_cq on the stamped CQ still works. */
  post_recv(b.qp, 100, &buf, 4096, 64);
  CHECK_RC(post_send(a.qp, 100, IBV_WR_SEND, &buf, 0, 8, IBV_SEND_SIGNALED, 0, 0), 0);
  struct ibv_wc wc;
  CHECK(wait_wc(ibv_cq_ex_to_cq(cqx), &wc, 1) == 1 && wc.wr_id == 100 && wc.byte_len == 8);
  CHECK(wait_wc(a.cq, &wc, 1) == 1);
  end_destroy(&b, 0);
  end_destroy(&a, 1);
  CHECK_RC(ibv_destroy_cq(ibv_cq_ex_to_cq(cqx)), 0);
  buf_free(&buf);
  dev_close(&d);
}

/* Fields droce does not fill are still refused. */
static void test_refused(void) {
  struct dev d;
  dev_open(&d);
  struct ibv_cq_init_attr_ex cx;
  memset(&cx, 0, sizeof(cx));
  cx.cqe = 16;
  cx.wc_flags = IBV_WC_EX_WITH_COMPLETION_TIMESTAMP | IBV_WC_EX_WITH_CVLAN;
  CHECK_NULL_ERRNO(ibv_create_cq_ex(d.ctx, &cx), EOPNOTSUPP);
  cx.wc_flags = IBV_WC_EX_WITH_COMPLETION_TIMESTAMP;
  struct ibv_cq_ex* cqx = ibv_create_cq_ex(d.ctx, &cx);
  CHECK(cqx != NULL);
  struct ibv_poll_cq_attr pa = {0};
  CHECK_RC(ibv_start_poll(cqx, &pa), ENOENT);
  CHECK_RC(ibv_resize_cq(ibv_cq_ex_to_cq(cqx), 64), 0);
  CHECK_RC(ibv_destroy_cq(ibv_cq_ex_to_cq(cqx)), 0);
  dev_close(&d);
}

static const struct test_case kCases[] = {
    {"device", test_device},
    {"completions", test_completions},
    {"refused", test_refused},
    {NULL, NULL},
};

int main(int argc, char** argv) { return run_case(kCases, argc, argv); }
