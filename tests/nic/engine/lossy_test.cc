// RC over a lossy link (issue 4 section 7): the fault shim on both directions
// (5 % drop, 1 % duplicate, 1 % reorder, 0.1 % bit flip) while WRITE, READ and
// SEND move 256 MiB each and two QPs do 100 000 FETCH_ADDs. Exercises go-back-N,
// duplicate detection, READ replay, the atomic replay cache and implicit NAKs
// (IBTA vol. 1 9.7.5). Driven on a fake clock (timeout 8 = 1 ms of fake time).
// Full volumes in every build: the whole binary takes ~4 s, ~11 s under ASan.
#include <cinttypes>
#include <cstdio>
#include <cstdlib>

#include "nic/fault.h"
#include "tests/nic/engine/fake_clock.h"

namespace droce::nic::test {
namespace {

constexpr uint64_t kBytesPerOp = 256ull << 20;
constexpr uint32_t kAtomicsPerQp = 50000;
constexpr Nanos kStep = 5 * kNanosPerUs;
constexpr uint8_t kTimeout = 8;  // 4.096 us * 2^8 = 1.05 ms

// A small deterministic generator for message sizes and patterns.
struct Rng {
  uint64_t s;
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
};

void fill(uint8_t* p, size_t n, uint64_t seed) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(p + i, &x, 8);
  }
  for (; i < n; ++i) p[i] = uint8_t(x >> (8 * (i & 7)));
}

class Lossy : public FakeClockTest {
 protected:
  void SetUp() override {
    FakeClockTest::SetUp();
    FaultConfig c;
    c.drop = 0.05;
    c.dup = 0.01;
    c.reorder = 0.01;
    c.bitflip = 0.001;
    // DROCE_LOSSY_SEED=n reruns with other faults (the default is what CI runs).
    const char* env_seed = std::getenv("DROCE_LOSSY_SEED");
    const uint64_t seed = env_seed != nullptr ? std::strtoull(env_seed, nullptr, 0) : 0xA;
    c.seed = seed;
    // DROCE_LOSSY_FAULTS (DROCE_FAULTS syntax) replaces the rates, for stress runs by hand.
    if (const char* text = std::getenv("DROCE_LOSSY_FAULTS")) {
      auto parsed = FaultConfig::parse(text);
      ASSERT_TRUE(parsed.is_ok()) << parsed.status().message();
      c = parsed.value();
      c.seed = seed;
    }
    auto fa = std::make_unique<FaultShim>(c, a_.dev->port().mempool());
    c.seed = seed ^ 0x5A5A5A5A;
    auto fb = std::make_unique<FaultShim>(c, b_.dev->port().mempool());
    shim_a_ = fa.get();
    shim_b_ = fb.get();
    a_.dev->set_faults(std::move(fa));
    b_.dev->set_faults(std::move(fb));
    start_ = monotonic_now();
  }
  void TearDown() override {
    report();
    FakeClockTest::TearDown();
  }

  RcPair lossy_pair() { return rc_pair(kAllAccess & ~kAccessLocalWrite, 1024, kTimeout, 7, 7); }

  // Steps until done() or a real-time bound; false on timeout.
  bool drive(const std::function<bool()>& done, Nanos real_limit = 100 * kNanosPerSec) {
    const Nanos end = monotonic_now() + real_limit;
    for (uint64_t i = 0;; ++i) {
      if (done()) return true;
      if ((i & 1023) == 0 && monotonic_now() > end) return false;
      step(kStep);
    }
  }

  // Polls cq into out (at most want more).
  static void poll_into(CompletionQueue* cq, std::vector<Cqe>* out) {
    Cqe c[64];
    int n;
    while ((n = cq->poll(c, 64)) > 0) out->insert(out->end(), c, c + n);
  }

  void report() {
    const FaultCounters& fa = shim_a_->counters();
    const FaultCounters& fb = shim_b_->counters();
    std::printf("  a->b: frames %" PRIu64 " dropped %" PRIu64 " dup %" PRIu64 " reordered %" PRIu64
                " flipped %" PRIu64 "\n",
                fa.frames, fa.dropped, fa.duplicated, fa.reordered, fa.bitflipped);
    std::printf("  b->a: frames %" PRIu64 " dropped %" PRIu64 " dup %" PRIu64 " reordered %" PRIu64
                " flipped %" PRIu64 "\n",
                fb.frames, fb.dropped, fb.duplicated, fb.reordered, fb.bitflipped);
    std::printf("  fake time %.1f ms, real %.2f s\n", double(now_ - start_fake_) / 1e6,
                double(monotonic_now() - start_) / 1e9);
    for (Qp* q : qps_) {
      const QpCounters& k = q->counters();
      std::printf("  qp %u: tx %" PRIu64 " rx %" PRIu64 " retransmits %" PRIu64 " timeouts %" PRIu64
                  " seq_naks tx/rx %" PRIu64 "/%" PRIu64 " stale %" PRIu64 " dups %" PRIu64
                  " ooo %" PRIu64 " drops %" PRIu64 " rnr_naks tx/rx %" PRIu64 "/%" PRIu64
                  " acks %" PRIu64 " coalesced %" PRIu64 "\n",
                  q->qpn(), k.tx_packets, k.rx_packets, k.retransmits, k.timeouts, k.seq_naks_sent,
                  k.seq_naks_received, k.stale_naks, k.duplicates, k.out_of_sequence, k.drops,
                  k.rnr_naks_sent, k.rnr_naks_received, k.acks_sent, k.acks_coalesced);
    }
  }
  // The faults really happened, both ways.
  void expect_faults_seen() {
    for (FaultShim* s : {shim_a_, shim_b_}) {
      EXPECT_GT(s->counters().dropped, 0u);
      EXPECT_GT(s->counters().duplicated, 0u);
      EXPECT_GT(s->counters().reordered, 0u);
    }
    EXPECT_GT(shim_a_->counters().bitflipped, 0u);
    EXPECT_GT(b_.dev->port().counters().parse_drop(wire::ParseError::kBadIcrc) +
                  a_.dev->port().counters().parse_drop(wire::ParseError::kBadIcrc),
              0u);
  }

  FaultShim* shim_a_ = nullptr;
  FaultShim* shim_b_ = nullptr;
  Nanos start_ = 0;
  Nanos start_fake_ = 0;
  std::vector<Qp*> qps_;
};

TEST_F(Lossy, Write256MiBArrivesExactlyOnce) {
  start_fake_ = now_;
  auto p = lossy_pair();
  qps_ = {p.a, p.b};
  constexpr uint32_t kRegion = 16u << 20;
  Buffer src = make_buffer(a_, kRegion, kAllAccess);
  Buffer dst = make_buffer(b_, kRegion, kAllAccess);
  Rng rng{12345};
  uint64_t moved = 0, wr_id = 0, completed = 0;
  for (uint32_t pass = 0; moved < kBytesPerOp; ++pass) {
    fill(src.bytes.data(), kRegion, pass);
    // Cover the whole region with messages of random length, posted as the SQ allows.
    uint32_t off = 0;
    std::vector<Cqe> wcs;
    uint64_t posted_this_pass = 0;
    while (off < kRegion || wcs.size() < posted_this_pass) {
      while (off < kRegion) {
        const uint32_t len =
            std::min<uint32_t>(kRegion - off, 1 + uint32_t(rng.next() % (512 << 10)));
        const int rc =
            post(p.a, WrOpcode::kRdmaWrite, wr_id, &src, len, &dst, off, kSendSignaled, off);
        if (rc == ENOMEM) break;
        ASSERT_EQ(rc, 0);
        ++wr_id;
        ++posted_this_pass;
        off += len;
      }
      const size_t before = wcs.size();
      ASSERT_TRUE(drive([&] {
        poll_into(a_.scq, &wcs);
        return wcs.size() > before || (off >= kRegion && wcs.size() == posted_this_pass);
      })) << "stalled: pass "
          << pass << ", " << wcs.size() << " of " << posted_this_pass << " completions";
    }
    for (const Cqe& c : wcs) {
      ASSERT_EQ(c.status, WcStatus::kSuccess) << "wr " << c.wr_id;
      ASSERT_EQ(c.wr_id, completed) << "completions out of order or twice";
      ++completed;
    }
    ASSERT_EQ(std::memcmp(src.bytes.data(), dst.bytes.data(), kRegion), 0) << "pass " << pass;
    moved += kRegion;
  }
  EXPECT_EQ(completed, wr_id);
  run_for(5 * kNanosPerMs, kStep);
  EXPECT_TRUE(drain(a_.scq).empty());
  EXPECT_EQ(p.a->state(), QpState::kRts);
  EXPECT_EQ(p.b->state(), QpState::kRts);
  EXPECT_GT(p.a->counters().retransmits, 0u);
  EXPECT_GT(p.b->counters().duplicates, 0u);
  // The responder coalesced ACKs (on by default) while frames were lost,
  // duplicated and reordered, and every byte still arrived once.
  EXPECT_GT(p.b->counters().acks_coalesced, 0u);
  expect_faults_seen();
}

TEST_F(Lossy, Read256MiBArrivesExactlyOnce) {
  start_fake_ = now_;
  auto p = lossy_pair();
  qps_ = {p.a, p.b};
  constexpr uint32_t kRegion = 16u << 20;
  Buffer local = make_buffer(a_, kRegion, kAllAccess);
  Buffer remote = make_buffer(b_, kRegion, kAllAccess);
  Rng rng{777};
  uint64_t moved = 0, wr_id = 0, completed = 0;
  for (uint32_t pass = 0; moved < kBytesPerOp; ++pass) {
    fill(remote.bytes.data(), kRegion, 1000 + pass);
    std::memset(local.bytes.data(), 0, kRegion);
    uint32_t off = 0;
    std::vector<Cqe> wcs;
    uint64_t posted_this_pass = 0;
    while (off < kRegion || wcs.size() < posted_this_pass) {
      while (off < kRegion) {
        const uint32_t len =
            std::min<uint32_t>(kRegion - off, 1 + uint32_t(rng.next() % (512 << 10)));
        const int rc =
            post(p.a, WrOpcode::kRdmaRead, wr_id, &local, len, &remote, off, kSendSignaled, off);
        if (rc == ENOMEM) break;
        ASSERT_EQ(rc, 0);
        ++wr_id;
        ++posted_this_pass;
        off += len;
      }
      const size_t before = wcs.size();
      ASSERT_TRUE(drive([&] {
        poll_into(a_.scq, &wcs);
        return wcs.size() > before || (off >= kRegion && wcs.size() == posted_this_pass);
      })) << "stalled: pass "
          << pass << ", " << wcs.size() << " of " << posted_this_pass << " completions";
    }
    for (const Cqe& c : wcs) {
      ASSERT_EQ(c.status, WcStatus::kSuccess) << "wr " << c.wr_id;
      ASSERT_EQ(c.wr_id, completed) << "completions out of order or twice";
      ++completed;
    }
    ASSERT_EQ(std::memcmp(local.bytes.data(), remote.bytes.data(), kRegion), 0) << "pass " << pass;
    moved += kRegion;
  }
  EXPECT_EQ(completed, wr_id);
  EXPECT_EQ(p.a->state(), QpState::kRts);
  EXPECT_EQ(p.b->state(), QpState::kRts);
  EXPECT_GT(p.a->counters().retransmits, 0u);
  EXPECT_GT(p.b->counters().duplicates, 0u);
  expect_faults_seen();
}

TEST_F(Lossy, Send256MiBArrivesExactlyOnceInOrder) {
  start_fake_ = now_;
  auto p = lossy_pair();
  qps_ = {p.a, p.b};
  constexpr uint32_t kSlots = 128;         // messages in flight (SQ, RQ)
  constexpr uint32_t kMaxMsg = 64u << 10;  // receive buffer size
  Buffer src = make_buffer(a_, size_t(kSlots) * kMaxMsg, kAllAccess);
  Buffer dst = make_buffer(b_, size_t(kSlots) * kMaxMsg, kAllAccess);
  Rng rng{4242};
  std::vector<uint32_t> lens;  // length of message k
  uint64_t sent_bytes = 0, next_send = 0, send_done = 0, next_recv = 0;
  for (uint32_t i = 0; i < kSlots; ++i) {
    ASSERT_EQ(post_recv(p.b, i, dst, kMaxMsg, i * kMaxMsg), 0);
  }
  std::vector<Cqe> swc, rwc;
  while (next_recv < lens.size() || sent_bytes < kBytesPerOp) {
    // Send while slots are free: slot k % kSlots is free once message k - kSlots completed.
    while (sent_bytes < kBytesPerOp && next_send < send_done + kSlots) {
      const uint32_t len = std::max<uint32_t>(8, 1 + uint32_t(rng.next() % kMaxMsg));
      const uint32_t slot = uint32_t(next_send % kSlots);
      uint8_t* m = src.bytes.data() + size_t(slot) * kMaxMsg;
      fill(m, len, 5000 + next_send);
      std::memcpy(m, &next_send, 8);
      ASSERT_EQ(post(p.a, WrOpcode::kSend, next_send, &src, len, nullptr, 0, kSendSignaled,
                     slot * kMaxMsg),
                0);
      lens.push_back(len);
      sent_bytes += len;
      ++next_send;
    }
    const size_t sb = swc.size(), rb = rwc.size();
    ASSERT_TRUE(drive([&] {
      poll_into(a_.scq, &swc);
      poll_into(b_.rcq, &rwc);
      return swc.size() > sb || rwc.size() > rb;
    })) << "stalled at message "
        << next_recv << " of " << next_send;
    for (size_t i = sb; i < swc.size(); ++i) {
      ASSERT_EQ(swc[i].status, WcStatus::kSuccess) << "send " << swc[i].wr_id;
      ASSERT_EQ(swc[i].wr_id, send_done) << "send completions out of order or twice";
      ++send_done;
    }
    for (size_t i = rb; i < rwc.size(); ++i) {
      const Cqe& c = rwc[i];
      ASSERT_EQ(c.status, WcStatus::kSuccess) << "recv " << c.wr_id;
      // Receives complete in the order they were posted, one message each.
      const uint32_t slot = uint32_t(next_recv % kSlots);
      ASSERT_EQ(c.wr_id, slot);
      ASSERT_LT(next_recv, lens.size());
      ASSERT_EQ(c.byte_len, lens[next_recv]) << "message " << next_recv;
      const uint8_t* got = dst.bytes.data() + size_t(slot) * kMaxMsg;
      uint64_t seq;
      std::memcpy(&seq, got, 8);
      ASSERT_EQ(seq, next_recv) << "message lost, duplicated or reordered";
      std::vector<uint8_t> want(c.byte_len);
      fill(want.data(), c.byte_len, 5000 + next_recv);
      std::memcpy(want.data(), &next_recv, 8);
      ASSERT_EQ(std::memcmp(got, want.data(), c.byte_len), 0) << "message " << next_recv;
      ++next_recv;
      ASSERT_EQ(post_recv(p.b, slot, dst, kMaxMsg, slot * kMaxMsg), 0);
    }
    swc.clear();
    rwc.clear();
  }
  EXPECT_EQ(next_recv, next_send);
  ASSERT_TRUE(drive([&] {
    poll_into(a_.scq, &swc);
    return send_done + swc.size() == next_send;
  }));
  run_for(5 * kNanosPerMs, kStep);
  EXPECT_TRUE(drain(b_.rcq).empty());  // nothing delivered twice
  EXPECT_EQ(p.a->state(), QpState::kRts);
  EXPECT_EQ(p.b->state(), QpState::kRts);
  EXPECT_GT(p.a->counters().retransmits, 0u);
  EXPECT_GT(p.b->counters().duplicates, 0u);
  EXPECT_GT(p.b->counters().acks_coalesced, 0u);
  expect_faults_seen();
}

TEST_F(Lossy, FetchAddFromTwoQpsSumsExactly) {
  start_fake_ = now_;
  auto p1 = lossy_pair();
  auto p2 = lossy_pair();
  qps_ = {p1.a, p1.b, p2.a, p2.b};
  Buffer counter = make_buffer(b_, 64, kAllAccess, 0);
  constexpr uint32_t kDepth = 256;
  Buffer results[2] = {make_buffer(a_, kDepth * 8, kAllAccess),
                       make_buffer(a_, kDepth * 8, kAllAccess)};
  Qp* qps[2] = {p1.a, p2.a};
  uint32_t posted[2] = {0, 0}, done[2] = {0, 0};
  std::vector<uint8_t> seen(2 * size_t(kAtomicsPerQp), 0);
  std::vector<Cqe> wcs;
  while (done[0] < kAtomicsPerQp || done[1] < kAtomicsPerQp) {
    for (int q = 0; q < 2; ++q) {
      while (posted[q] < kAtomicsPerQp && posted[q] < done[q] + kDepth) {
        SendWqe w = wqe(WrOpcode::kFetchAdd, posted[q]);
        Sge s{results[q].addr() + (posted[q] % kDepth) * 8, 8, results[q].key};
        w.num_sge = 1;
        w.remote_addr = counter.addr() + 8;
        w.rkey = counter.key;
        w.compare_add = 1;
        ASSERT_EQ(qps[q]->post_send(w, &s, nullptr), 0);
        ++posted[q];
      }
    }
    wcs.clear();
    ASSERT_TRUE(drive([&] {
      poll_into(a_.scq, &wcs);
      return !wcs.empty();
    })) << "stalled at "
        << done[0] << " + " << done[1];
    for (const Cqe& c : wcs) {
      const int q = c.qp_num == qps[0]->qpn() ? 0 : 1;
      ASSERT_EQ(c.status, WcStatus::kSuccess);
      ASSERT_EQ(c.opcode, WcOpcode::kFetchAdd);
      ASSERT_EQ(c.wr_id, done[q]) << "qp " << q;
      uint64_t orig;
      std::memcpy(&orig, results[q].bytes.data() + (c.wr_id % kDepth) * 8, 8);
      ASSERT_LT(orig, seen.size()) << "an add was executed twice or lost";
      ASSERT_EQ(seen[orig], 0) << "value " << orig << " returned twice";
      seen[orig] = 1;
      ++done[q];
    }
  }
  uint64_t total;
  std::memcpy(&total, counter.bytes.data() + 8, 8);
  EXPECT_EQ(total, 2ull * kAtomicsPerQp);
  for (size_t v = 0; v < seen.size(); ++v) ASSERT_EQ(seen[v], 1) << v;
  EXPECT_GT(p1.a->counters().retransmits + p2.a->counters().retransmits, 0u);
  EXPECT_GT(p1.b->counters().duplicates + p2.b->counters().duplicates, 0u);
  expect_faults_seen();
}

TEST_F(Lossy, PsnWrapAroundUnderLoss) {
  // Start 1000 PSNs before 2^24: WRITEs, READs and FETCH_ADDs cross the wrap
  // (IBTA 9.7.1: PSNs are modulo 2^24) while packets are lost.
  start_fake_ = now_;
  Qp* qa = make_qp(a_, QpType::kRc);
  Qp* qb = make_qp(b_, QpType::kRc);
  constexpr uint32_t kStart = 0xFFFFFF - 1000;
  for (auto [me, qp, peer, pqp] : {std::tuple{&a_, qa, &b_, qb}, std::tuple{&b_, qb, &a_, qa}}) {
    QpAttrs at;
    at.state = QpState::kInit;
    at.access = kAllAccess & ~kAccessLocalWrite;
    ASSERT_TRUE(
        me->dev
            ->modify_qp(qp, at,
                        QpAttr::kState | QpAttr::kPkeyIndex | QpAttr::kPort | QpAttr::kAccessFlags)
            .is_ok());
    at.state = QpState::kRtr;
    at.path_mtu = 1024;
    at.dest_qpn = pqp->qpn();
    at.rq_psn = kStart;
    at.av = av_to(*peer);
    at.max_dest_rd_atomic = 16;
    at.min_rnr_timer = 1;
    ASSERT_TRUE(me->dev
                    ->modify_qp(qp, at,
                                QpAttr::kState | QpAttr::kAv | QpAttr::kPathMtu | QpAttr::kDestQpn |
                                    QpAttr::kRqPsn | QpAttr::kMaxDestRdAtomic |
                                    QpAttr::kMinRnrTimer)
                    .is_ok());
    at.state = QpState::kRts;
    at.sq_psn = kStart;
    at.timeout = kTimeout;
    at.retry_cnt = 7;
    at.rnr_retry = 7;
    at.max_rd_atomic = 16;
    ASSERT_TRUE(me->dev
                    ->modify_qp(qp, at,
                                QpAttr::kState | QpAttr::kSqPsn | QpAttr::kTimeout |
                                    QpAttr::kRetryCnt | QpAttr::kRnrRetry | QpAttr::kMaxQpRdAtomic)
                    .is_ok());
  }
  qps_ = {qa, qb};
  constexpr uint32_t kRegion = 4u << 20;
  Buffer src = make_buffer(a_, kRegion, kAllAccess);
  Buffer dst = make_buffer(b_, kRegion, kAllAccess);
  Buffer back = make_buffer(a_, kRegion, kAllAccess);
  Buffer counter = make_buffer(b_, 64, kAllAccess, 0);
  Buffer results = make_buffer(a_, 64 * 8, kAllAccess);
  fill(src.bytes.data(), kRegion, 31);
  // WRITE the region in 64 KiB pieces, READ it back, 64 FETCH_ADDs: ~8000 PSNs.
  uint64_t id = 0;
  std::vector<Cqe> wcs;
  auto run_batch = [&](const std::function<int(uint64_t)>& post_one, uint64_t n) {
    uint64_t posted = 0, done = 0;
    while (done < n) {
      while (posted < n && posted < done + 64) {
        ASSERT_EQ(post_one(posted), 0);
        ++posted;
        ++id;
      }
      wcs.clear();
      ASSERT_TRUE(drive([&] {
        poll_into(a_.scq, &wcs);
        return !wcs.empty();
      }));
      for (const Cqe& c : wcs) {
        ASSERT_EQ(c.status, WcStatus::kSuccess);
        ++done;
      }
    }
  };
  constexpr uint32_t kPiece = 64u << 10;
  run_batch(
      [&](uint64_t i) {
        return post(qa, WrOpcode::kRdmaWrite, id, &src, kPiece, &dst, i * kPiece, kSendSignaled,
                    uint32_t(i) * kPiece);
      },
      kRegion / kPiece);
  if (HasFatalFailure()) return;
  ASSERT_EQ(std::memcmp(src.bytes.data(), dst.bytes.data(), kRegion), 0);
  run_batch(
      [&](uint64_t i) {
        return post(qa, WrOpcode::kRdmaRead, id, &back, kPiece, &dst, i * kPiece, kSendSignaled,
                    uint32_t(i) * kPiece);
      },
      kRegion / kPiece);
  if (HasFatalFailure()) return;
  ASSERT_EQ(std::memcmp(src.bytes.data(), back.bytes.data(), kRegion), 0);
  run_batch(
      [&](uint64_t i) {
        SendWqe w = wqe(WrOpcode::kFetchAdd, id);
        Sge s{results.addr() + (i % 64) * 8, 8, results.key};
        w.num_sge = 1;
        w.remote_addr = counter.addr();
        w.rkey = counter.key;
        w.compare_add = 1;
        return qa->post_send(w, &s, nullptr);
      },
      64);
  if (HasFatalFailure()) return;
  uint64_t value;
  std::memcpy(&value, counter.bytes.data(), 8);
  EXPECT_EQ(value, 64u);
  EXPECT_EQ(qa->state(), QpState::kRts);
  EXPECT_EQ(qb->state(), QpState::kRts);
  EXPECT_GT(qa->counters().retransmits, 0u);
}

TEST_F(Lossy, UcMessagesArriveWholeOrNotAtAll) {
  // UC (IBTA 9.8.3) makes no promise of delivery, order or uniqueness (a late
  // or duplicated FIRST/ONLY starts a message again, as in rxe), but a message
  // that completes is never a mix of two, nor cut short.
  start_fake_ = now_;
  Qp* qa = make_qp(a_, QpType::kUc);
  Qp* qb = make_qp(b_, QpType::kUc);
  connect(a_, qa, b_, qb, kAccessRemoteWrite);
  connect(b_, qb, a_, qa, kAccessRemoteWrite);
  qps_ = {qa, qb};
  constexpr uint32_t kMsgs = 20000, kMax = 8192, kRecvs = 128;
  Buffer src = make_buffer(a_, size_t(kMax) * 128, kAllAccess);
  Buffer dst = make_buffer(b_, size_t(kMax) * kRecvs, kAllAccess);
  Rng rng{99};
  std::vector<uint32_t> lens(kMsgs);
  for (uint32_t r = 0; r < kRecvs; ++r) ASSERT_EQ(post_recv(qb, r, dst, kMax, r * kMax), 0);
  uint64_t sent = 0, send_done = 0, delivered = 0;
  std::vector<Cqe> swc, rwc;
  while (send_done < kMsgs) {
    while (sent < kMsgs && sent < send_done + 64) {
      const uint32_t len = 8 + uint32_t(rng.next() % (kMax - 7));
      lens[sent] = len;
      uint8_t* m = src.bytes.data() + (sent % 128) * kMax;
      fill(m, len, 7000 + sent);
      std::memcpy(m, &sent, 8);
      ASSERT_EQ(post(qa, WrOpcode::kSend, sent, &src, len, nullptr, 0, kSendSignaled,
                     uint32_t(sent % 128) * kMax),
                0);
      ++sent;
    }
    swc.clear();
    rwc.clear();
    ASSERT_TRUE(drive([&] {
      poll_into(a_.scq, &swc);
      poll_into(b_.rcq, &rwc);
      return !swc.empty() || !rwc.empty();
    }));
    for (const Cqe& c : swc) {
      ASSERT_EQ(c.status, WcStatus::kSuccess);
      ASSERT_EQ(c.wr_id, send_done++);
    }
    for (const Cqe& c : rwc) {
      ASSERT_EQ(c.status, WcStatus::kSuccess);
      const uint8_t* got = dst.bytes.data() + c.wr_id * kMax;
      uint64_t seq;
      std::memcpy(&seq, got, 8);
      ASSERT_LT(seq, sent);
      ASSERT_EQ(c.byte_len, lens[seq]) << "message " << seq << " cut short or grown";
      std::vector<uint8_t> want(lens[seq]);
      fill(want.data(), want.size(), 7000 + seq);
      std::memcpy(want.data(), &seq, 8);
      ASSERT_EQ(std::memcmp(got, want.data(), want.size()), 0) << "message " << seq << " mixed";
      ++delivered;
      ASSERT_EQ(post_recv(qb, c.wr_id, dst, kMax, uint32_t(c.wr_id) * kMax), 0);
    }
  }
  run_for(kNanosPerMs, kStep);
  delivered += drain(b_.rcq).size();
  // Messages of up to 8 packets at 5 % loss: most arrive.
  EXPECT_GT(delivered, kMsgs / 2);
  EXPECT_LT(delivered, kMsgs + kMsgs / 20);
  EXPECT_EQ(qb->state(), QpState::kRts);
  EXPECT_GT(qb->counters().out_of_sequence, 0u);
}

// Both QPs of one pair are requester and responder at once, each running a
// random mix of WRITE, READ, SEND and FETCH_ADD (0 B .. 16 KiB) against the
// other: READ responses, atomic replies and ACKs of both roles share each
// direction, so held ACKs, implicit NAKs and replays interleave. Every
// operation is checked when it completes.
struct Mixer {
  static constexpr uint32_t kSlots = 512;  // > SQ depth: a slot is never in use twice
  static constexpr uint32_t kSlot = 16u << 10;
  static constexpr uint32_t kInFlight = 128;
  enum Kind : uint8_t { kWrite, kRead, kSend, kAdd };
  struct Op {
    Kind kind;
    uint32_t len;
    uint32_t remote_off;  // READ: offset in the peer's read region
  };
  Side* me = nullptr;
  Qp* qp = nullptr;
  Mixer* peer = nullptr;
  Buffer local;    // WRITE / SEND sources, READ and FETCH_ADD results
  Buffer target;   // the peer writes here
  Buffer source;   // the peer reads from here (fixed pattern)
  Buffer recv;     // the peer's SENDs land here
  Buffer counter;  // the peer adds to this word
  Rng rng{1};
  uint32_t side_id = 0;
  uint64_t posted = 0, completed = 0, total = 0;
  std::vector<Op> ops;          // by wr_id
  std::vector<uint64_t> sends;  // wr_ids of SENDs, in post order
  uint64_t sends_received = 0;  // by the peer
  uint64_t recvs_posted = 0;
  std::vector<uint8_t> add_seen;  // results of the adds on the peer's counter

  static std::vector<uint8_t> pattern(uint32_t side, uint64_t k, uint32_t len) {
    std::vector<uint8_t> v(len);
    fill(v.data(), len, (uint64_t(side) << 40) ^ k);
    if (len >= 8) std::memcpy(v.data(), &k, 8);
    return v;
  }
  uint8_t* slot(Buffer& b, uint64_t k) { return b.bytes.data() + (k % kSlots) * kSlot; }

  void post_recvs() {
    while (recvs_posted < sends_received_by_me() + 128) {
      Sge s{recv.addr() + (recvs_posted % kSlots) * kSlot, kSlot, recv.key};
      ASSERT_EQ(qp->post_recv(recvs_posted, &s, 1), 0);
      ++recvs_posted;
    }
  }
  uint64_t sends_received_by_me() const { return peer->sends_received; }

  void post_more() {
    while (posted < total && posted < completed + kInFlight) {
      const uint64_t k = posted;
      Op op;
      const uint64_t r = rng.next();
      op.kind = Kind(r % 4);
      op.len = uint32_t((r >> 8) % (kSlot + 1));
      if (op.kind == kSend && op.len < 8) op.len = 8;
      op.remote_off = uint32_t((r >> 32) % (source.bytes.size() - kSlot));
      SendWqe w{};
      w.wr_id = k;
      w.flags = kSendSignaled;
      w.num_sge = 1;
      Sge s{0, op.len, local.key};
      switch (op.kind) {
        case kWrite:
        case kSend: {
          const auto v = pattern(side_id, k, op.len);
          std::memcpy(slot(local, k), v.data(), op.len);
          s.addr = uint64_t(slot(local, k));
          w.opcode = op.kind == kWrite ? WrOpcode::kRdmaWrite : WrOpcode::kSend;
          w.remote_addr = uint64_t(peer->slot(peer->target, k));
          w.rkey = peer->target.key;
          if (op.kind == kSend) sends.push_back(k);
          break;
        }
        case kRead:
          std::memset(slot(local, k), 0, op.len);
          s.addr = uint64_t(slot(local, k));
          w.opcode = WrOpcode::kRdmaRead;
          w.remote_addr = peer->source.addr() + op.remote_off;
          w.rkey = peer->source.key;
          break;
        case kAdd:
          op.len = 8;
          s.addr = uint64_t(slot(local, k));
          s.length = 8;
          w.opcode = WrOpcode::kFetchAdd;
          w.remote_addr = peer->counter.addr();
          w.rkey = peer->counter.key;
          w.compare_add = 1;
          break;
      }
      ops.push_back(op);
      ASSERT_EQ(qp->post_send(w, &s, nullptr), 0);
      ++posted;
    }
  }

  // Send completions of this side's requester.
  void check_send(const Cqe& c) {
    ASSERT_EQ(c.status, WcStatus::kSuccess) << "side " << side_id << " wr " << c.wr_id;
    ASSERT_EQ(c.wr_id, completed) << "side " << side_id << ": out of order or twice";
    const Op& op = ops[c.wr_id];
    const uint64_t k = c.wr_id;
    switch (op.kind) {
      case kWrite: {
        const auto v = pattern(side_id, k, op.len);
        ASSERT_EQ(std::memcmp(peer->slot(peer->target, k), v.data(), op.len), 0)
            << "side " << side_id << " WRITE " << k;
        break;
      }
      case kRead:
        ASSERT_EQ(std::memcmp(slot(local, k), peer->source.bytes.data() + op.remote_off, op.len), 0)
            << "side " << side_id << " READ " << k;
        break;
      case kAdd: {
        uint64_t orig;
        std::memcpy(&orig, slot(local, k), 8);
        ASSERT_LT(orig, add_seen.size());
        ASSERT_EQ(add_seen[orig], 0) << "value " << orig << " returned twice";
        add_seen[orig] = 1;
        break;
      }
      case kSend:
        break;
    }
    ++completed;
  }
  // Receive completions: the peer's SENDs, in the order it posted them.
  void check_recv(const Cqe& c) {
    ASSERT_EQ(c.status, WcStatus::kSuccess);
    ASSERT_EQ(c.wr_id, peer->sends_received) << "receives complete in order";
    ASSERT_LT(peer->sends_received, peer->sends.size());
    const uint64_t k = peer->sends[peer->sends_received];
    const Op& op = peer->ops[k];
    ASSERT_EQ(c.byte_len, op.len) << "SEND " << k;
    const auto v = pattern(peer->side_id, k, op.len);
    ASSERT_EQ(std::memcmp(slot(recv, c.wr_id), v.data(), op.len), 0) << "SEND " << k;
    ++peer->sends_received;
  }
};

TEST_F(Lossy, MixedTrafficBothWaysOnOneQpPair) {
  start_fake_ = now_;
  auto p = lossy_pair();
  qps_ = {p.a, p.b};
  constexpr uint64_t kOps = 20000;
  const size_t region = size_t(Mixer::kSlots) * Mixer::kSlot;
  Mixer m[2];
  m[0].me = &a_;
  m[0].qp = p.a;
  m[1].me = &b_;
  m[1].qp = p.b;
  for (int i = 0; i < 2; ++i) {
    Mixer& x = m[i];
    Side& s = *x.me;
    x.peer = &m[1 - i];
    x.side_id = uint32_t(i);
    x.rng.s = 0x1234 + uint64_t(i);
    x.total = kOps;
    x.local = make_buffer(s, region, kAllAccess);
    x.target = make_buffer(s, region, kAllAccess);
    x.source = make_buffer(s, 2u << 20, kAllAccess);
    fill(x.source.bytes.data(), x.source.bytes.size(), 99 + uint64_t(i));
    x.recv = make_buffer(s, region, kAllAccess);
    x.counter = make_buffer(s, 64, kAllAccess, 0);
    x.add_seen.assign(kOps, 0);
    x.ops.reserve(kOps);
  }
  for (Mixer& x : m) x.post_recvs();
  std::vector<Cqe> got;
  while (m[0].completed < kOps || m[1].completed < kOps ||
         m[0].sends_received < m[0].sends.size() || m[1].sends_received < m[1].sends.size()) {
    for (Mixer& x : m) {
      x.post_more();
      if (HasFatalFailure()) return;
    }
    const uint64_t before =
        m[0].completed + m[1].completed + m[0].sends_received + m[1].sends_received;
    ASSERT_TRUE(drive([&] {
      for (Mixer& x : m) {
        got.clear();
        poll_into(x.me->scq, &got);
        for (const Cqe& c : got) {
          x.check_send(c);
          if (HasFatalFailure()) return true;
        }
        got.clear();
        poll_into(x.me->rcq, &got);
        for (const Cqe& c : got) {
          x.check_recv(c);
          if (HasFatalFailure()) return true;
        }
        x.post_recvs();
      }
      return m[0].completed + m[1].completed + m[0].sends_received + m[1].sends_received > before;
    })) << "stalled: "
        << m[0].completed << " / " << m[1].completed << " completed";

    if (HasFatalFailure()) return;
  }
  for (Mixer& x : m) {
    uint64_t adds = 0;
    for (const Mixer::Op& op : x.peer->ops) adds += op.kind == Mixer::kAdd;
    uint64_t value;
    std::memcpy(&value, x.counter.bytes.data(), 8);
    EXPECT_EQ(value, adds);
    uint64_t seen = 0;
    for (uint8_t v : x.peer->add_seen) seen += v;
    EXPECT_EQ(seen, adds);
  }
  EXPECT_EQ(p.a->state(), QpState::kRts);
  EXPECT_EQ(p.b->state(), QpState::kRts);
  expect_faults_seen();
}

// ---- deterministic recovery cases (each once broke under the lossy tests) ----

class Recovery : public FakeClockTest {
 protected:
  // Receives and frees every frame waiting at side s's port (lost responses).
  uint16_t lose_frames_to(Side& s) {
    auto l = s.dev->lock_engine();
    rte_mbuf* m[64];
    wire::PacketView v[64];
    uint16_t total = 0, n;
    while ((n = s.dev->port().receive(m, v, 64, now_)) > 0) {
      rte_pktmbuf_free_bulk(m, n);
      total = uint16_t(total + n);
    }
    return total;
  }
  void nak_seq(Qp* to, uint32_t psn) {
    wire::PacketSpec s = spec(b_, a_, wire::op::kAck, to->qpn(), psn);
    s.aeth_syndrome = wire::Aeth::make_syndrome(wire::AethType::kNak, 0);
    inject(b_, s);
  }
  void ack(Qp* to, uint32_t psn) {
    wire::PacketSpec s = spec(b_, a_, wire::op::kAck, to->qpn(), psn);
    s.aeth_syndrome = wire::Aeth::make_syndrome(wire::AethType::kAck, 0x1F);
    inject(b_, s);
  }
};

TEST_F(Recovery, AckOfTheEarlierRoundSkipsWhatIsDone) {
  // The requester went back to 0x123 (a sequence NAK), but the responder had
  // everything and acknowledges both WRITEs while the resend is under way.
  // The requester must skip forward, complete both, and never rebuild a
  // packet from an offset past the end of a WQE (this once ended in
  // LOC_PROT_ERR at the next timeout).
  auto p = rc_pair(kAllAccess, 1024, kTimeout);
  Buffer src = make_buffer(a_, 200 << 10, kAllAccess);
  fill_pattern(src.bytes, 1);
  Buffer dst = make_buffer(b_, 200 << 10, kAllAccess);
  run_for(kNanosPerMs);
  pump_b_ = false;
  ASSERT_EQ(post(p.a, WrOpcode::kRdmaWrite, 1, &src, 100 << 10, &dst), 0);
  ASSERT_EQ(post(p.a, WrOpcode::kRdmaWrite, 2, &src, 100 << 10, &dst, 100 << 10, kSendSignaled,
                 100 << 10),
            0);
  run_for(100 * kNanosPerUs);
  ASSERT_EQ(p.a->counters().tx_packets, 200u);
  nak_seq(p.a, 0x123);
  step(kStep);  // a goes back and resends the first 32 packets
  EXPECT_EQ(p.a->counters().tx_packets, 232u);
  pump_a_ = false;
  pump_b_ = true;
  run_for(100 * kNanosPerUs);  // b takes all 232, ACKs 0x1EA (and duplicates)
  pump_a_ = true;
  pump_b_ = false;
  step(kStep);
  auto wc = drain(a_.scq);
  ASSERT_EQ(wc.size(), 2u);
  EXPECT_EQ(wc[0].status, WcStatus::kSuccess);
  EXPECT_EQ(wc[1].status, WcStatus::kSuccess);
  const uint64_t tx = p.a->counters().tx_packets;
  run_for(5 * kNanosPerMs);  // several timeouts' worth: nothing left to resend
  EXPECT_EQ(p.a->counters().tx_packets, tx);
  EXPECT_EQ(p.a->counters().timeouts, 0u);
  EXPECT_TRUE(drain(a_.scq).empty());
  EXPECT_EQ(src.bytes, dst.bytes);
  EXPECT_EQ(p.a->state(), QpState::kRts);
}

TEST_F(Recovery, SequenceNakPastAnUnansweredAtomicRetriesTheAtomic) {
  // FETCH_ADD 0x123 and WRITE 0x124 both executed, both responses lost; a
  // NAK "expected 0x125" acknowledges the WRITE but not the atomic, whose
  // result is still missing: the requester must go back to 0x123 (not 0x125)
  // and take the replayed result, never executing the add twice.
  auto p = rc_pair(kAllAccess, 1024, kTimeout);
  Buffer counter = make_buffer(b_, 64, kAllAccess);
  uint64_t v = 100;
  std::memcpy(counter.bytes.data(), &v, 8);
  Buffer result = make_buffer(a_, 64, kAllAccess);
  Buffer src = make_buffer(a_, 64, kAllAccess, 0x5A);
  run_for(kNanosPerMs);
  pump_b_ = false;
  SendWqe w = wqe(WrOpcode::kFetchAdd, 1);
  Sge s{result.addr(), 8, result.key};
  w.num_sge = 1;
  w.remote_addr = counter.addr();
  w.rkey = counter.key;
  w.compare_add = 5;
  ASSERT_EQ(p.a->post_send(w, &s, nullptr), 0);
  ASSERT_EQ(post(p.a, WrOpcode::kRdmaWrite, 2, &src, 16, &counter, 32), 0);
  step(kStep);
  pump_a_ = false;
  pump_b_ = true;
  step(kStep);  // b executes both and answers
  pump_b_ = false;
  EXPECT_EQ(lose_frames_to(a_), 2u);
  nak_seq(p.a, 0x125);
  pump_a_ = pump_b_ = true;
  auto wc = collect(a_.scq, 2);
  ASSERT_EQ(wc.size(), 2u);
  EXPECT_EQ(wc[0].wr_id, 1u);
  EXPECT_EQ(wc[0].status, WcStatus::kSuccess);
  EXPECT_EQ(wc[1].status, WcStatus::kSuccess);
  uint64_t orig, now_value;
  std::memcpy(&orig, result.bytes.data(), 8);
  std::memcpy(&now_value, counter.bytes.data(), 8);
  EXPECT_EQ(orig, 100u);
  EXPECT_EQ(now_value, 105u);                 // added once
  EXPECT_EQ(p.b->counters().duplicates, 2u);  // the atomic and the WRITE came again
  EXPECT_EQ(p.a->counters().timeouts, 0u);
}

TEST_F(Recovery, AckPastALostReadResponseRetriesTheRead) {
  // READ 0x123 then WRITE 0x124; the READ response is lost but the ACK of
  // the WRITE arrives: an implicit NAK (IBTA 9.7.5.1.x). The READ is asked
  // again and completes; its response must not be taken for a duplicate.
  auto p = rc_pair(kAllAccess, 1024, kTimeout);
  Buffer remote = make_buffer(b_, 512, kAllAccess);
  fill_pattern(remote.bytes, 3);
  Buffer local = make_buffer(a_, 512, kAllAccess);
  Buffer src = make_buffer(a_, 64, kAllAccess, 0x77);
  Buffer dst = make_buffer(b_, 64, kAllAccess);
  run_for(kNanosPerMs);
  pump_b_ = false;
  ASSERT_EQ(post(p.a, WrOpcode::kRdmaRead, 1, &local, 512, &remote), 0);
  ASSERT_EQ(post(p.a, WrOpcode::kRdmaWrite, 2, &src, 64, &dst), 0);
  step(kStep);
  pump_a_ = false;
  pump_b_ = true;
  step(kStep);
  pump_b_ = false;
  EXPECT_EQ(lose_frames_to(a_), 2u);  // READ response and ACK
  ack(p.a, 0x124);                    // only the ACK makes it
  pump_a_ = pump_b_ = true;
  auto wc = collect(a_.scq, 2);
  ASSERT_EQ(wc.size(), 2u);
  EXPECT_EQ(wc[0].wr_id, 1u);
  EXPECT_EQ(wc[0].status, WcStatus::kSuccess);
  EXPECT_EQ(wc[1].wr_id, 2u);
  EXPECT_EQ(wc[1].status, WcStatus::kSuccess);
  EXPECT_EQ(local.bytes, remote.bytes);
  EXPECT_EQ(p.a->counters().timeouts, 0u);
}

}  // namespace
}  // namespace droce::nic::test
