// The engine wakes on the first frame: two devices on the two ends of a
// net_memif link in this process (server and client on one abstract
// socket), the receiver's engine asleep, and a frame from the sender wakes it
// through memif's receive interrupt (nic/port_rx_intr.cc), neither a
// doorbell nor a timer. The wake reason is read from the engine's counters,
// never from a clock. A net_ring port has no receive interrupt: its sleep
// ends on the timer.
#include <gtest/gtest.h>
#include <rte_dev.h>
#include <rte_ethdev.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>

#include "nic/eal.h"
#include "tests/nic/engine/engine_checks.h"
#include "tests/nic/engine/engine_fixture.h"

namespace droce::nic::test {
namespace {

// Both memif ends in this process, on an abstract socket named after the
// pid (DPDK 22.11's default), so parallel runs do not meet. Set before the
// EAL starts (the test environment starts it in RUN_ALL_TESTS).
[[maybe_unused]] const bool g_eal_args = [] {
  const std::string sock = "/droce-rxintr-" + std::to_string(getpid()) + ".sock";
  const std::string args = "--no-huge --no-pci -m 256 --no-telemetry --log-level=*:warning"
                           " --file-prefix droce-rxintr-" + std::to_string(getpid()) +
                           " --vdev=net_memif0,role=server,id=0,socket=" + sock +
                           " --vdev=net_memif1,role=client,id=0,socket=" + sock +
                           " --vdev=net_memif2,role=server,id=1,socket=" + sock +
                           " --vdev=net_memif3,role=client,id=1,socket=" + sock +
                           " --vdev=net_memif4,role=server,id=2,socket=" + sock +
                           " --vdev=net_memif5,role=client,id=2,socket=" + sock;
  return setenv("DROCE_EAL_ARGS", args.c_str(), 1) == 0;
}();

constexpr Nanos kLongSleep = 30 * kNanosPerSec;  // only a wake-up ends a sleep this long in a test

EngineCounters counters_of(Device& d) {
  auto lock = d.lock_engine();
  return d.counters();
}

// The port's own view of the memif ring comes from DPDK's interrupt thread a
// moment after the link is up (nic/port_rx_intr.cc); until then an arm fails
// and the engine sleeps on its timer. Waits (bounded) until the port of d
// can arm.
bool rx_interrupt_ready(Device& d, Port& p) {
  const Nanos end = monotonic_now() + 10 * kNanosPerSec;
  while (monotonic_now() < end) {
    {
      auto lock = d.lock_engine();
      const int fd = p.arm_rx_interrupt(false);
      p.disarm_rx_interrupt();
      if (fd >= 0) return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

class RxInterruptTest : public EngineTest {
 protected:
  // Closing a memif port releases its vdev, so both ports live as long as
  // the suite.
  static void SetUpTestSuite() {
    auto a = Port::open_by_name("net_memif0", test_config("10.9.1.1"));
    ASSERT_TRUE(a.is_ok()) << a.status().message();
    auto b = Port::open_by_name("net_memif1", test_config("10.9.1.2"));
    ASSERT_TRUE(b.is_ok()) << b.status().message();
    port_a_ = std::move(a.value());
    port_b_ = std::move(b.value());
  }
  // One end at a time: DPDK's interrupt thread handles the other end's
  // side of the disconnect, and closing that end meanwhile crashed in the
  // memif PMD under load.
  static void TearDownTestSuite() {
    port_a_.reset();
    const Nanos end = monotonic_now() + 5 * kNanosPerSec;
    while (port_b_->link_up() && monotonic_now() < end) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    eal_wait_interrupt_thread_idle();
    port_b_.reset();
    eal_wait_interrupt_thread_idle();
  }
  void SetUp() override {
    ASSERT_TRUE(port_a_ && port_b_);
    // The client connects from DPDK's interrupt thread.
    const Nanos end = monotonic_now() + 10 * kNanosPerSec;
    while ((!port_a_->link_up() || !port_b_->link_up()) && monotonic_now() < end) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ASSERT_TRUE(port_a_->link_up() && port_b_->link_up()) << "memif link did not come up";
    EXPECT_STREQ(port_a_->rx_interrupt_kind(), "memif");
    EXPECT_STREQ(port_b_->rx_interrupt_kind(), "memif");
  }
  void TearDown() override {
    a_.dev.reset();
    b_.dev.reset();
  }

  // Connected RC QPs and a 4 KiB buffer on each side (A's filled with a_fill).
  void connect_qps(uint8_t a_fill) {
    qa_ = make_qp(a_, QpType::kRc);
    qb_ = make_qp(b_, QpType::kRc);
    connect(a_, qa_, b_, qb_);
    connect(b_, qb_, a_, qa_);
    buf_a_ = make_buffer(a_, 4096, kAccessLocalWrite | kAccessRemoteWrite, a_fill);
    buf_b_ = make_buffer(b_, 4096, kAccessLocalWrite | kAccessRemoteWrite, 0x00);
  }

  // Connected RC QPs, ARP done (one SEND each way, pumped inline).
  void connect_rc() {
    connect_qps(0xA5);
    Sge r{buf_b_.addr(), 64, buf_b_.key};
    ASSERT_EQ(qb_->post_recv(1, &r, 1), 0);
    SendWqe w = wqe(WrOpcode::kSend, 2);
    Sge s{buf_a_.addr(), 8, buf_a_.key};
    w.num_sge = 1;
    ASSERT_EQ(qa_->post_send(w, &s, nullptr), 0);
    ASSERT_EQ(wait_cqes(b_.rcq, 1).size(), 1u);
    ASSERT_EQ(wait_cqes(a_.scq, 1).size(), 1u);
    buf_b_.bytes[0] = 0;
  }

  // Posts a 4 KiB WRITE from A into B's buffer.
  void post_write(uint64_t wr_id) {
    SendWqe w = wqe(WrOpcode::kRdmaWrite, wr_id);
    Sge s{buf_a_.addr(), 4096, buf_a_.key};
    w.num_sge = 1;
    w.remote_addr = buf_b_.addr();
    w.rkey = buf_b_.key;
    ASSERT_EQ(qa_->post_send(w, &s, nullptr), 0);
  }

  // A's engine, driven by a thread of its own once B's engine has gone to
  // sleep (B's `sleeps` counter moved past `sleeps_before`): it sends the
  // WRITE and then runs until the WRITE is acknowledged (bounded).
  std::thread sender(uint64_t sleeps_before, std::atomic<bool>* acked) {
    return std::thread([this, sleeps_before, acked] {
      const Nanos end = monotonic_now() + 20 * kNanosPerSec;
      while (counters_of(*b_.dev).sleeps == sleeps_before && monotonic_now() < end) {
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
      post_write(10);
      while (!acked->load() && monotonic_now() < end) {
        {
          auto lock = a_.dev->lock_engine();
          a_.dev->poll(monotonic_now());
        }
        Cqe c;
        if (a_.scq->poll(&c, 1) == 1) acked->store(c.status == WcStatus::kSuccess);
      }
    });
  }

  // B's engine thread stands aside for an application that polls its CQ
  // (here a window far longer than the test); RC QPs connected.
  void set_up_stand_aside() {
    make_side(port_a_.get(), &a_);
    Device::Options opts;
    opts.stand_aside_ns = 3600 * kNanosPerSec;
    make_threaded_side(port_b_.get(), &b_, 64, opts);
    connect_qps(0x5A);
  }

  // B's application polls its CQ (an empty poll_cq drives progress inline;
  // the engine thread may hold the lock just now: polls that do not get it
  // do not count) until `done`, then leaves it with a completion, as
  // ib_write_lat does before it waits on memory. Returns once B's engine
  // thread has armed the receive interrupt and polled once more (a frame
  // already there then is taken by that poll, without an interrupt): it
  // arms and polls under the engine lock, so reading the counters, which
  // takes the lock, waits for that poll.
  void app_polls_then_leaves(const std::function<bool()>& done) {
    const Nanos until = monotonic_now() + 10 * kNanosPerSec;
    bool polled = false;
    while ((!polled || !done()) && monotonic_now() < until) {
      if (b_.dev->progress()) polled = true;
      {
        auto lock = a_.dev->lock_engine();
        a_.dev->poll(monotonic_now());
      }
    }
    ASSERT_TRUE(polled && done());
    b_.dev->app_leaves_poll();
    const Nanos end = monotonic_now() + 20 * kNanosPerSec;
    while (!port_b_->rx_interrupt_armed() && monotonic_now() < end) {
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    ASSERT_TRUE(port_b_->rx_interrupt_armed()) << "B's engine thread never stood aside";
  }

  // A's engine, inline, until A's send CQ has a completion (bounded).
  bool a_completes(Nanos end, Cqe* c) {
    while (monotonic_now() < end) {
      {
        auto lock = a_.dev->lock_engine();
        a_.dev->poll(monotonic_now());
      }
      if (a_.scq->poll(c, 1) == 1) return true;
    }
    return false;
  }

  static inline std::unique_ptr<Port> port_a_, port_b_;
  Qp* qa_ = nullptr;
  Qp* qb_ = nullptr;
  Buffer buf_a_, buf_b_;
};

// The idle engine's sleep (what the engine thread does after its backoff),
// run on this thread: the WRITE's frames end it through the receive
// interrupt, and the poll that follows the wake-up has landed them.
TEST_F(RxInterruptTest, SleepingEngineWakesOnTheFirstFrame) {
  make_side(port_a_.get(), &a_);
  make_side(port_b_.get(), &b_);
  connect_rc();
  ASSERT_TRUE(rx_interrupt_ready(*b_.dev, *port_b_)) << "B's port never had its receive interrupt";
  const EngineCounters before = counters_of(*b_.dev);
  std::atomic<bool> acked{false};
  std::thread t = sender(before.sleeps, &acked);
  const bool slept = DeviceTestPeer::sleep_until_work(*b_.dev, kLongSleep);
  const uint8_t first = buf_b_.bytes[0];
  const EngineCounters after = counters_of(*b_.dev);
  // B answers the rest of the WRITE (and its ACK) from here on.
  pump([&] { return acked.load(); });
  t.join();
  EXPECT_TRUE(slept);
  EXPECT_EQ(after.sleeps, before.sleeps + 1);
  EXPECT_EQ(after.sleeps_rx_interrupt, before.sleeps_rx_interrupt + 1);
  EXPECT_EQ(after.wakes_rx_interrupt, before.wakes_rx_interrupt + 1) << "not woken by the frame";
  EXPECT_EQ(after.wakes_doorbell, before.wakes_doorbell);
  EXPECT_EQ(after.wakes_timeout, before.wakes_timeout);
  EXPECT_EQ(first, 0xA5) << "the poll after the wake-up did not land the WRITE";
  EXPECT_TRUE(acked.load());
  EXPECT_EQ(buf_b_.bytes, buf_a_.bytes);
}

// Once WRITEs come in (a program waits for them by polling memory, as
// ib_write_lat does), a frame that arrives after the application has left
// poll_cq wakes the standing-aside engine thread through the receive
// interrupt, not the end of the window.
TEST_F(RxInterruptTest, StandingAsideEngineTakesAWriteTheApplicationDoesNotPollFor) {
  set_up_stand_aside();
  // A first WRITE lands while B's application polls: WRITEs come in.
  post_write(19);
  Cqe c{};
  app_polls_then_leaves([&] { return buf_b_.bytes[0] == 0x5A; });
  ASSERT_TRUE(a_completes(monotonic_now() + 20 * kNanosPerSec, &c));
  std::fill(buf_a_.bytes.begin(), buf_a_.bytes.end(), 0x6B);
  const EngineCounters before = counters_of(*b_.dev);
  post_write(20);
  ASSERT_TRUE(a_completes(monotonic_now() + 20 * kNanosPerSec, &c))
      << "the WRITE was never acknowledged: B's engine slept through it";
  EXPECT_EQ(c.status, WcStatus::kSuccess);
  EXPECT_EQ(buf_b_.bytes, buf_a_.bytes);
  const EngineCounters after = counters_of(*b_.dev);
  EXPECT_GT(after.wakes_rx_interrupt, before.wakes_rx_interrupt)
      << "the frame was taken without the receive interrupt";
}

// An application that has seen no WRITE waits for its SENDs in poll_cq
// (ibv_rc_pingpong's loop), and leaving poll_cq with a completion does not
// open the interrupt: a wake-up per frame would only preempt it (or its
// peer) on a busy machine. The SEND waits for the application's next poll.
TEST_F(RxInterruptTest, StandingAsideEngineIsNotWokenForSendsTheApplicationPollsFor) {
  set_up_stand_aside();
  Sge r{buf_b_.addr(), 64, buf_b_.key};
  ASSERT_EQ(qb_->post_recv(1, &r, 1), 0);
  app_polls_then_leaves([] { return true; });
  const EngineCounters before = counters_of(*b_.dev);
  SendWqe w = wqe(WrOpcode::kSend, 2);
  Sge s{buf_a_.addr(), 8, buf_a_.key};
  w.num_sge = 1;
  ASSERT_EQ(qa_->post_send(w, &s, nullptr), 0);
  // A sends it; B's engine thread sleeps on.
  {
    auto lock = a_.dev->lock_engine();
    a_.dev->poll(monotonic_now());
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const EngineCounters after = counters_of(*b_.dev);
  EXPECT_EQ(after.wakes_rx_interrupt, before.wakes_rx_interrupt) << "woken for a SEND";
  Cqe c{};
  EXPECT_EQ(b_.rcq->poll(&c, 1), 0) << "the SEND landed without the application";
  // The application's next poll takes it.
  const Nanos end = monotonic_now() + 20 * kNanosPerSec;
  bool got = false;
  while (!got && monotonic_now() < end) {
    b_.dev->progress();
    got = b_.rcq->poll(&c, 1) == 1;
  }
  ASSERT_TRUE(got);
  EXPECT_EQ(c.status, WcStatus::kSuccess);
  EXPECT_TRUE(a_completes(end, &c));
}

// While the application keeps polling, the standing-aside engine thread's
// timer wake-ups (each one preempts a polling thread on a busy machine) come
// further apart, up to Options::stand_aside_max_sleep_ns; once the
// application stops, the engine still takes a frame for it within the window
// plus that bound.
TEST_F(RxInterruptTest, StandingAsideEngineWakesRarelyWhileTheApplicationPolls) {
  make_side(port_a_.get(), &a_);
  Device::Options opts;
  opts.stand_aside_ns = 200 * kNanosPerUs;
  opts.stand_aside_max_sleep_ns = 20 * kNanosPerMs;
  make_threaded_side(port_b_.get(), &b_, 64, opts);
  connect_qps(0x5A);
  ASSERT_TRUE(rx_interrupt_ready(*b_.dev, *port_b_)) << "B's port never had its receive interrupt";
  Sge r{buf_b_.addr(), 64, buf_b_.key};
  ASSERT_EQ(qb_->post_recv(1, &r, 1), 0);

  const EngineCounters before = counters_of(*b_.dev);
  const Nanos until = monotonic_now() + 300 * kNanosPerMs;
  while (monotonic_now() < until) b_.dev->progress();
  const EngineCounters polled = counters_of(*b_.dev);
  EXPECT_GT(polled.sleeps_rx_interrupt, before.sleeps_rx_interrupt) << "B's engine thread never stood aside";
  const uint64_t wakes = polled.wakes_aside_timer - before.wakes_aside_timer;
  // A wake-up per 200 us window would be about 1500; with the sleeps
  // doubling to 20 ms, about 15 plus a few per re-arm (every 50 ms).
  EXPECT_GT(wakes, 0u) << "the window's timer never ran";
  EXPECT_LE(wakes, 300u);
  std::printf("timer wake-ups in 300 ms of polling: %llu\n", (unsigned long long)wakes);

  // The application stops polling: A's SEND lands through B's engine thread.
  const Nanos stopped = monotonic_now();
  SendWqe w = wqe(WrOpcode::kSend, 2);
  Sge s{buf_a_.addr(), 8, buf_a_.key};
  w.num_sge = 1;
  ASSERT_EQ(qa_->post_send(w, &s, nullptr), 0);
  Cqe c{};
  ASSERT_TRUE(a_completes(stopped + 20 * kNanosPerSec, &c)) << "B's engine never took the SEND";
  EXPECT_EQ(c.status, WcStatus::kSuccess);
  ASSERT_EQ(b_.rcq->poll(&c, 1), 1);
  EXPECT_EQ(c.status, WcStatus::kSuccess);
  std::printf("SEND acknowledged %.1f ms after the application stopped polling\n",
              double(monotonic_now() - stopped) / double(kNanosPerMs));
}

// The engine thread's own idle sleep (no application polls B) is armed on
// the receive interrupt, so a frame wakes it at once rather than a timer.
TEST_F(RxInterruptTest, IdleEngineThreadSleepsOnTheReceiveInterrupt) {
  make_side(port_a_.get(), &a_);
  make_threaded_side(port_b_.get(), &b_, 64);
  connect_rc();
  // B idle: its thread spins, yields, then sleeps on the interrupt.
  const Nanos end = monotonic_now() + 20 * kNanosPerSec;
  while (counters_of(*b_.dev).sleeps_rx_interrupt == 0 && monotonic_now() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const EngineCounters before = counters_of(*b_.dev);
  ASSERT_GT(before.sleeps_rx_interrupt, 0u) << "the idle engine thread never armed the interrupt";
  // A WRITE that lands while B's thread is between sleeps (its spin and
  // yield after a timer wake-up, long on a loaded machine) is taken without
  // the interrupt: WRITEs every few milliseconds until one has woken it.
  EngineCounters after = before;
  for (int i = 0; i < 50 && after.wakes_rx_interrupt == before.wakes_rx_interrupt; ++i) {
    std::fill(buf_a_.bytes.begin(), buf_a_.bytes.end(), uint8_t(0x4D + i));
    post_write(30 + uint64_t(i));
    Cqe c{};
    ASSERT_TRUE(a_completes(monotonic_now() + 20 * kNanosPerSec, &c));
    EXPECT_EQ(c.status, WcStatus::kSuccess);
    EXPECT_EQ(buf_b_.bytes, buf_a_.bytes);
    after = counters_of(*b_.dev);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_GT(after.wakes_rx_interrupt, before.wakes_rx_interrupt) << "B's engine was not woken by a frame";
}

// The peer goes away while B's receive interrupt is armed: the memif PMD
// closes the eventfd and unmaps the ring's region on DPDK's interrupt thread
// at that moment. B's application thread then polls (which quietens the
// interrupt and reads the ring's index) and leaves to block (which opens
// it), and the engine disarms and arms again: all of it on B's own view of
// the ring. Before that view, iperf3 under the SMC-R shim died here at exit
// (SIGSEGV in quiet_rx_interrupt on the unmapped ring). Its own link (memif
// id 1), since the suite's link must outlive every test.
class RxInterruptPeerGone : public EngineTest {
 protected:
  void SetUp() override {}
  // Closing one end: true once the other has seen its link go down and the
  // interrupt thread is done with the disconnect (bounded).
  static bool peer_gone(const Port& p) {
    const Nanos end = monotonic_now() + 10 * kNanosPerSec;
    while (p.link_up() && monotonic_now() < end) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (p.link_up()) return false;
    eal_wait_interrupt_thread_idle();
    return true;
  }
  // One end of a memif link of its own (id; each test has one). A client
  // port closed earlier in this process released its ethdev but left its
  // vdev on the bus: that one is plugged in again.
  static std::unique_ptr<Port> open_end(const char* name, const char* role, int link, const char* ip) {
    uint16_t id;
    if (rte_eth_dev_get_port_by_name(name, &id) != 0) {
      const std::string args = std::string("role=") + role + ",id=" + std::to_string(link) +
                               ",socket=/droce-rxintr-" + std::to_string(getpid()) + ".sock";
      rte_eal_hotplug_remove("vdev", name);
      if (rte_eal_hotplug_add("vdev", name, args.c_str()) != 0) return nullptr;
    }
    auto p = Port::open_by_name(name, test_config(ip));
    return p.is_ok() ? std::move(p.value()) : nullptr;
  }
  void TearDown() override {
    a_.dev.reset();
    b_.dev.reset();
  }
};

TEST_F(RxInterruptPeerGone, ArmedViewOutlivesThePmdsRing) {
  std::unique_ptr<Port> port_b = open_end("net_memif2", "server", 1, "10.9.2.1");
  std::unique_ptr<Port> port_a = open_end("net_memif3", "client", 1, "10.9.2.2");
  ASSERT_TRUE(port_a && port_b);
  const Nanos up_end = monotonic_now() + 10 * kNanosPerSec;
  while ((!port_a->link_up() || !port_b->link_up()) && monotonic_now() < up_end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE(port_a->link_up() && port_b->link_up()) << "memif link did not come up";
  make_side(port_b.get(), &b_);
  ASSERT_TRUE(rx_interrupt_ready(*b_.dev, *port_b));
  {
    auto lock = b_.dev->lock_engine();
    ASSERT_GE(port_b->arm_rx_interrupt(true), 0);
  }
  ASSERT_TRUE(port_b->rx_interrupt_armed());
  // The peer closes; B's PMD handles the disconnect on the interrupt thread.
  port_a.reset();
  ASSERT_TRUE(peer_gone(*port_b)) << "B never saw the peer go";
  ASSERT_TRUE(port_b->rx_interrupt_armed());
  // B's application: polls (quiet, and the receive path's look at the ring),
  // then blocks (open), as after any completion.
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(b_.dev->progress());
    b_.dev->app_waits_for_event();
  }
  {
    auto lock = b_.dev->lock_engine();
    EXPECT_FALSE(port_b->rx_interrupt_taken()) << "nothing can have arrived";
    port_b->disarm_rx_interrupt();
    EXPECT_FALSE(port_b->rx_interrupt_armed());
    // The link is down: no interrupt to arm, the engine sleeps on its timer.
    EXPECT_EQ(port_b->arm_rx_interrupt(true), -1);
    EXPECT_FALSE(port_b->rx_interrupt_armed());
  }
  b_.dev.reset();
  eal_wait_interrupt_thread_idle();
  port_b.reset();
  eal_wait_interrupt_thread_idle();
}

// The peer goes away and a new one connects on the same socket (a program
// started again): it brings a new region and eventfd. B's port drops or
// replaces its view (the link was down at an arm, or the interrupt thread's
// check every 50 ms finds a new region), and the new peer's WRITEs wake B's
// sleeping engine through the receive interrupt again, not the timer (memif
// id 2: a link of its own). B
// sleeps as its engine thread would (at most 1 ms a sleep); A sends a WRITE
// every few milliseconds and waits for each to be acknowledged.
TEST_F(RxInterruptPeerGone, ReconnectedPeerWakesTheEngineThroughItsNewRing) {
  std::unique_ptr<Port> port_b = open_end("net_memif4", "server", 2, "10.9.3.1");
  std::unique_ptr<Port> port_a = open_end("net_memif5", "client", 2, "10.9.3.2");
  ASSERT_TRUE(port_a && port_b);
  const auto both_up = [&] {
    const Nanos end = monotonic_now() + 10 * kNanosPerSec;
    while ((!port_a->link_up() || !port_b->link_up()) && monotonic_now() < end) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return port_a->link_up() && port_b->link_up();
  };
  ASSERT_TRUE(both_up()) << "memif link did not come up";
  make_side(port_b.get(), &b_);
  ASSERT_TRUE(rx_interrupt_ready(*b_.dev, *port_b));
  // The first peer ends; a second one connects.
  port_a.reset();
  ASSERT_TRUE(peer_gone(*port_b)) << "B never saw the peer go";
  port_a = open_end("net_memif5", "client", 2, "10.9.3.2");
  ASSERT_TRUE(port_a) << "the second peer did not open";
  ASSERT_TRUE(both_up()) << "the second peer's link did not come up";
  make_side(port_a.get(), &a_);
  Qp* qa = make_qp(a_, QpType::kRc);
  Qp* qb = make_qp(b_, QpType::kRc);
  connect(a_, qa, b_, qb);
  connect(b_, qb, a_, qa);
  Buffer buf_a = make_buffer(a_, 4096, kAccessLocalWrite | kAccessRemoteWrite, 0x3C);
  Buffer buf_b = make_buffer(b_, 4096, kAccessLocalWrite | kAccessRemoteWrite, 0x00);
  const EngineCounters before = counters_of(*b_.dev);
  constexpr int kWrites = 40;
  std::atomic<int> acked{0};
  std::atomic<bool> failed{false};
  std::thread sender([&] {
    for (int i = 0; i < kWrites && !failed.load(); ++i) {
      SendWqe w = wqe(WrOpcode::kRdmaWrite, uint64_t(i));
      Sge sg{buf_a.addr(), 4096, buf_a.key};
      w.num_sge = 1;
      w.remote_addr = buf_b.addr();
      w.rkey = buf_b.key;
      if (qa->post_send(w, &sg, nullptr) != 0) {
        failed.store(true);
        break;
      }
      const Nanos end = monotonic_now() + 5 * kNanosPerSec;
      Cqe c{};
      bool done = false;
      while (!done && monotonic_now() < end) {
        {
          auto lock = a_.dev->lock_engine();
          a_.dev->poll(monotonic_now());
        }
        done = a_.scq->poll(&c, 1) == 1;
      }
      if (!done || c.status != WcStatus::kSuccess) {
        failed.store(true);
        break;
      }
      acked.fetch_add(1);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  // B: its engine's idle sleep, over and over, until the sender is done.
  const Nanos end = monotonic_now() + 60 * kNanosPerSec;
  while (acked.load() < kWrites && !failed.load() && monotonic_now() < end) {
    DeviceTestPeer::sleep_until_work(*b_.dev, kNanosPerMs);
  }
  sender.join();
  ASSERT_FALSE(failed.load()) << "a WRITE was not acknowledged";
  EXPECT_EQ(acked.load(), kWrites);
  EXPECT_EQ(buf_b.bytes, buf_a.bytes);
  const EngineCounters after = counters_of(*b_.dev);
  EXPECT_GT(after.sleeps_rx_interrupt, before.sleeps_rx_interrupt) << "B never armed the new ring";
  // Most WRITEs (the first may meet the old view, up to the 50 ms check)
  // end a sleep through the interrupt.
  EXPECT_GE(after.wakes_rx_interrupt - before.wakes_rx_interrupt, uint64_t(kWrites / 2))
      << "the new peer's frames did not raise B's interrupt";
  a_.dev.reset();
  b_.dev.reset();
  port_a.reset();
  eal_wait_interrupt_thread_idle();
  port_b.reset();
  eal_wait_interrupt_thread_idle();
}

// net_ring has no receive interrupt: the sleep is not armed, and nothing but
// its timer (or a doorbell) ends it.
TEST(RxInterruptNone, RingPortSleepsOnTheTimer) {
  auto pair = make_port_pair(test_config("10.9.2.1"), test_config("10.9.2.2"));
  ASSERT_TRUE(pair.is_ok()) << pair.status().message();
  EXPECT_STREQ(pair.value().a().rx_interrupt_kind(), "none");
  EXPECT_EQ(pair.value().a().arm_rx_interrupt(true), -1);
  Device::Options opts;
  opts.engine_thread = false;
  auto dev = Device::create(&pair.value().a(), opts);
  ASSERT_TRUE(dev.is_ok());
  const EngineCounters before = counters_of(*dev.value());
  EXPECT_TRUE(DeviceTestPeer::sleep_until_work(*dev.value(), 20 * kNanosPerMs));
  const EngineCounters after = counters_of(*dev.value());
  EXPECT_EQ(after.sleeps, before.sleeps + 1);
  EXPECT_EQ(after.sleeps_rx_interrupt, before.sleeps_rx_interrupt);
  EXPECT_EQ(after.wakes_timeout, before.wakes_timeout + 1);
  EXPECT_EQ(after.wakes_rx_interrupt, before.wakes_rx_interrupt);
}

}  // namespace
}  // namespace droce::nic::test
