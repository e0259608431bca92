// Memory Placement Extensions (IBTA vol. 1 annex A19; rxe_req.c / rxe_resp.c /
// rxe_comp.c): RC FLUSH and ATOMIC_WRITE between two engines, the responder's
// answer on the wire (a zero-length READ RESPONSE ONLY), its duplicate replay,
// every rejection rxe makes (access flags, rkey, range, alignment, length) and
// both operations under the fault shim. Driven on a fake clock.
#include <cinttypes>
#include <cstdio>

#include "nic/fault.h"
#include "nic/wire/packet.h"
#include "tests/nic/engine/fake_clock.h"

namespace droce::nic::test {
namespace {

namespace op = wire::op;

constexpr uint32_t kRemoteAll = kAccessRemoteWrite | kAccessRemoteRead | kAccessRemoteAtomic;
constexpr uint32_t kMrFlush = kAllAccess | kAccessFlushGlobal;

class Mpe : public FakeClockTest {
 protected:
  RcPair pair(uint32_t b_access = kRemoteAll | kAccessFlushGlobal) {
    auto p = rc_pair(b_access);
    qa_ = p.a;
    qb_ = p.b;
    return p;
  }

  int post_atomic_write(Qp* qp, uint64_t wr_id, const Buffer& remote, uint64_t off,
                        uint64_t value) {
    SendWqe w = wqe(WrOpcode::kAtomicWrite, wr_id);
    w.remote_addr = remote.addr() + off;
    w.rkey = remote.key;
    std::memcpy(&w.swap, &value, sizeof(value));
    return qp->post_send(w, nullptr, nullptr);
  }
  int post_flush(Qp* qp, uint64_t wr_id, const Buffer& remote, uint64_t off, uint64_t len,
                 uint8_t type = wire::kFlushGlobal, uint8_t level = wire::kFlushRange) {
    SendWqe w = wqe(WrOpcode::kFlush, wr_id);
    w.remote_addr = remote.addr() + off;
    w.rkey = remote.key;
    w.compare_add = len;
    w.flush_type = type;
    w.flush_level = level;
    return qp->post_send(w, nullptr, nullptr);
  }

  // The requester's completions, in order, with these statuses and opcode.
  void expect_send_wcs(const std::vector<std::pair<uint64_t, WcStatus>>& want, WcOpcode opcode) {
    auto got = collect(a_.scq, want.size());
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ(got[i].wr_id, want[i].first) << i;
      EXPECT_EQ(got[i].status, want[i].second) << i;
      if (want[i].second == WcStatus::kSuccess) {
        EXPECT_EQ(got[i].opcode, opcode) << i;
        EXPECT_EQ(got[i].byte_len, opcode == WcOpcode::kAtomicWrite ? 8u : 0u) << i;
      }
    }
    run_for(2 * kNanosPerMs);
    EXPECT_TRUE(drain(a_.scq).empty());
  }

  // A class C rejection: the requester's WQE fails with `status`, the
  // responder's QP is in ERR with `event`, and nothing was written.
  void expect_rejected(WcStatus status, AsyncEventType event, WcOpcode opcode) {
    expect_send_wcs({{7, status}}, opcode);
    EXPECT_EQ(qa_->state(), QpState::kErr);
    EXPECT_EQ(qb_->state(), QpState::kErr);
    EXPECT_TRUE(has_event(events(b_), event, qb_->qpn()));
    EXPECT_EQ(qb_->counters().err_naks_sent, 1u);
  }

  // Frames that arrived at side s's port, taken before its engine sees them.
  std::vector<std::vector<uint8_t>> take_frames(Side& s) {
    std::vector<std::vector<uint8_t>> out;
    auto l = s.dev->lock_engine();
    for (int round = 0; round < 4; ++round) {
      rte_mbuf* m[32];
      wire::PacketView v[32];
      const uint16_t n = s.dev->port().receive(m, v, 32, now_);
      for (uint16_t i = 0; i < n; ++i) {
        const uint8_t* p = rte_pktmbuf_mtod(m[i], const uint8_t*);
        out.emplace_back(p, p + m[i]->data_len);
        rte_pktmbuf_free(m[i]);
      }
    }
    return out;
  }

  // One request crafted as rxe sends it, from a's port to qb (a's engine is
  // not pumped); returns what b answered.
  std::vector<std::vector<uint8_t>> inject_request(const wire::PacketSpec& s,
                                                   const void* payload = nullptr) {
    inject(a_, s, payload);
    for (int i = 0; i < 20; ++i) step(10 * kNanosPerUs);
    return take_frames(a_);
  }

  // A warm-up ATOMIC_WRITE with both engines running, so that b has resolved
  // a's address; then a stops and the test speaks for it from PSN 0x124.
  void warm_up(const Buffer& remote) {
    ASSERT_EQ(post_atomic_write(qa_, 1, remote, 0, 0x1111), 0);
    expect_send_wcs({{1, WcStatus::kSuccess}}, WcOpcode::kAtomicWrite);
    pump_a_ = false;
  }

  Qp* qa_ = nullptr;
  Qp* qb_ = nullptr;
};

uint64_t load64(const Buffer& b, size_t off) {
  uint64_t v;
  std::memcpy(&v, b.bytes.data() + off, 8);
  return v;
}

// ---- success ----

TEST_F(Mpe, AtomicWriteStoresTheEightBytesAndCompletes) {
  pair();
  Buffer remote = make_buffer(b_, 256, kAllAccess, 0x5A);
  const uint64_t values[3] = {0x0102030405060708ull, 0, ~0ull};
  for (uint64_t i = 0; i < 3; ++i) {
    ASSERT_EQ(post_atomic_write(qa_, 10 + i, remote, 64 + 8 * i, values[i]), 0);
  }
  expect_send_wcs({{10, WcStatus::kSuccess}, {11, WcStatus::kSuccess}, {12, WcStatus::kSuccess}},
                  WcOpcode::kAtomicWrite);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(load64(remote, 64 + 8 * i), values[i]) << i;
  for (size_t i = 0; i < 256; ++i) {
    if (i >= 64 && i < 88) continue;
    ASSERT_EQ(remote.bytes[i], 0x5A) << "byte " << i << " outside the three words";
  }
  EXPECT_EQ(qa_->state(), QpState::kRts);
  EXPECT_EQ(qb_->state(), QpState::kRts);
}

TEST_F(Mpe, ManyAtomicWritesBeyondTheInitiatorDepthCompleteInOrder) {
  // 16 outstanding at most (max_rd_atomic); 200 posted at once.
  pair();
  Buffer remote = make_buffer(b_, 200 * 8, kAllAccess);
  for (uint64_t i = 0; i < 200; ++i) ASSERT_EQ(post_atomic_write(qa_, i, remote, 8 * i, i * 3 + 1), 0);
  auto wcs = collect(a_.scq, 200);
  ASSERT_EQ(wcs.size(), 200u);
  for (uint64_t i = 0; i < 200; ++i) {
    EXPECT_EQ(wcs[i].wr_id, i);
    EXPECT_EQ(wcs[i].status, WcStatus::kSuccess);
    EXPECT_EQ(load64(remote, 8 * i), i * 3 + 1);
  }
}

TEST_F(Mpe, FlushOfARangeAndOfTheWholeRegionComplete) {
  pair();
  Buffer src = make_buffer(a_, 4096, kAllAccess, 0x77);
  Buffer remote = make_buffer(b_, 4096, kMrFlush);
  // WRITE then FLUSH of its range: the FLUSH completes after the WRITE, and
  // the data is there when it does.
  ASSERT_EQ(post(qa_, WrOpcode::kRdmaWrite, 20, &src, 3000, &remote), 0);
  ASSERT_EQ(post_flush(qa_, 21, remote, 0, 3000), 0);
  auto wcs = collect(a_.scq, 2);
  ASSERT_EQ(wcs.size(), 2u);
  EXPECT_EQ(wcs[0].wr_id, 20u);
  EXPECT_EQ(wcs[1].wr_id, 21u);
  EXPECT_EQ(wcs[1].status, WcStatus::kSuccess);
  EXPECT_EQ(wcs[1].opcode, WcOpcode::kFlush);
  EXPECT_EQ(std::memcmp(src.bytes.data(), remote.bytes.data(), 3000), 0);
  // Whole region (selectivity MR): the address and length are not checked.
  ASSERT_EQ(post_flush(qa_, 22, remote, 1u << 20, 1u << 30, wire::kFlushGlobal, wire::kFlushMr), 0);
  // A zero-length range.
  ASSERT_EQ(post_flush(qa_, 23, remote, 100, 0), 0);
  expect_send_wcs({{22, WcStatus::kSuccess}, {23, WcStatus::kSuccess}}, WcOpcode::kFlush);
  EXPECT_EQ(qb_->state(), QpState::kRts);
}

// ---- on the wire, as rxe answers ----

TEST_F(Mpe, ResponsesAreEmptyReadResponsesAndDuplicatesAreAnsweredNotRedone) {
  pair();
  Buffer remote = make_buffer(b_, 64, kMrFlush);
  warm_up(remote);
  // ATOMIC_WRITE PSN 0x124 as rxe builds it: RETH (len 8) + the 8 bytes.
  wire::PacketSpec s = spec(a_, b_, op::kAtomicWrite, qb_->qpn(), 0x124);
  s.ackreq = true;
  s.reth_va = remote.addr() + 8;
  s.reth_rkey = remote.key;
  s.reth_len = 8;
  s.payload_len = 8;
  const uint64_t v1 = 0xAABBCCDD00112233ull;
  auto frames = inject_request(s, &v1);
  ASSERT_EQ(frames.size(), 1u);
  wire::PacketView v;
  ASSERT_EQ(wire::parse_frame(frames[0].data(), frames[0].size(), &v), wire::ParseError::kOk);
  EXPECT_EQ(v.bth().opcode, op::kReadRespOnly);
  EXPECT_EQ(v.bth().psn(), 0x124u);
  EXPECT_EQ(v.bth().dest_qp(), qa_->qpn());
  EXPECT_EQ(v.payload_len, 0u);
  EXPECT_EQ(v.aeth().type(), wire::AethType::kAck);
  EXPECT_EQ(v.aeth().msn(), 2u);  // the warm-up and this one
  EXPECT_EQ(load64(remote, 8), v1);

  // The same PSN again (its response lost): answered again, not executed
  // again (oA19-14): what the application stored since stays.
  const uint64_t mine = 0x5555;
  std::memcpy(remote.bytes.data() + 8, &mine, 8);
  const uint64_t v2 = 0x9999;
  frames = inject_request(s, &v2);
  ASSERT_EQ(frames.size(), 1u);
  ASSERT_EQ(wire::parse_frame(frames[0].data(), frames[0].size(), &v), wire::ParseError::kOk);
  EXPECT_EQ(v.bth().opcode, op::kReadRespOnly);
  EXPECT_EQ(v.bth().psn(), 0x124u);
  EXPECT_EQ(v.payload_len, 0u);
  EXPECT_EQ(load64(remote, 8), mine);
  EXPECT_EQ(qb_->counters().duplicates, 1u);

  // FLUSH PSN 0x125: FETH + RETH, answered the same way.
  wire::PacketSpec f = spec(a_, b_, op::kFlush, qb_->qpn(), 0x125);
  f.ackreq = true;
  f.feth_placement = wire::kFlushGlobal;
  f.feth_selectivity = wire::kFlushRange;
  f.reth_va = remote.addr();
  f.reth_rkey = remote.key;
  f.reth_len = 64;
  frames = inject_request(f);
  ASSERT_EQ(frames.size(), 1u);
  ASSERT_EQ(wire::parse_frame(frames[0].data(), frames[0].size(), &v), wire::ParseError::kOk);
  EXPECT_EQ(v.bth().opcode, op::kReadRespOnly);
  EXPECT_EQ(v.bth().psn(), 0x125u);
  EXPECT_EQ(v.aeth().msn(), 3u);
  // ... and its duplicate too.
  frames = inject_request(f);
  ASSERT_EQ(frames.size(), 1u);
  ASSERT_EQ(wire::parse_frame(frames[0].data(), frames[0].size(), &v), wire::ParseError::kOk);
  EXPECT_EQ(v.bth().psn(), 0x125u);
  EXPECT_EQ(qb_->counters().duplicates, 2u);
  EXPECT_EQ(qb_->state(), QpState::kRts);
}

TEST_F(Mpe, ShortAtomicWriteIsInvalidRequest) {
  // rxe check_rkey (oA19-28): the payload and the RETH length are 8 bytes.
  pair();
  Buffer remote = make_buffer(b_, 64, kAllAccess, 0x22);
  warm_up(remote);
  wire::PacketSpec s = spec(a_, b_, op::kAtomicWrite, qb_->qpn(), 0x124);
  s.ackreq = true;
  s.reth_va = remote.addr() + 16;
  s.reth_rkey = remote.key;
  s.reth_len = 4;
  s.payload_len = 4;
  const uint32_t four = 0x01020304;
  auto frames = inject_request(s, &four);
  ASSERT_EQ(frames.size(), 1u);
  wire::PacketView v;
  ASSERT_EQ(wire::parse_frame(frames[0].data(), frames[0].size(), &v), wire::ParseError::kOk);
  EXPECT_EQ(v.bth().opcode, op::kAck);
  EXPECT_EQ(v.aeth().syndrome(), 0x61);  // NAK invalid request
  EXPECT_EQ(qb_->state(), QpState::kErr);
  EXPECT_EQ(load64(remote, 16), 0x2222222222222222ull);
}

// ---- rejections (rxe's class C errors) ----

TEST_F(Mpe, AtomicWriteWithABadKeyIsRemoteAccessError) {
  pair();
  Buffer remote = make_buffer(b_, 64, kAllAccess, 0x22);
  Buffer bad = remote;
  bad.key ^= 0x100;  // another slot
  ASSERT_EQ(post_atomic_write(qa_, 7, bad, 0, 1), 0);
  expect_rejected(WcStatus::kRemAccessErr, AsyncEventType::kQpAccessErr, WcOpcode::kAtomicWrite);
  EXPECT_EQ(remote.bytes, std::vector<uint8_t>(64, 0x22));
}

TEST_F(Mpe, AtomicWriteBeyondTheRegionIsRemoteAccessError) {
  pair();
  Buffer remote = make_buffer(b_, 64, kAllAccess, 0x22);
  ASSERT_EQ(post_atomic_write(qa_, 7, remote, 64, 1), 0);  // [64, 72) of a 64-byte region
  expect_rejected(WcStatus::kRemAccessErr, AsyncEventType::kQpAccessErr, WcOpcode::kAtomicWrite);
}

TEST_F(Mpe, AtomicWriteToARegionWithoutRemoteWriteIsRemoteAccessError) {
  // ATOMIC_WRITE needs remote write on the region, not remote atomic (rxe).
  pair();
  Buffer remote =
      make_buffer(b_, 64, kAccessLocalWrite | kAccessRemoteRead | kAccessRemoteAtomic, 0x22);
  ASSERT_EQ(post_atomic_write(qa_, 7, remote, 0, 1), 0);
  expect_rejected(WcStatus::kRemAccessErr, AsyncEventType::kQpAccessErr, WcOpcode::kAtomicWrite);
  EXPECT_EQ(remote.bytes, std::vector<uint8_t>(64, 0x22));
}

TEST_F(Mpe, MisalignedAtomicWriteIsInvalidRequest) {
  pair();
  Buffer remote = make_buffer(b_, 64, kAllAccess, 0x22);
  ASSERT_EQ(post_atomic_write(qa_, 7, remote, 4, 1), 0);
  expect_rejected(WcStatus::kRemInvReqErr, AsyncEventType::kQpReqErr, WcOpcode::kAtomicWrite);
  EXPECT_EQ(remote.bytes, std::vector<uint8_t>(64, 0x22));
}

TEST_F(Mpe, AtomicWriteToAQpWithoutRemoteWriteIsInvalidRequest) {
  // rxe check_qp_attr_access: the QP's remote write right, not its atomic one.
  pair(kAccessRemoteRead | kAccessRemoteAtomic);
  Buffer remote = make_buffer(b_, 64, kAllAccess, 0x22);
  ASSERT_EQ(post_atomic_write(qa_, 7, remote, 0, 1), 0);
  expect_rejected(WcStatus::kRemInvReqErr, AsyncEventType::kQpReqErr, WcOpcode::kAtomicWrite);
  EXPECT_EQ(remote.bytes, std::vector<uint8_t>(64, 0x22));
}

TEST_F(Mpe, FlushToAQpWithoutFlushRightsIsInvalidRequest) {
  pair(kRemoteAll);  // no kAccessFlushGlobal on the QP
  Buffer remote = make_buffer(b_, 64, kMrFlush);
  ASSERT_EQ(post_flush(qa_, 7, remote, 0, 64), 0);
  expect_rejected(WcStatus::kRemInvReqErr, AsyncEventType::kQpReqErr, WcOpcode::kFlush);
}

TEST_F(Mpe, FlushOfARegionWithoutFlushRightsIsRemoteAccessError) {
  pair();
  Buffer remote = make_buffer(b_, 64, kAllAccess);  // no kAccessFlushGlobal on the MR
  ASSERT_EQ(post_flush(qa_, 7, remote, 0, 64), 0);
  expect_rejected(WcStatus::kRemAccessErr, AsyncEventType::kQpAccessErr, WcOpcode::kFlush);
}

TEST_F(Mpe, FlushBeyondTheRegionIsRemoteAccessError) {
  pair();
  Buffer remote = make_buffer(b_, 64, kMrFlush);
  ASSERT_EQ(post_flush(qa_, 7, remote, 32, 64), 0);
  expect_rejected(WcStatus::kRemAccessErr, AsyncEventType::kQpAccessErr, WcOpcode::kFlush);
}

TEST_F(Mpe, FlushWithABadKeyIsRemoteAccessErrorEvenForTheWholeRegion) {
  pair();
  Buffer remote = make_buffer(b_, 64, kMrFlush);
  Buffer bad = remote;
  bad.key ^= 0x100;
  ASSERT_EQ(post_flush(qa_, 7, bad, 0, 64, wire::kFlushGlobal, wire::kFlushMr), 0);
  expect_rejected(WcStatus::kRemAccessErr, AsyncEventType::kQpAccessErr, WcOpcode::kFlush);
}

TEST_F(Mpe, PersistentFlushFailsOnHostMemory) {
  // Persistence needs pmem: no region can have it (rxe refuses the flag on
  // memory that is not pmem), so a persistent FLUSH that the QP allows fails
  // at the region.
  EXPECT_FALSE(b_.dev->reg_mr(b_.pd, nullptr, 0x1000, 0, kAllAccess | kAccessFlushPersistent).is_ok());
  pair(kRemoteAll | kAccessFlushGlobal | kAccessFlushPersistent);
  Buffer remote = make_buffer(b_, 64, kMrFlush);
  ASSERT_EQ(post_flush(qa_, 7, remote, 0, 64, wire::kFlushPersistent), 0);
  expect_rejected(WcStatus::kRemAccessErr, AsyncEventType::kQpAccessErr, WcOpcode::kFlush);
}

TEST_F(Mpe, PostSendRefusesMalformedWqes) {
  pair();
  Qp* uc = make_qp(a_, QpType::kUc);
  Buffer remote = make_buffer(b_, 64, kMrFlush);
  Buffer local = make_buffer(a_, 64, kAllAccess);
  // UC: both are RC-only operations (after RTS, so only the opcode is at fault).
  Qp* ucb = make_qp(b_, QpType::kUc);
  connect(a_, uc, b_, ucb);
  EXPECT_EQ(post_atomic_write(uc, 1, remote, 0, 1), EINVAL);
  EXPECT_EQ(post_flush(uc, 1, remote, 0, 8), EINVAL);
  // A FLUSH naming no placement type, an unknown one, or a reserved level.
  EXPECT_EQ(post_flush(qa_, 1, remote, 0, 8, 0), EINVAL);
  EXPECT_EQ(post_flush(qa_, 1, remote, 0, 8, 4), EINVAL);
  EXPECT_EQ(post_flush(qa_, 1, remote, 0, 8, wire::kFlushGlobal, 2), EINVAL);
  // Local SGEs: neither operation moves local data.
  EXPECT_EQ(post(qa_, WrOpcode::kAtomicWrite, 1, &local, 8, &remote), EINVAL);
  EXPECT_EQ(post(qa_, WrOpcode::kFlush, 1, &local, 8, &remote), EINVAL);
  run_for(kNanosPerMs);
  EXPECT_TRUE(drain(a_.scq).empty());
}

// ---- under the fault shim ----

class MpeLossy : public Mpe {
 protected:
  void SetUp() override {
    Mpe::SetUp();
    FaultConfig c;
    c.drop = 0.05;
    c.dup = 0.01;
    c.reorder = 0.01;
    c.seed = 0x31;
    auto fa = std::make_unique<FaultShim>(c, a_.dev->port().mempool());
    c.seed = 0x32;
    auto fb = std::make_unique<FaultShim>(c, b_.dev->port().mempool());
    shim_a_ = fa.get();
    shim_b_ = fb.get();
    a_.dev->set_faults(std::move(fa));
    b_.dev->set_faults(std::move(fb));
  }
  FaultShim* shim_a_ = nullptr;
  FaultShim* shim_b_ = nullptr;
};

TEST_F(MpeLossy, AtomicWritesAndFlushesCompleteOnceEachInOrder) {
  // 2000 rounds of WRITE, ATOMIC_WRITE, FLUSH over 5 % drop, 1 % duplicate and
  // 1 % reorder both ways: every WQE completes once, in order, successfully;
  // the last value of each word is the last one written.
  auto p = rc_pair(kRemoteAll | kAccessFlushGlobal, 1024, /*timeout=*/8, 7, 7);
  qa_ = p.a;
  qb_ = p.b;
  constexpr uint32_t kRounds = 2000, kWords = 64;
  Buffer src = make_buffer(a_, 4096, kAllAccess);
  Buffer remote = make_buffer(b_, 4096 + kWords * 8, kMrFlush);
  fill_pattern(src.bytes, 9);
  std::vector<uint64_t> expect(kWords, 0);
  uint64_t wr_id = 0, completed = 0;
  std::vector<Cqe> wcs;
  for (uint32_t r = 0; r < kRounds;) {
    // Post what fits, then drive until something completes.
    while (r < kRounds) {
      const uint32_t word = (r * 7) % kWords;
      const uint64_t value = (uint64_t(r) << 32) | word;
      if (qa_->sq().published() - qa_->sq().completed() + 3 > qa_->sq().capacity()) break;
      ASSERT_EQ(post(qa_, WrOpcode::kRdmaWrite, wr_id++, &src, 1 + r % 4096, &remote), 0);
      ASSERT_EQ(post_atomic_write(qa_, wr_id++, remote, 4096 + 8 * word, value), 0);
      ASSERT_EQ(post_flush(qa_, wr_id++, remote, 4096 + 8 * word, 8), 0);
      expect[word] = value;
      ++r;
    }
    const size_t before = wcs.size();
    ASSERT_TRUE(run_until([&] {
      Cqe c[64];
      int n;
      while ((n = a_.scq->poll(c, 64)) > 0) wcs.insert(wcs.end(), c, c + n);
      return wcs.size() > before;
    }, 5 * kNanosPerUs, 20'000'000)) << "stalled at " << wcs.size() << " of " << wr_id;
  }
  ASSERT_TRUE(run_until([&] {
    Cqe c[64];
    int n;
    while ((n = a_.scq->poll(c, 64)) > 0) wcs.insert(wcs.end(), c, c + n);
    return wcs.size() >= wr_id;
  }, 5 * kNanosPerUs, 20'000'000)) << wcs.size() << " of " << wr_id;
  ASSERT_EQ(wcs.size(), wr_id);
  for (const Cqe& c : wcs) {
    ASSERT_EQ(c.status, WcStatus::kSuccess) << "wr " << c.wr_id;
    ASSERT_EQ(c.wr_id, completed) << "completions out of order or twice";
    const WcOpcode want = completed % 3 == 0   ? WcOpcode::kRdmaWrite
                          : completed % 3 == 1 ? WcOpcode::kAtomicWrite
                                               : WcOpcode::kFlush;
    ASSERT_EQ(c.opcode, want) << "wr " << c.wr_id;
    ++completed;
  }
  for (uint32_t w = 0; w < kWords; ++w) EXPECT_EQ(load64(remote, 4096 + 8 * w), expect[w]) << w;
  EXPECT_EQ(qa_->state(), QpState::kRts);
  EXPECT_EQ(qb_->state(), QpState::kRts);
  EXPECT_GT(qa_->counters().retransmits, 0u);
  EXPECT_GT(qb_->counters().duplicates, 0u);
  EXPECT_GT(shim_a_->counters().dropped, 0u);
  EXPECT_GT(shim_b_->counters().dropped, 0u);
  std::printf("  retransmits %" PRIu64 " duplicates %" PRIu64 " timeouts %" PRIu64 "\n",
              qa_->counters().retransmits, qb_->counters().duplicates, qa_->counters().timeouts);
}

}  // namespace
}  // namespace droce::nic::test
