// The device under several application threads while its engine thread runs
// (DESIGN.md section 2, docs/engine.md "Threads"): each thread posts to and
// polls QPs and CQs of its own on the same two devices, and QPs and CQs are
// destroyed while the peer keeps sending to them. Run in build/, build-asan/
// and build-tsan/ (ctest label tsan): the assertions here check the data and
// every completion; AddressSanitizer and ThreadSanitizer check the rest.
#include <algorithm>
#include <arpa/inet.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/nic/engine/engine_checks.h"
#include "tests/nic/engine/engine_fixture.h"

namespace droce::nic::test {
namespace {

constexpr uint32_t kAll =
    kAccessLocalWrite | kAccessRemoteWrite | kAccessRemoteRead | kAccessRemoteAtomic;
constexpr Nanos kWaitLimit = 30 * kNanosPerSec;  // any one wait of a thread
// Local ACK timeout of the QPs that must not fail: 4.096 us * 2^18, about 1 s
// (7 retries: 8 s without an answer). Under ThreadSanitizer on a loaded
// 2-core machine an engine thread can go unscheduled for longer than the
// fixture's 67 ms, and these tests are about threads, not retransmission.
constexpr uint8_t kPatientTimeout = 18;

// A byte of a pattern that differs with seed (thread, round, kind) and offset.
uint8_t pattern(uint32_t seed, size_t k) {
  return uint8_t(seed * 131u + k * 7u + (k >> 8) + 1u);
}
void fill(uint8_t* p, size_t n, uint32_t seed) {
  for (size_t k = 0; k < n; ++k) p[k] = pattern(seed, k);
}
// Offset of the first byte that is not pattern(seed), or n.
size_t mismatch(const uint8_t* p, size_t n, uint32_t seed) {
  for (size_t k = 0; k < n; ++k) {
    if (p[k] != pattern(seed, k)) return k;
  }
  return n;
}

class EngineThreadsTest : public EngineTest {
 protected:
  void SetUp() override {
    EngineTest::SetUp();
    // The fixture's inline devices replaced by devices with an engine thread.
    make_threaded_side(&pair_->a(), &a_, 64);
    make_threaded_side(&pair_->b(), &b_, 64);
  }
  // An RC QP on s with CQs of its own.
  Qp* make_rc(Side& s, CompletionQueue* scq, CompletionQueue* rcq, uint32_t depth) {
    QpInitAttr init;
    init.type = QpType::kRc;
    init.pd = s.pd;
    init.send_cq = scq;
    init.recv_cq = rcq;
    init.cap.max_send_wr = depth;
    init.cap.max_recv_wr = depth;
    init.cap.max_send_sge = 1;
    init.cap.max_recv_sge = 1;
    auto qp = s.dev->create_qp(init);
    EXPECT_TRUE(qp.is_ok()) << qp.status().message();
    return qp.is_ok() ? qp.value() : nullptr;
  }
};

// Polls cq until it has given `want` CQEs in all (never more), bounded by
// kWaitLimit. With `inline_progress` the thread also drives both engines
// itself (Device::progress, as the verbs poll_cq does), competing with their
// engine threads for the lock.
bool await_cqes(CompletionQueue* cq, size_t want, std::vector<Cqe>* out,
                Device* inline_a, Device* inline_b) {
  const Nanos end = monotonic_now() + kWaitLimit;
  while (out->size() < want) {
    Cqe c[8];
    const int room = int(std::min<size_t>(8, want - out->size()));
    const int got = cq->poll(c, room);
    out->insert(out->end(), c, c + std::max(got, 0));
    if (got > 0) continue;
    if (monotonic_now() > end) return false;
    if (inline_a != nullptr) {
      inline_a->progress();
      inline_b->progress();
    } else {
      std::this_thread::yield();
    }
  }
  return true;
}

std::string show(const std::vector<Cqe>& v) {
  std::ostringstream o;
  for (const Cqe& c : v) {
    o << "(wr " << c.wr_id << " st " << int(c.status) << " op " << int(c.opcode) << " len "
      << c.byte_len << " qp " << c.qp_num << ") ";
  }
  return o.str();
}

// One application thread's share of both devices: an RC QP on each, joined
// to each other, four CQs of their own, and 16 KiB of registered memory on
// each side.
struct Lane {
  int id = 0;
  bool inline_progress = false;
  Qp* qa = nullptr;
  Qp* qb = nullptr;
  CompletionQueue* a_scq = nullptr;
  CompletionQueue* a_rcq = nullptr;
  CompletionQueue* b_scq = nullptr;
  CompletionQueue* b_rcq = nullptr;
  Buffer ma, mb;
  int rounds_done = 0;
  std::string error;  // the first thing that went wrong; "" when all went right
};

// Regions of a lane's memory (bytes).
constexpr size_t kWriteOff = 0, kSendOff = 4096, kReadOff = 8192, kBackOff = 12288;
constexpr size_t kLaneBytes = 16384;
constexpr uint32_t kReadLen = 2500, kBackLen = 700;

// One round of a lane, from its own thread: a -> b WRITE, then SEND with
// immediate (whose receive completion makes the WRITE visible), a READ of b's
// memory, and b -> a SEND; every completion checked, every byte compared.
bool run_round(Lane& l, int round, Device* a, Device* b) {
  const uint32_t write_len = 3000 + 100 * uint32_t(l.id);  // three frames at MTU 1024
  const uint32_t send_len = 1500 + uint32_t(round % 7);
  const uint32_t seed = uint32_t(l.id) << 16 | uint32_t(round) << 2;
  uint8_t* pa = l.ma.bytes.data();
  uint8_t* pb = l.mb.bytes.data();
  Device* ia = l.inline_progress ? a : nullptr;
  Device* ib = l.inline_progress ? b : nullptr;
  auto fail = [&](const std::string& what) {
    l.error = "lane " + std::to_string(l.id) + " round " + std::to_string(round) + ": " + what;
    return false;
  };

  fill(pa + kWriteOff, write_len, seed | 0);
  fill(pa + kSendOff, send_len, seed | 1);
  fill(pb + kReadOff, kReadLen, seed | 2);
  fill(pb + kBackOff, kBackLen, seed | 3);
  std::memset(pa + kReadOff, 0, kReadLen);
  const uint64_t base = uint64_t(round) * 8;

  Sge rb{l.mb.addr() + kSendOff, 4096, l.mb.key};
  if (l.qb->post_recv(base + 0, &rb, 1) != 0) return fail("post_recv on b");
  Sge ra{l.ma.addr() + kBackOff, 4096, l.ma.key};
  if (l.qa->post_recv(base + 1, &ra, 1) != 0) return fail("post_recv on a");

  SendWqe w{};
  w.wr_id = base + 2;
  w.opcode = WrOpcode::kRdmaWrite;
  w.flags = kSendSignaled;
  w.num_sge = 1;
  w.remote_addr = l.mb.addr() + kWriteOff;
  w.rkey = l.mb.key;
  Sge s{l.ma.addr() + kWriteOff, write_len, l.ma.key};
  if (l.qa->post_send(w, &s, nullptr) != 0) return fail("post WRITE");
  w = SendWqe{};
  w.wr_id = base + 3;
  w.opcode = WrOpcode::kSendImm;
  w.flags = kSendSignaled;
  w.num_sge = 1;
  w.imm_or_inv = htonl(uint32_t(round));
  s = Sge{l.ma.addr() + kSendOff, send_len, l.ma.key};
  if (l.qa->post_send(w, &s, nullptr) != 0) return fail("post SEND");

  std::vector<Cqe> got;
  if (!await_cqes(l.b_rcq, 1, &got, ia, ib)) return fail("no receive on b: " + show(got));
  const Cqe& r = got[0];
  if (r.wr_id != base + 0 || r.status != WcStatus::kSuccess || r.opcode != WcOpcode::kRecv ||
      r.byte_len != send_len || r.qp_num != l.qb->qpn() || !(r.wc_flags & kWcWithImm) ||
      ntohl(r.imm_or_inv) != uint32_t(round)) {
    return fail("b's receive: " + show(got));
  }
  // RC order: the WRITE before the SEND was placed before the SEND completed.
  if (size_t k = mismatch(pb + kWriteOff, write_len, seed | 0); k != write_len) {
    return fail("WRITE byte " + std::to_string(k) + " on b");
  }
  if (size_t k = mismatch(pb + kSendOff, send_len, seed | 1); k != send_len) {
    return fail("SEND byte " + std::to_string(k) + " on b");
  }

  w = SendWqe{};
  w.wr_id = base + 4;
  w.opcode = WrOpcode::kRdmaRead;
  w.flags = kSendSignaled;
  w.num_sge = 1;
  w.remote_addr = l.mb.addr() + kReadOff;
  w.rkey = l.mb.key;
  s = Sge{l.ma.addr() + kReadOff, kReadLen, l.ma.key};
  if (l.qa->post_send(w, &s, nullptr) != 0) return fail("post READ");
  w = SendWqe{};
  w.wr_id = base + 5;
  w.opcode = WrOpcode::kSend;
  w.flags = kSendSignaled;
  w.num_sge = 1;
  s = Sge{l.mb.addr() + kBackOff, kBackLen, l.mb.key};
  if (l.qb->post_send(w, &s, nullptr) != 0) return fail("post SEND on b");

  got.clear();
  if (!await_cqes(l.a_scq, 3, &got, ia, ib)) return fail("a's send CQEs: " + show(got));
  const struct {
    uint64_t wr_id;
    WcOpcode op;
  } want[] = {{base + 2, WcOpcode::kRdmaWrite}, {base + 3, WcOpcode::kSend},
              {base + 4, WcOpcode::kRdmaRead}};
  for (size_t i = 0; i < 3; ++i) {
    if (got[i].wr_id != want[i].wr_id || got[i].status != WcStatus::kSuccess ||
        got[i].opcode != want[i].op || got[i].qp_num != l.qa->qpn()) {
      return fail("a's send CQEs: " + show(got));
    }
  }
  if (got[2].byte_len != kReadLen) return fail("READ length: " + show(got));
  if (size_t k = mismatch(pa + kReadOff, kReadLen, seed | 2); k != kReadLen) {
    return fail("READ byte " + std::to_string(k) + " on a");
  }
  got.clear();
  if (!await_cqes(l.a_rcq, 1, &got, ia, ib)) return fail("no receive on a: " + show(got));
  if (got[0].wr_id != base + 1 || got[0].status != WcStatus::kSuccess ||
      got[0].byte_len != kBackLen || got[0].qp_num != l.qa->qpn()) {
    return fail("a's receive: " + show(got));
  }
  if (size_t k = mismatch(pa + kBackOff, kBackLen, seed | 3); k != kBackLen) {
    return fail("b's SEND byte " + std::to_string(k) + " on a");
  }
  got.clear();
  if (!await_cqes(l.b_scq, 1, &got, ia, ib)) return fail("b's send CQE: " + show(got));
  if (got[0].wr_id != base + 5 || got[0].status != WcStatus::kSuccess ||
      got[0].qp_num != l.qb->qpn()) {
    return fail("b's send CQE: " + show(got));
  }
  // Nothing beyond what this round posted.
  for (CompletionQueue* cq : {l.a_scq, l.a_rcq, l.b_scq, l.b_rcq}) {
    Cqe extra;
    if (cq->poll(&extra, 1) != 0) return fail("an extra CQE: " + show({extra}));
  }
  return true;
}

// Four application threads, each with an RC QP pair and four CQs of its own
// on the same two devices, run WRITE / SEND / READ rounds while both engine
// threads run; two of them also drive the engines inline (the verbs poll_cq
// path), and the main thread issues control commands meanwhile (stats, QP
// queries, CQ / PD / MR create and destroy), which take the engine lock.
TEST_F(EngineThreadsTest, ThreadsPostAndPollTheirOwnQpsAndCqsOfOneDevice) {
  constexpr int kLanes = 4;
  constexpr int kRounds = 60;
  std::vector<Lane> lanes(kLanes);
  for (int i = 0; i < kLanes; ++i) {
    Lane& l = lanes[size_t(i)];
    l.id = i;
    l.inline_progress = i % 2 == 1;
    l.a_scq = a_.dev->create_cq(16).value();
    l.a_rcq = a_.dev->create_cq(16).value();
    l.b_scq = b_.dev->create_cq(16).value();
    l.b_rcq = b_.dev->create_cq(16).value();
    l.qa = make_rc(a_, l.a_scq, l.a_rcq, 8);
    l.qb = make_rc(b_, l.b_scq, l.b_rcq, 8);
    ASSERT_NE(l.qa, nullptr);
    ASSERT_NE(l.qb, nullptr);
    connect(a_, l.qa, b_, l.qb, kAll, 1024, kPatientTimeout);
    connect(b_, l.qb, a_, l.qa, kAll, 1024, kPatientTimeout);
    l.ma = make_buffer(a_, kLaneBytes, kAll);
    l.mb = make_buffer(b_, kLaneBytes, kAll);
  }

  std::atomic<int> running{kLanes};
  std::vector<std::thread> threads;
  for (Lane& l : lanes) {
    threads.emplace_back([&, lp = &l] {
      for (int r = 0; r < kRounds && run_round(*lp, r, a_.dev.get(), b_.dev.get()); ++r) {
        lp->rounds_done = r + 1;
      }
      running.fetch_sub(1);
    });
  }

  // Control commands beside the data path, until the lanes are done.
  std::vector<uint8_t> scratch(4096);
  int commands = 0;
  const Nanos end = monotonic_now() + 5 * kWaitLimit;
  while (running.load() > 0 && monotonic_now() < end) {
    const Lane& l = lanes[size_t(commands) % kLanes];
    EXPECT_EQ(a_.dev->query_qp(l.qa).cur_state, QpState::kRts);
    QpStats qs;
    EXPECT_TRUE(b_.dev->qp_stats(l.qb->qpn(), &qs));
    EXPECT_EQ(a_.dev->stats().qps, uint32_t(kLanes));
    // (No ASSERT here: the lanes' threads must be joined first.)
    auto cq = a_.dev->create_cq(8);
    auto pd = b_.dev->alloc_pd();
    if (!cq.is_ok() || !pd.is_ok()) {
      ADD_FAILURE() << "create_cq or alloc_pd failed";
      break;
    }
    EXPECT_TRUE(a_.dev->destroy_cq(cq.value()).is_ok());
    auto key = b_.dev->reg_mr(pd.value(), scratch.data(), reinterpret_cast<uint64_t>(scratch.data()),
                              scratch.size(), kAll);
    EXPECT_TRUE(key.is_ok());
    if (key.is_ok()) {
      EXPECT_TRUE(b_.dev->dereg_mr(key.value()).is_ok());
    }
    EXPECT_TRUE(b_.dev->dealloc_pd(pd.value()).is_ok());
    ++commands;
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  for (std::thread& t : threads) t.join();
  for (const Lane& l : lanes) {
    EXPECT_EQ(l.error, "");
    EXPECT_EQ(l.rounds_done, kRounds) << "lane " << l.id;
  }
  EXPECT_GT(commands, 0);
  // No frame went to a QP other than the one it was for.
  EXPECT_EQ(a_.dev->stats().engine.rx_no_qp, 0u);
  EXPECT_EQ(b_.dev->stats().engine.rx_no_qp, 0u);
  for (const Lane& l : lanes) {
    QpStats qs;
    ASSERT_TRUE(a_.dev->qp_stats(l.qa->qpn(), &qs));
    EXPECT_EQ(qs.state, QpState::kRts) << "lane " << l.id;
  }
}

// ---- destroying QPs and CQs while frames for them arrive ----

constexpr uint32_t kMsgLen = 256;  // a SEND: 8-byte sequence number, then pattern(seq)
constexpr uint32_t kSlots = 32;    // receive slots of kMsgLen per QP
constexpr uint32_t kWriteLen = 1024;
constexpr size_t kTargetBytes = 16 * kWriteLen;

// Posts SENDs (and, with write_to, 1 KiB WRITEs between them) from b until
// `count` have been posted or its QP is in ERR, keeping up to 16 in flight;
// then waits for every completion. Runs on its own thread.
struct Sender {
  Qp* qp = nullptr;
  CompletionQueue* scq = nullptr;
  Buffer* src = nullptr;
  const Buffer* write_to = nullptr;  // the peer's WRITE target, or nullptr
  uint64_t count = 0;
  uint64_t posted = 0, ok = 0, retry_exceeded = 0, flushed = 0, other = 0;
  int in_flight = 0;
  bool timed_out = false;

  void take() {
    Cqe c[16];
    const int n = scq->poll(c, 16);
    for (int i = 0; i < n; ++i) {
      --in_flight;
      switch (c[i].status) {
        case WcStatus::kSuccess: ++ok; break;
        case WcStatus::kRetryExcErr: ++retry_exceeded; break;
        case WcStatus::kWrFlushErr: ++flushed; break;
        default: ++other; break;
      }
    }
  }
  void run() {
    const Nanos end = monotonic_now() + kWaitLimit;
    while (posted < count && qp->state() != QpState::kErr && monotonic_now() < end) {
      take();
      if (in_flight >= 16) {
        std::this_thread::yield();
        continue;
      }
      SendWqe w{};
      w.wr_id = posted;
      w.flags = kSendSignaled;
      w.num_sge = 1;
      Sge s{};
      if (write_to != nullptr && posted % 2 == 1) {
        w.opcode = WrOpcode::kRdmaWrite;
        w.remote_addr = write_to->addr() + (posted / 2 % 16) * kWriteLen;
        w.rkey = write_to->key;
        s = Sge{src->addr(), kWriteLen, src->key};
      } else {
        // The sender owns its buffer: a slot per message in flight is
        // rewritten only after that message completed.
        const uint64_t seq = write_to != nullptr ? posted / 2 : posted;
        uint8_t* p = src->bytes.data() + kWriteLen + (posted % 32) * kMsgLen;
        std::memcpy(p, &seq, 8);
        fill(p + 8, kMsgLen - 8, uint32_t(seq));
        w.opcode = WrOpcode::kSend;
        s = Sge{src->addr() + kWriteLen + (posted % 32) * kMsgLen, kMsgLen, src->key};
      }
      if (qp->post_send(w, &s, nullptr) != 0) break;  // ERR between the check and the post
      ++posted;
      ++in_flight;
    }
    while (in_flight > 0 && monotonic_now() < end) {
      take();
      std::this_thread::yield();
    }
    timed_out = in_flight > 0;
  }
};

// Receives the sender's SENDs on a, checks each one's sequence number and
// bytes, and posts the slot again; until `count` arrived or `stop`.
struct Receiver {
  Qp* qp = nullptr;
  CompletionQueue* rcq = nullptr;
  Buffer* slots = nullptr;
  uint64_t count = 0;
  std::atomic<bool>* stop = nullptr;
  std::atomic<uint64_t> received{0};
  std::atomic<bool> failed{false};
  uint64_t posted = 0;
  std::string error;  // read after the thread is joined

  void fail(std::string what) {
    error = std::move(what);
    failed.store(true);
  }

  bool post(uint64_t wr_id) {
    Sge s{slots->addr() + (wr_id % kSlots) * kMsgLen, kMsgLen, slots->key};
    return qp->post_recv(wr_id, &s, 1) == 0;
  }
  void run() {
    for (uint32_t i = 0; i < kSlots; ++i) {
      if (!post(posted++)) {
        fail("post_recv");
        return;
      }
    }
    const Nanos end = monotonic_now() + kWaitLimit;
    while (received.load() < count && !stop->load() && monotonic_now() < end) {
      Cqe c;
      if (rcq->poll(&c, 1) == 0) {
        std::this_thread::yield();
        continue;
      }
      const uint64_t seq = received.load();
      const uint8_t* p = slots->bytes.data() + (c.wr_id % kSlots) * kMsgLen;
      uint64_t got_seq;
      std::memcpy(&got_seq, p, 8);
      if (c.status != WcStatus::kSuccess || c.wr_id != seq || c.byte_len != kMsgLen ||
          got_seq != seq || mismatch(p + 8, kMsgLen - 8, uint32_t(seq)) != kMsgLen - 8) {
        fail("message " + std::to_string(seq) + ": " + show({c}) + " seq " +
             std::to_string(got_seq));
        return;
      }
      received.store(seq + 1);
      if (!post(posted++)) {
        fail("post_recv");
        return;
      }
    }
  }
};

// Each round: b sends SENDs and WRITEs to two QPs of a. a's application
// stops using the first ("victim") and destroys it and its two CQs while b
// keeps sending to it. Nothing crashes (ASan, TSan), the frames b then sends
// to the destroyed QPN are counted as rx_no_qp drops, none of them touches
// the memory the victim used, b's QP runs out of retries (RETRY_EXC_ERR, the
// rest flushed, each WQE completed once), and the other QP's stream goes on
// undisturbed, every message checked.
TEST_F(EngineThreadsTest, QpsAndCqsDestroyedWhileThePeerKeepsSending) {
  constexpr int kRounds = 3;
  constexpr uint64_t kSurvivorMsgs = 300;
  constexpr uint8_t kRetries = 3;
  uint32_t last_victim_qpn = 0;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    CompletionQueue* va_s = a_.dev->create_cq(64).value();
    CompletionQueue* va_r = a_.dev->create_cq(64).value();
    CompletionQueue* vb_s = b_.dev->create_cq(64).value();
    CompletionQueue* vb_r = b_.dev->create_cq(64).value();
    CompletionQueue* sa_s = a_.dev->create_cq(64).value();
    CompletionQueue* sa_r = a_.dev->create_cq(64).value();
    CompletionQueue* sb_s = b_.dev->create_cq(64).value();
    CompletionQueue* sb_r = b_.dev->create_cq(64).value();
    Qp* va = make_rc(a_, va_s, va_r, 64);
    Qp* vb = make_rc(b_, vb_s, vb_r, 64);
    Qp* sa = make_rc(a_, sa_s, sa_r, 64);
    Qp* sb = make_rc(b_, sb_s, sb_r, 64);
    ASSERT_TRUE(va && vb && sa && sb);
    EXPECT_NE(va->qpn(), last_victim_qpn);
    last_victim_qpn = va->qpn();
    // b's victim QP: ACK timeout 4.096 us * 2^14 (67 ms), kRetries retries,
    // RNR retries without end (its SENDs find no receive once a stops
    // posting, and a's RNR NAKs keep it alive until the QP is gone).
    connect(a_, va, b_, vb, kAll, 1024, kPatientTimeout);
    connect(b_, vb, a_, va, kAll, 1024, /*timeout=*/14, kRetries, /*rnr_retry=*/7);
    connect(a_, sa, b_, sb, kAll, 1024, kPatientTimeout);
    connect(b_, sb, a_, sa, kAll, 1024, kPatientTimeout);
    Buffer v_slots = make_buffer(a_, kSlots * kMsgLen, kAll);
    Buffer v_target = make_buffer(a_, kTargetBytes, kAll);
    Buffer s_slots = make_buffer(a_, kSlots * kMsgLen, kAll);
    Buffer v_src = make_buffer(b_, kWriteLen + 32 * kMsgLen, kAll, 0x5A);
    Buffer s_src = make_buffer(b_, kWriteLen + 32 * kMsgLen, kAll);

    std::atomic<bool> stop_victim{false}, never{false};
    Receiver v_recv;
    v_recv.qp = va;
    v_recv.rcq = va_r;
    v_recv.slots = &v_slots;
    v_recv.count = ~0ull;
    v_recv.stop = &stop_victim;
    Receiver s_recv;
    s_recv.qp = sa;
    s_recv.rcq = sa_r;
    s_recv.slots = &s_slots;
    s_recv.count = kSurvivorMsgs;
    s_recv.stop = &never;
    Sender v_send;
    v_send.qp = vb;
    v_send.scq = vb_s;
    v_send.src = &v_src;
    v_send.write_to = &v_target;
    v_send.count = 1'000'000;  // until its QP is in ERR (bounded by kWaitLimit)
    Sender s_send;
    s_send.qp = sb;
    s_send.scq = sb_s;
    s_send.src = &s_src;
    s_send.count = kSurvivorMsgs;

    std::thread t_vr([&] { v_recv.run(); });
    std::thread t_sr([&] { s_recv.run(); });
    std::thread t_vs([&] { v_send.run(); });
    std::thread t_ss([&] { s_send.run(); });

    // The victim's stream runs; then its application stops using it.
    const Nanos flowing_by = monotonic_now() + kWaitLimit;
    while (v_recv.received.load() < 20 && !v_recv.failed.load() && monotonic_now() < flowing_by) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    stop_victim.store(true);
    t_vr.join();
    EXPECT_EQ(v_recv.error, "");
    EXPECT_GE(v_recv.received.load(), 20u);

    // Destroyed while b's frames for it are in flight and keep coming.
    const uint64_t no_qp_before = a_.dev->stats().engine.rx_no_qp;
    const uint32_t victim_qpn = va->qpn();
    ASSERT_TRUE(a_.dev->destroy_qp(va).is_ok());
    // From here no frame may touch the victim's memory.
    std::fill(v_slots.bytes.begin(), v_slots.bytes.end(), 0xEE);
    std::fill(v_target.bytes.begin(), v_target.bytes.end(), 0xEE);
    EXPECT_TRUE(a_.dev->destroy_cq(va_r).is_ok());
    EXPECT_TRUE(a_.dev->destroy_cq(va_s).is_ok());
    QpStats gone;
    EXPECT_FALSE(a_.dev->qp_stats(victim_qpn, &gone));

    t_vs.join();
    t_ss.join();
    t_sr.join();
    // b's victim QP: retries against a QPN that no longer exists, then ERR.
    EXPECT_FALSE(v_send.timed_out) << v_send.in_flight << " WQEs never completed";
    EXPECT_EQ(vb->state(), QpState::kErr);
    EXPECT_GT(v_send.ok, 0u);
    EXPECT_EQ(v_send.retry_exceeded, 1u) << "the WQE that ran out of retries, once";
    EXPECT_EQ(v_send.ok + v_send.retry_exceeded + v_send.flushed, v_send.posted);
    EXPECT_EQ(v_send.other, 0u);
    const uint64_t no_qp = a_.dev->stats().engine.rx_no_qp - no_qp_before;
    EXPECT_GE(no_qp, kRetries) << "each retry sends at least one frame to the gone QPN";
    // Frames still in the ring when b's QP went to ERR arrive within a few
    // polls; none of them reaches the memory.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_TRUE(std::all_of(v_slots.bytes.begin(), v_slots.bytes.end(),
                            [](uint8_t x) { return x == 0xEE; }));
    EXPECT_TRUE(std::all_of(v_target.bytes.begin(), v_target.bytes.end(),
                            [](uint8_t x) { return x == 0xEE; }));
    // The survivor's stream: every message, in order, intact.
    EXPECT_EQ(s_recv.error, "");
    EXPECT_EQ(s_recv.received.load(), kSurvivorMsgs);
    EXPECT_EQ(s_send.ok, kSurvivorMsgs);
    EXPECT_EQ(s_send.posted, kSurvivorMsgs);
    EXPECT_EQ(sa->state(), QpState::kRts);

    EXPECT_TRUE(b_.dev->destroy_qp(vb).is_ok());
    EXPECT_TRUE(a_.dev->destroy_qp(sa).is_ok());
    EXPECT_TRUE(b_.dev->destroy_qp(sb).is_ok());
    for (CompletionQueue* cq : {vb_s, vb_r, sb_s, sb_r}) EXPECT_TRUE(b_.dev->destroy_cq(cq).is_ok());
    for (CompletionQueue* cq : {sa_s, sa_r}) EXPECT_TRUE(a_.dev->destroy_cq(cq).is_ok());
    for (const Buffer* m : {&v_slots, &v_target, &s_slots}) {
      EXPECT_TRUE(a_.dev->dereg_mr(m->key).is_ok());
    }
    for (const Buffer* m : {&v_src, &s_src}) EXPECT_TRUE(b_.dev->dereg_mr(m->key).is_ok());
  }
}

// Application threads sharing a device without an engine thread
// (Device::progress): a thread that has taken no completion lately leaves
// the engine to the thread that drives it while that one keeps calling, and
// takes over once it has stopped. Without the rule the idle thread's call
// runs the engine (the lock is free), as in BM_DeviceLockPostAndPoll where
// it took the work of the posting thread on most of its polls.
TEST_F(EngineTest, IdlePollerLeavesTheEngineToTheDriver) {
  for (const Nanos defer : {Nanos(3600) * kNanosPerSec, Nanos(kNanosPerMs)}) {
    SCOPED_TRACE("progress_defer_ns " + std::to_string(defer));
    a_.dev.reset();
    Device::Options opts;
    opts.engine_thread = false;
    opts.progress_defer_ns = defer;
    opts.progress_idle_ns = 600 * kNanosPerSec;  // the driver stays "active" throughout
    make_device(&pair_->a(), &a_, opts, 64);
    Qp* qa = make_qp(a_, QpType::kRc);
    Qp* qb = make_qp(b_, QpType::kRc);
    ASSERT_NE(qa, nullptr);
    ASSERT_NE(qb, nullptr);
    connect(a_, qa, b_, qb);
    connect(b_, qb, a_, qa);
    Buffer src = make_buffer(a_, 64, kAccessLocalWrite, 0x5C);
    Buffer dst = make_buffer(b_, 64, kAccessLocalWrite | kAccessRemoteWrite);

    // A fresh thread has never taken a completion: idle. Nobody drives yet,
    // so it runs the engine, and becomes no driver by that.
    bool fresh_ran = false;
    std::thread([&] { fresh_ran = a_.dev->progress(); }).join();
    EXPECT_TRUE(fresh_ran) << "an idle thread alone is never deferred";

    // The driver: posts a WRITE and polls its CQ, driving device a through
    // progress() (device b by hand), until the completion; then calls once more.
    std::string driver_error;
    bool driver_ran_last = false;
    std::atomic<bool> driver_done{false}, checked{false};
    std::thread driver([&] {
      Sge sge{src.addr(), 64, src.key};
      SendWqe w = wqe(WrOpcode::kRdmaWrite, 1);
      w.num_sge = 1;
      w.length = 64;
      w.remote_addr = dst.addr();
      w.rkey = dst.key;
      if (qa->post_send(w, &sge, nullptr) != 0) {
        driver_error = "post_send failed";
        driver_done = true;
        return;
      }
      const Nanos end = monotonic_now() + 20 * kNanosPerSec;
      Cqe c;
      while (a_.scq->poll(&c, 1) == 0) {
        if (monotonic_now() > end) {
          driver_error = "no completion in 20 s";
          driver_done = true;
          return;
        }
        a_.dev->progress();
        auto lb = b_.dev->lock_engine();
        b_.dev->poll(monotonic_now());
      }
      if (c.status != WcStatus::kSuccess) driver_error = "completion error";
      driver_ran_last = a_.dev->progress();
      driver_done = true;
      // Alive until the checks below are over: a thread started after this
      // one ended may get its thread-local storage, and so its identity.
      while (!checked.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });
    struct JoinAtExit {
      std::thread& t;
      std::atomic<bool>& flag;
      ~JoinAtExit() {
        flag = true;
        t.join();
      }
    } join_at_exit{driver, checked};
    while (!driver_done.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ASSERT_EQ(driver_error, "");
    EXPECT_TRUE(driver_ran_last) << "the driver's own call runs the engine";
    EXPECT_EQ(dst.bytes[63], 0x5C);

    // Another idle thread now: it steps back while the driver's last call is
    // recent (one hour), and runs once that is past (1 ms).
    if (defer > kNanosPerSec) {
      bool idle_ran = true;
      std::thread([&] { idle_ran = a_.dev->progress(); }).join();
      EXPECT_FALSE(idle_ran) << "an idle thread took the engine from its driver";
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      bool idle_ran = false;
      std::thread([&] { idle_ran = a_.dev->progress(); }).join();
      EXPECT_TRUE(idle_ran) << "a driver that stopped did not hand the engine over";
    }
    ASSERT_TRUE(a_.dev->destroy_qp(qa).is_ok());
    ASSERT_TRUE(b_.dev->destroy_qp(qb).is_ok());
    EXPECT_TRUE(a_.dev->dereg_mr(src.key).is_ok());
    EXPECT_TRUE(b_.dev->dereg_mr(dst.key).is_ok());
  }
}

}  // namespace
}  // namespace droce::nic::test
