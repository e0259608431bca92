// The one opcode table (IBTA vol. 1, 9.2 table 35; RoCEv2 annex A17 for CNP;
// annex A19 Memory Placement Extensions for RC FLUSH and ATOMIC_WRITE):
// for each 8-bit BTH opcode, its name, transport, role flags, and which
// extension headers follow the BTH at which offsets. It drives parsing,
// validation and tracing.
#pragma once

#include <array>
#include <cstdint>

#include "nic/wire/aeth.h"
#include "nic/wire/atomic_eth.h"
#include "nic/wire/cnp.h"
#include "nic/wire/deth.h"
#include "nic/wire/feth.h"
#include "nic/wire/ieth.h"
#include "nic/wire/immdt.h"
#include "nic/wire/reth.h"

namespace droce::wire {

enum class Transport : uint8_t { kNone, kRc, kUc, kUd, kCnp };

// Opcode numbers (transport base | operation).
namespace op {
inline constexpr uint8_t kRc = 0x00, kUc = 0x20, kUd = 0x60;
inline constexpr uint8_t kSendFirst = 0x00, kSendMiddle = 0x01, kSendLast = 0x02,
                         kSendLastImm = 0x03, kSendOnly = 0x04, kSendOnlyImm = 0x05,
                         kWriteFirst = 0x06, kWriteMiddle = 0x07, kWriteLast = 0x08,
                         kWriteLastImm = 0x09, kWriteOnly = 0x0A, kWriteOnlyImm = 0x0B,
                         kReadRequest = 0x0C, kReadRespFirst = 0x0D, kReadRespMiddle = 0x0E,
                         kReadRespLast = 0x0F, kReadRespOnly = 0x10, kAck = 0x11,
                         kAtomicAck = 0x12, kCmpSwap = 0x13, kFetchAdd = 0x14,
                         kSendLastInv = 0x16, kSendOnlyInv = 0x17, kFlush = 0x1C,
                         kAtomicWrite = 0x1D;
inline constexpr uint8_t kCnp = 0x81;
}  // namespace op

// Flags describing an opcode.
enum OpFlag : uint32_t {
  kOpValid = 1u << 0,
  kOpReth = 1u << 1,       // RETH follows
  kOpAeth = 1u << 2,       // AETH follows
  kOpAtomicEth = 1u << 3,  // AtomicETH follows
  kOpAtomicAck = 1u << 4,  // AtomicAckETH follows
  kOpImm = 1u << 5,        // ImmDt follows
  kOpIeth = 1u << 6,       // IETH follows
  kOpDeth = 1u << 7,       // DETH follows
  kOpCnpBody = 1u << 8,    // 16 reserved bytes follow (CNP)
  kOpPayload = 1u << 9,    // may carry payload
  kOpFirst = 1u << 10,     // FIRST packet of a multi-packet message
  kOpMiddle = 1u << 11,
  kOpLast = 1u << 12,
  kOpOnly = 1u << 13,
  kOpSend = 1u << 14,      // SEND family (consumes a receive WQE)
  kOpWrite = 1u << 15,     // RDMA WRITE family
  kOpRead = 1u << 16,      // RDMA READ request
  kOpAtomic = 1u << 17,    // CMP_SWAP / FETCH_ADD request
  kOpReadResp = 1u << 18,  // RDMA READ response
  kOpAck = 1u << 19,       // ACKNOWLEDGE / ATOMIC ACKNOWLEDGE
  kOpRequest = 1u << 20,   // requester -> responder
  kOpResponse = 1u << 21,  // responder -> requester
  kOpComp = 1u << 22,      // completes a receive WQE (SEND last/only, WRITE with imm)
  kOpStart = 1u << 23,     // FIRST or ONLY: starts a message
  kOpEnd = 1u << 24,       // LAST or ONLY: ends a message
  kOpCnp = 1u << 25,       // congestion notification
  kOpFeth = 1u << 26,      // FETH follows (before the RETH)
  kOpFlush = 1u << 27,     // RC FLUSH request (A19)
  kOpAtomicWrite = 1u << 28,  // RC ATOMIC_WRITE request: RETH + 8-byte payload (A19)
};

struct OpcodeInfo {
  const char* name = nullptr;  // e.g. "RC_SEND_ONLY"; nullptr when invalid
  Transport transport = Transport::kNone;
  uint32_t flags = 0;
  uint8_t ext_len = 0;  // bytes of extension headers after the BTH
  // Offsets after the BTH of each extension header, valid when its flag is set.
  uint8_t reth_off = 0, aeth_off = 0, atomic_eth_off = 0, atomic_ack_off = 0, imm_off = 0,
          ieth_off = 0, deth_off = 0, feth_off = 0;

  constexpr bool valid() const { return flags & kOpValid; }
  constexpr bool has(uint32_t f) const { return (flags & f) == f; }
};

namespace detail {

// Builds one entry: the extension headers are laid out in IBTA order
// (DETH, FETH, RETH, AETH, AtomicETH, AtomicAckETH, ImmDt, IETH, CNP body;
// FLUSH is the one opcode with a FETH, and it precedes the RETH, A19.4.1).
constexpr OpcodeInfo make_op(const char* name, Transport t, uint32_t flags) {
  OpcodeInfo o{};
  o.name = name;
  o.transport = t;
  o.flags = flags | kOpValid;
  uint8_t off = 0;
  if (flags & kOpDeth) { o.deth_off = off; off += sizeof(Deth); }
  if (flags & kOpFeth) { o.feth_off = off; off += sizeof(Feth); }
  if (flags & kOpReth) { o.reth_off = off; off += sizeof(Reth); }
  if (flags & kOpAeth) { o.aeth_off = off; off += sizeof(Aeth); }
  if (flags & kOpAtomicEth) { o.atomic_eth_off = off; off += sizeof(AtomicEth); }
  if (flags & kOpAtomicAck) { o.atomic_ack_off = off; off += sizeof(AtomicAckEth); }
  if (flags & kOpImm) { o.imm_off = off; off += sizeof(ImmDt); }
  if (flags & kOpIeth) { o.ieth_off = off; off += sizeof(Ieth); }
  if (flags & kOpCnpBody) { off += sizeof(CnpBody); }
  o.ext_len = off;
  if (flags & (kOpFirst | kOpOnly)) o.flags |= kOpStart;
  if (flags & (kOpLast | kOpOnly)) o.flags |= kOpEnd;
  return o;
}

// Operations shared by RC and UC (and UD for SEND ONLY), by operation code.
constexpr void add_rc_uc(std::array<OpcodeInfo, 256>& t, uint8_t base, Transport tr,
                         const char* const names[12]) {
  constexpr uint32_t kReq = kOpRequest;
  const uint32_t f[12] = {
      kReq | kOpSend | kOpPayload | kOpFirst,
      kReq | kOpSend | kOpPayload | kOpMiddle,
      kReq | kOpSend | kOpPayload | kOpLast | kOpComp,
      kReq | kOpSend | kOpPayload | kOpLast | kOpComp | kOpImm,
      kReq | kOpSend | kOpPayload | kOpOnly | kOpComp,
      kReq | kOpSend | kOpPayload | kOpOnly | kOpComp | kOpImm,
      kReq | kOpWrite | kOpPayload | kOpFirst | kOpReth,
      kReq | kOpWrite | kOpPayload | kOpMiddle,
      kReq | kOpWrite | kOpPayload | kOpLast,
      kReq | kOpWrite | kOpPayload | kOpLast | kOpComp | kOpImm,
      kReq | kOpWrite | kOpPayload | kOpOnly | kOpReth,
      kReq | kOpWrite | kOpPayload | kOpOnly | kOpComp | kOpReth | kOpImm,
  };
  for (int i = 0; i < 12; ++i) t[base + i] = make_op(names[i], tr, f[i]);
}

constexpr std::array<OpcodeInfo, 256> make_table() {
  std::array<OpcodeInfo, 256> t{};
  constexpr const char* kRcNames[12] = {
      "RC_SEND_FIRST", "RC_SEND_MIDDLE", "RC_SEND_LAST", "RC_SEND_LAST_WITH_IMMEDIATE",
      "RC_SEND_ONLY", "RC_SEND_ONLY_WITH_IMMEDIATE", "RC_RDMA_WRITE_FIRST",
      "RC_RDMA_WRITE_MIDDLE", "RC_RDMA_WRITE_LAST", "RC_RDMA_WRITE_LAST_WITH_IMMEDIATE",
      "RC_RDMA_WRITE_ONLY", "RC_RDMA_WRITE_ONLY_WITH_IMMEDIATE"};
  constexpr const char* kUcNames[12] = {
      "UC_SEND_FIRST", "UC_SEND_MIDDLE", "UC_SEND_LAST", "UC_SEND_LAST_WITH_IMMEDIATE",
      "UC_SEND_ONLY", "UC_SEND_ONLY_WITH_IMMEDIATE", "UC_RDMA_WRITE_FIRST",
      "UC_RDMA_WRITE_MIDDLE", "UC_RDMA_WRITE_LAST", "UC_RDMA_WRITE_LAST_WITH_IMMEDIATE",
      "UC_RDMA_WRITE_ONLY", "UC_RDMA_WRITE_ONLY_WITH_IMMEDIATE"};
  add_rc_uc(t, op::kRc, Transport::kRc, kRcNames);
  add_rc_uc(t, op::kUc, Transport::kUc, kUcNames);

  constexpr Transport kRc = Transport::kRc;
  t[op::kReadRequest] = make_op("RC_RDMA_READ_REQUEST", kRc, kOpRequest | kOpRead | kOpReth | kOpOnly);
  t[op::kReadRespFirst] = make_op("RC_RDMA_READ_RESPONSE_FIRST", kRc,
                                  kOpResponse | kOpReadResp | kOpPayload | kOpFirst | kOpAeth);
  t[op::kReadRespMiddle] = make_op("RC_RDMA_READ_RESPONSE_MIDDLE", kRc,
                                   kOpResponse | kOpReadResp | kOpPayload | kOpMiddle);
  t[op::kReadRespLast] = make_op("RC_RDMA_READ_RESPONSE_LAST", kRc,
                                 kOpResponse | kOpReadResp | kOpPayload | kOpLast | kOpAeth);
  t[op::kReadRespOnly] = make_op("RC_RDMA_READ_RESPONSE_ONLY", kRc,
                                 kOpResponse | kOpReadResp | kOpPayload | kOpOnly | kOpAeth);
  t[op::kAck] = make_op("RC_ACKNOWLEDGE", kRc, kOpResponse | kOpAck | kOpOnly | kOpAeth);
  t[op::kAtomicAck] = make_op("RC_ATOMIC_ACKNOWLEDGE", kRc,
                              kOpResponse | kOpAck | kOpOnly | kOpAeth | kOpAtomicAck);
  t[op::kCmpSwap] = make_op("RC_COMPARE_SWAP", kRc, kOpRequest | kOpAtomic | kOpOnly | kOpAtomicEth);
  t[op::kFetchAdd] = make_op("RC_FETCH_ADD", kRc, kOpRequest | kOpAtomic | kOpOnly | kOpAtomicEth);
  t[op::kSendLastInv] = make_op("RC_SEND_LAST_WITH_INVALIDATE", kRc,
                                kOpRequest | kOpSend | kOpPayload | kOpLast | kOpComp | kOpIeth);
  t[op::kSendOnlyInv] = make_op("RC_SEND_ONLY_WITH_INVALIDATE", kRc,
                                kOpRequest | kOpSend | kOpPayload | kOpOnly | kOpComp | kOpIeth);
  // Memory Placement Extensions (A19): both are answered by a zero-length
  // RDMA READ RESPONSE ONLY (rxe send_read_response_ack).
  t[op::kFlush] = make_op("RC_FLUSH", kRc, kOpRequest | kOpFlush | kOpOnly | kOpFeth | kOpReth);
  t[op::kAtomicWrite] = make_op("RC_ATOMIC_WRITE", kRc,
                                kOpRequest | kOpAtomicWrite | kOpPayload | kOpOnly | kOpReth);

  t[op::kUd | op::kSendOnly] = make_op("UD_SEND_ONLY", Transport::kUd,
                                       kOpRequest | kOpSend | kOpPayload | kOpOnly | kOpComp | kOpDeth);
  t[op::kUd | op::kSendOnlyImm] =
      make_op("UD_SEND_ONLY_WITH_IMMEDIATE", Transport::kUd,
              kOpRequest | kOpSend | kOpPayload | kOpOnly | kOpComp | kOpDeth | kOpImm);

  t[op::kCnp] = make_op("CNP", Transport::kCnp, kOpCnp | kOpOnly | kOpCnpBody);
  return t;
}

}  // namespace detail

inline constexpr std::array<OpcodeInfo, 256> kOpcodeTable = detail::make_table();

constexpr const OpcodeInfo& opcode_info(uint8_t opcode) { return kOpcodeTable[opcode]; }

// Name for tracing; "UNKNOWN" for opcodes not in the table.
constexpr const char* opcode_name(uint8_t opcode) {
  return kOpcodeTable[opcode].valid() ? kOpcodeTable[opcode].name : "UNKNOWN";
}

static_assert(opcode_info(op::kWriteOnlyImm).ext_len == 20);
static_assert(opcode_info(op::kUd | op::kSendOnlyImm).ext_len == 12);
static_assert(opcode_info(op::kAtomicAck).ext_len == 12);
static_assert(opcode_info(op::kCmpSwap).ext_len == 28);
static_assert(opcode_info(op::kCnp).ext_len == 16);
static_assert(opcode_info(op::kFlush).ext_len == 20 && opcode_info(op::kFlush).reth_off == 4);
static_assert(opcode_info(op::kAtomicWrite).ext_len == 16);

}  // namespace droce::wire
