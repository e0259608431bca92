/* The exchanges of rdma-core's ibv_rc/uc/ud/srq_pingpong programs inside one
 * process (issue 5 section 4): the programs need a server and a client
 * process, and each process's default port loops back only to itself, so the
 * two programs run here as two threads with two contexts on droce0. Compiled
 * as C against the system header, linked to the drop-in.
 * Usage: verbs_pingpong rc|uc|ud|srq. */
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "tests/verbs/verbs_util.h"

/* ---- The pingpong programs of rdma-core (ibv_rc/uc/ud/srq_pingpong) inside
 * one process. Each side does what one program process does: its own
 * context, PD, one buffer (every receive and every send use it), a CQ of
 * rx_depth + num_qp entries (on a completion channel with -e), the receive
 * ring pre-posted and topped up when it runs low, the client sending first
 * and each side sending again once its previous send and the next receive
 * completed. The two sides run on two threads, as two processes would; the
 * exchange of addresses over TCP becomes a function call. Unlike the
 * programs, a side stops after exactly iters sends and receives per QP, so
 * nothing is left in flight, and any deviation stops the case. */

enum {
  kPpRecvWrid = 1,
  kPpSendWrid = 2,
  kPpMaxQp = 4,
  kPpRxDepth = 500,
  kPpGrh = 40,    /* ud_pingpong reserves room for the GRH before the payload */
  kPpAlarmS = 30, /* a variant that hangs (a lost completion or event) fails */
};

struct pp_side {
  int client;
  enum ibv_qp_type type;
  int use_srq;
  int num_qp;
  uint32_t size;
  int iters; /* exchanges per QP */
  int use_event;
  int chk; /* -c: a pattern per message, checked by the receiver */
  struct ibv_device** list;
  struct ibv_context* ctx;
  struct ibv_comp_channel* ch;
  struct ibv_pd* pd;
  struct ibv_mr* mr;
  uint8_t* buf;
  size_t buf_len;
  struct ibv_cq* cq;
  struct ibv_srq* srq;
  struct ibv_qp* qp[kPpMaxQp];
  struct ibv_ah* ah; /* UD: to the peer */
  int send_flags;
  union ibv_gid gid;
  uint32_t psn[kPpMaxQp];
  uint32_t remote_qpn[kPpMaxQp];
  /* The loop's state and results. */
  int pending[kPpMaxQp];
  int scnt[kPpMaxQp], rcnt[kPpMaxQp], posted[kPpMaxQp];
  int routs;
  int num_cq_events;
  int completions;
  double usec;
};

static double pp_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static const char* g_pp_variant = "";
static void pp_on_alarm(int sig) {
  (void)sig;
  static const char msg[] = "pingpong: variant timed out (a completion or event never came): ";
  if (write(2, msg, sizeof(msg) - 1) < 0 || write(2, g_pp_variant, strlen(g_pp_variant)) < 0 ||
      write(2, "\n", 1) < 0) {
    _exit(1);
  }
  _exit(1);
}

/* The byte at i of message iter sent by a client (or a server). */
static uint8_t pp_byte(int client, int iter, size_t i) {
  return (uint8_t)((client ? 0x55 : 0xa3) + iter * 31 + i * 7 + (i >> 8));
}

static uint8_t* pp_payload(struct pp_side* s) {
  return s->buf + (s->type == IBV_QPT_UD ? kPpGrh : 0);
}

static void pp_fill(struct pp_side* s, int iter) {
  uint8_t* p = pp_payload(s);
  for (size_t i = 0; i < s->size; ++i) p[i] = pp_byte(s->client, iter, i);
}

static void pp_verify(struct pp_side* s, int iter) {
  const uint8_t* p = pp_payload(s);
  for (size_t i = 0; i < s->size; ++i) {
    if (p[i] != pp_byte(!s->client, iter, i)) {
      fprintf(stderr, "%s: message %d: byte %zu is 0x%02x, sent 0x%02x\n",
              s->client ? "client" : "server", iter, i, p[i], pp_byte(!s->client, iter, i));
      exit(1);
    }
  }
}

/* pp_init_ctx: device, channel, PD, MR, CQ, (SRQ), QPs in INIT. */
static void pp_init(struct pp_side* s) {
  int n = 0;
  s->list = ibv_get_device_list(&n);
  CHECK(s->list != NULL && n >= 1);
  CHECK(strcmp(ibv_get_device_name(s->list[0]), "droce0") == 0);
  s->ctx = ibv_open_device(s->list[0]);
  CHECK(s->ctx != NULL);
  const int ud = s->type == IBV_QPT_UD;
  if (ud) {
    struct ibv_port_attr pa;
    CHECK_RC(ibv_query_port(s->ctx, 1, &pa), 0);
    CHECK(s->size <= (1u << (pa.active_mtu + 7))); /* ud_pingpong refuses more */
  }
  s->buf_len = s->size + (ud ? kPpGrh : 0);
  s->buf = aligned_alloc(4096, (s->buf_len + 4095) / 4096 * 4096);
  CHECK(s->buf != NULL);
  memset(s->buf, 0x7b, s->buf_len);
  if (s->use_event) {
    s->ch = ibv_create_comp_channel(s->ctx);
    CHECK(s->ch != NULL);
  }
  s->pd = ibv_alloc_pd(s->ctx);
  CHECK(s->pd != NULL);
  s->mr = ibv_reg_mr(s->pd, s->buf, s->buf_len, IBV_ACCESS_LOCAL_WRITE);
  CHECK(s->mr != NULL);
  s->cq = ibv_create_cq(s->ctx, kPpRxDepth + s->num_qp, NULL, s->ch, 0);
  CHECK(s->cq != NULL);
  if (s->use_srq) {
    struct ibv_srq_init_attr sa;
    memset(&sa, 0, sizeof(sa));
    sa.attr.max_wr = kPpRxDepth;
    sa.attr.max_sge = 1;
    s->srq = ibv_create_srq(s->pd, &sa);
    CHECK(s->srq != NULL);
  }
  s->send_flags = IBV_SEND_SIGNALED;
  for (int i = 0; i < s->num_qp; ++i) {
    struct ibv_qp_init_attr init;
    memset(&init, 0, sizeof(init));
    init.send_cq = s->cq;
    init.recv_cq = s->cq;
    init.srq = s->srq;
    init.cap.max_send_wr = 1;
    init.cap.max_recv_wr = s->use_srq ? 0 : kPpRxDepth;
    init.cap.max_send_sge = 1;
    init.cap.max_recv_sge = s->use_srq ? 0 : 1;
    init.qp_type = s->type;
    s->qp[i] = ibv_create_qp(s->pd, &init);
    CHECK(s->qp[i] != NULL);
    struct ibv_qp_attr attr;
    CHECK_RC(ibv_query_qp(s->qp[i], &attr, IBV_QP_CAP, &init), 0);
    if (init.cap.max_inline_data >= s->size) s->send_flags |= IBV_SEND_INLINE;
    memset(&attr, 0, sizeof(attr));
    attr.qp_state = IBV_QPS_INIT;
    attr.pkey_index = 0;
    attr.port_num = 1;
    int mask = IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT;
    if (ud) {
      attr.qkey = 0x11111111;
      mask |= IBV_QP_QKEY;
    } else {
      attr.qp_access_flags = 0;
      mask |= IBV_QP_ACCESS_FLAGS;
    }
    CHECK_RC(ibv_modify_qp(s->qp[i], &attr, mask), 0);
  }
  CHECK_RC(ibv_query_gid(s->ctx, 1, 0, &s->gid), 0); /* -g 0 */
}

/* pp_post_recv: n receives of the whole buffer; how many were posted. */
static int pp_post_recv(struct pp_side* s, int n) {
  struct ibv_sge sge = {(uintptr_t)s->buf, (uint32_t)s->buf_len, s->mr->lkey};
  struct ibv_recv_wr wr, *bad = NULL;
  memset(&wr, 0, sizeof(wr));
  wr.wr_id = kPpRecvWrid;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  int i;
  for (i = 0; i < n; ++i) {
    const int rc =
        s->use_srq ? ibv_post_srq_recv(s->srq, &wr, &bad) : ibv_post_recv(s->qp[0], &wr, &bad);
    if (rc != 0) break;
  }
  return i;
}

static void pp_post_send(struct pp_side* s, int q) {
  if (s->chk) pp_fill(s, s->posted[q]);
  struct ibv_sge sge = {(uintptr_t)pp_payload(s), s->size, s->mr->lkey};
  struct ibv_send_wr wr, *bad = NULL;
  memset(&wr, 0, sizeof(wr));
  wr.wr_id = kPpSendWrid;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.opcode = IBV_WR_SEND;
  wr.send_flags = (unsigned)s->send_flags;
  if (s->type == IBV_QPT_UD) {
    wr.wr.ud.ah = s->ah;
    wr.wr.ud.remote_qpn = s->remote_qpn[q];
    wr.wr.ud.remote_qkey = 0x11111111;
  }
  CHECK_RC(ibv_post_send(s->qp[q], &wr, &bad), 0);
  ++s->posted[q];
  s->pending[q] = kPpRecvWrid | kPpSendWrid;
}

/* pp_connect_ctx: RTR and RTS towards the peer (RC/UC), or RTR, RTS and an
 * address handle (UD); path MTU 1024, the programs' default. */
static void pp_connect(struct pp_side* s, const struct pp_side* peer) {
  for (int i = 0; i < s->num_qp; ++i) {
    struct ibv_qp_attr a;
    memset(&a, 0, sizeof(a));
    a.qp_state = IBV_QPS_RTR;
    int mask = IBV_QP_STATE;
    s->remote_qpn[i] = peer->qp[i]->qp_num;
    if (s->type != IBV_QPT_UD) {
      a.path_mtu = IBV_MTU_1024;
      a.dest_qp_num = s->remote_qpn[i];
      a.rq_psn = peer->psn[i];
      a.ah_attr.is_global = 1;
      a.ah_attr.grh.hop_limit = 1;
      a.ah_attr.grh.dgid = peer->gid;
      a.ah_attr.grh.sgid_index = 0;
      a.ah_attr.port_num = 1;
      mask |= IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN;
      if (s->type == IBV_QPT_RC) {
        a.max_dest_rd_atomic = 1;
        a.min_rnr_timer = 12;
        mask |= IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER;
      }
    }
    CHECK_RC(ibv_modify_qp(s->qp[i], &a, mask), 0);
    a.qp_state = IBV_QPS_RTS;
    a.sq_psn = s->psn[i];
    mask = IBV_QP_STATE | IBV_QP_SQ_PSN;
    if (s->type == IBV_QPT_RC) {
      a.timeout = 14;
      a.retry_cnt = 7;
      a.rnr_retry = 7;
      a.max_rd_atomic = 1;
      mask |= IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_MAX_QP_RD_ATOMIC;
    }
    CHECK_RC(ibv_modify_qp(s->qp[i], &a, mask), 0);
  }
  if (s->type == IBV_QPT_UD) {
    struct ibv_ah_attr aa;
    memset(&aa, 0, sizeof(aa));
    aa.is_global = 1;
    aa.grh.hop_limit = 1;
    aa.grh.dgid = peer->gid;
    aa.grh.sgid_index = 0;
    aa.port_num = 1;
    s->ah = ibv_create_ah(s->pd, &aa);
    CHECK(s->ah != NULL);
  }
}

static int pp_find_qp(const struct pp_side* s, uint32_t qpn) {
  for (int i = 0; i < s->num_qp; ++i)
    if (s->qp[i]->qp_num == qpn) return i;
  return -1;
}

static int pp_done(const struct pp_side* s) {
  for (int i = 0; i < s->num_qp; ++i)
    if (s->rcnt[i] < s->iters || s->scnt[i] < s->iters) return 0;
  return 1;
}

/* One completion, as the programs' parse_single_wc / srq loop body. */
static void pp_handle(struct pp_side* s, const struct ibv_wc* wc) {
  if (wc->status != IBV_WC_SUCCESS) {
    fprintf(stderr, "%s: failed status %s (%d) for wr_id %d\n", s->client ? "client" : "server",
            ibv_wc_status_str(wc->status), wc->status, (int)wc->wr_id);
    exit(1);
  }
  const int q = pp_find_qp(s, wc->qp_num);
  CHECK(q >= 0);
  ++s->completions;
  switch ((int)wc->wr_id) {
    case kPpSendWrid:
      CHECK(wc->opcode == IBV_WC_SEND);
      CHECK(s->pending[q] & kPpSendWrid); /* one send outstanding per QP */
      ++s->scnt[q];
      break;
    case kPpRecvWrid:
      CHECK(wc->opcode == IBV_WC_RECV);
      CHECK(!(wc->wc_flags & IBV_WC_WITH_IMM));
      if (s->type == IBV_QPT_UD) {
        CHECK(wc->byte_len == s->size + kPpGrh);
        CHECK(wc->wc_flags & IBV_WC_GRH);
        CHECK(wc->src_qp == s->remote_qpn[q]);
      } else {
        CHECK(wc->byte_len == s->size);
      }
      CHECK(s->rcnt[q] < s->iters); /* nothing beyond what the peer was to send */
      if (s->chk) pp_verify(s, s->rcnt[q]);
      if (--s->routs <= s->num_qp) {
        s->routs += pp_post_recv(s, kPpRxDepth - s->routs);
        CHECK(s->routs == kPpRxDepth);
      }
      ++s->rcnt[q];
      break;
    default:
      fprintf(stderr, "completion for unknown wr_id %d\n", (int)wc->wr_id);
      exit(1);
  }
  s->pending[q] &= ~(int)wc->wr_id;
  if (s->scnt[q] < s->iters && !s->pending[q]) pp_post_send(s, q);
}

/* The programs' main loop after the address exchange. */
static void* pp_run(void* arg) {
  struct pp_side* s = arg;
  for (int i = 0; i < s->num_qp; ++i) {
    if (s->client) {
      pp_post_send(s, i);
    } else {
      s->pending[i] = kPpRecvWrid;
    }
  }
  const double start = pp_now_us();
  const double deadline = start + 1e6 * kPpAlarmS;
  struct ibv_wc wc[kPpRxDepth + kPpMaxQp];
  const int num_wc = s->use_srq ? kPpRxDepth + s->num_qp : 2;
  long spins = 0;
  while (!pp_done(s)) {
    if (s->use_event) {
      struct ibv_cq* ev_cq = NULL;
      void* ev_ctx = NULL;
      CHECK_RC(ibv_get_cq_event(s->ch, &ev_cq, &ev_ctx), 0); /* blocks; the alarm bounds it */
      ++s->num_cq_events;
      CHECK(ev_cq == s->cq);
      CHECK_RC(ibv_req_notify_cq(s->cq, 0), 0);
    }
    int ne;
    do {
      ne = ibv_poll_cq(s->cq, num_wc, wc);
      CHECK(ne >= 0);
      if (ne == 0 && (++spins & 0xfff) == 0 && pp_now_us() > deadline) {
        fprintf(stderr, "%s: no completion for %d s (scnt %d rcnt %d of %d)\n",
                s->client ? "client" : "server", kPpAlarmS, s->scnt[0], s->rcnt[0], s->iters);
        exit(1);
      }
    } while (!s->use_event && ne < 1);
    for (int i = 0; i < ne; ++i) pp_handle(s, &wc[i]);
  }
  s->usec = pp_now_us() - start;
  return NULL;
}

static void pp_close(struct pp_side* s) {
  if (s->use_event) ibv_ack_cq_events(s->cq, (unsigned)s->num_cq_events);
  for (int i = 0; i < s->num_qp; ++i) CHECK_RC(ibv_destroy_qp(s->qp[i]), 0);
  if (s->srq != NULL) CHECK_RC(ibv_destroy_srq(s->srq), 0);
  CHECK_RC(ibv_destroy_cq(s->cq), 0);
  CHECK_RC(ibv_dereg_mr(s->mr), 0);
  if (s->ah != NULL) CHECK_RC(ibv_destroy_ah(s->ah), 0);
  CHECK_RC(ibv_dealloc_pd(s->pd), 0);
  if (s->ch != NULL) CHECK_RC(ibv_destroy_comp_channel(s->ch), 0);
  CHECK_RC(ibv_close_device(s->ctx), 0);
  ibv_free_device_list(s->list);
  free(s->buf);
}

struct pp_variant {
  enum ibv_qp_type type;
  int use_srq;
  uint32_t size;
  int iters; /* per QP */
  int use_event;
  int chk;
};

static void pingpong(const char* name, struct pp_variant v) {
  char label[128];
  const int num_qp = v.use_srq ? kPpMaxQp : 1;
  snprintf(label, sizeof(label), "%s -s %u -n %d%s%s", name, v.size, v.iters * num_qp,
           v.use_event ? " -e" : "", v.chk ? " -c" : "");
  g_pp_variant = label;
  signal(SIGALRM, pp_on_alarm);
  alarm(kPpAlarmS + 5);
  struct pp_side side[2]; /* [0] server, [1] client */
  memset(side, 0, sizeof(side));
  for (int k = 0; k < 2; ++k) {
    struct pp_side* s = &side[k];
    s->client = k;
    s->type = v.type;
    s->use_srq = v.use_srq;
    s->num_qp = num_qp;
    s->size = v.size;
    s->iters = v.iters;
    s->use_event = v.use_event;
    s->chk = v.chk;
    pp_init(s);
    s->routs = pp_post_recv(s, kPpRxDepth);
    CHECK(s->routs == kPpRxDepth);
    if (s->use_event) CHECK_RC(ibv_req_notify_cq(s->cq, 0), 0);
    /* Starting PSNs near the 24-bit wrap for the client, as lrand48 may give. */
    for (int i = 0; i < s->num_qp; ++i)
      s->psn[i] = k ? 0xffffff - 7 * (uint32_t)i : 0x1234 + (uint32_t)i;
  }
  pp_connect(&side[0], &side[1]); /* the server connects before it answers */
  pp_connect(&side[1], &side[0]);
  pthread_t th[2];
  for (int k = 0; k < 2; ++k) CHECK(pthread_create(&th[k], NULL, pp_run, &side[k]) == 0);
  for (int k = 0; k < 2; ++k) CHECK(pthread_join(th[k], NULL) == 0);
  alarm(0);

  for (int k = 0; k < 2; ++k) {
    struct pp_side* s = &side[k];
    for (int i = 0; i < s->num_qp; ++i) {
      CHECK(s->scnt[i] == v.iters && s->rcnt[i] == v.iters && s->posted[i] == v.iters);
      /* The client ends with nothing awaited; the server's last send was its
       * answer, so it still counts on a receive that never comes. */
      CHECK(s->pending[i] == (s->client ? 0 : kPpRecvWrid));
    }
    CHECK(s->completions == 2 * v.iters * s->num_qp);
    CHECK(s->routs > s->num_qp && s->routs <= kPpRxDepth); /* the ring never ran dry */
    if (s->use_event) CHECK(s->num_cq_events >= 1 && s->num_cq_events <= s->completions);
    CHECK(drain_wc(s->cq, 20) == 0); /* nothing left over */
  }
  /* The client's figures, in the programs' words (its clock, as theirs). */
  const struct pp_side* c = &side[1];
  const long long iters = (long long)v.iters * c->num_qp;
  const long long bytes = (long long)v.size * iters * 2;
  printf(
      "%s: %lld bytes in %.2f seconds = %.2f Mbit/sec, %lld iters in %.2f seconds = %.2f usec/iter",
      label, bytes, c->usec / 1e6, (double)bytes * 8. / c->usec, iters, c->usec / 1e6,
      c->usec / (double)iters);
  if (v.use_event) printf(" (%d + %d CQ events)", side[0].num_cq_events, c->num_cq_events);
  printf("\n");
  fflush(stdout);
  for (int k = 0; k < 2; ++k) pp_close(&side[k]);
}

/* Sizes 1 B, 4 KiB and 1 MiB (UD: 1 B and the port's MTU), busy polling and
 * completion events, as `ibv_*_pingpong -g 0 -s SIZE [-e] [-c]` would run. */
static int pp_iters(uint32_t size) { return size >= (1u << 20) ? 40 : 1000; }

static void pp_sizes(const char* name, enum ibv_qp_type type, int use_srq, int chk) {
  const uint32_t sizes[] = {1, 4096, 1u << 20};
  for (int e = 0; e < 2; ++e) {
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); ++i) {
      struct pp_variant v = {type, use_srq, sizes[i], pp_iters(sizes[i]), e, chk};
      if (use_srq) v.iters = (v.iters + kPpMaxQp - 1) / kPpMaxQp; /* per QP */
      pingpong(name, v);
    }
  }
}

static void test_pingpong_rc(void) { pp_sizes("rc_pingpong", IBV_QPT_RC, 0, 1); }
static void test_pingpong_uc(void) { pp_sizes("uc_pingpong", IBV_QPT_UC, 0, 1); }
/* One buffer shared by every receive of the SRQ and four QPs in flight at
 * once: messages overwrite each other there, so no content check (as the
 * program has none). */
static void test_pingpong_srq(void) { pp_sizes("srq_pingpong -q 4", IBV_QPT_RC, 1, 0); }

static void test_pingpong_ud(void) {
  struct dev d;
  dev_open(&d);
  struct ibv_port_attr pa;
  CHECK_RC(ibv_query_port(d.ctx, 1, &pa), 0);
  dev_close(&d);
  const uint32_t mtu = 1u << (pa.active_mtu + 7);
  CHECK(mtu >= 256 && mtu <= 4096);
  const uint32_t sizes[] = {1, mtu};
  for (int e = 0; e < 2; ++e) {
    for (size_t i = 0; i < 2; ++i) {
      struct pp_variant v = {IBV_QPT_UD, 0, sizes[i], 1000, e, 1};
      pingpong("ud_pingpong", v);
    }
  }
}

static const struct test_case kCases[] = {
    {"rc", test_pingpong_rc},
    {"uc", test_pingpong_uc},
    {"ud", test_pingpong_ud},
    {"srq", test_pingpong_srq},
    {NULL, NULL},
};

int main(int argc, char** argv) { return run_case(kCases, argc, argv); }
