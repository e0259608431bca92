/* Conformance of the drop-in libibverbs to libibverbs' conventions (issue 5
 * section 4): compiled as C against the system <infiniband/verbs.h>, linked to
 * build/lib/libibverbs.so.1. Each case checks the return/errno convention of
 * an entry point on wrong input, and that the objects stay usable after the
 * failure. Usage: verbs_conformance CASE. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tests/verbs/verbs_util.h"

/* Exported by libibverbs as IBVERBS_PRIVATE_34 (declared in rdma-core's driver.h). */
int ibv_query_gid_type(struct ibv_context* context, uint8_t port_num, unsigned int index,
                       int* type);

static void test_device(void) {
  struct dev d;
  dev_open(&d);
  CHECK(ibv_get_device_index(d.list[0]) == 0);
  CHECK(ibv_get_device_guid(d.list[0]) != 0);
  CHECK(d.list[0]->node_type == IBV_NODE_CA);
  CHECK(d.list[0]->transport_type == IBV_TRANSPORT_IB);

  struct ibv_device_attr da;
  CHECK_RC(ibv_query_device(d.ctx, &da), 0);
  CHECK(da.vendor_id == 0xFFFFFF);
  CHECK(da.phys_port_cnt == 1);
  CHECK(da.max_qp > 0 && da.max_cqe > 0 && da.max_sge > 0 && da.max_srq > 0);
  CHECK(da.node_guid == ibv_get_device_guid(d.list[0]));
  CHECK(da.atomic_cap == IBV_ATOMIC_HCA);
  CHECK(strlen(da.fw_ver) > 0);

  struct ibv_device_attr_ex dx;
  CHECK_RC(ibv_query_device_ex(d.ctx, NULL, &dx), 0);
  CHECK(dx.orig_attr.max_qp == da.max_qp);
  struct ibv_query_device_ex_input in = {.comp_mask = 1};
  CHECK_RC(ibv_query_device_ex(d.ctx, &in, &dx), EINVAL);

  /* Through verbs.h's inline ___ibv_query_port (verbs_context op) ... */
  struct ibv_port_attr pa;
  CHECK_RC(ibv_query_port(d.ctx, 1, &pa), 0);
  CHECK(pa.state == IBV_PORT_ACTIVE);
  CHECK(pa.link_layer == IBV_LINK_LAYER_ETHERNET);
  CHECK(pa.active_mtu == IBV_MTU_1024); /* Ethernet MTU 1500 */
  CHECK(pa.max_mtu == IBV_MTU_1024);
  CHECK(pa.gid_tbl_len == 1024);
  CHECK(pa.pkey_tbl_len == 1);
  CHECK(pa.port_cap_flags & IBV_PORT_CM_SUP);
  CHECK(pa.max_msg_sz == 1u << 31);
  CHECK_RC(ibv_query_port(d.ctx, 2, &pa), EINVAL);
  CHECK_RC(ibv_query_port(d.ctx, 0, &pa), EINVAL);
  /* ... and through the exported IBVERBS_1.1 function (programs built
   * against older headers): the compat layout, no port_cap_flags2. */
  struct ibv_port_attr pc;
  memset(&pc, 0xAB, sizeof(pc));
  CHECK_RC((ibv_query_port)(d.ctx, 1, (struct _compat_ibv_port_attr*)&pc), 0);
  CHECK(pc.state == IBV_PORT_ACTIVE && pc.link_layer == IBV_LINK_LAYER_ETHERNET);
  CHECK(pc.port_cap_flags2 == 0xABAB);

  /* GID index 0: ::ffff:<DROCE_IPV4>, RoCE v2; the rest of the table is empty. */
  static const uint8_t v4_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
  CHECK(memcmp(d.gid.raw, v4_prefix, 12) == 0);
  const char* ip = getenv("DROCE_IPV4") ? getenv("DROCE_IPV4") : "10.77.0.1";
  struct in_addr want;
  CHECK(inet_pton(AF_INET, ip, &want) == 1);
  CHECK(memcmp(d.gid.raw + 12, &want, 4) == 0);
  union ibv_gid g;
  CHECK_RC(ibv_query_gid(d.ctx, 1, 1, &g), 0);
  static const uint8_t zero[16] = {0};
  CHECK(memcmp(g.raw, zero, 16) == 0);
  errno = 0;
  CHECK(ibv_query_gid(d.ctx, 1, -1, &g) == -1 && errno == EINVAL);
  errno = 0;
  CHECK(ibv_query_gid(d.ctx, 1, 1024, &g) == -1 && errno == EINVAL);
  errno = 0;
  CHECK(ibv_query_gid(d.ctx, 2, 0, &g) == -1 && errno == EINVAL);
  int type = -1;
  CHECK_RC(ibv_query_gid_type(d.ctx, 1, 0, &type), 0);
  CHECK(type == 1); /* IBV_GID_TYPE_SYSFS_ROCE_V2 */

  struct ibv_gid_entry ge;
  CHECK_RC(ibv_query_gid_ex(d.ctx, 1, 0, &ge, 0), 0);
  CHECK(ge.gid_type == IBV_GID_TYPE_ROCE_V2 && ge.port_num == 1 && ge.gid_index == 0);
  CHECK(memcmp(ge.gid.raw, d.gid.raw, 16) == 0);
  CHECK_RC(ibv_query_gid_ex(d.ctx, 1, 1, &ge, 0), ENODATA);
  CHECK_RC(ibv_query_gid_ex(d.ctx, 1, 5000, &ge, 0), EINVAL);
  CHECK_RC(ibv_query_gid_ex(d.ctx, 1, 0, &ge, 1), EINVAL);
  struct ibv_gid_entry table[4];
  CHECK(ibv_query_gid_table(d.ctx, table, 4, 0) == 1);
  CHECK(ibv_query_gid_table(d.ctx, table, 0, 0) == -EINVAL);

  __be16 pkey = 0;
  CHECK_RC(ibv_query_pkey(d.ctx, 1, 0, &pkey), 0);
  CHECK(pkey == htons(0xFFFF));
  CHECK(ibv_query_pkey(d.ctx, 1, 1, &pkey) == -1);
  CHECK(ibv_get_pkey_index(d.ctx, 1, htons(0xFFFF)) == 0);
  CHECK(ibv_get_pkey_index(d.ctx, 1, htons(0x1234)) < 0);

  /* Async events: the fd honours O_NONBLOCK; nothing is pending. */
  const int fl = fcntl(d.ctx->async_fd, F_GETFL);
  CHECK(fcntl(d.ctx->async_fd, F_SETFL, fl | O_NONBLOCK) == 0);
  struct ibv_async_event ev;
  errno = 0;
  CHECK(ibv_get_async_event(d.ctx, &ev) == -1 && errno == EAGAIN);
  CHECK(!wait_fd(d.ctx->async_fd, 10));

  /* A second context on the same device shares the engine. */
  struct ibv_context* ctx2 = ibv_open_device(d.list[0]);
  CHECK(ctx2 != NULL && ctx2 != d.ctx);
  struct ibv_pd* pd2 = ibv_alloc_pd(ctx2);
  CHECK(pd2 != NULL);
  CHECK_RC(ibv_dealloc_pd(pd2), 0);
  CHECK_RC(ibv_close_device(ctx2), 0);
  CHECK_RC(ibv_query_port(d.ctx, 1, &pa), 0); /* the first context still works */
  dev_close(&d);
}

static void test_strings(void) {
  CHECK(strcmp(ibv_wc_status_str(IBV_WC_SUCCESS), "success") == 0);
  CHECK(strcmp(ibv_wc_status_str(IBV_WC_WR_FLUSH_ERR), "Work Request Flushed Error") == 0);
  CHECK(strcmp(ibv_wc_status_str((enum ibv_wc_status)999), "unknown") == 0);
  CHECK(strcmp(ibv_port_state_str(IBV_PORT_ACTIVE), "active") == 0);
  CHECK(strcmp(ibv_node_type_str(IBV_NODE_CA), "InfiniBand channel adapter") == 0);
  CHECK(strcmp(ibv_event_type_str(IBV_EVENT_SRQ_LIMIT_REACHED), "SRQ limit reached") == 0);
  CHECK(ibv_rate_to_mult(IBV_RATE_10_GBPS) == 4);
  CHECK(ibv_rate_to_mult(IBV_RATE_25_GBPS) == -1);
  CHECK(mult_to_ibv_rate(4) == IBV_RATE_10_GBPS);
  CHECK(mult_to_ibv_rate(3) == IBV_RATE_MAX);
  CHECK(ibv_rate_to_mbps(IBV_RATE_25_GBPS) == 25781);
  CHECK(mbps_to_ibv_rate(53125) == IBV_RATE_50_GBPS);
  CHECK(mbps_to_ibv_rate(1) == IBV_RATE_MAX);
  CHECK(ibv_fork_init() == 0);
  CHECK(ibv_is_fork_initialized() == IBV_FORK_UNNEEDED);
}

static void test_mr(void) {
  struct dev d;
  dev_open(&d);
  const size_t len = 8192;
  uint8_t* mem = aligned_alloc(4096, len);
  CHECK(mem != NULL);

  struct ibv_mr* mr = ibv_reg_mr(d.pd, mem, len, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
  CHECK(mr != NULL);
  CHECK(mr->lkey != 0 && mr->lkey == mr->rkey);
  CHECK(mr->addr == mem && mr->length == len && mr->pd == d.pd && mr->context == d.ctx);

  /* Bad access flags: remote write / atomic need local write (IBTA 10.6.3.1). */
  CHECK_NULL_ERRNO(ibv_reg_mr(d.pd, mem, len, IBV_ACCESS_REMOTE_WRITE), EINVAL);
  CHECK_NULL_ERRNO(ibv_reg_mr(d.pd, mem, len, IBV_ACCESS_REMOTE_ATOMIC), EINVAL);
  CHECK_NULL_ERRNO(ibv_reg_mr(d.pd, mem, len, IBV_ACCESS_LOCAL_WRITE | (1 << 12)), EINVAL);
  CHECK_NULL_ERRNO(ibv_reg_mr(d.pd, mem, len, IBV_ACCESS_ON_DEMAND), EOPNOTSUPP);
  /* Optional flags go through ibv_reg_mr_iova2 and are dropped, not refused. */
  volatile int relaxed = IBV_ACCESS_RELAXED_ORDERING;
  struct ibv_mr* mr2 = ibv_reg_mr(d.pd, mem, len, IBV_ACCESS_LOCAL_WRITE | relaxed);
  CHECK(mr2 != NULL && mr2->lkey != mr->lkey);
  CHECK_RC(ibv_dereg_mr(mr2), 0);

  /* Memory that is not mapped: EFAULT, as the kernel's pinning reports. */
  uint8_t* hole = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(hole != MAP_FAILED);
  CHECK(munmap(hole + 4096, 4096) == 0);
  CHECK_NULL_ERRNO(ibv_reg_mr(d.pd, hole, 3 * 4096, IBV_ACCESS_LOCAL_WRITE), EFAULT);
  CHECK_NULL_ERRNO(ibv_reg_mr(d.pd, NULL, 4096, IBV_ACCESS_LOCAL_WRITE), EFAULT);
  struct ibv_mr* mr3 = ibv_reg_mr(d.pd, hole, 4096, IBV_ACCESS_LOCAL_WRITE); /* the mapped page */
  CHECK(mr3 != NULL);
  CHECK_RC(ibv_dereg_mr(mr3), 0);
  CHECK(munmap(hole, 4096) == 0 && munmap(hole + 2 * 4096, 4096) == 0);

  /* ibv_reg_mr_iova: the region is addressed from iova. */
  struct ibv_mr* mri = ibv_reg_mr_iova(d.pd, mem, len, 0x100000, IBV_ACCESS_LOCAL_WRITE);
  CHECK(mri != NULL && mri->addr == mem);
  CHECK_RC(ibv_dereg_mr(mri), 0);
  CHECK_NULL_ERRNO(ibv_reg_dmabuf_mr(d.pd, 0, len, 0, 3, IBV_ACCESS_LOCAL_WRITE), EOPNOTSUPP);
  CHECK_NULL_ERRNO(ibv_alloc_mw(d.pd, IBV_MW_TYPE_1), EOPNOTSUPP);

  /* A PD with a region cannot go; it stays usable. */
  CHECK_RC(ibv_dealloc_pd(d.pd), EBUSY);
  mr2 = ibv_reg_mr(d.pd, mem, 4096, IBV_ACCESS_LOCAL_WRITE);
  CHECK(mr2 != NULL);
  CHECK_RC(ibv_dereg_mr(mr2), 0);

  /* rereg: bad input leaves the old MR valid; a change of access keeps the range. */
  errno = 0;
  CHECK(ibv_rereg_mr(mr, 1 << 5, NULL, NULL, 0, 0) == IBV_REREG_MR_ERR_INPUT && errno == EINVAL);
  errno = 0;
  CHECK(ibv_rereg_mr(mr, IBV_REREG_MR_CHANGE_ACCESS, NULL, NULL, 0, IBV_ACCESS_REMOTE_WRITE) ==
            IBV_REREG_MR_ERR_INPUT &&
        errno == EINVAL);
  CHECK_RC(ibv_rereg_mr(mr, IBV_REREG_MR_CHANGE_ACCESS, NULL, NULL, 0,
                        IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ),
           0);
  CHECK(mr->addr == mem && mr->length == len && mr->lkey == mr->rkey);
  CHECK_RC(ibv_rereg_mr(mr, IBV_REREG_MR_CHANGE_TRANSLATION, NULL, mem, 4096, 0), 0);
  CHECK(mr->length == 4096);
  CHECK_RC(ibv_dereg_mr(mr), 0);
  free(mem);
  dev_close(&d);
}

static void test_cq(void) {
  struct dev d;
  dev_open(&d);
  struct ibv_device_attr da;
  CHECK_RC(ibv_query_device(d.ctx, &da), 0);
  /* Too small, too big, bad completion vector. */
  CHECK_NULL_ERRNO(ibv_create_cq(d.ctx, 0, NULL, NULL, 0), EINVAL);
  CHECK_NULL_ERRNO(ibv_create_cq(d.ctx, -1, NULL, NULL, 0), EINVAL);
  CHECK_NULL_ERRNO(ibv_create_cq(d.ctx, da.max_cqe + 1, NULL, NULL, 0), EINVAL);
  CHECK_NULL_ERRNO(ibv_create_cq(d.ctx, 16, NULL, NULL, 1), EINVAL);
  CHECK_NULL_ERRNO(ibv_create_cq(d.ctx, 16, NULL, NULL, -1), EINVAL);

  int cookie = 0;
  struct ibv_cq* cq = ibv_create_cq(d.ctx, 10, &cookie, NULL, 0);
  CHECK(cq != NULL);
  CHECK(cq->cqe >= 10 && cq->cq_context == &cookie && cq->context == d.ctx);
  struct ibv_wc wc[4];
  CHECK(ibv_poll_cq(cq, 4, wc) == 0);
  CHECK_RC(ibv_req_notify_cq(cq, 0), 0);
  CHECK_RC(ibv_req_notify_cq(cq, 1), 0);
  CHECK_RC(ibv_req_notify_cq(cq, 8), EINVAL);

  /* In use by a QP: EBUSY, and the CQ still works. */
  struct qp_opts o = qp_defaults(IBV_QPT_RC);
  o.cq = cq;
  o.depth = 4;
  struct end e;
  end_create(&d, &e, &o);
  CHECK_RC(ibv_destroy_cq(cq), EBUSY);
  CHECK(ibv_poll_cq(cq, 4, wc) == 0);
  CHECK_RC(ibv_resize_cq(cq, 100), 0);
  CHECK(cq->cqe >= 100);
  CHECK_RC(ibv_resize_cq(cq, 0), EINVAL);
  CHECK_RC(ibv_resize_cq(cq, da.max_cqe + 1), EINVAL);
  end_destroy(&e, 0);
  CHECK_RC(ibv_destroy_cq(cq), 0);

  /* Extended CQ: supported fields only; an empty CQ reports ENOENT. */
  struct ibv_cq_init_attr_ex cx;
  memset(&cx, 0, sizeof(cx));
  cx.cqe = 16;
  cx.wc_flags = IBV_WC_EX_WITH_BYTE_LEN | IBV_WC_EX_WITH_QP_NUM | IBV_WC_EX_WITH_IMM;
  struct ibv_cq_ex* cqx = ibv_create_cq_ex(d.ctx, &cx);
  CHECK(cqx != NULL);
  struct ibv_poll_cq_attr pattr = {0};
  CHECK_RC(ibv_start_poll(cqx, &pattr), ENOENT);
  CHECK(ibv_poll_cq(ibv_cq_ex_to_cq(cqx), 1, wc) == 0);
  CHECK_RC(ibv_destroy_cq(ibv_cq_ex_to_cq(cqx)), 0);
  cx.wc_flags = IBV_WC_EX_WITH_CVLAN;
  CHECK_NULL_ERRNO(ibv_create_cq_ex(d.ctx, &cx), EOPNOTSUPP);
  cx.wc_flags = 0;
  cx.cqe = 0;
  CHECK_NULL_ERRNO(ibv_create_cq_ex(d.ctx, &cx), EINVAL);
  dev_close(&d);
}

static void test_channel(void) {
  struct dev d;
  dev_open(&d);
  struct ibv_comp_channel* ch = ibv_create_comp_channel(d.ctx);
  CHECK(ch != NULL && ch->fd >= 0 && ch->context == d.ctx);
  struct ibv_cq* cq = ibv_create_cq(d.ctx, 16, NULL, ch, 0);
  CHECK(cq != NULL && cq->channel == ch);
  CHECK(ch->refcnt == 1);
  CHECK_RC(ibv_destroy_comp_channel(ch), EBUSY);
  /* No event: a non-blocking channel says EAGAIN, poll() says not readable. */
  CHECK(fcntl(ch->fd, F_SETFL, fcntl(ch->fd, F_GETFL) | O_NONBLOCK) == 0);
  struct ibv_cq* ev_cq = NULL;
  void* ev_ctx = NULL;
  errno = 0;
  CHECK(ibv_get_cq_event(ch, &ev_cq, &ev_ctx) == -1 && errno == EAGAIN);
  CHECK(!wait_fd(ch->fd, 10));
  CHECK_RC(ibv_destroy_cq(cq), 0);
  CHECK(ch->refcnt == 0);
  CHECK_RC(ibv_destroy_comp_channel(ch), 0);
  dev_close(&d);
}

/* A blocking ibv_get_cq_event behaves as rdma-core's read(2) of its kernel
 * fd: a signal whose handler has SA_RESTART does not end the wait (net_tap
 * raises one for every received frame); one without SA_RESTART ends it with
 * -1 and EINTR, and the channel stays usable. */
static volatile sig_atomic_t g_restart_hits, g_plain_hits; /* handlers on the waiting thread */
static atomic_int g_waiter_back;                            /* read by the kicker thread */

static void on_restart_signal(int sig) {
  (void)sig;
  ++g_restart_hits;
}

static void on_plain_signal(int sig) {
  (void)sig;
  ++g_plain_hits;
}

struct kicker {
  pthread_t target;
  int sig;
  int times;            /* at most this many signals, 20 ms apart */
  int until_back;       /* stop once the waiter has returned */
  struct ibv_qp* flush; /* then move this QP to ERR (its receive is flushed) */
};

static void* kick(void* arg) {
  struct kicker* k = (struct kicker*)arg;
  for (int i = 0; i < k->times && !(k->until_back && atomic_load(&g_waiter_back)); ++i) {
    usleep(20000);
    pthread_kill(k->target, k->sig);
  }
  if (k->flush != NULL) {
    struct ibv_qp_attr a;
    memset(&a, 0, sizeof(a));
    a.qp_state = IBV_QPS_ERR;
    CHECK_RC(ibv_modify_qp(k->flush, &a, IBV_QP_STATE), 0);
  }
  return NULL;
}

static void test_channel_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sigemptyset(&sa.sa_mask);
  sa.sa_handler = on_restart_signal;
  sa.sa_flags = SA_RESTART;
  CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
  sa.sa_handler = on_plain_signal;
  sa.sa_flags = 0;
  CHECK(sigaction(SIGUSR2, &sa, NULL) == 0);
  alarm(30); /* bounded: a wait that never ends kills the case */

  struct dev d;
  dev_open(&d);
  struct ibv_comp_channel* ch = ibv_create_comp_channel(d.ctx);
  CHECK(ch != NULL);
  struct ibv_cq* cq = ibv_create_cq(d.ctx, 16, NULL, ch, 0);
  CHECK(cq != NULL);
  struct qp_opts o = qp_defaults(IBV_QPT_RC);
  o.cq = cq;
  struct end e;
  end_create(&d, &e, &o);
  end_connect(&d, &e, &o, e.qp->qp_num);
  struct buf b;
  buf_alloc(&d, &b, 64, IBV_ACCESS_LOCAL_WRITE);
  post_recv(e.qp, 7, &b, 0, 64);
  CHECK_RC(ibv_req_notify_cq(cq, 0), 0);

  /* No SA_RESTART: the wait ends with EINTR. */
  struct kicker plain = {pthread_self(), SIGUSR2, 500, 1, NULL};
  pthread_t t;
  CHECK(pthread_create(&t, NULL, kick, &plain) == 0);
  struct ibv_cq* ev_cq = NULL;
  void* ev_ctx = NULL;
  errno = 0;
  const int rc = ibv_get_cq_event(ch, &ev_cq, &ev_ctx);
  const int err = errno;
  atomic_store(&g_waiter_back, 1);
  CHECK(pthread_join(t, NULL) == 0);
  errno = err;
  CHECK(rc == -1 && err == EINTR);
  CHECK(g_plain_hits >= 1);

  /* SA_RESTART: five signals come and go, the wait goes on until the flushed
   * receive completes. */
  struct kicker restart = {pthread_self(), SIGUSR1, 5, 0, e.qp};
  CHECK(pthread_create(&t, NULL, kick, &restart) == 0);
  CHECK(ibv_get_cq_event(ch, &ev_cq, &ev_ctx) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  CHECK(ev_cq == cq);
  CHECK(g_restart_hits >= 1); /* delivered after the wait (held off during it) */
  ibv_ack_cq_events(cq, 1);
  struct ibv_wc wc;
  CHECK(wait_wc(cq, &wc, 1) == 1);
  CHECK(wc.wr_id == 7 && wc.status == IBV_WC_WR_FLUSH_ERR);

  buf_free(&b);
  end_destroy(&e, 0);
  CHECK_RC(ibv_destroy_cq(cq), 0);
  CHECK_RC(ibv_destroy_comp_channel(ch), 0);
  dev_close(&d);
  alarm(0);
}

static void test_qp(void) {
  struct dev d;
  dev_open(&d);
  struct ibv_device_attr da;
  CHECK_RC(ibv_query_device(d.ctx, &da), 0);
  struct ibv_cq* cq = ibv_create_cq(d.ctx, 64, NULL, NULL, 0);
  CHECK(cq != NULL);
  struct ibv_qp_init_attr init;
  memset(&init, 0, sizeof(init));
  init.send_cq = cq;
  init.recv_cq = cq;
  init.cap.max_send_wr = 8;
  init.cap.max_recv_wr = 8;
  init.cap.max_send_sge = 2;
  init.cap.max_recv_sge = 2;
  init.cap.max_inline_data = 32;
  init.qp_type = IBV_QPT_RC;

  /* Refused creations, each leaving PD and CQ usable. */
  struct ibv_qp_init_attr bad = init;
  bad.send_cq = NULL;
  CHECK_NULL_ERRNO(ibv_create_qp(d.pd, &bad), EINVAL);
  bad = init;
  bad.qp_type = (enum ibv_qp_type)99;
  CHECK_NULL_ERRNO(ibv_create_qp(d.pd, &bad), EINVAL);
  bad = init;
  bad.qp_type = IBV_QPT_RAW_PACKET;
  CHECK_NULL_ERRNO(ibv_create_qp(d.pd, &bad), EOPNOTSUPP);
  bad = init;
  bad.cap.max_send_wr = (uint32_t)da.max_qp_wr + 1;
  CHECK_NULL_ERRNO(ibv_create_qp(d.pd, &bad), EINVAL);
  bad = init;
  bad.cap.max_send_sge = (uint32_t)da.max_sge + 1;
  CHECK_NULL_ERRNO(ibv_create_qp(d.pd, &bad), EINVAL);
  bad = init;
  bad.cap.max_inline_data = 1u << 20;
  CHECK_NULL_ERRNO(ibv_create_qp(d.pd, &bad), EINVAL);

  struct ibv_qp* qp = ibv_create_qp(d.pd, &init);
  CHECK(qp != NULL);
  CHECK(qp->qp_num >= 0x11 && qp->state == IBV_QPS_RESET && qp->qp_type == IBV_QPT_RC);
  CHECK(init.cap.max_send_wr >= 8 && init.cap.max_inline_data >= 32);
  CHECK(ibv_qp_to_qp_ex(qp) == NULL); /* not created with send_ops_flags */
  CHECK(qp_state(qp) == IBV_QPS_RESET);

  struct buf b;
  buf_alloc(&d, &b, 4096, IBV_ACCESS_LOCAL_WRITE);
  /* Posting in RESET fails synchronously and names the WR. */
  CHECK_RC(post_send(qp, 1, IBV_WR_SEND, &b, 0, 8, IBV_SEND_SIGNALED, 0, 0), EINVAL);
  struct ibv_sge sge = {(uintptr_t)b.data, 64, b.mr->lkey};
  struct ibv_recv_wr rwr = {.wr_id = 2, .sg_list = &sge, .num_sge = 1};
  struct ibv_recv_wr* rbad = NULL;
  CHECK_RC(ibv_post_recv(qp, &rwr, &rbad), EINVAL);
  CHECK(rbad == &rwr);

  /* Refused transitions leave the QP where it was. */
  struct ibv_qp_attr a;
  memset(&a, 0, sizeof(a));
  a.qp_state = IBV_QPS_RTR;
  CHECK_RC(ibv_modify_qp(qp, &a, IBV_QP_STATE), EINVAL);
  CHECK(qp_state(qp) == IBV_QPS_RESET && qp->state == IBV_QPS_RESET);
  a.qp_state = IBV_QPS_INIT;
  a.port_num = 1;
  CHECK_RC(ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PORT), EINVAL); /* no P_Key index, access */
  CHECK(qp_state(qp) == IBV_QPS_RESET);
  a.pkey_index = 1;
  CHECK_RC(
      ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PORT | IBV_QP_PKEY_INDEX | IBV_QP_ACCESS_FLAGS),
      EINVAL); /* P_Key index 1 does not exist */
  a.pkey_index = 0;
  CHECK_RC(ibv_modify_qp(qp, &a, 1 << 30), EOPNOTSUPP);
  CHECK(qp_state(qp) == IBV_QPS_RESET);
  CHECK_RC(
      ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PORT | IBV_QP_PKEY_INDEX | IBV_QP_ACCESS_FLAGS),
      0);
  CHECK(qp->state == IBV_QPS_INIT && qp_state(qp) == IBV_QPS_INIT);

  /* INIT: receives may be posted, sends not. A chain stops at the bad WR. */
  CHECK_RC(post_send(qp, 3, IBV_WR_SEND, &b, 0, 8, IBV_SEND_SIGNALED, 0, 0), EINVAL);
  struct ibv_sge sges[3] = {{(uintptr_t)b.data, 8, b.mr->lkey},
                            {(uintptr_t)b.data + 8, 8, b.mr->lkey},
                            {(uintptr_t)b.data + 16, 8, b.mr->lkey}};
  struct ibv_recv_wr r2 = {.wr_id = 5, .sg_list = sges, .num_sge = 3}; /* > max_recv_sge */
  struct ibv_recv_wr r1 = {.wr_id = 4, .next = &r2, .sg_list = sges, .num_sge = 1};
  rbad = NULL;
  CHECK_RC(ibv_post_recv(qp, &r1, &rbad), EINVAL);
  CHECK(rbad == &r2);

  /* INIT -> RTR: RoCE needs the GRH; the path MTU must be a real one. */
  memset(&a, 0, sizeof(a));
  a.qp_state = IBV_QPS_RTR;
  a.path_mtu = IBV_MTU_1024;
  a.dest_qp_num = qp->qp_num;
  a.rq_psn = 1;
  a.max_dest_rd_atomic = 1;
  a.min_rnr_timer = 1;
  a.ah_attr.port_num = 1;
  const int rtr = IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
                  IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER;
  CHECK_RC(ibv_modify_qp(qp, &a, rtr), EINVAL); /* is_global = 0 */
  a.ah_attr.is_global = 1;
  a.ah_attr.grh.dgid = d.gid;
  a.ah_attr.grh.hop_limit = 1;
  a.path_mtu = (enum ibv_mtu)7;
  CHECK_RC(ibv_modify_qp(qp, &a, rtr), EINVAL);
  a.path_mtu = IBV_MTU_4096; /* above the port's 1024 */
  CHECK_RC(ibv_modify_qp(qp, &a, rtr), EINVAL);
  CHECK(qp_state(qp) == IBV_QPS_INIT);
  a.path_mtu = IBV_MTU_1024;
  CHECK_RC(ibv_modify_qp(qp, &a, rtr), 0);
  CHECK(qp_state(qp) == IBV_QPS_RTR);
  CHECK_RC(post_send(qp, 6, IBV_WR_SEND, &b, 0, 8, IBV_SEND_SIGNALED, 0, 0), EINVAL);

  /* RTR -> RTS with a wrong claimed current state is refused. */
  memset(&a, 0, sizeof(a));
  a.qp_state = IBV_QPS_RTS;
  a.cur_qp_state = IBV_QPS_SQD;
  a.timeout = 14;
  a.retry_cnt = 7;
  a.rnr_retry = 7;
  a.sq_psn = 1;
  a.max_rd_atomic = 1;
  const int rts = IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
                  IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC;
  CHECK_RC(ibv_modify_qp(qp, &a, rts | IBV_QP_CUR_STATE), EINVAL);
  a.retry_cnt = 8;
  CHECK_RC(ibv_modify_qp(qp, &a, rts), EINVAL);
  CHECK(qp_state(qp) == IBV_QPS_RTR);
  a.retry_cnt = 7;
  a.cur_qp_state = IBV_QPS_RTR;
  CHECK_RC(ibv_modify_qp(qp, &a, rts | IBV_QP_CUR_STATE), 0);
  CHECK(qp_state(qp) == IBV_QPS_RTS);

  /* RTS: bad work requests fail synchronously. */
  struct ibv_send_wr swr;
  struct ibv_send_wr* sbad = NULL;
  memset(&swr, 0, sizeof(swr));
  swr.wr_id = 7;
  swr.sg_list = sges;
  swr.num_sge = 3; /* > max_send_sge (2) */
  swr.opcode = IBV_WR_SEND;
  CHECK_RC(ibv_post_send(qp, &swr, &sbad), EINVAL);
  CHECK(sbad == &swr);
  swr.num_sge = 1;
  swr.opcode = IBV_WR_TSO; /* raw packet QPs only */
  CHECK_RC(ibv_post_send(qp, &swr, &sbad), EINVAL);
  swr.opcode = IBV_WR_ATOMIC_WRITE; /* needs exactly one 8-byte SGE */
  swr.num_sge = 2;
  CHECK_RC(ibv_post_send(qp, &swr, &sbad), EINVAL);
  swr.num_sge = 1;
  swr.opcode = IBV_WR_SEND;
  swr.send_flags = IBV_SEND_INLINE;
  sges[0].length = 4000; /* more than max_inline_data */
  CHECK_RC(ibv_post_send(qp, &swr, &sbad), EINVAL);
  sges[0].length = 8;

  /* RTS -> INIT is not a transition. */
  memset(&a, 0, sizeof(a));
  a.qp_state = IBV_QPS_INIT;
  CHECK_RC(ibv_modify_qp(qp, &a, IBV_QP_STATE), EINVAL);
  CHECK(qp_state(qp) == IBV_QPS_RTS);

  /* Recycle: ERR -> RESET -> INIT. */
  a.qp_state = IBV_QPS_ERR;
  CHECK_RC(ibv_modify_qp(qp, &a, IBV_QP_STATE), 0);
  CHECK(qp_state(qp) == IBV_QPS_ERR);
  a.qp_state = IBV_QPS_RESET;
  CHECK_RC(ibv_modify_qp(qp, &a, IBV_QP_STATE), 0);
  CHECK(qp_state(qp) == IBV_QPS_RESET);
  a.qp_state = IBV_QPS_INIT;
  a.port_num = 1;
  CHECK_RC(
      ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PORT | IBV_QP_PKEY_INDEX | IBV_QP_ACCESS_FLAGS),
      0);

  /* Query reports what the QP was created with. */
  struct ibv_qp_init_attr qi;
  CHECK_RC(ibv_query_qp(qp, &a, IBV_QP_CAP, &qi), 0);
  CHECK(qi.send_cq == cq && qi.recv_cq == cq && qi.qp_type == IBV_QPT_RC && qi.srq == NULL);
  CHECK(qi.cap.max_send_wr == init.cap.max_send_wr &&
        qi.cap.max_inline_data == init.cap.max_inline_data);

  /* The CQ and the PD are in use. */
  CHECK_RC(ibv_destroy_cq(cq), EBUSY);
  CHECK_RC(ibv_dealloc_pd(d.pd), EBUSY);
  CHECK_RC(ibv_destroy_qp(qp), 0);
  buf_free(&b);
  CHECK_RC(ibv_destroy_cq(cq), 0);
  dev_close(&d);
}

static void test_srq(void) {
  struct dev d;
  dev_open(&d);
  struct ibv_device_attr da;
  CHECK_RC(ibv_query_device(d.ctx, &da), 0);
  struct ibv_srq_init_attr si;
  memset(&si, 0, sizeof(si));
  si.attr.max_wr = (uint32_t)da.max_srq_wr + 1;
  si.attr.max_sge = 1;
  CHECK_NULL_ERRNO(ibv_create_srq(d.pd, &si), EINVAL);
  si.attr.max_wr = 16;
  si.attr.max_sge = (uint32_t)da.max_srq_sge + 1;
  CHECK_NULL_ERRNO(ibv_create_srq(d.pd, &si), EINVAL);
  si.attr.max_sge = 2;
  si.attr.srq_limit = 17;
  CHECK_NULL_ERRNO(ibv_create_srq(d.pd, &si), EINVAL);
  si.attr.srq_limit = 0;
  int cookie = 0;
  si.srq_context = &cookie;
  struct ibv_srq* srq = ibv_create_srq(d.pd, &si);
  CHECK(srq != NULL && srq->srq_context == &cookie && srq->pd == d.pd);
  CHECK(si.attr.max_wr >= 16 && si.attr.max_sge >= 2);

  struct ibv_srq_attr sa;
  CHECK_RC(ibv_query_srq(srq, &sa), 0);
  CHECK(sa.max_wr == si.attr.max_wr && sa.srq_limit == 0);
  sa.srq_limit = si.attr.max_wr + 1;
  CHECK_RC(ibv_modify_srq(srq, &sa, IBV_SRQ_LIMIT), EINVAL);
  sa.max_wr = 0;
  CHECK_RC(ibv_modify_srq(srq, &sa, IBV_SRQ_MAX_WR), EINVAL);
  CHECK_RC(ibv_modify_srq(srq, &sa, 1 << 5), EINVAL);
  sa.srq_limit = 4;
  CHECK_RC(ibv_modify_srq(srq, &sa, IBV_SRQ_LIMIT), 0);
  CHECK_RC(ibv_query_srq(srq, &sa), 0);
  CHECK(sa.srq_limit == 4);

  struct buf b;
  buf_alloc(&d, &b, 4096, IBV_ACCESS_LOCAL_WRITE);
  struct ibv_sge sges[3] = {{(uintptr_t)b.data, 8, b.mr->lkey},
                            {(uintptr_t)b.data + 8, 8, b.mr->lkey},
                            {(uintptr_t)b.data + 16, 8, b.mr->lkey}};
  struct ibv_recv_wr r2 = {.wr_id = 2, .sg_list = sges, .num_sge = 3}; /* > max_sge */
  struct ibv_recv_wr r1 = {.wr_id = 1, .next = &r2, .sg_list = sges, .num_sge = 1};
  struct ibv_recv_wr* bad = NULL;
  CHECK_RC(ibv_post_srq_recv(srq, &r1, &bad), EINVAL);
  CHECK(bad == &r2);

  /* A QP on the SRQ: receives go to the SRQ, and the SRQ cannot go first. */
  struct qp_opts o = qp_defaults(IBV_QPT_RC);
  o.srq = srq;
  struct end e;
  end_create(&d, &e, &o);
  CHECK(e.qp->srq == srq);
  CHECK_RC(ibv_destroy_srq(srq), EBUSY);
  end_destroy(&e, 1);
  CHECK_RC(ibv_destroy_srq(srq), 0);
  buf_free(&b);
  dev_close(&d);
}

static void test_ah(void) {
  struct dev d;
  dev_open(&d);
  struct ibv_ah_attr aa;
  memset(&aa, 0, sizeof(aa));
  aa.port_num = 1;
  CHECK_NULL_ERRNO(ibv_create_ah(d.pd, &aa), EINVAL); /* RoCE: no GRH, no address */
  aa.is_global = 1;
  aa.grh.dgid = d.gid;
  aa.grh.hop_limit = 64;
  aa.port_num = 2;
  CHECK_NULL_ERRNO(ibv_create_ah(d.pd, &aa), EINVAL);
  aa.port_num = 1;
  memset(aa.grh.dgid.raw, 0, 16);
  aa.grh.dgid.raw[0] = 0xfe; /* an IPv6 link-local GID: not one droce can reach */
  aa.grh.dgid.raw[1] = 0x80;
  CHECK_NULL_ERRNO(ibv_create_ah(d.pd, &aa), EINVAL);
  aa.grh.dgid = d.gid;
  struct ibv_ah* ah = ibv_create_ah(d.pd, &aa);
  CHECK(ah != NULL && ah->pd == d.pd && ah->context == d.ctx);
  CHECK_RC(ibv_dealloc_pd(d.pd), EBUSY);
  uint8_t mac[6] = {0};
  uint16_t vid = 0;
  CHECK_RC(ibv_resolve_eth_l2_from_gid(d.ctx, &aa, mac, &vid), 0); /* our own address */
  CHECK(vid == 0xFFFF);
  CHECK_RC(ibv_destroy_ah(ah), 0);
  dev_close(&d);
}

/* A bad setting: no device list, errno set, a message naming the variable on
 * stderr, never an abort; asking again gives the same answer. */
static void bad_setting(const char* var, const char* value) {
  CHECK(setenv(var, value, 1) == 0);
  FILE* err = tmpfile();
  CHECK(err != NULL);
  fflush(stderr);
  const int saved = dup(2);
  CHECK(saved >= 0 && dup2(fileno(err), 2) == 2);
  int n = -1;
  errno = 0;
  struct ibv_device** list = ibv_get_device_list(&n);
  const int e1 = errno;
  errno = 0;
  struct ibv_device** again = ibv_get_device_list(NULL);
  const int e2 = errno;
  fflush(stderr);
  CHECK(dup2(saved, 2) == 2);
  close(saved);
  char text[4096] = {0};
  rewind(err);
  const size_t len = fread(text, 1, sizeof(text) - 1, err);
  fclose(err);
  fprintf(stderr, "%.*s", (int)len, text);
  CHECK(list == NULL && e1 == EINVAL && n == 0);
  CHECK(again == NULL && e2 == EINVAL);
  CHECK(strstr(text, var) != NULL);
}

static void test_bad_ipv4(void) { bad_setting("DROCE_IPV4", "10.0.0"); }
static void test_bad_mtu(void) { bad_setting("DROCE_MTU", "100000"); }
static void test_bad_faults(void) { bad_setting("DROCE_FAULTS", "drop=2"); }
static void test_bad_engine_cpu(void) { bad_setting("DROCE_ENGINE_CPU", "100000"); }
static void test_bad_eal_args(void) { bad_setting("DROCE_EAL_ARGS", "--no-such-eal-option"); }

static const struct test_case kCases[] = {
    {"bad_ipv4", test_bad_ipv4},
    {"bad_mtu", test_bad_mtu},
    {"bad_faults", test_bad_faults},
    {"bad_engine_cpu", test_bad_engine_cpu},
    {"bad_eal_args", test_bad_eal_args},
    {"device", test_device},
    {"strings", test_strings},
    {"mr", test_mr},
    {"cq", test_cq},
    {"channel", test_channel},
    {"channel_signals", test_channel_signals},
    {"qp", test_qp},
    {"srq", test_srq},
    {"ah", test_ah},
    {NULL, NULL},
};

int main(int argc, char** argv) { return run_case(kCases, argc, argv); }
