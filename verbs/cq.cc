// Completion queues and completion channels (IBTA vol. 1, 11.2.8 and 11.4):
// create/resize/destroy, poll (driving the engine inline when the CQ is
// empty), request notification with the kernel's flag bits, the channel's
// pollable fd (an epoll set of the CQs' event fds), and the ibv_cq_ex poll API.
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "verbs/internal.h"

namespace droce::verbs {
namespace {

static_assert(int(IBV_WC_SUCCESS) == int(nic::WcStatus::kSuccess));
static_assert(int(IBV_WC_LOC_LEN_ERR) == int(nic::WcStatus::kLocLenErr));
static_assert(int(IBV_WC_LOC_QP_OP_ERR) == int(nic::WcStatus::kLocQpOpErr));
static_assert(int(IBV_WC_LOC_PROT_ERR) == int(nic::WcStatus::kLocProtErr));
static_assert(int(IBV_WC_WR_FLUSH_ERR) == int(nic::WcStatus::kWrFlushErr));
static_assert(int(IBV_WC_MW_BIND_ERR) == int(nic::WcStatus::kMwBindErr));
static_assert(int(IBV_WC_BAD_RESP_ERR) == int(nic::WcStatus::kBadRespErr));
static_assert(int(IBV_WC_LOC_ACCESS_ERR) == int(nic::WcStatus::kLocAccessErr));
static_assert(int(IBV_WC_REM_INV_REQ_ERR) == int(nic::WcStatus::kRemInvReqErr));
static_assert(int(IBV_WC_REM_ACCESS_ERR) == int(nic::WcStatus::kRemAccessErr));
static_assert(int(IBV_WC_REM_OP_ERR) == int(nic::WcStatus::kRemOpErr));
static_assert(int(IBV_WC_RETRY_EXC_ERR) == int(nic::WcStatus::kRetryExcErr));
static_assert(int(IBV_WC_RNR_RETRY_EXC_ERR) == int(nic::WcStatus::kRnrRetryExcErr));
static_assert(int(IBV_WC_FATAL_ERR) == int(nic::WcStatus::kFatalErr));
static_assert(int(IBV_WC_GENERAL_ERR) == int(nic::WcStatus::kGeneralErr));
static_assert(int(IBV_WC_SEND) == int(nic::WcOpcode::kSend));
static_assert(int(IBV_WC_RDMA_WRITE) == int(nic::WcOpcode::kRdmaWrite));
static_assert(int(IBV_WC_RDMA_READ) == int(nic::WcOpcode::kRdmaRead));
static_assert(int(IBV_WC_COMP_SWAP) == int(nic::WcOpcode::kCmpSwap));
static_assert(int(IBV_WC_FETCH_ADD) == int(nic::WcOpcode::kFetchAdd));
static_assert(int(IBV_WC_BIND_MW) == int(nic::WcOpcode::kBindMw));
static_assert(int(IBV_WC_LOCAL_INV) == int(nic::WcOpcode::kLocalInv));
static_assert(int(IBV_WC_RECV) == int(nic::WcOpcode::kRecv));
static_assert(int(IBV_WC_RECV_RDMA_WITH_IMM) == int(nic::WcOpcode::kRecvRdmaImm));
static_assert(int(IBV_WC_GRH) == int(nic::kWcGrh));
static_assert(int(IBV_WC_WITH_IMM) == int(nic::kWcWithImm));
static_assert(int(IBV_WC_WITH_INV) == int(nic::kWcWithInv));

constexpr int kPollBatch = 16;

void to_wc(const nic::Cqe& e, ibv_wc* wc) {
  wc->wr_id = e.wr_id;
  wc->status = static_cast<ibv_wc_status>(e.status);
  wc->opcode = static_cast<ibv_wc_opcode>(e.opcode);
  wc->vendor_err = 0;
  wc->byte_len = e.byte_len;
  wc->imm_data = __be32(e.imm_or_inv);  // as received: network order
  wc->qp_num = e.qp_num;
  wc->src_qp = e.src_qp;
  wc->wc_flags = e.wc_flags;
  wc->pkey_index = e.pkey_index;
  wc->slid = 0;
  wc->sl = 0;
  wc->dlid_path_bits = 0;
}

// A completion of the program's own request that went well: it brings no
// news from the peer (a receive does, and a failure is news of its own), so
// a program that took only these may wait for the peer next
// (Device::app_took_completions).
bool own_request_done(const nic::Cqe& e) {
  return e.status == nic::WcStatus::kSuccess && (uint8_t(e.opcode) & uint8_t(nic::WcOpcode::kRecv)) == 0;
}

// One CQE into cq->cur; drives the engine once when the ring is empty.
int poll_one(Cq* c) {
  if (c->ncq->poll(&c->cur, 1) == 1 || (c->dev->progress(), c->ncq->poll(&c->cur, 1) == 1)) {
    return 0;  // ex_end_poll tells the device
  }
  return ENOENT;
}

int ex_start_poll(ibv_cq_ex* cq, ibv_poll_cq_attr* attr) noexcept {
  if (attr != nullptr && attr->comp_mask != 0) return EINVAL;
  Cq* c = cq_of(cq);
  const int rc = poll_one(c);
  if (rc == 0) {
    if (attr != nullptr) c->cur_news = false;  // start_poll, not next_poll
    c->cur_news |= !own_request_done(c->cur);
    cq->wr_id = c->cur.wr_id;
    cq->status = static_cast<ibv_wc_status>(c->cur.status);
  }
  return rc;
}
int ex_next_poll(ibv_cq_ex* cq) noexcept { return ex_start_poll(cq, nullptr); }

// The same for a CQ created with completion timestamps: the CQE and its stamp.
int poll_one_timestamped(Cq* c) {
  if (c->ncq->poll_timestamped(&c->cur, &c->cur_ts, 1) == 1 ||
      (c->dev->progress(), c->ncq->poll_timestamped(&c->cur, &c->cur_ts, 1) == 1)) {
    return 0;  // ex_end_poll tells the device
  }
  return ENOENT;
}
int ex_start_poll_timestamped(ibv_cq_ex* cq, ibv_poll_cq_attr* attr) noexcept {
  if (attr != nullptr && attr->comp_mask != 0) return EINVAL;
  Cq* c = cq_of(cq);
  const int rc = poll_one_timestamped(c);
  if (rc == 0) {
    if (attr != nullptr) c->cur_news = false;  // start_poll, not next_poll
    c->cur_news |= !own_request_done(c->cur);
    cq->wr_id = c->cur.wr_id;
    cq->status = static_cast<ibv_wc_status>(c->cur.status);
  }
  return rc;
}
int ex_next_poll_timestamped(ibv_cq_ex* cq) noexcept {
  return ex_start_poll_timestamped(cq, nullptr);
}
// The device clock is CLOCK_MONOTONIC in nanoseconds (hca_core_clock 1 GHz).
uint64_t ex_read_completion_ts(ibv_cq_ex* cq) noexcept { return cq_of(cq)->cur_ts; }
// Wall clock: the stamp moved onto CLOCK_REALTIME by the clocks' current offset.
uint64_t ex_read_completion_wallclock_ns(ibv_cq_ex* cq) noexcept {
  timespec real, mono;
  clock_gettime(CLOCK_REALTIME, &real);
  clock_gettime(CLOCK_MONOTONIC, &mono);
  const int64_t offset = (int64_t(real.tv_sec) - int64_t(mono.tv_sec)) * 1000000000 +
                         (int64_t(real.tv_nsec) - int64_t(mono.tv_nsec));
  return cq_of(cq)->cur_ts + uint64_t(offset);
}
// Only after a start_poll that returned a completion (the verbs contract):
// the program leaves with completions.
void ex_end_poll(ibv_cq_ex* cq) noexcept {
  Cq* c = cq_of(cq);
  c->dev->app_took_completions(!c->cur_news);
}
ibv_wc_opcode ex_read_opcode(ibv_cq_ex* cq) noexcept {
  return static_cast<ibv_wc_opcode>(cq_of(cq)->cur.opcode);
}
uint32_t ex_read_vendor_err(ibv_cq_ex*) noexcept { return 0; }
uint32_t ex_read_byte_len(ibv_cq_ex* cq) noexcept { return cq_of(cq)->cur.byte_len; }
__be32 ex_read_imm_data(ibv_cq_ex* cq) noexcept { return __be32(cq_of(cq)->cur.imm_or_inv); }
uint32_t ex_read_qp_num(ibv_cq_ex* cq) noexcept { return cq_of(cq)->cur.qp_num; }
uint32_t ex_read_src_qp(ibv_cq_ex* cq) noexcept { return cq_of(cq)->cur.src_qp; }
unsigned int ex_read_wc_flags(ibv_cq_ex* cq) noexcept { return cq_of(cq)->cur.wc_flags; }
uint32_t ex_read_slid(ibv_cq_ex*) noexcept { return 0; }
uint8_t ex_read_sl(ibv_cq_ex*) noexcept { return 0; }
uint8_t ex_read_dlid_path_bits(ibv_cq_ex*) noexcept { return 0; }
uint64_t ex_read_zero64(ibv_cq_ex*) noexcept { return 0; }
uint16_t ex_read_cvlan(ibv_cq_ex*) noexcept { return 0; }
uint32_t ex_read_flow_tag(ibv_cq_ex*) noexcept { return 0; }
void ex_read_tm_info(ibv_cq_ex*, ibv_wc_tm_info* info) noexcept {
  std::memset(info, 0, sizeof(*info));
}

ibv_cq_ex* create_cq(ibv_context* ctx, int cqe, void* cq_context, ibv_comp_channel* channel,
                     int comp_vector, uint64_t wc_flags) {
  Context* c = ctx_of(ctx);
  if (cqe < 1 || uint32_t(cqe) > c->dev->attr().max_cqe) {
    return refuse_null("ibv_create_cq", EINVAL, "cqe out of [1, max_cqe]");
  }
  if (comp_vector < 0 || comp_vector >= ctx->num_comp_vectors) {
    return refuse_null("ibv_create_cq", EINVAL, "comp_vector must be 0 (num_comp_vectors is 1)");
  }
  if (channel != nullptr && ctx_of(channel->context)->dev != c->dev) {
    return refuse_null("ibv_create_cq", EINVAL, "completion channel of another device");
  }
  auto ncq = c->dev->create_cq(uint32_t(cqe));
  if (!ncq) return fail_null<ibv_cq_ex>("ibv_create_cq", ncq.status());
  const bool stamped = (wc_flags & (uint64_t(IBV_WC_EX_WITH_COMPLETION_TIMESTAMP) |
                                    uint64_t(IBV_WC_EX_WITH_COMPLETION_TIMESTAMP_WALLCLOCK))) != 0;
  if (stamped) {
    const Status st = c->dev->enable_cq_timestamps(ncq.value());
    if (!st) {
      (void)c->dev->destroy_cq(ncq.value());
      return fail_null<ibv_cq_ex>("ibv_create_cq_ex", st);
    }
  }
  auto* q = new Cq;
  std::memset(&q->cq, 0, sizeof(q->cq));
  q->ncq = ncq.value();
  q->dev = c->dev;
  q->slot = c->slot;
  q->wc_flags = wc_flags;
  if (channel != nullptr) {
    auto* ch = reinterpret_cast<Channel*>(channel);
    std::lock_guard<std::mutex> lock(ch->mu);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = q;
    if (epoll_ctl(channel->fd, EPOLL_CTL_ADD, q->ncq->event_fd(), &ev) != 0) {
      const int err = errno;
      (void)c->dev->destroy_cq(q->ncq);
      delete q;
      return fail_errno(err);
    }
    pthread_mutex_lock(&channel->context->mutex);
    ++channel->refcnt;
    pthread_mutex_unlock(&channel->context->mutex);
  }
  ibv_cq_ex& x = q->cq;
  x.context = ctx;
  x.channel = channel;
  x.cq_context = cq_context;
  x.handle = q->ncq->event_fd();
  x.cqe = int(q->ncq->capacity());
  pthread_mutex_init(&x.mutex, nullptr);
  pthread_cond_init(&x.cond, nullptr);
  x.start_poll = stamped ? ex_start_poll_timestamped : ex_start_poll;
  x.next_poll = stamped ? ex_next_poll_timestamped : ex_next_poll;
  x.end_poll = ex_end_poll;
  x.read_opcode = ex_read_opcode;
  x.read_vendor_err = ex_read_vendor_err;
  x.read_byte_len = ex_read_byte_len;
  x.read_imm_data = ex_read_imm_data;
  x.read_qp_num = ex_read_qp_num;
  x.read_src_qp = ex_read_src_qp;
  x.read_wc_flags = ex_read_wc_flags;
  x.read_slid = ex_read_slid;
  x.read_sl = ex_read_sl;
  x.read_dlid_path_bits = ex_read_dlid_path_bits;
  x.read_completion_ts = stamped ? ex_read_completion_ts : ex_read_zero64;
  x.read_cvlan = ex_read_cvlan;
  x.read_flow_tag = ex_read_flow_tag;
  x.read_tm_info = ex_read_tm_info;
  x.read_completion_wallclock_ns = stamped ? ex_read_completion_wallclock_ns : ex_read_zero64;
  {
    std::lock_guard<std::mutex> lock(c->slot->mu);
    c->slot->cqs[q->ncq] = q;
  }
  return &q->cq;
}

int destroy_cq(ibv_cq* cq) {
  Cq* q = cq_of(cq);
  auto* ch = reinterpret_cast<Channel*>(cq->channel);
  if (ch != nullptr) {
    // Take the CQ out of the channel first (no reader may be inside its fd),
    // and put it back if the engine refuses to destroy it.
    std::lock_guard<std::mutex> lock(ch->mu);
    epoll_ctl(ch->ch.fd, EPOLL_CTL_DEL, q->ncq->event_fd(), nullptr);
    Status st = q->dev->destroy_cq(q->ncq);
    if (!st) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.ptr = q;
      epoll_ctl(ch->ch.fd, EPOLL_CTL_ADD, q->ncq->event_fd(), &ev);
      return fail("ibv_destroy_cq", st);
    }
    ch->pending.erase(std::remove(ch->pending.begin(), ch->pending.end(), q), ch->pending.end());
    pthread_mutex_lock(&ch->ch.context->mutex);
    --ch->ch.refcnt;
    pthread_mutex_unlock(&ch->ch.context->mutex);
  } else {
    Status st = q->dev->destroy_cq(q->ncq);
    if (!st) return fail("ibv_destroy_cq", st);
  }
  {
    std::lock_guard<std::mutex> lock(q->slot->mu);
    q->slot->cqs.erase(q->ncq);
  }
  pthread_mutex_destroy(&cq->mutex);
  pthread_cond_destroy(&cq->cond);
  delete q;
  return 0;
}

int resize_cq(ibv_cq* cq, int cqe) {
  Cq* q = cq_of(cq);
  if (cqe < 1 || uint32_t(cqe) > q->dev->attr().max_cqe) return EINVAL;
  const Status st = q->dev->resize_cq(q->ncq, uint32_t(cqe));
  if (!st) return fail("ibv_resize_cq", st);
  cq->cqe = int(q->ncq->capacity());
  return 0;
}

// One event of a CQ whose fd was read earlier (channel mu held).
Cq* take_pending(Channel* ch) {
  if (ch->pending.empty()) return nullptr;
  Cq* q = ch->pending.front();
  if (--q->extra_events == 0) ch->pending.erase(ch->pending.begin());
  return q;
}

}  // namespace

int wait_readable(int epfd) {
  // The restartable signals, looked up once: at the first blocking wait the
  // ports (and their PMDs' handlers) are set up.
  static const sigset_t restartable = [] {
    sigset_t set;
    sigemptyset(&set);
    for (int sig = 1; sig <= SIGRTMAX; ++sig) {
      struct sigaction sa {};
      if (sig == SIGKILL || sig == SIGSTOP || sigaction(sig, nullptr, &sa) != 0) continue;
      const bool handler = (sa.sa_flags & SA_SIGINFO) != 0 ||
                           (sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN);
      if (handler && (sa.sa_flags & SA_RESTART) != 0) sigaddset(&set, sig);
    }
    return set;
  }();
  sigset_t mask;
  pthread_sigmask(SIG_SETMASK, nullptr, &mask);
  sigorset(&mask, &mask, &restartable);
  epoll_event ev{};
  return epoll_pwait(epfd, &ev, 1, -1, &mask) < 0 ? -1 : 0;
}

namespace {

int get_cq_event(ibv_comp_channel* channel, ibv_cq** cq, void** cq_context) {
  auto* ch = reinterpret_cast<Channel*>(channel);
  for (;;) {
    Cq* got = nullptr;
    {
      std::lock_guard<std::mutex> lock(ch->mu);
      got = take_pending(ch);
      while (got == nullptr) {
        epoll_event ev{};
        if (epoll_wait(channel->fd, &ev, 1, 0) != 1) break;
        Cq* q = static_cast<Cq*>(ev.data.ptr);
        uint64_t n = 0;
        if (read(q->ncq->event_fd(), &n, sizeof(n)) != ssize_t(sizeof(n)) || n == 0) break;
        if (n > 1) {
          // Several events fired before this read: each is returned once.
          if (q->extra_events == 0) ch->pending.push_back(q);
          q->extra_events += uint32_t(n - 1);
        }
        got = q;
      }
    }
    if (got != nullptr) {
      *cq = ibv_cq_ex_to_cq(&got->cq);
      *cq_context = got->cq.cq_context;
      return 0;
    }
    if (fd_nonblocking(channel->fd)) {
      errno = EAGAIN;
      return -1;
    }
    if (wait_readable(channel->fd) < 0) return -1;
  }
}

}  // namespace

int op_poll_cq(ibv_cq* cq, int num_entries, ibv_wc* wc) noexcept {
  Cq* q = cq_of(cq);
  int total = 0;
  bool progressed = false;
  bool news = false;
  nic::Cqe buf[kPollBatch];
  while (total < num_entries) {
    const int want = std::min(num_entries - total, kPollBatch);
    const int got = q->ncq->poll(buf, want);
    for (int i = 0; i < got; ++i) {
      to_wc(buf[i], &wc[total + i]);
      news |= !own_request_done(buf[i]);
    }
    total += got;
    if (got == want) continue;
    if (total > 0 || progressed) break;
    // Empty: run the engine once here (run-to-completion) rather than wait
    // for the engine thread; latency of a busy-polling program is then one poll.
    q->dev->progress();
    progressed = true;
  }
  // Leaving with completions, the program may wait by polling memory next
  // (ib_write_lat): the peer's next WRITE is looked for a little longer here,
  // and one arriving later must wake the engine thread.
  if (total > 0) q->dev->app_took_completions(!news);
  return total;
}

int op_req_notify_cq(ibv_cq* cq, int flags) noexcept {
  if (flags & ~(kCqSolicitedMask | kCqReportMissedEvents)) return EINVAL;
  // libibverbs passes 0/1; kernel-style callers NEXT_COMP (2), maybe with
  // REPORT_MISSED_EVENTS (4). Only SOLICITED alone asks for solicited events.
  const bool solicited = (flags & kCqSolicitedMask) == kCqSolicited;
  const bool pending = cq_of(cq)->ncq->arm(solicited);
  cq_of(cq)->dev->app_waits_for_event();
  return (flags & kCqReportMissedEvents) && pending ? 1 : 0;
}

ibv_cq_ex* op_create_cq_ex(ibv_context* ctx, ibv_cq_init_attr_ex* attr) noexcept {
  return guard(
      [&]() -> ibv_cq_ex* {
        if (attr->comp_mask & ~uint32_t(IBV_CQ_INIT_ATTR_MASK_FLAGS | IBV_CQ_INIT_ATTR_MASK_PD)) {
          return fail_errno(EINVAL);
        }
        if (attr->comp_mask & IBV_CQ_INIT_ATTR_MASK_PD) return fail_errno(EOPNOTSUPP);
        if ((attr->comp_mask & IBV_CQ_INIT_ATTR_MASK_FLAGS) &&
            (attr->flags & ~uint32_t(IBV_CREATE_CQ_ATTR_SINGLE_THREADED))) {
          return fail_errno(EOPNOTSUPP);
        }
        // The standard fields, and completion timestamps (nanoseconds of the
        // engine's clock, also as wall clock); not cvlan, flow tag, TM info.
        constexpr uint64_t kSupported = uint64_t(IBV_WC_STANDARD_FLAGS) |
                                        uint64_t(IBV_WC_EX_WITH_COMPLETION_TIMESTAMP) |
                                        uint64_t(IBV_WC_EX_WITH_COMPLETION_TIMESTAMP_WALLCLOCK);
        if (attr->wc_flags & ~kSupported) return fail_errno(EOPNOTSUPP);
        if (attr->cqe > uint32_t(std::numeric_limits<int>::max())) return fail_errno(EINVAL);
        return create_cq(ctx, int(attr->cqe), attr->cq_context, attr->channel,
                         int(attr->comp_vector), attr->wc_flags);
      },
      static_cast<ibv_cq_ex*>(nullptr));
}

}  // namespace droce::verbs

using namespace droce::verbs;  // NOLINT: the C entry points below

extern "C" {

ibv_comp_channel* ibv_create_comp_channel(ibv_context* context) {
  return guard(
      [&]() -> ibv_comp_channel* {
        const int fd = epoll_create1(EPOLL_CLOEXEC);
        if (fd < 0) return nullptr;
        auto* ch = new Channel;
        ch->ch.context = context;
        ch->ch.fd = fd;
        ch->ch.refcnt = 0;
        return &ch->ch;
      },
      static_cast<ibv_comp_channel*>(nullptr));
}

int ibv_destroy_comp_channel(ibv_comp_channel* channel) {
  ibv_context* ctx = channel->context;
  pthread_mutex_lock(&ctx->mutex);
  if (channel->refcnt != 0) {
    pthread_mutex_unlock(&ctx->mutex);
    return EBUSY;  // CQs still use it
  }
  pthread_mutex_unlock(&ctx->mutex);
  close(channel->fd);
  delete reinterpret_cast<Channel*>(channel);
  return 0;
}

ibv_cq* ibv_create_cq(ibv_context* context, int cqe, void* cq_context, ibv_comp_channel* channel,
                      int comp_vector) {
  return guard(
      [&] {
        ibv_cq_ex* cq = create_cq(context, cqe, cq_context, channel, comp_vector, 0);
        return cq != nullptr ? ibv_cq_ex_to_cq(cq) : nullptr;
      },
      static_cast<ibv_cq*>(nullptr));
}

int ibv_resize_cq(ibv_cq* cq, int cqe) {
  return guard([&] { return resize_cq(cq, cqe); }, ENOMEM);
}

int ibv_destroy_cq(ibv_cq* cq) {
  return guard([&] { return destroy_cq(cq); }, ENOMEM);
}

int ibv_get_cq_event(ibv_comp_channel* channel, ibv_cq** cq, void** cq_context) {
  return guard([&] { return get_cq_event(channel, cq, cq_context); }, -1);
}

void ibv_ack_cq_events(ibv_cq* cq, unsigned int nevents) {
  pthread_mutex_lock(&cq->mutex);
  cq->comp_events_completed += nevents;
  pthread_cond_signal(&cq->cond);
  pthread_mutex_unlock(&cq->mutex);
}

}  // extern "C"
