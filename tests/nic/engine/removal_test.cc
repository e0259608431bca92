// Device removal (IBTA vol. 1 11.6.3 unaffiliated asynchronous events, as a
// kernel RDMA device raises IB_EVENT_DEVICE_FATAL when unplugged): a port that
// DPDK removes while traffic runs takes its device down cleanly.
#include <rte_dev.h>
#include <rte_ethdev.h>

#include <atomic>
#include <thread>

#include "tests/nic/engine/engine_checks.h"
#include "tests/nic/engine/fake_clock.h"

namespace droce::nic::test {
namespace {

constexpr uint64_t kRecvIdBase = 1'000'000'000;

class Removal : public EngineTest {
 protected:
  void SetUp() override {
    EngineTest::SetUp();
    // The fixture's inline devices replaced by devices with an engine thread.
    make_threaded_side(&pair_->a(), &a_, 8192);
    make_threaded_side(&pair_->b(), &b_, 8192);
  }
};

// One side's application: SENDs to the peer and receives from it, as fast as
// its queues allow, until told to stop; every WQE it posts goes in `ledger`.
struct App {
  Qp* qp;
  CompletionQueue* scq;
  CompletionQueue* rcq;
  Buffer* buf;
  Ledger ledger;
  uint64_t next_send = 1, next_recv = kRecvIdBase;
  uint64_t send_errors = 0, flushed = 0;

  void take(CompletionQueue* cq) {
    for (const Cqe& c : drain(cq)) {
      ledger.on_cqe(c);
      if (c.status != WcStatus::kSuccess) ++send_errors;
      if (c.status == WcStatus::kWrFlushErr) ++flushed;
    }
  }
  void run(const std::atomic<bool>& stop) {
    while (!stop.load(std::memory_order_relaxed)) {
      Sge r{buf->addr(), 256, buf->key};
      if (qp->post_recv(next_recv, &r, 1) == 0) ledger.post(next_recv++, true);
      SendWqe w{};
      w.wr_id = next_send;
      w.opcode = WrOpcode::kSend;
      w.flags = kSendSignaled;
      w.num_sge = 1;
      Sge s{buf->addr(), 200, buf->key};
      if (qp->post_send(w, &s, nullptr) == 0) ledger.post(next_send++, true);
      take(scq);
      take(rcq);
      std::this_thread::yield();
    }
  }
};

// b's vdev is detached with rte_dev_remove (under b's engine lock, as DPDK
// requires of whoever detaches a port another thread polls) while both sides
// send to each other: b's device removes itself at its next poll. Every WQE b
// posted, before and after, completes exactly once (flushed), b gets
// PORT_ERR and DEVICE_FATAL, nothing new can be brought up on it, and a's QP
// runs out of retries and flushes too.
TEST_F(Removal, VdevDetachedWhileTrafficRunsFlushesEveryWqeOnce) {
  Qp* qa = make_qp(a_, QpType::kRc, 512, 1);
  Qp* qb = make_qp(b_, QpType::kRc, 512, 1);
  // ACK timeout 4.096 us * 2^16 (268 ms), 3 retries: a's QP gives up about a
  // second after b is gone, and no engine thread left unscheduled for a
  // while (ThreadSanitizer on a loaded machine) makes it give up before.
  connect(a_, qa, b_, qb, kAccessRemoteWrite, 1024, /*timeout=*/16, /*retry=*/3, /*rnr=*/7);
  connect(b_, qb, a_, qa, kAccessRemoteWrite, 1024, 16, 3, 7);
  Buffer ba = make_buffer(a_, 4096, kAccessLocalWrite, 1);
  Buffer bb = make_buffer(b_, 4096, kAccessLocalWrite, 2);
  App app_a{qa, a_.scq, a_.rcq, &ba, {}};
  App app_b{qb, b_.scq, b_.rcq, &bb, {}};
  std::atomic<bool> stop{false};
  std::thread ta([&] { app_a.run(stop); });
  std::thread tb([&] { app_b.run(stop); });

  // Traffic flows both ways first. A QP's counters are the engine's: read
  // under its lock (Device::qp_stats), not from the QP while it runs.
  auto rx_packets = [](Side& s, Qp* qp) {
    QpStats st;
    return s.dev->qp_stats(qp->qpn(), &st) ? st.counters.rx_packets : 0;
  };
  const Nanos until = monotonic_now() + 20 * kNanosPerSec;
  while (monotonic_now() < until && (rx_packets(a_, qa) < 20 || rx_packets(b_, qb) < 20)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (rx_packets(a_, qa) < 20u || rx_packets(b_, qb) < 20u) {
    stop.store(true);
    ta.join();
    tb.join();
    FAIL() << "no traffic before the detach: " << rx_packets(b_, qb) << " packets";
  }

  const uint16_t port_id = b_.dev->port().port_id();
  rte_eth_dev_info info{};
  ASSERT_EQ(rte_eth_dev_info_get(port_id, &info), 0);
  {
    auto lock = b_.dev->lock_engine();
    ASSERT_EQ(rte_dev_remove(info.device), 0);
  }
  EXPECT_FALSE(rte_eth_dev_is_valid_port(port_id));
  EXPECT_TRUE(b_.dev->port().removed());

  // b's application goes on posting for a while: into a QP in ERR, flushed.
  const Nanos fatal_by = monotonic_now() + 10 * kNanosPerSec;
  std::vector<AsyncEvent> evs;
  while (monotonic_now() < fatal_by &&
         !std::any_of(evs.begin(), evs.end(),
                      [](const AsyncEvent& e) { return e.type == AsyncEventType::kDeviceFatal; })) {
    for (const AsyncEvent& e : drain_events(*b_.dev)) evs.push_back(e);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  // a's QP: its retries run out against a peer that is gone.
  const Nanos a_dead_by = monotonic_now() + 10 * kNanosPerSec;
  while (qa->state() != QpState::kErr && monotonic_now() < a_dead_by) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  stop.store(true);
  ta.join();
  tb.join();

  EXPECT_TRUE(std::any_of(evs.begin(), evs.end(),
                          [](const AsyncEvent& e) { return e.type == AsyncEventType::kPortErr; }));
  EXPECT_TRUE(std::any_of(evs.begin(), evs.end(), [](const AsyncEvent& e) {
    return e.type == AsyncEventType::kDeviceFatal;
  })) << "no DEVICE_FATAL within 10 s of the detach";
  EXPECT_EQ(qb->state(), QpState::kErr);
  EXPECT_EQ(qa->state(), QpState::kErr);

  // Every WQE each side posted completes, exactly once (Ledger fails a
  // second CQE for the same WQE).
  for (App* app : {&app_a, &app_b}) {
    const Nanos end = monotonic_now() + 10 * kNanosPerSec;
    while (app->ledger.in_flight() > 0 && monotonic_now() < end) {
      app->take(app->scq);
      app->take(app->rcq);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    EXPECT_EQ(app->ledger.in_flight(), 0) << (app == &app_a ? "a" : "b");
    EXPECT_GT(app->flushed, 0u);
  }
  EXPECT_GT(app_b.next_send, 1u);

  // The removed device refuses to bring anything up; tearing down works.
  QpAttrs attrs;
  attrs.state = QpState::kReset;
  EXPECT_TRUE(b_.dev->modify_qp(qb, attrs, uint32_t(QpAttr::kState)).is_ok());
  attrs.state = QpState::kInit;
  const Status st = b_.dev->modify_qp(
      qb, attrs, QpAttr::kState | QpAttr::kPkeyIndex | QpAttr::kPort | QpAttr::kAccessFlags);
  EXPECT_EQ(st.code(), Errc::kIo) << st.message();
  EXPECT_EQ(b_.dev->create_cq(16).status().code(), Errc::kIo);
  EXPECT_EQ(Device::create(&pair_->b(), Device::Options{}).status().code(), Errc::kIo);
  EXPECT_TRUE(b_.dev->destroy_qp(qb).is_ok());
}

}  // namespace
}  // namespace droce::nic::test
