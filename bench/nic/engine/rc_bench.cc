// bench_rc: the RC transport in-process across a port pair, both engines
// driven by the benchmark thread (one core). BM_Memcpy/65536 is the reference
// the targets are ratios of (issue 4 section 8). Ports of MTU 1500 (path MTU
// 1024); the *Jumbo variants use 9000-byte ports and path MTU 4096.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <atomic>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "nic/base/clock.h"
#include "nic/device.h"
#include "nic/eal.h"
#include "nic/port.h"

namespace droce::nic {
namespace {

constexpr uint32_t kAll = kAccessLocalWrite | kAccessRemoteWrite | kAccessRemoteRead | kAccessRemoteAtomic;
constexpr uint16_t kJumboMtu = 9000;

// Two devices joined by a port pair, one connected RC QP each, and buffers.
class Rig {
 public:
  explicit Rig(uint32_t buf_bytes, uint32_t depth = 512, uint16_t mtu = kDefaultMtu) {
    Status st = eal_init();
    if (!st) throw std::runtime_error(st.message());
    PortConfig ca, cb;
    ca.ipv4 = parse_ipv4("10.8.0.1").value();
    cb.ipv4 = parse_ipv4("10.8.0.2").value();
    ca.mtu = cb.mtu = mtu;
    ca.mbufs = cb.mbufs = mtu > kDefaultMtu ? 4095 : 8191;  // jumbo mbufs are 9 KiB
    // DROCE_ZERO_COPY=0 as for the library; DROCE_BENCH_ZERO_COPY_MIN sets
    // the threshold (Device::Options::zero_copy_min), to measure it.
    if (const char* z = std::getenv("DROCE_ZERO_COPY")) ca.zero_copy = cb.zero_copy = z[0] != '0';
    auto pair = make_port_pair(ca, cb);
    if (!pair) throw std::runtime_error(pair.status().message());
    pair_ = std::make_unique<PortPair>(std::move(pair.value()));
    Device::Options opts;
    opts.engine_thread = false;
    if (const char* n = std::getenv("DROCE_BENCH_ZERO_COPY_MIN")) {
      opts.zero_copy_min = uint32_t(std::strtoul(n, nullptr, 10));
    }
    a_.dev = std::move(Device::create(&pair_->a(), opts).value());
    b_.dev = std::move(Device::create(&pair_->b(), opts).value());
    for (Side* s : {&a_, &b_}) {
      s->pd = s->dev->alloc_pd().value();
      s->scq = s->dev->create_cq(depth * 2).value();
      s->rcq = s->dev->create_cq(depth * 2).value();
      s->buf.assign(buf_bytes, 0x5A);
      s->key = s->dev->reg_mr(s->pd, s->buf.data(), addr(*s), s->buf.size(), kAll).value();
      QpInitAttr init;
      init.type = QpType::kRc;
      init.pd = s->pd;
      init.send_cq = s->scq;
      init.recv_cq = s->rcq;
      init.cap.max_send_wr = depth;
      init.cap.max_recv_wr = depth;
      init.cap.max_inline_data = 64;
      s->qp = s->dev->create_qp(init).value();
    }
    connect(a_, b_);
    connect(b_, a_);
  }
  ~Rig() {
    a_.dev.reset();
    b_.dev.reset();
  }

  struct Side {
    std::unique_ptr<Device> dev;
    uint32_t pd = 0, key = 0;
    CompletionQueue* scq = nullptr;
    CompletionQueue* rcq = nullptr;
    Qp* qp = nullptr;
    std::vector<uint8_t> buf;
  };
  static uint64_t addr(const Side& s) { return reinterpret_cast<uint64_t>(s.buf.data()); }

  void pump() {
    {
      auto l = a_.dev->lock_engine();
      a_.dev->poll(monotonic_now());
    }
    {
      auto l = b_.dev->lock_engine();
      b_.dev->poll(monotonic_now());
    }
  }

  Side a_, b_;

 private:
  void connect(Side& s, Side& peer) {
    QpAttrs a;
    a.state = QpState::kInit;
    a.access = kAll;
    s.dev->modify_qp(s.qp, a, QpAttr::kState | QpAttr::kPkeyIndex | QpAttr::kPort | QpAttr::kAccessFlags);
    a.state = QpState::kRtr;
    a.path_mtu = s.dev->port().path_mtu();
    a.dest_qpn = peer.qp->qpn();
    ipv4_to_gid(peer.dev->port().ipv4(), a.av.dgid);
    a.max_dest_rd_atomic = 16;
    a.min_rnr_timer = 1;
    s.dev->modify_qp(s.qp, a, QpAttr::kState | QpAttr::kAv | QpAttr::kPathMtu | QpAttr::kDestQpn |
                                  QpAttr::kRqPsn | QpAttr::kMaxDestRdAtomic | QpAttr::kMinRnrTimer);
    a.state = QpState::kRts;
    a.max_rd_atomic = 16;
    s.dev->modify_qp(s.qp, a, QpAttr::kState | QpAttr::kSqPsn | QpAttr::kTimeout |
                                  QpAttr::kRetryCnt | QpAttr::kRnrRetry | QpAttr::kMaxQpRdAtomic);
    // ARP before timing starts.
    wire::MacAddr mac;
    while (s.dev->port().resolve(peer.dev->port().ipv4(), &mac, monotonic_now()) != ArpResult::kResolved) pump();
  }
  std::unique_ptr<PortPair> pair_;
};

// Keeps `window` WRITEs (or READs) of `bytes` in flight; every 16th signaled.
void run_stream(benchmark::State& state, WrOpcode opcode, uint32_t bytes, uint32_t window,
                uint16_t mtu = kDefaultMtu) {
  Rig rig(std::max<uint32_t>(bytes, 64) * 2, 512, mtu);
  Rig::Side& a = rig.a_;
  Rig::Side& b = rig.b_;
  uint64_t posted = 0, completed = 0;
  Sge sge{Rig::addr(a), bytes, a.key};
  SendWqe w{};
  w.opcode = opcode;
  w.num_sge = 1;
  w.length = bytes;
  w.remote_addr = Rig::addr(b);
  w.rkey = b.key;
  constexpr uint32_t kSignalEvery = 16;
  Cqe cqes[32];
  for (auto _ : state) {
    while (posted - completed < window) {
      w.wr_id = posted;
      w.flags = (posted % kSignalEvery == kSignalEvery - 1) ? kSendSignaled : 0;
      if (a.qp->post_send(w, &sge, nullptr) != 0) break;
      ++posted;
    }
    rig.pump();
    const int n = a.scq->poll(cqes, 32);
    for (int i = 0; i < n; ++i) {
      if (cqes[i].status != WcStatus::kSuccess) state.SkipWithError("completion error");
      completed = cqes[i].wr_id + 1;
    }
  }
  state.SetBytesProcessed(int64_t(completed) * bytes);
  state.SetItemsProcessed(int64_t(completed));
}

void BM_Memcpy(benchmark::State& state) {
  const size_t n = size_t(state.range(0));
  std::vector<uint8_t> src(n, 1), dst(n);
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), n);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(n));
}
BENCHMARK(BM_Memcpy)->Arg(65536);

void BM_RcWrite(benchmark::State& state) {
  run_stream(state, WrOpcode::kRdmaWrite, uint32_t(state.range(0)), 256);
}
BENCHMARK(BM_RcWrite)->RangeMultiplier(4)->Range(64, 1 << 20)->UseRealTime();

void BM_RcWriteRate(benchmark::State& state) {
  run_stream(state, WrOpcode::kRdmaWrite, uint32_t(state.range(0)), 256);
}
BENCHMARK(BM_RcWriteRate)->Arg(64)->UseRealTime();

void BM_RcWriteJumbo(benchmark::State& state) {
  run_stream(state, WrOpcode::kRdmaWrite, uint32_t(state.range(0)), 256, kJumboMtu);
}
// 2048 too: one packet per WRITE either side of the zero-copy threshold.
BENCHMARK(BM_RcWriteJumbo)->RangeMultiplier(4)->Range(64, 1 << 20)->Arg(2048)->UseRealTime();

void BM_RcWriteRateJumbo(benchmark::State& state) {
  run_stream(state, WrOpcode::kRdmaWrite, uint32_t(state.range(0)), 256, kJumboMtu);
}
BENCHMARK(BM_RcWriteRateJumbo)->Arg(64)->UseRealTime();

void BM_RcRead(benchmark::State& state) {
  run_stream(state, WrOpcode::kRdmaRead, uint32_t(state.range(0)), 16);
}
BENCHMARK(BM_RcRead)->Arg(65536)->UseRealTime();

// One SEND each way per iteration: a posts, b receives and answers, a receives.
void BM_RcSendPingPong(benchmark::State& state) {
  const uint32_t bytes = uint32_t(state.range(0));
  Rig rig(4096);
  Rig::Side& a = rig.a_;
  Rig::Side& b = rig.b_;
  Sge sa{Rig::addr(a), bytes, a.key}, sb{Rig::addr(b), bytes, b.key};
  Sge ra{Rig::addr(a) + 2048, 2048, a.key}, rb{Rig::addr(b) + 2048, 2048, b.key};
  SendWqe w{};
  w.opcode = WrOpcode::kSend;
  w.num_sge = 1;
  w.length = bytes;
  w.flags = 0;  // unsignaled sends: the receive completion is the signal
  for (int i = 0; i < 64; ++i) {
    a.qp->post_recv(uint64_t(i), &ra, 1);
    b.qp->post_recv(uint64_t(i), &rb, 1);
  }
  Cqe c;
  uint64_t iters = 0;
  for (auto _ : state) {
    a.qp->post_send(w, &sa, nullptr);
    while (b.rcq->poll(&c, 1) == 0) rig.pump();
    b.qp->post_recv(0, &rb, 1);
    b.qp->post_send(w, &sb, nullptr);
    while (a.rcq->poll(&c, 1) == 0) rig.pump();
    a.qp->post_recv(0, &ra, 1);
    ++iters;
    // An unsignaled SQ slot is retired on its ACK; keep the SQs from filling.
    if (iters % 64 == 0) rig.pump();
  }
  state.SetItemsProcessed(int64_t(iters));
}
BENCHMARK(BM_RcSendPingPong)->Arg(8)->UseRealTime();

// The engine lock between two application threads of one device: thread 1
// posts 64-byte WRITEs on device A's QP and polls that QP's CQ (as verbs'
// poll_cq does: progress() when empty, which runs the whole engine under a
// try_lock), while thread 2 polls the CQ of another QP of A, which never gets
// a completion (an application waiting on another connection). Arg 0: thread
// 2 does not run (the baseline); arg 1: it does. Device B answers on thread 1.
// Counters: WRITEs per second, and the share of thread 1's progress() calls
// that found the lock taken (by thread 2's poll, which then did the work).
void BM_DeviceLockPostAndPoll(benchmark::State& state) {
  const bool second = state.range(0) != 0;
  Rig rig(4096);
  Rig::Side& a = rig.a_;
  Rig::Side& b = rig.b_;
  CompletionQueue* idle_cq = a.dev->create_cq(64).value();
  QpInitAttr init;
  init.type = QpType::kRc;
  init.pd = a.pd;
  init.send_cq = idle_cq;
  init.recv_cq = idle_cq;
  init.cap.max_send_wr = 64;
  init.cap.max_recv_wr = 64;
  Qp* idle_qp = a.dev->create_qp(init).value();
  (void)idle_qp;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> other_polls{0}, other_progress{0};
  std::thread other;
  if (second) {
    other = std::thread([&] {
      Cqe c;
      uint64_t polls = 0, ran = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        if (idle_cq->poll(&c, 1) == 0 && a.dev->progress()) ++ran;
        ++polls;
      }
      other_polls = polls;
      other_progress = ran;
    });
  }
  Sge sge{Rig::addr(a), 64, a.key};
  SendWqe w{};
  w.opcode = WrOpcode::kRdmaWrite;
  w.num_sge = 1;
  w.length = 64;
  w.remote_addr = Rig::addr(b);
  w.rkey = b.key;
  uint64_t posted = 0, completed = 0, progress_calls = 0, lock_busy = 0;
  Cqe cqes[32];
  for (auto _ : state) {
    while (posted - completed < 64) {
      w.wr_id = posted;
      w.flags = (posted % 16 == 15) ? kSendSignaled : 0;
      if (a.qp->post_send(w, &sge, nullptr) != 0) break;
      ++posted;
    }
    int n = a.scq->poll(cqes, 32);
    if (n == 0) {
      ++progress_calls;
      if (!a.dev->progress()) ++lock_busy;
      {
        auto l = b.dev->lock_engine();
        b.dev->poll(monotonic_now());
      }
      n = a.scq->poll(cqes, 32);
    }
    for (int i = 0; i < n; ++i) completed = cqes[i].wr_id + 1;
  }
  stop = true;
  if (other.joinable()) other.join();
  state.SetItemsProcessed(int64_t(completed));
  state.counters["lock_busy_share"] =
      progress_calls ? double(lock_busy) / double(progress_calls) : 0.0;
  state.counters["other_polls_per_s"] =
      benchmark::Counter(double(other_polls.load()), benchmark::Counter::kIsRate);
  state.counters["other_ran_engine_share"] =
      other_polls ? double(other_progress.load()) / double(other_polls.load()) : 0.0;
}
BENCHMARK(BM_DeviceLockPostAndPoll)->Arg(0)->Arg(1)->UseRealTime();

}  // namespace
}  // namespace droce::nic

BENCHMARK_MAIN();
