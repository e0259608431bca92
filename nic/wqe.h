// Work-queue and completion entry formats shared by the driver (verbs/) and
// the engine (nic/): what sits in a SQ/RQ/SRQ ring slot and in a CQ ring slot
// (DESIGN.md section 2). Enum values equal libibverbs' so verbs/ converts with
// a static_assert-checked cast, but nic/ never includes <infiniband/verbs.h>.
#pragma once

#include <cstdint>

namespace droce::nic {

// ibv_wr_opcode values.
enum class WrOpcode : uint8_t {
  kRdmaWrite = 0,
  kRdmaWriteImm = 1,
  kSend = 2,
  kSendImm = 3,
  kRdmaRead = 4,
  kCmpSwap = 5,
  kFetchAdd = 6,
  kLocalInv = 7,
  kBindMw = 8,
  kSendInv = 9,
  kFlush = 14,        // IBTA A19 FLUSH (rdma-core v45's IBV_WR_FLUSH)
  kAtomicWrite = 15,  // IBTA A19 ATOMIC_WRITE
};

// ibv_send_flags values.
enum SendFlag : uint8_t {
  kSendFence = 1 << 0,
  kSendSignaled = 1 << 1,
  kSendSolicited = 1 << 2,
  kSendInline = 1 << 3,
};

// ibv_wc_status values.
enum class WcStatus : uint8_t {
  kSuccess = 0,
  kLocLenErr = 1,
  kLocQpOpErr = 2,
  kLocProtErr = 4,
  kWrFlushErr = 5,
  kMwBindErr = 6,
  kBadRespErr = 7,
  kLocAccessErr = 8,
  kRemInvReqErr = 9,
  kRemAccessErr = 10,
  kRemOpErr = 11,
  kRetryExcErr = 12,
  kRnrRetryExcErr = 13,
  kFatalErr = 19,
  kGeneralErr = 21,
};

// ibv_wc_opcode values.
enum class WcOpcode : uint8_t {
  kSend = 0,
  kRdmaWrite = 1,
  kRdmaRead = 2,
  kCmpSwap = 3,
  kFetchAdd = 4,
  kBindMw = 5,
  kLocalInv = 6,
  kFlush = 8,         // rdma-core v45's IBV_WC_FLUSH
  kAtomicWrite = 9,
  kRecv = 1 << 7,
  kRecvRdmaImm = (1 << 7) + 1,
};

// ibv_wc_flags values.
enum WcFlag : uint8_t {
  kWcGrh = 1 << 0,
  kWcWithImm = 1 << 1,
  kWcWithInv = 1 << 3,
};

// One scatter/gather element, laid out as struct ibv_sge.
struct Sge {
  uint64_t addr;
  uint32_t length;
  uint32_t lkey;
};
static_assert(sizeof(Sge) == 16);

// A send WQE: this header, then num_sge Sge entries or, with kSendInline,
// inline_len bytes of data. Slot size is fixed per QP (a power of two).
struct SendWqe {
  uint64_t wr_id;
  WrOpcode opcode;
  uint8_t flags;        // SendFlag bits
  uint16_t num_sge;     // Sge entries after the header (0 when inline)
  uint32_t length;      // total message bytes (sum of SGE lengths or inline bytes)
  uint32_t imm_or_inv;  // immediate data (network order) or rkey to invalidate
  uint32_t rkey;        // RDMA / atomic / FLUSH remote key
  uint64_t remote_addr; // RDMA / atomic / FLUSH remote address
  uint64_t compare_add; // CMP_SWAP compare value / FETCH_ADD addend / FLUSH length
  uint64_t swap;        // CMP_SWAP swap value / ATOMIC_WRITE: the 8 bytes to write, as given
  uint32_t ah;          // UD: address handle number
  uint32_t remote_qpn;  // UD: destination QP
  uint32_t remote_qkey; // UD: Q_Key
  uint8_t flush_type;   // FLUSH: placement type bits (wire::kFlushGlobal | kFlushPersistent)
  uint8_t flush_level;  // FLUSH: selectivity level (wire::kFlushRange or kFlushMr)
  uint16_t reserved;

  Sge* sges() { return reinterpret_cast<Sge*>(this + 1); }
  const Sge* sges() const { return reinterpret_cast<const Sge*>(this + 1); }
  uint8_t* inline_data() { return reinterpret_cast<uint8_t*>(this + 1); }
  const uint8_t* inline_data() const { return reinterpret_cast<const uint8_t*>(this + 1); }
};
static_assert(sizeof(SendWqe) == 64);

// A receive WQE: this header, then num_sge Sge entries.
struct RecvWqe {
  uint64_t wr_id;
  uint32_t num_sge;
  uint32_t length;  // total bytes the SGEs can take

  Sge* sges() { return reinterpret_cast<Sge*>(this + 1); }
  const Sge* sges() const { return reinterpret_cast<const Sge*>(this + 1); }
};
static_assert(sizeof(RecvWqe) == 16);

// A completion, filled by the engine, read by the driver into struct ibv_wc.
struct Cqe {
  uint64_t wr_id;
  WcStatus status;
  WcOpcode opcode;
  uint8_t wc_flags;     // WcFlag bits
  uint8_t reserved;
  uint32_t byte_len;
  uint32_t imm_or_inv;  // immediate (network order) or invalidated rkey
  uint32_t qp_num;
  uint32_t src_qp;      // UD: sender's QP
  uint16_t pkey_index;
  uint16_t reserved2;
};
static_assert(sizeof(Cqe) == 32);

}  // namespace droce::nic
