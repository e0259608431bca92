// Queue pairs and shared receive queues (IBTA vol. 1, 11.2.4-11.2.5, 10.2.9
// and 11.4.1): create/modify/query/destroy, posting work requests into the
// engine's rings, and the ibv_qp_ex work-request builder API.
#include <algorithm>
#include <bit>
#include <cstring>

#include "verbs/internal.h"

namespace droce::verbs {
namespace {

static_assert(int(IBV_QPT_RC) == int(nic::QpType::kRc));
static_assert(int(IBV_QPT_UC) == int(nic::QpType::kUc));
static_assert(int(IBV_QPT_UD) == int(nic::QpType::kUd));
static_assert(int(IBV_QPS_RESET) == int(nic::QpState::kReset));
static_assert(int(IBV_QPS_INIT) == int(nic::QpState::kInit));
static_assert(int(IBV_QPS_RTR) == int(nic::QpState::kRtr));
static_assert(int(IBV_QPS_RTS) == int(nic::QpState::kRts));
static_assert(int(IBV_QPS_SQD) == int(nic::QpState::kSqd));
static_assert(int(IBV_QPS_SQE) == int(nic::QpState::kSqe));
static_assert(int(IBV_QPS_ERR) == int(nic::QpState::kErr));
static_assert(uint32_t(IBV_QP_STATE) == uint32_t(nic::QpAttr::kState));
static_assert(uint32_t(IBV_QP_CUR_STATE) == uint32_t(nic::QpAttr::kCurState));
static_assert(uint32_t(IBV_QP_EN_SQD_ASYNC_NOTIFY) == uint32_t(nic::QpAttr::kEnSqdAsyncNotify));
static_assert(uint32_t(IBV_QP_ACCESS_FLAGS) == uint32_t(nic::QpAttr::kAccessFlags));
static_assert(uint32_t(IBV_QP_PKEY_INDEX) == uint32_t(nic::QpAttr::kPkeyIndex));
static_assert(uint32_t(IBV_QP_PORT) == uint32_t(nic::QpAttr::kPort));
static_assert(uint32_t(IBV_QP_QKEY) == uint32_t(nic::QpAttr::kQkey));
static_assert(uint32_t(IBV_QP_AV) == uint32_t(nic::QpAttr::kAv));
static_assert(uint32_t(IBV_QP_PATH_MTU) == uint32_t(nic::QpAttr::kPathMtu));
static_assert(uint32_t(IBV_QP_TIMEOUT) == uint32_t(nic::QpAttr::kTimeout));
static_assert(uint32_t(IBV_QP_RETRY_CNT) == uint32_t(nic::QpAttr::kRetryCnt));
static_assert(uint32_t(IBV_QP_RNR_RETRY) == uint32_t(nic::QpAttr::kRnrRetry));
static_assert(uint32_t(IBV_QP_RQ_PSN) == uint32_t(nic::QpAttr::kRqPsn));
static_assert(uint32_t(IBV_QP_MAX_QP_RD_ATOMIC) == uint32_t(nic::QpAttr::kMaxQpRdAtomic));
static_assert(uint32_t(IBV_QP_ALT_PATH) == uint32_t(nic::QpAttr::kAltPath));
static_assert(uint32_t(IBV_QP_MIN_RNR_TIMER) == uint32_t(nic::QpAttr::kMinRnrTimer));
static_assert(uint32_t(IBV_QP_SQ_PSN) == uint32_t(nic::QpAttr::kSqPsn));
static_assert(uint32_t(IBV_QP_MAX_DEST_RD_ATOMIC) == uint32_t(nic::QpAttr::kMaxDestRdAtomic));
static_assert(uint32_t(IBV_QP_PATH_MIG_STATE) == uint32_t(nic::QpAttr::kPathMigState));
static_assert(uint32_t(IBV_QP_CAP) == uint32_t(nic::QpAttr::kCap));
static_assert(uint32_t(IBV_QP_DEST_QPN) == uint32_t(nic::QpAttr::kDestQpn));
static_assert(uint32_t(IBV_QP_RATE_LIMIT) == uint32_t(nic::QpAttr::kRateLimit));
static_assert(int(IBV_WR_RDMA_WRITE) == int(nic::WrOpcode::kRdmaWrite));
static_assert(int(IBV_WR_RDMA_WRITE_WITH_IMM) == int(nic::WrOpcode::kRdmaWriteImm));
static_assert(int(IBV_WR_SEND) == int(nic::WrOpcode::kSend));
static_assert(int(IBV_WR_SEND_WITH_IMM) == int(nic::WrOpcode::kSendImm));
static_assert(int(IBV_WR_RDMA_READ) == int(nic::WrOpcode::kRdmaRead));
static_assert(int(IBV_WR_ATOMIC_CMP_AND_SWP) == int(nic::WrOpcode::kCmpSwap));
static_assert(int(IBV_WR_ATOMIC_FETCH_AND_ADD) == int(nic::WrOpcode::kFetchAdd));
static_assert(int(IBV_WR_LOCAL_INV) == int(nic::WrOpcode::kLocalInv));
static_assert(int(IBV_WR_BIND_MW) == int(nic::WrOpcode::kBindMw));
static_assert(int(IBV_WR_SEND_WITH_INV) == int(nic::WrOpcode::kSendInv));
static_assert(int(IBV_WR_ATOMIC_WRITE) == int(nic::WrOpcode::kAtomicWrite));
static_assert(int(IBV_WC_ATOMIC_WRITE) == int(nic::WcOpcode::kAtomicWrite));
static_assert(unsigned(IBV_SEND_FENCE) == unsigned(nic::kSendFence));
static_assert(unsigned(IBV_SEND_SIGNALED) == unsigned(nic::kSendSignaled));
static_assert(unsigned(IBV_SEND_SOLICITED) == unsigned(nic::kSendSolicited));
static_assert(unsigned(IBV_SEND_INLINE) == unsigned(nic::kSendInline));
static_assert(sizeof(ibv_sge) == sizeof(nic::Sge) &&
              offsetof(ibv_sge, addr) == offsetof(nic::Sge, addr) &&
              offsetof(ibv_sge, length) == offsetof(nic::Sge, length) &&
              offsetof(ibv_sge, lkey) == offsetof(nic::Sge, lkey));

constexpr unsigned kSendFlagsEngine =
    IBV_SEND_FENCE | IBV_SEND_SIGNALED | IBV_SEND_SOLICITED | IBV_SEND_INLINE;
constexpr uint32_t kQpAttrKnown = (uint32_t(IBV_QP_RATE_LIMIT) << 1) - 1;
constexpr uint64_t kSendOpsSupported =
    IBV_QP_EX_WITH_RDMA_WRITE | IBV_QP_EX_WITH_RDMA_WRITE_WITH_IMM | IBV_QP_EX_WITH_SEND |
    IBV_QP_EX_WITH_SEND_WITH_IMM | IBV_QP_EX_WITH_RDMA_READ | IBV_QP_EX_WITH_ATOMIC_CMP_AND_SWP |
    IBV_QP_EX_WITH_ATOMIC_FETCH_AND_ADD | IBV_QP_EX_WITH_LOCAL_INV | IBV_QP_EX_WITH_SEND_WITH_INV |
    IBV_QP_EX_WITH_ATOMIC_WRITE;
constexpr uint32_t kMaxInlineStack = 1024;  // above any max_inline_data the engine grants

bool valid_qp_type(int t) { return t == IBV_QPT_RC || t == IBV_QPT_UC || t == IBV_QPT_UD; }

Cq* engine_cq(ibv_cq* cq) { return cq != nullptr ? cq_of(cq) : nullptr; }

// ---- posting ----

// IBTA A19 ATOMIC_WRITE through ibv_post_send: the 8 bytes are those of the
// one 8-byte SGE (verbs.h: "from given sg_list"), read now, key-checked (or
// straight from the address with IBV_SEND_INLINE), as ibv_wr_atomic_write
// copies its value at post time.
int post_atomic_write(Qp* q, const ibv_send_wr* wr) {
  if (wr->num_sge != 1 || wr->sg_list == nullptr || wr->sg_list[0].length != 8) return EINVAL;
  nic::SendWqe w{};
  w.wr_id = wr->wr_id;
  w.opcode = nic::WrOpcode::kAtomicWrite;
  w.flags = uint8_t(wr->send_flags & kSendFlagsEngine & ~unsigned(IBV_SEND_INLINE));
  w.remote_addr = wr->wr.rdma.remote_addr;
  w.rkey = wr->wr.rdma.rkey;
  const ibv_sge& s = wr->sg_list[0];
  if (wr->send_flags & IBV_SEND_INLINE) {
    std::memcpy(&w.swap, reinterpret_cast<const void*>(s.addr), sizeof(w.swap));
  } else {
    const Status st = q->dev->read_local(s.lkey, q->nqp->pd(), s.addr, &w.swap, sizeof(w.swap));
    if (!st) return refuse("ibv_post_send: ATOMIC_WRITE source", EINVAL, st.message().c_str());
  }
  return q->nqp->post_send(w, nullptr, nullptr);
}

int post_one_send(Qp* q, const ibv_send_wr* wr) {
  if (wr->opcode == IBV_WR_ATOMIC_WRITE) return post_atomic_write(q, wr);
  if (unsigned(wr->opcode) > unsigned(IBV_WR_SEND_WITH_INV) || wr->opcode == IBV_WR_BIND_MW) {
    // TSO, driver opcodes, memory windows; FLUSH (14) exists only as rdma-core
    // v45's ibv_wr_flush.
    return EINVAL;
  }
  if (wr->num_sge < 0) return EINVAL;
  nic::SendWqe w{};
  w.wr_id = wr->wr_id;
  w.opcode = static_cast<nic::WrOpcode>(wr->opcode);
  w.flags = uint8_t(wr->send_flags & kSendFlagsEngine);
  w.num_sge = uint16_t(std::min(wr->num_sge, 0xFFFF));
  uint32_t raw;
  std::memcpy(&raw, &wr->imm_data, sizeof(raw));  // immediate (network order) or rkey to invalidate
  w.imm_or_inv = raw;
  switch (wr->opcode) {
    case IBV_WR_ATOMIC_CMP_AND_SWP:
    case IBV_WR_ATOMIC_FETCH_AND_ADD:
      w.remote_addr = wr->wr.atomic.remote_addr;
      w.rkey = wr->wr.atomic.rkey;
      w.compare_add = wr->wr.atomic.compare_add;
      w.swap = wr->wr.atomic.swap;
      break;
    case IBV_WR_RDMA_WRITE:
    case IBV_WR_RDMA_WRITE_WITH_IMM:
    case IBV_WR_RDMA_READ:
      w.remote_addr = wr->wr.rdma.remote_addr;
      w.rkey = wr->wr.rdma.rkey;
      break;
    default:
      break;
  }
  if (q->qpx.qp_base.qp_type == IBV_QPT_UD) {
    if (wr->wr.ud.ah == nullptr) return EINVAL;
    w.ah = reinterpret_cast<Ah*>(wr->wr.ud.ah)->handle;
    w.remote_qpn = wr->wr.ud.remote_qpn;
    w.remote_qkey = wr->wr.ud.remote_qkey;
  }
  // As rxe: the inline flag only applies to operations that carry data out.
  const bool inline_data = (wr->send_flags & IBV_SEND_INLINE) && wr->opcode != IBV_WR_RDMA_READ &&
                           wr->opcode != IBV_WR_ATOMIC_CMP_AND_SWP &&
                           wr->opcode != IBV_WR_ATOMIC_FETCH_AND_ADD &&
                           wr->opcode != IBV_WR_LOCAL_INV;
  if (!inline_data) w.flags &= uint8_t(~nic::kSendInline);
  if (inline_data) {
    uint8_t buf[kMaxInlineStack];
    uint64_t total = 0;
    for (int i = 0; i < wr->num_sge; ++i) {
      const ibv_sge& s = wr->sg_list[i];
      if (total + s.length > q->max_inline || total + s.length > sizeof(buf)) return EINVAL;
      if (s.length > 0) std::memcpy(buf + total, reinterpret_cast<const void*>(s.addr), s.length);
      total += s.length;
    }
    w.num_sge = 0;
    w.length = uint32_t(total);
    return q->nqp->post_send(w, nullptr, buf);
  }
  if (uint32_t(wr->num_sge) > q->max_send_sge) return EINVAL;
  return q->nqp->post_send(w, reinterpret_cast<const nic::Sge*>(wr->sg_list), nullptr);
}

// ---- ibv_qp_ex builders ----

nic::SendWqe* wr_begin(ibv_qp_ex* x, nic::WrOpcode op) {
  Qp* q = qp_of(x);
  WrBatch& b = q->batch;
  if (b.error != 0) return nullptr;
  if (b.count == b.capacity) {
    b.error = ENOMEM;
    return nullptr;
  }
  nic::SendWqe* w = b.at(b.count++);
  std::memset(w, 0, sizeof(*w));
  w->wr_id = x->wr_id;
  w->opcode = op;
  w->flags = uint8_t(x->wr_flags & kSendFlagsEngine & ~unsigned(IBV_SEND_INLINE));
  return w;
}

nic::SendWqe* wr_current(ibv_qp_ex* x) {
  WrBatch& b = qp_of(x)->batch;
  if (b.error != 0) return nullptr;
  if (b.count == 0) {
    b.error = EINVAL;  // a setter before any operation
    return nullptr;
  }
  return b.at(b.count - 1);
}

void wr_fail(ibv_qp_ex* x, int err) {
  if (qp_of(x)->batch.error == 0) qp_of(x)->batch.error = err;
}

void wr_atomic_cmp_swp(ibv_qp_ex* x, uint32_t rkey, uint64_t addr, uint64_t compare,
                       uint64_t swap) noexcept {
  if (nic::SendWqe* w = wr_begin(x, nic::WrOpcode::kCmpSwap)) {
    w->rkey = rkey, w->remote_addr = addr, w->compare_add = compare, w->swap = swap;
  }
}
void wr_atomic_fetch_add(ibv_qp_ex* x, uint32_t rkey, uint64_t addr, uint64_t add) noexcept {
  if (nic::SendWqe* w = wr_begin(x, nic::WrOpcode::kFetchAdd)) {
    w->rkey = rkey, w->remote_addr = addr, w->compare_add = add;
  }
}
void wr_bind_mw(ibv_qp_ex* x, ibv_mw*, uint32_t, const ibv_mw_bind_info*) noexcept {
  wr_fail(x, EOPNOTSUPP);
}
void wr_local_inv(ibv_qp_ex* x, uint32_t rkey) noexcept {
  if (nic::SendWqe* w = wr_begin(x, nic::WrOpcode::kLocalInv)) w->imm_or_inv = rkey;
}
void wr_rdma_read(ibv_qp_ex* x, uint32_t rkey, uint64_t addr) noexcept {
  if (nic::SendWqe* w = wr_begin(x, nic::WrOpcode::kRdmaRead))
    w->rkey = rkey, w->remote_addr = addr;
}
void wr_rdma_write(ibv_qp_ex* x, uint32_t rkey, uint64_t addr) noexcept {
  if (nic::SendWqe* w = wr_begin(x, nic::WrOpcode::kRdmaWrite))
    w->rkey = rkey, w->remote_addr = addr;
}
void wr_rdma_write_imm(ibv_qp_ex* x, uint32_t rkey, uint64_t addr, __be32 imm) noexcept {
  if (nic::SendWqe* w = wr_begin(x, nic::WrOpcode::kRdmaWriteImm)) {
    w->rkey = rkey, w->remote_addr = addr;
    std::memcpy(&w->imm_or_inv, &imm, 4);
  }
}
void wr_send(ibv_qp_ex* x) noexcept { wr_begin(x, nic::WrOpcode::kSend); }
void wr_send_imm(ibv_qp_ex* x, __be32 imm) noexcept {
  if (nic::SendWqe* w = wr_begin(x, nic::WrOpcode::kSendImm)) std::memcpy(&w->imm_or_inv, &imm, 4);
}
void wr_send_inv(ibv_qp_ex* x, uint32_t rkey) noexcept {
  if (nic::SendWqe* w = wr_begin(x, nic::WrOpcode::kSendInv)) w->imm_or_inv = rkey;
}
void wr_send_tso(ibv_qp_ex* x, void*, uint16_t, uint16_t) noexcept { wr_fail(x, EOPNOTSUPP); }
void wr_set_ud_addr(ibv_qp_ex* x, ibv_ah* ah, uint32_t qpn, uint32_t qkey) noexcept {
  if (nic::SendWqe* w = wr_current(x)) {
    if (ah == nullptr) return wr_fail(x, EINVAL);
    w->ah = reinterpret_cast<Ah*>(ah)->handle, w->remote_qpn = qpn, w->remote_qkey = qkey;
  }
}
void wr_set_xrc_srqn(ibv_qp_ex* x, uint32_t) noexcept { wr_fail(x, EOPNOTSUPP); }
void wr_set_inline_data_list(ibv_qp_ex* x, size_t n, const ibv_data_buf* bufs) noexcept {
  nic::SendWqe* w = wr_current(x);
  if (w == nullptr) return;
  Qp* q = qp_of(x);
  uint64_t total = 0;
  for (size_t i = 0; i < n; ++i) {
    if (total + bufs[i].length > q->max_inline) return wr_fail(x, EINVAL);
    if (bufs[i].length > 0) std::memcpy(w->inline_data() + total, bufs[i].addr, bufs[i].length);
    total += bufs[i].length;
  }
  w->flags |= nic::kSendInline;
  w->num_sge = 0;
  w->length = uint32_t(total);
}
void wr_set_inline_data(ibv_qp_ex* x, void* addr, size_t length) noexcept {
  const ibv_data_buf b{addr, length};
  wr_set_inline_data_list(x, 1, &b);
}
void wr_set_sge_list(ibv_qp_ex* x, size_t n, const ibv_sge* sges) noexcept {
  nic::SendWqe* w = wr_current(x);
  if (w == nullptr) return;
  if (n > qp_of(x)->max_send_sge) return wr_fail(x, EINVAL);
  std::memcpy(w->sges(), sges, n * sizeof(ibv_sge));
  w->flags &= uint8_t(~nic::kSendInline);
  w->num_sge = uint16_t(n);
}
void wr_set_sge(ibv_qp_ex* x, uint32_t lkey, uint64_t addr, uint32_t length) noexcept {
  const ibv_sge s{addr, length, lkey};
  wr_set_sge_list(x, 1, &s);
}
void wr_start(ibv_qp_ex* x) noexcept {
  qp_of(x)->batch.count = 0;
  qp_of(x)->batch.error = 0;
}
int wr_complete(ibv_qp_ex* x) noexcept {
  Qp* q = qp_of(x);
  WrBatch& b = q->batch;
  int err = b.error;
  for (uint32_t i = 0; i < b.count && err == 0; ++i) {
    const nic::SendWqe* w = b.at(i);
    err = q->nqp->post_send(*w, w->sges(), w->inline_data());
  }
  b.count = 0;
  b.error = 0;
  return err;
}
void wr_abort(ibv_qp_ex* x) noexcept { wr_start(x); }
// IBTA A19 ATOMIC_WRITE: the 8 bytes at atomic_wr are copied into the WQE now.
void wr_atomic_write(ibv_qp_ex* x, uint32_t rkey, uint64_t addr, const void* atomic_wr) noexcept {
  if (atomic_wr == nullptr) return wr_fail(x, EINVAL);
  if (nic::SendWqe* w = wr_begin(x, nic::WrOpcode::kAtomicWrite)) {
    w->rkey = rkey, w->remote_addr = addr;
    std::memcpy(&w->swap, atomic_wr, sizeof(w->swap));
  }
}

void install_wr_api(Qp* q) {
  ibv_qp_ex& x = q->qpx;
  x.wr_atomic_cmp_swp = wr_atomic_cmp_swp;
  x.wr_atomic_fetch_add = wr_atomic_fetch_add;
  x.wr_bind_mw = wr_bind_mw;
  x.wr_local_inv = wr_local_inv;
  x.wr_rdma_read = wr_rdma_read;
  x.wr_rdma_write = wr_rdma_write;
  x.wr_rdma_write_imm = wr_rdma_write_imm;
  x.wr_send = wr_send;
  x.wr_send_imm = wr_send_imm;
  x.wr_send_inv = wr_send_inv;
  x.wr_send_tso = wr_send_tso;
  x.wr_set_ud_addr = wr_set_ud_addr;
  x.wr_set_xrc_srqn = wr_set_xrc_srqn;
  x.wr_set_inline_data = wr_set_inline_data;
  x.wr_set_inline_data_list = wr_set_inline_data_list;
  x.wr_set_sge = wr_set_sge;
  x.wr_set_sge_list = wr_set_sge_list;
  x.wr_start = wr_start;
  x.wr_complete = wr_complete;
  x.wr_abort = wr_abort;
  x.wr_atomic_write = wr_atomic_write;
}

// ---- QP commands ----

ibv_qp* create_qp(ibv_pd* pd, ibv_qp_init_attr* init, uint64_t send_ops) {
  if (!valid_qp_type(init->qp_type)) {
    const bool known = init->qp_type == IBV_QPT_RAW_PACKET || init->qp_type == IBV_QPT_XRC_SEND ||
                       init->qp_type == IBV_QPT_XRC_RECV || init->qp_type == IBV_QPT_DRIVER;
    return refuse_null("ibv_create_qp", known ? EOPNOTSUPP : EINVAL,
                       "QP type not supported (RC, UC and UD are)");
  }
  if (init->send_cq == nullptr || init->recv_cq == nullptr) {
    return refuse_null("ibv_create_qp", EINVAL, "a QP needs a send and a receive CQ");
  }
  Context* c = ctx_of(pd->context);
  if (ctx_of(init->send_cq->context)->dev != c->dev ||
      ctx_of(init->recv_cq->context)->dev != c->dev ||
      (init->srq != nullptr && ctx_of(init->srq->context)->dev != c->dev)) {
    return fail_errno(EINVAL);
  }
  if (send_ops & ~kSendOpsSupported) return fail_errno(EOPNOTSUPP);
  nic::QpInitAttr in;
  in.type = static_cast<nic::QpType>(init->qp_type);
  in.pd = pd_of(pd)->handle;
  in.send_cq = engine_cq(init->send_cq)->ncq;
  in.recv_cq = engine_cq(init->recv_cq)->ncq;
  in.srq = init->srq != nullptr ? srq_of(init->srq)->nsrq : nullptr;
  // rxe accepts empty queues; the engine's rings need one slot.
  in.cap.max_send_wr = std::max<uint32_t>(init->cap.max_send_wr, 1);
  in.cap.max_recv_wr = in.srq != nullptr ? 0 : std::max<uint32_t>(init->cap.max_recv_wr, 1);
  in.cap.max_send_sge = init->cap.max_send_sge;
  in.cap.max_recv_sge = init->cap.max_recv_sge;
  in.cap.max_inline_data = init->cap.max_inline_data;
  in.sq_sig_all = init->sq_sig_all != 0;
  auto r = c->dev->create_qp(in);
  if (!r) return fail_null<ibv_qp>("ibv_create_qp", r.status());
  nic::Qp* nqp = r.value();
  const nic::QpCaps caps = c->dev->query_qp(nqp).cap;

  auto* q = new Qp;
  std::memset(&q->qpx, 0, sizeof(q->qpx));
  q->nqp = nqp;
  q->dev = c->dev;
  q->slot = c->slot;
  q->max_send_sge = caps.max_send_sge;
  q->max_inline = std::min(caps.max_inline_data, kMaxInlineStack);
  if (send_ops != 0) {
    q->is_ex = true;
    WrBatch& b = q->batch;
    const uint32_t room = std::max(q->max_send_sge * uint32_t(sizeof(nic::Sge)), q->max_inline);
    b.stride = (uint32_t(sizeof(nic::SendWqe)) + room + 15) & ~15u;
    b.capacity = caps.max_send_wr;
    b.mem.reset(new uint8_t[size_t(b.stride) * b.capacity]);
    install_wr_api(q);
    q->qpx.comp_mask = 0;
  }
  ibv_qp& qp = q->qpx.qp_base;
  qp.context = pd->context;
  qp.qp_context = init->qp_context;
  qp.pd = pd;
  qp.send_cq = init->send_cq;
  qp.recv_cq = init->recv_cq;
  qp.srq = init->srq;
  qp.handle = nqp->qpn();
  qp.qp_num = nqp->qpn();
  qp.state = IBV_QPS_RESET;
  qp.qp_type = init->qp_type;
  pthread_mutex_init(&qp.mutex, nullptr);
  pthread_cond_init(&qp.cond, nullptr);
  init->cap.max_send_wr = caps.max_send_wr;
  init->cap.max_recv_wr = caps.max_recv_wr;
  init->cap.max_send_sge = caps.max_send_sge;
  init->cap.max_recv_sge = caps.max_recv_sge;
  init->cap.max_inline_data = q->max_inline;
  {
    std::lock_guard<std::mutex> lock(c->slot->mu);
    c->slot->qps[nqp->qpn()] = q;
  }
  return &qp;
}

int modify_qp(ibv_qp* qp, ibv_qp_attr* attr, int mask_in) {
  Qp* q = qp_of(qp);
  const uint32_t mask = uint32_t(mask_in);
  if (mask & ~kQpAttrKnown) return refuse("ibv_modify_qp", EOPNOTSUPP, "unknown attr_mask bits");
  nic::QpAttrs a;
  a.state = static_cast<nic::QpState>(attr->qp_state);
  a.cur_state = static_cast<nic::QpState>(attr->cur_qp_state);
  a.en_sqd_async_notify = attr->en_sqd_async_notify != 0;
  a.access = attr->qp_access_flags;
  a.pkey_index = attr->pkey_index;
  a.port_num = attr->port_num;
  a.qkey = attr->qkey;
  if (mask & IBV_QP_AV) {
    const ibv_ah_attr& ah = attr->ah_attr;
    if (!ah.is_global) {
      return refuse("ibv_modify_qp", EINVAL,
                    "the address vector has no GRH (is_global = 0): RoCE reaches the peer by its "
                    "GID; give a GID index (ibv_*_pingpong -g 0)");
    }
    if (ah.port_num != 1) return refuse("ibv_modify_qp", EINVAL, "ah_attr.port_num must be 1");
    std::memcpy(a.av.dgid, ah.grh.dgid.raw, 16);
    a.av.sgid_index = ah.grh.sgid_index;
    a.av.hop_limit = ah.grh.hop_limit;
    a.av.traffic_class = ah.grh.traffic_class;
    a.av.flow_label = ah.grh.flow_label;
    a.av.sl = ah.sl;
    a.av.port_num = ah.port_num;
  }
  if (mask & IBV_QP_PATH_MTU) {
    a.path_mtu = mtu_bytes(attr->path_mtu);
    if (a.path_mtu == 0) return refuse("ibv_modify_qp", EINVAL, "path_mtu is not an enum ibv_mtu");
  }
  a.timeout = attr->timeout;
  a.retry_cnt = attr->retry_cnt;
  a.rnr_retry = attr->rnr_retry;
  a.min_rnr_timer = attr->min_rnr_timer;
  a.rq_psn = attr->rq_psn;
  a.sq_psn = attr->sq_psn;
  a.max_rd_atomic = attr->max_rd_atomic;
  a.max_dest_rd_atomic = attr->max_dest_rd_atomic;
  a.dest_qpn = attr->dest_qp_num;
  if ((mask & IBV_QP_STATE) && unsigned(attr->qp_state) > unsigned(IBV_QPS_ERR)) return EINVAL;
  if ((mask & IBV_QP_CUR_STATE) && unsigned(attr->cur_qp_state) > unsigned(IBV_QPS_ERR))
    return EINVAL;
  Status st = q->dev->modify_qp(q->nqp, a, mask);
  if (!st) return fail("ibv_modify_qp", st);
  return 0;
}

int query_qp(ibv_qp* qp, ibv_qp_attr* attr, ibv_qp_init_attr* init) {
  Qp* q = qp_of(qp);
  const nic::QpAttrs a = q->dev->query_qp(q->nqp);
  std::memset(attr, 0, sizeof(*attr));
  attr->qp_state = static_cast<ibv_qp_state>(a.state);
  attr->cur_qp_state = static_cast<ibv_qp_state>(a.state);  // the real state
  attr->path_mtu = mtu_enum(a.path_mtu);
  attr->path_mig_state = IBV_MIG_MIGRATED;
  attr->qkey = a.qkey;
  attr->rq_psn = a.rq_psn;
  attr->sq_psn = a.sq_psn;
  attr->dest_qp_num = a.dest_qpn;
  attr->qp_access_flags = a.access;
  attr->cap.max_send_wr = a.cap.max_send_wr;
  attr->cap.max_recv_wr = a.cap.max_recv_wr;
  attr->cap.max_send_sge = a.cap.max_send_sge;
  attr->cap.max_recv_sge = a.cap.max_recv_sge;
  attr->cap.max_inline_data = q->max_inline;
  ibv_ah_attr& ah = attr->ah_attr;
  std::memcpy(ah.grh.dgid.raw, a.av.dgid, 16);
  ah.grh.sgid_index = a.av.sgid_index;
  ah.grh.hop_limit = a.av.hop_limit;
  ah.grh.traffic_class = a.av.traffic_class;
  ah.grh.flow_label = a.av.flow_label;
  ah.sl = a.av.sl;
  ah.is_global = qp->qp_type != IBV_QPT_UD ? 1 : 0;
  ah.port_num = a.av.port_num;
  attr->pkey_index = a.pkey_index;
  attr->en_sqd_async_notify = a.en_sqd_async_notify;
  attr->sq_draining = a.sq_draining;
  attr->max_rd_atomic = a.max_rd_atomic;
  attr->max_dest_rd_atomic = a.max_dest_rd_atomic;
  attr->min_rnr_timer = a.min_rnr_timer;
  attr->port_num = a.port_num;
  attr->timeout = a.timeout;
  attr->retry_cnt = a.retry_cnt;
  attr->rnr_retry = a.rnr_retry;
  if (init != nullptr) {
    std::memset(init, 0, sizeof(*init));
    init->qp_context = qp->qp_context;
    init->send_cq = qp->send_cq;
    init->recv_cq = qp->recv_cq;
    init->srq = qp->srq;
    init->cap = attr->cap;
    init->qp_type = qp->qp_type;
    init->sq_sig_all = q->nqp->sq_sig_all() ? 1 : 0;
  }
  return 0;
}

int destroy_qp(ibv_qp* qp) {
  Qp* q = qp_of(qp);
  {
    std::lock_guard<std::mutex> lock(q->slot->mu);
    Status st = q->dev->destroy_qp(q->nqp);
    if (!st) return fail("ibv_destroy_qp", st);
    q->slot->qps.erase(qp->qp_num);
  }
  pthread_mutex_destroy(&qp->mutex);
  pthread_cond_destroy(&qp->cond);
  delete q;
  return 0;
}

// ---- SRQ commands ----

ibv_srq* create_srq(ibv_pd* pd, ibv_srq_init_attr* init) {
  Context* c = ctx_of(pd->context);
  const uint32_t max_sge = std::max<uint32_t>(init->attr.max_sge, 1);
  if (init->attr.srq_limit > init->attr.max_wr) return fail_errno(EINVAL);
  auto r = c->dev->create_srq(pd_of(pd)->handle, init->attr.max_wr, max_sge);
  if (!r) return fail_null<ibv_srq>("ibv_create_srq", r.status());
  auto* s = new Srq;
  std::memset(&s->srq, 0, sizeof(s->srq));
  s->nsrq = r.value();
  s->dev = c->dev;
  s->max_wr = s->nsrq->capacity();
  s->max_sge = max_sge;
  ibv_srq& srq = s->srq;
  srq.context = pd->context;
  srq.srq_context = init->srq_context;
  srq.pd = pd;
  srq.handle = uint32_t(reinterpret_cast<uintptr_t>(s->nsrq));
  pthread_mutex_init(&srq.mutex, nullptr);
  pthread_cond_init(&srq.cond, nullptr);
  init->attr.max_wr = s->max_wr;
  init->attr.max_sge = s->max_sge;
  {
    std::lock_guard<std::mutex> lock(c->slot->mu);
    c->slot->srqs[s->nsrq] = s;
  }
  return &srq;
}

// IBV_SRQ_MAX_WR resizes the ring while QPs use it (as rdma_rxe): every
// posted receive is kept, in order; EINVAL for 0, above max_srq_wr, below the
// armed limit or below the receives still posted. IBV_SRQ_LIMIT is checked
// against the size the SRQ has after the call; nothing changes on EINVAL.
int modify_srq(ibv_srq* srq, ibv_srq_attr* attr, int mask) {
  Srq* s = srq_of(srq);
  if (mask & ~(IBV_SRQ_MAX_WR | IBV_SRQ_LIMIT)) return EINVAL;
  const bool resize = (mask & IBV_SRQ_MAX_WR) != 0;
  if (resize && (attr->max_wr == 0 || attr->max_wr > s->dev->attr().max_srq_wr)) {
    return refuse("ibv_modify_srq", EINVAL, "max_wr out of [1, max_srq_wr]");
  }
  nic::Device::SrqChange change;
  change.resize = resize;
  change.max_wr = attr->max_wr;
  change.set_limit = (mask & IBV_SRQ_LIMIT) != 0;
  change.limit = attr->srq_limit;
  const Status st = s->dev->modify_srq(s->nsrq, change);
  if (!st) return fail("ibv_modify_srq", st);
  s->max_wr = s->nsrq->capacity();
  return 0;
}

int destroy_srq(ibv_srq* srq) {
  Srq* s = srq_of(srq);
  Context* c = ctx_of(srq->context);
  {
    std::lock_guard<std::mutex> lock(c->slot->mu);
    Status st = s->dev->destroy_srq(s->nsrq);
    if (!st) return fail("ibv_destroy_srq", st);
    c->slot->srqs.erase(s->nsrq);
  }
  pthread_mutex_destroy(&srq->mutex);
  pthread_cond_destroy(&srq->cond);
  delete s;
  return 0;
}

}  // namespace

int op_post_send(ibv_qp* qp, ibv_send_wr* wr, ibv_send_wr** bad_wr) noexcept {
  Qp* q = qp_of(qp);
  for (; wr != nullptr; wr = wr->next) {
    if (int err = post_one_send(q, wr); err != 0) {
      *bad_wr = wr;
      return err;
    }
  }
  return 0;
}

int op_post_recv(ibv_qp* qp, ibv_recv_wr* wr, ibv_recv_wr** bad_wr) noexcept {
  Qp* q = qp_of(qp);
  for (; wr != nullptr; wr = wr->next) {
    const int err = wr->num_sge < 0 ? EINVAL
                                    : q->nqp->post_recv(
                                          wr->wr_id, reinterpret_cast<const nic::Sge*>(wr->sg_list),
                                          uint32_t(wr->num_sge));
    if (err != 0) {
      *bad_wr = wr;
      return err;
    }
  }
  return 0;
}

int op_post_srq_recv(ibv_srq* srq, ibv_recv_wr* wr, ibv_recv_wr** bad_wr) noexcept {
  Srq* s = srq_of(srq);
  for (; wr != nullptr; wr = wr->next) {
    const int err = wr->num_sge < 0 ? EINVAL
                                    : s->nsrq->post_recv(
                                          wr->wr_id, reinterpret_cast<const nic::Sge*>(wr->sg_list),
                                          uint32_t(wr->num_sge));
    if (err != 0) {
      *bad_wr = wr;
      return err;
    }
  }
  return 0;
}

ibv_qp* op_create_qp_ex(ibv_context* ctx, ibv_qp_init_attr_ex* attr) noexcept {
  return guard(
      [&]() -> ibv_qp* {
        constexpr uint32_t kKnown =
            IBV_QP_INIT_ATTR_PD | IBV_QP_INIT_ATTR_CREATE_FLAGS | IBV_QP_INIT_ATTR_SEND_OPS_FLAGS;
        if (attr->comp_mask & ~kKnown) return fail_errno(EOPNOTSUPP);  // XRC, RSS, TSO
        if (!(attr->comp_mask & IBV_QP_INIT_ATTR_PD) || attr->pd == nullptr)
          return fail_errno(EINVAL);
        if ((attr->comp_mask & IBV_QP_INIT_ATTR_CREATE_FLAGS) && attr->create_flags != 0) {
          return fail_errno(EOPNOTSUPP);
        }
        if (attr->pd->context != ctx) return fail_errno(EINVAL);
        const uint64_t ops =
            (attr->comp_mask & IBV_QP_INIT_ATTR_SEND_OPS_FLAGS) ? attr->send_ops_flags : 0;
        if ((attr->comp_mask & IBV_QP_INIT_ATTR_SEND_OPS_FLAGS) && ops == 0)
          return fail_errno(EINVAL);
        // ibv_qp_init_attr is the prefix of ibv_qp_init_attr_ex.
        return create_qp(attr->pd, reinterpret_cast<ibv_qp_init_attr*>(attr), ops);
      },
      static_cast<ibv_qp*>(nullptr));
}

}  // namespace droce::verbs

using namespace droce::verbs;  // NOLINT: the C entry points below

extern "C" {

ibv_qp* ibv_create_qp(ibv_pd* pd, ibv_qp_init_attr* qp_init_attr) {
  return guard([&] { return create_qp(pd, qp_init_attr, 0); }, static_cast<ibv_qp*>(nullptr));
}

ibv_qp_ex* ibv_qp_to_qp_ex(ibv_qp* qp) {
  Qp* q = qp_of(qp);
  return q->is_ex ? &q->qpx : nullptr;
}

int ibv_modify_qp(ibv_qp* qp, ibv_qp_attr* attr, int attr_mask) {
  const int rc = guard([&] { return modify_qp(qp, attr, attr_mask); }, ENOMEM);
  if (rc == 0 && (attr_mask & IBV_QP_STATE)) qp->state = attr->qp_state;
  return rc;
}

int ibv_query_qp(ibv_qp* qp, ibv_qp_attr* attr, int attr_mask, ibv_qp_init_attr* init_attr) {
  const int rc = guard([&] { return query_qp(qp, attr, init_attr); }, ENOMEM);
  if (rc == 0 && (attr_mask & IBV_QP_STATE)) qp->state = attr->qp_state;
  return rc;
}

int ibv_destroy_qp(ibv_qp* qp) {
  return guard([&] { return destroy_qp(qp); }, ENOMEM);
}

int ibv_query_qp_data_in_order(ibv_qp*, ibv_wr_opcode, uint32_t) {
  return 0;  // no in-order placement guarantee is promised
}

int ibv_attach_mcast(ibv_qp*, const ibv_gid*, uint16_t) { return EOPNOTSUPP; }
int ibv_detach_mcast(ibv_qp*, const ibv_gid*, uint16_t) { return EOPNOTSUPP; }
int ibv_set_ece(ibv_qp*, ibv_ece*) { return EOPNOTSUPP; }
int ibv_query_ece(ibv_qp*, ibv_ece*) { return EOPNOTSUPP; }

ibv_srq* ibv_create_srq(ibv_pd* pd, ibv_srq_init_attr* srq_init_attr) {
  return guard([&] { return create_srq(pd, srq_init_attr); }, static_cast<ibv_srq*>(nullptr));
}

int ibv_modify_srq(ibv_srq* srq, ibv_srq_attr* srq_attr, int srq_attr_mask) {
  return guard([&] { return modify_srq(srq, srq_attr, srq_attr_mask); }, ENOMEM);
}

int ibv_query_srq(ibv_srq* srq, ibv_srq_attr* srq_attr) {
  return guard(
      [&] {
        Srq* s = srq_of(srq);
        srq_attr->max_sge = s->max_sge;
        const droce::nic::Device::SrqState st = s->dev->query_srq(s->nsrq);
        srq_attr->max_wr = st.capacity;
        srq_attr->srq_limit = st.limit;
        return 0;
      },
      ENOMEM);
}

int ibv_destroy_srq(ibv_srq* srq) {
  return guard([&] { return destroy_srq(srq); }, ENOMEM);
}

}  // extern "C"
