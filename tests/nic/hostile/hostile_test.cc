// A hostile or broken peer (IBTA vol. 1 ch. 9.7-9.9; RoCEv2 annex A17): crafted
// frames sent from the other end of a port pair at a victim device whose every
// memory region sits between two inaccessible guard pages. Each case states
// the documented outcome (a counted drop, a NAK of the right class, the QP
// state change IBTA asks for), checks the counter that shows it, and proves
// that no byte outside registered, permitted memory was read (the guard pages
// would fault) or written (the snapshots).
#include <rte_mbuf.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "nic/wire/ipv4.h"
#include "nic/wire/udp.h"
#include "tests/nic/engine/engine_checks.h"
#include "tests/nic/engine/fake_clock.h"
#include "tests/nic/hostile/guarded_memory.h"

namespace droce::nic::test {
namespace {

namespace op = wire::op;
using wire::NakCode;

constexpr uint32_t kPsn = 0x123;  // the PSN the fixture's connect() starts both directions at

// What the victim sent back, as the attacker's port saw it.
struct Answer {
  uint8_t opcode;
  uint32_t psn;
  uint8_t syndrome;
};

uint8_t nak(NakCode c) { return wire::Aeth::make_syndrome(wire::AethType::kNak, uint8_t(c)); }
constexpr uint8_t kAck = wire::Aeth::make_syndrome(wire::AethType::kAck, wire::kAethCreditInvalid);

// The victim's memory regions.
enum Which { kWritable, kReadable, kAtomic, kRecv, kPrivate, kOtherPd, kStale, kRegions };

class Hostile : public FakeClockTest {
 protected:
  // The victim's memory regions, each in a guarded region of its own.
  struct Region {
    std::unique_ptr<GuardedRegion> mem;
    uint32_t key = 0;
    const char* name;
  };

  void SetUp() override {
    FakeClockTest::SetUp();
    other_pd_ = b_.dev->alloc_pd().value();
    const struct {
      Which w;
      const char* name;
      size_t pages;
      uint32_t pd;
      uint32_t access;
    } spec[] = {
        {kWritable, "writable", 2, b_.pd, kAccessLocalWrite | kAccessRemoteWrite},
        {kReadable, "readable", 2, b_.pd, kAccessRemoteRead},
        {kAtomic, "atomic", 1, b_.pd, kAccessLocalWrite | kAccessRemoteAtomic},
        {kRecv, "receive buffers", 1, b_.pd, kAccessLocalWrite},
        {kPrivate, "private", 1, b_.pd, kAccessLocalWrite},
        {kOtherPd, "other PD", 1, other_pd_, kAllAccess},
        {kStale, "stale", 1, b_.pd, kAllAccess},
    };
    for (const auto& s : spec) {
      Region& r = regions_[s.w];
      r.name = s.name;
      r.mem = std::make_unique<GuardedRegion>(s.pages);
      ASSERT_TRUE(r.mem->ok());
      r.mem->fill(uint8_t(0xA0 + s.w));
      auto key = b_.dev->reg_mr(s.pd, r.mem->data(), r.mem->addr(), r.mem->size(), s.access);
      ASSERT_TRUE(key.is_ok()) << key.status().message();
      r.key = key.value();
    }
    // A key that was valid once: deregistered, its slot registered again
    // (the new registration has a new tag, the old key must not reach it).
    // Slots are handed out round the table, so registrations go on until one
    // takes the stale key's slot again.
    stale_key_ = regions_[kStale].key;
    ASSERT_TRUE(b_.dev->dereg_mr(stale_key_).is_ok());
    for (uint32_t i = 0; i <= b_.dev->attr().max_mr; ++i) {
      auto again = b_.dev->reg_mr(b_.pd, regions_[kStale].mem->data(),
                                  regions_[kStale].mem->addr(), regions_[kStale].mem->size(),
                                  kAllAccess);
      ASSERT_TRUE(again.is_ok());
      if (again.value() >> 8 == stale_key_ >> 8) {
        regions_[kStale].key = again.value();
        break;
      }
      ASSERT_TRUE(b_.dev->dereg_mr(again.value()).is_ok());
    }
    ASSERT_EQ(regions_[kStale].key >> 8, stale_key_ >> 8) << "the slot is reused";
    ASSERT_NE(regions_[kStale].key, stale_key_) << "with another tag";
    for (int i = 0; i < kRegions; ++i) before_[i] = regions_[i].mem->snapshot();
  }

  // A connected pair: p.a is the victim's real peer on the attacker's side,
  // p.b the victim. ARP settles, then the attacker's engine stops, so what
  // the victim answers stays at the attacker's port for answers().
  RcPair victim(QpType type = QpType::kRc) {
    RcPair p{make_qp(a_, type), make_qp(b_, type)};
    connect(a_, p.a, b_, p.b);
    connect(b_, p.b, a_, p.a);
    Sge r{regions_[kRecv].mem->addr(), 4096, regions_[kRecv].key};
    EXPECT_EQ(p.b->post_recv(1, &r, 1), 0);
    run_for(kNanosPerMs);
    pump_a_ = false;
    answers();
    return p;
  }

  std::vector<Answer> answers() {
    std::vector<Answer> out;
    auto l = a_.dev->lock_engine();
    rte_mbuf* m[64];
    wire::PacketView v[64];
    for (uint16_t n; (n = a_.dev->port().receive(m, v, 64, now_)) > 0;) {
      for (uint16_t i = 0; i < n; ++i) {
        out.push_back({v[i].bth().opcode, v[i].bth().psn(),
                       uint8_t(v[i].op->has(wire::kOpAeth) ? v[i].aeth().syndrome() : 0)});
      }
      rte_pktmbuf_free_bulk(m, n);
    }
    return out;
  }

  // A request from the victim's peer (its address, its QP) to the victim.
  wire::PacketSpec req(const RcPair& p, uint8_t opcode, uint32_t psn = kPsn) {
    return spec(a_, b_, opcode, p.b->qpn(), psn);
  }
  void send(const wire::PacketSpec& s, const void* payload = nullptr) {
    inject(a_, s, payload);
    run_for(100 * kNanosPerUs);
  }

  // Every region is as SetUp left it, but for those listed (written as permitted).
  void expect_untouched(std::initializer_list<Which> except = {}) {
    for (int i = 0; i < kRegions; ++i) {
      if (std::find(except.begin(), except.end(), Which(i)) != except.end()) continue;
      EXPECT_TRUE(regions_[i].mem->unchanged_since(before_[i]))
          << "the " << regions_[i].name << " region changed";
    }
  }

  // Class C (IBTA 9.9.3): one NAK of `code` at `psn`, the QP in ERR, the
  // affiliated event of the class, one NAK counted.
  void expect_class_c(const RcPair& p, NakCode code, uint32_t psn = kPsn) {
    const std::vector<Answer> got = answers();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].opcode, op::kAck);
    EXPECT_EQ(got[0].psn, psn);
    EXPECT_EQ(got[0].syndrome, nak(code));
    EXPECT_EQ(p.b->state(), QpState::kErr);
    EXPECT_EQ(p.b->counters().err_naks_sent, 1u);
    EXPECT_TRUE(has_event(events(b_),
                          code == NakCode::kRemoteAccessError ? AsyncEventType::kQpAccessErr
                                                              : AsyncEventType::kQpReqErr,
                          p.b->qpn()));
  }

  GuardedRegion& mem(Which w) { return *regions_[w].mem; }
  uint32_t key(Which w) const { return regions_[w].key; }

  Region regions_[kRegions];
  std::vector<uint8_t> before_[kRegions];
  uint32_t other_pd_ = 0;
  uint32_t stale_key_ = 0;
};

// ---- remote memory access with bad keys, ranges, rights ----

struct AccessCase {
  const char* name;
  uint8_t opcode;  // RC WRITE ONLY, READ REQUEST, CMP_SWAP or FETCH_ADD
  int region;      // Hostile::Which whose key is used; -1: the stale key, -2: a made-up key
  int64_t offset;  // VA relative to the region's start (may lie outside)
  uint32_t length; // RETH DMA length (WRITE: also the payload)
  NakCode code;
};

class HostileAccess : public Hostile, public ::testing::WithParamInterface<AccessCase> {};

TEST_P(HostileAccess, IsRefusedBeforeAByteIsTouched) {
  const AccessCase& c = GetParam();
  auto p = victim();
  const uint32_t rkey = c.region == -1   ? stale_key_
                        : c.region == -2 ? 0x00ABCD17u
                                         : key(Which(c.region));
  const uint64_t base = mem(Which(c.region >= 0 ? c.region : kStale)).addr();
  wire::PacketSpec s = req(p, c.opcode);
  s.ackreq = true;
  // A WRITE carries at most 16 bytes; its RETH may claim more.
  std::vector<uint8_t> payload(c.opcode == op::kWriteOnly ? std::min(c.length, 16u) : 0, 0xEE);
  if (c.opcode == op::kWriteOnly || c.opcode == op::kReadRequest) {
    s.reth_va = base + uint64_t(c.offset);
    s.reth_rkey = rkey;
    s.reth_len = c.length;
    s.payload_len = uint32_t(payload.size());
  } else {
    s.atomic_va = base + uint64_t(c.offset);
    s.atomic_rkey = rkey;
    s.atomic_swap_add = 0x0101010101010101ull;
    s.atomic_compare = 0;
  }
  send(s, payload.empty() ? nullptr : payload.data());
  expect_class_c(p, c.code);
  expect_untouched();
}

const int64_t kPage = 4096;
const AccessCase kAccessCases[] = {
    {"write_past_end", op::kWriteOnly, kWritable, 2 * kPage - 8, 16,
     NakCode::kRemoteAccessError},
    {"write_before_start", op::kWriteOnly, kWritable, -8, 16, NakCode::kRemoteAccessError},
    {"write_wrapping_va", op::kWriteOnly, kWritable, -int64_t(1) << 62, 16,
     NakCode::kRemoteAccessError},
    {"write_wrong_pd", op::kWriteOnly, kOtherPd, 0, 16, NakCode::kRemoteAccessError},
    {"write_no_rights", op::kWriteOnly, kReadable, 0, 16, NakCode::kRemoteAccessError},
    {"write_private_region", op::kWriteOnly, kPrivate, 0, 16,
     NakCode::kRemoteAccessError},
    {"write_stale_key", op::kWriteOnly, -1, 0, 16, NakCode::kRemoteAccessError},
    {"write_made_up_key", op::kWriteOnly, -2, 0, 16, NakCode::kRemoteAccessError},
    {"write_dma_length_over_2g", op::kWriteOnly, kWritable, 0, 0x80000001u, NakCode::kInvalidRequest},
    {"read_past_end", op::kReadRequest, kReadable, 2 * kPage - 8, 16,
     NakCode::kRemoteAccessError},
    {"read_huge", op::kReadRequest, kReadable, 0, 0x7FFFFFFFu,
     NakCode::kRemoteAccessError},
    {"read_wrong_pd", op::kReadRequest, kOtherPd, 0, 16, NakCode::kRemoteAccessError},
    {"read_no_rights", op::kReadRequest, kWritable, 0, 16, NakCode::kRemoteAccessError},
    {"read_stale_key", op::kReadRequest, -1, 0, 16, NakCode::kRemoteAccessError},
    {"fetch_add_misaligned", op::kFetchAdd, kAtomic, 4, 8, NakCode::kInvalidRequest},
    {"fetch_add_past_end", op::kFetchAdd, kAtomic, kPage, 8, NakCode::kRemoteAccessError},
    {"fetch_add_no_rights", op::kFetchAdd, kWritable, 0, 8, NakCode::kRemoteAccessError},
    {"cmp_swap_stale_key", op::kCmpSwap, -1, 0, 8, NakCode::kRemoteAccessError},
    {"cmp_swap_wrong_pd", op::kCmpSwap, kOtherPd, 0, 8, NakCode::kRemoteAccessError},
};

INSTANTIATE_TEST_SUITE_P(Rc, HostileAccess, ::testing::ValuesIn(kAccessCases),
                         [](const auto& info) { return std::string(info.param.name); });

// A WRITE that stays inside the writable region lands, and only there.
TEST_F(Hostile, PermittedWriteLandsOnlyWherePermitted) {
  auto p = victim();
  std::vector<uint8_t> payload(16, 0xEE);
  wire::PacketSpec s = req(p, op::kRc | op::kWriteOnly);
  s.ackreq = true;
  s.reth_va = mem(kWritable).addr() + 2 * kPage - 16;  // the last 16 bytes before the guard
  s.reth_rkey = key(kWritable);
  s.reth_len = 16;
  s.payload_len = 16;
  send(s, payload.data());
  const auto got = answers();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].syndrome, kAck);
  EXPECT_EQ(mem(kWritable).data()[2 * kPage - 1], 0xEE);
  EXPECT_EQ(mem(kWritable).data()[2 * kPage - 17], 0xA0 + kWritable);
  expect_untouched({kWritable});
}

// ---- who may speak to a QP ----

// Another source address than the QP's peer: dropped before the QP sees it
// (rxe check_addr), counted, no answer. The source MAC is no identity on a
// routed RoCEv2 network (a router rewrites it): a frame from the peer's
// address through another MAC is the peer's, as for rxe.
TEST_F(Hostile, OnlyThePeersAddressReachesAConnectedQp) {
  for (QpType type : {QpType::kRc, QpType::kUc}) {
    SCOPED_TRACE(type == QpType::kRc ? "RC" : "UC");
    pump_a_ = true;
    auto p = victim(type);
    const uint8_t base = type == QpType::kRc ? op::kRc : op::kUc;
    std::vector<uint8_t> payload(16, 0xEE);
    wire::PacketSpec s = req(p, base | op::kWriteOnly);
    s.ackreq = true;
    s.reth_va = mem(kWritable).addr();
    s.reth_rkey = key(kWritable);
    s.reth_len = 16;
    s.payload_len = 16;
    const uint64_t before = b_.dev->counters().rx_bad_src_addr;
    s.src_ip = parse_ipv4("10.9.0.66").value();
    send(s, payload.data());
    EXPECT_TRUE(answers().empty());
    EXPECT_EQ(b_.dev->counters().rx_bad_src_addr - before, 1u);
    EXPECT_EQ(p.b->counters().rx_bad_src_addr, 1u);
    EXPECT_EQ(p.b->state(), QpState::kRts);
    expect_untouched();
    // The peer's address from another MAC: accepted.
    s.src_ip = a_.dev->port().ipv4();
    s.src_mac = {0x02, 0x66, 0x66, 0x66, 0x66, 0x66};
    send(s, payload.data());
    EXPECT_EQ(mem(kWritable).data()[0], 0xEE);
    mem(kWritable).fill(0xA0 + kWritable);
  }
}

// A frame for a QP number that was destroyed (or never existed): counted in
// rx_no_qp, never delivered to the QP that has the next number.
TEST_F(Hostile, FramesForADestroyedQpnAreCountedDrops) {
  auto p = victim();
  Qp* doomed = make_qp(b_, QpType::kRc);
  const uint32_t gone = doomed->qpn();
  ASSERT_TRUE(b_.dev->destroy_qp(doomed).is_ok());
  Qp* next = make_qp(b_, QpType::kRc);
  ASSERT_NE(next->qpn(), gone);
  const uint64_t before = b_.dev->counters().rx_no_qp;
  wire::PacketSpec s = spec(a_, b_, op::kRc | op::kSendOnly, gone, kPsn);
  s.payload_len = 8;
  send(s);
  EXPECT_EQ(b_.dev->counters().rx_no_qp - before, 1u);
  EXPECT_EQ(next->counters().rx_packets, 0u);
  EXPECT_TRUE(answers().empty());
  EXPECT_EQ(p.b->state(), QpState::kRts);
}

// Packets of another transport than the QP's, and to a QP that cannot
// receive (RESET, INIT): counted by reason, no answer, no state change.
TEST_F(Hostile, WrongTransportAndWrongStateAreCountedDrops) {
  auto p = victim();
  const uint64_t transport = b_.dev->counters().rx_bad_transport;
  wire::PacketSpec s = req(p, op::kUc | op::kSendOnly);
  s.payload_len = 8;
  send(s);
  s = req(p, op::kUd | op::kSendOnly);
  s.deth_qkey = 0x11111111;
  s.payload_len = 8;
  send(s);
  EXPECT_EQ(b_.dev->counters().rx_bad_transport - transport, 2u);
  Qp* fresh = make_qp(b_, QpType::kRc);  // RESET
  const uint64_t state = b_.dev->counters().rx_bad_state;
  s = spec(a_, b_, op::kRc | op::kSendOnly, fresh->qpn(), kPsn);
  s.payload_len = 8;
  send(s);
  EXPECT_EQ(b_.dev->counters().rx_bad_state - state, 1u);
  EXPECT_EQ(fresh->counters().drops, 1u);
  EXPECT_EQ(fresh->counters().drop_bad_state, 1u);
  EXPECT_TRUE(answers().empty());
  EXPECT_EQ(p.b->state(), QpState::kRts);
  expect_untouched();
}

// ---- PSNs ----

// A forged packet ahead of the expected PSN: one PSN sequence error NAK
// carrying the expected PSN, then silence (class B, 9.9.2); behind it: a
// duplicate, acknowledged again and never executed (C9-105). Nothing lands
// either way; the QP stays in RTS.
TEST_F(Hostile, ForgedPsnsOutsideTheWindowDoNothing) {
  auto p = victim();
  std::vector<uint8_t> payload(16, 0xEE);
  wire::PacketSpec s = req(p, op::kRc | op::kWriteOnly, kPsn + 5);
  s.ackreq = true;
  s.reth_va = mem(kWritable).addr();
  s.reth_rkey = key(kWritable);
  s.reth_len = 16;
  s.payload_len = 16;
  send(s, payload.data());
  s.psn = kPsn + 900;
  send(s, payload.data());
  auto got = answers();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].syndrome, nak(NakCode::kPsnSeqError));
  EXPECT_EQ(got[0].psn, kPsn);
  EXPECT_EQ(p.b->counters().out_of_sequence, 2u);
  EXPECT_EQ(p.b->counters().seq_naks_sent, 1u);
  // A real WRITE at kPsn, then the forged duplicate of it.
  std::vector<uint8_t> real(16, 0x11);
  s.psn = kPsn;
  send(s, real.data());
  ASSERT_EQ(mem(kWritable).data()[0], 0x11);
  answers();
  send(s, payload.data());
  got = answers();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].syndrome, kAck);
  EXPECT_EQ(got[0].psn, kPsn);
  EXPECT_EQ(mem(kWritable).data()[0], 0x11) << "a duplicate was executed again";
  EXPECT_EQ(p.b->counters().duplicates, 1u);
  EXPECT_EQ(p.b->state(), QpState::kRts);
  expect_untouched({kWritable});
}

// A flood of duplicates of an executed WRITE: each is answered by at most
// one ACK (no amplification), counted, never executed again.
TEST_F(Hostile, DuplicateFloodIsAnsweredOneForOne) {
  auto p = victim();
  std::vector<uint8_t> real(64, 0x22), forged(64, 0xEE);
  wire::PacketSpec s = req(p, op::kRc | op::kWriteOnly);
  s.ackreq = true;
  s.reth_va = mem(kWritable).addr();
  s.reth_rkey = key(kWritable);
  s.reth_len = 64;
  s.payload_len = 64;
  send(s, real.data());
  answers();
  constexpr int kFlood = 400;
  for (int i = 0; i < kFlood; ++i) {
    inject(a_, s, forged.data());
    if (i % 50 == 49) step(10 * kNanosPerUs);
  }
  run_for(200 * kNanosPerUs);
  const auto got = answers();
  EXPECT_LE(got.size(), size_t(kFlood));
  EXPECT_GE(got.size(), 1u);
  EXPECT_EQ(p.b->counters().duplicates, uint64_t(kFlood));
  EXPECT_EQ(mem(kWritable).data()[63], 0x22);
  EXPECT_EQ(p.b->state(), QpState::kRts);
  expect_untouched({kWritable});
}

// ---- opcode sequence (C9-34) ----

// Every MIDDLE or LAST request opcode without a FIRST before it: RC NAKs
// invalid request (class C, QP to ERR); UC drops it silently (a lost FIRST,
// 9.8.3), counted in drops, and stays in RTS.
TEST_F(Hostile, EveryContinuationWithoutAFirst) {
  for (uint8_t code : {op::kSendMiddle, op::kSendLast, op::kSendLastImm, op::kSendLastInv,
                       op::kWriteMiddle, op::kWriteLast, op::kWriteLastImm}) {
    for (QpType type : {QpType::kRc, QpType::kUc}) {
      const uint8_t opcode = (type == QpType::kRc ? op::kRc : op::kUc) | code;
      if (!wire::opcode_info(opcode).valid()) continue;  // UC has no SEND with invalidate
      SCOPED_TRACE(wire::opcode_info(opcode).name);
      pump_a_ = true;
      auto p = victim(type);
      wire::PacketSpec s = req(p, opcode);
      s.ackreq = true;
      s.payload_len = wire::opcode_info(opcode).has(wire::kOpMiddle) ? 1024 : 8;
      std::vector<uint8_t> payload(s.payload_len, 0xEE);
      send(s, payload.data());
      if (type == QpType::kRc) {
        expect_class_c(p, NakCode::kInvalidRequest);
      } else {
        EXPECT_TRUE(answers().empty());
        EXPECT_EQ(p.b->counters().drops, 1u);
        // UC drops what RC NAKs (9.8.3); a MIDDLE / LAST without FIRST is a lost message.
        EXPECT_EQ(p.b->counters().drop_uc_reject + p.b->counters().drop_msg_lost, 1u);
        EXPECT_EQ(p.b->state(), QpState::kRts);
      }
      expect_untouched();
    }
  }
}

// After a SEND FIRST, every request opcode that is not a SEND MIDDLE or LAST
// interrupts the message: RC NAKs invalid request; nothing is written.
TEST_F(Hostile, EveryOpcodeThatInterruptsASend) {
  for (int o = 0; o < 0x20; ++o) {
    const uint8_t opcode = op::kRc | uint8_t(o);
    const wire::OpcodeInfo& info = wire::opcode_info(opcode);
    if (!info.valid() || !info.has(wire::kOpRequest)) continue;
    if (info.has(wire::kOpSend) && (info.has(wire::kOpMiddle) || info.has(wire::kOpLast))) continue;
    SCOPED_TRACE(info.name);
    pump_a_ = true;
    auto p = victim();
    std::vector<uint8_t> payload(1024, 0xEE);
    wire::PacketSpec first = req(p, op::kRc | op::kSendFirst);
    first.payload_len = 1024;
    send(first, payload.data());
    wire::PacketSpec s = req(p, opcode, kPsn + 1);
    s.ackreq = true;
    s.payload_len = info.has(wire::kOpPayload) ? (info.has(wire::kOpMiddle) ? 1024 : 8) : 0;
    if (info.has(wire::kOpAtomicWrite)) s.payload_len = 8;
    s.reth_va = mem(kWritable).addr();
    s.reth_rkey = key(kWritable);
    s.reth_len = s.payload_len;
    s.atomic_va = mem(kAtomic).addr();
    s.atomic_rkey = key(kAtomic);
    s.deth_qkey = 0;
    send(s, payload.data());
    expect_class_c(p, NakCode::kInvalidRequest, kPsn + 1);
    expect_untouched({kRecv});  // the SEND FIRST's bytes landed in the receive buffer
  }
}

// ---- lengths and pads that disagree ----

// Lengths that disagree with each other are caught by the port's parser
// before any QP sees the frame, and counted by reason; a WRITE whose pad
// count does not fit its payload is a length error (class C).
TEST_F(Hostile, LengthsThatDisagreeAreCountedDrops) {
  auto p = victim();
  std::vector<uint8_t> payload(64, 0xEE);
  wire::PacketSpec s = req(p, op::kRc | op::kWriteOnly);
  s.ackreq = true;
  s.reth_va = mem(kWritable).addr();
  s.reth_rkey = key(kWritable);
  s.reth_len = 64;
  s.payload_len = 64;
  struct Edit {
    const char* what;
    std::function<void(uint8_t*, size_t*)> edit;
    wire::ParseError error;
  };
  const size_t ip = sizeof(wire::EthHdr), udp = ip + sizeof(wire::Ipv4Hdr), bth = udp + 8;
  const Edit edits[] = {
      {"IP length beyond the frame",
       [&](uint8_t* f, size_t*) {
         auto* h = reinterpret_cast<wire::Ipv4Hdr*>(f + ip);
         h->total_length = Be16(uint16_t(h->total_length.get() + 40));
       },
       wire::ParseError::kBadIpLength},
      {"UDP length longer than the IP payload",
       [&](uint8_t* f, size_t*) {
         auto* h = reinterpret_cast<wire::UdpHdr*>(f + udp);
         h->length = Be16(uint16_t(h->length.get() + 4));
       },
       wire::ParseError::kBadUdpLength},
      {"UDP length shorter than the IP payload",
       [&](uint8_t* f, size_t*) {
         auto* h = reinterpret_cast<wire::UdpHdr*>(f + udp);
         h->length = Be16(uint16_t(h->length.get() - 4));
       },
       wire::ParseError::kBadUdpLength},
      {"headers cut short",
       [&](uint8_t* f, size_t* len) {
         const uint16_t cut = uint16_t(*len - (bth + 12 + 8 + 4));  // BTH + half a RETH + ICRC
         auto* h = reinterpret_cast<wire::Ipv4Hdr*>(f + ip);
         auto* u = reinterpret_cast<wire::UdpHdr*>(f + udp);
         h->total_length = Be16(uint16_t(h->total_length.get() - cut));
         u->length = Be16(uint16_t(u->length.get() - cut));
         *len -= cut;
       },
       wire::ParseError::kHeaderLength},
      {"pad count beyond the payload",
       [&](uint8_t* f, size_t* len) {
         // A WRITE ONLY of 2 bytes: pad count 3 exceeds them.
         const uint16_t cut = uint16_t(62);
         auto* h = reinterpret_cast<wire::Ipv4Hdr*>(f + ip);
         auto* u = reinterpret_cast<wire::UdpHdr*>(f + udp);
         h->total_length = Be16(uint16_t(h->total_length.get() - cut));
         u->length = Be16(uint16_t(u->length.get() - cut));
         *len -= cut;
         f[bth + 1] = uint8_t((f[bth + 1] & ~0x30) | (3 << 4));
       },
       wire::ParseError::kPadBeyondPayload},
  };
  for (const Edit& e : edits) {
    SCOPED_TRACE(e.what);
    const uint64_t before = b_.dev->port().counters().parse_drop(e.error);
    inject_edited(a_, s, payload.data(), e.edit);
    run_for(50 * kNanosPerUs);
    EXPECT_EQ(b_.dev->port().counters().parse_drop(e.error) - before, 1u)
        << wire::parse_error_name(e.error);
  }
  EXPECT_TRUE(answers().empty());
  EXPECT_EQ(p.b->counters().rx_packets, 0u);
  EXPECT_EQ(p.b->state(), QpState::kRts);
  expect_untouched();
  // The pad count of a WRITE that does not fit its 61-byte payload.
  s.reth_len = 61;
  inject_edited(a_, s, payload.data(), [&](uint8_t* f, size_t* len) {
    auto* h = reinterpret_cast<wire::Ipv4Hdr*>(f + ip);
    auto* u = reinterpret_cast<wire::UdpHdr*>(f + udp);
    h->total_length = Be16(uint16_t(h->total_length.get() - 3));
    u->length = Be16(uint16_t(u->length.get() - 3));
    *len -= 3;
  });
  run_for(50 * kNanosPerUs);
  expect_class_c(p, NakCode::kInvalidRequest);
  expect_untouched();
}

// ---- responses the victim never asked for ----

// The victim as a requester: ACKs for PSNs it never sent, READ responses and
// atomic acknowledgements for requests it never made, NAKs with codes it
// does not know. Ghost and unexpected responses are counted and change
// nothing; an unknown NAK code for an outstanding request fails it as a
// remote operational error (rxe), counted apart.
TEST_F(Hostile, ResponsesNobodyAskedFor) {
  auto p = victim();
  Buffer src = make_buffer(b_, 64, kAllAccess, 0x33);
  ASSERT_EQ(post(p.b, WrOpcode::kSend, 7, &src, 64), 0);  // PSN kPsn, unanswered: a is not pumped
  run_for(50 * kNanosPerUs);
  answers();
  auto resp = [&](uint8_t opcode, uint32_t psn, uint8_t syndrome) {
    wire::PacketSpec s = spec(a_, b_, opcode, p.b->qpn(), psn);
    s.aeth_syndrome = syndrome;
    if (wire::opcode_info(opcode).has(wire::kOpPayload)) s.payload_len = 256;
    std::vector<uint8_t> payload(s.payload_len, 0xEE);
    send(s, payload.data());
  };
  // ACK / NAK / READ response / atomic ACK for PSNs never sent.
  resp(op::kAck, kPsn + 1, kAck);
  resp(op::kAck, kPsn + 5000, nak(NakCode::kRemoteAccessError));
  resp(op::kReadRespOnly, kPsn + 3, kAck);
  resp(op::kAtomicAck, kPsn + 2, kAck);
  EXPECT_EQ(p.b->counters().ghost_responses, 4u);
  EXPECT_TRUE(drain(b_.scq).empty()) << "a ghost ACK completed a WQE";
  EXPECT_EQ(p.b->state(), QpState::kRts);
  // A READ response for the PSN of a SEND (a request that asked for none).
  resp(op::kReadRespOnly, kPsn, kAck);
  EXPECT_EQ(p.b->counters().unexpected_responses, 1u);
  EXPECT_TRUE(drain(b_.scq).empty());
  // An unknown NAK code for the outstanding SEND.
  resp(op::kAck, kPsn, nak(NakCode(9)));
  auto c = drain(b_.scq);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].status, WcStatus::kRemOpErr);
  EXPECT_EQ(p.b->counters().unknown_naks_received, 1u);
  expect_untouched();
}

}  // namespace
}  // namespace droce::nic::test
