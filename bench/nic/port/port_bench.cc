// nic/port benchmarks (issue 3 section 6): frames per second across the
// in-process port pair through Port::transmit and Port::receive (ARP check,
// parse, address filter, ICRC verify), against the bare ethdev burst calls on
// the same pair, and with the sender building each frame (ICRC on transmit).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "nic/eal.h"
#include "nic/port.h"
#include "nic/wire/builder.h"
#include "nic/wire/udp.h"

namespace droce::nic {
namespace {

constexpr uint16_t kBurst = 32;
// Header bytes of an RC SEND_ONLY frame: Ethernet 14 + IPv4 20 + UDP 8 + BTH 12 + ICRC 4.
constexpr uint32_t kSendOnlyOverhead = 58;

PortConfig bench_config(const char* ip) {
  PortConfig c;
  c.ipv4 = parse_ipv4(ip).value();
  return c;
}

wire::PacketSpec spec_for(const Port& from, const Port& to, uint32_t frame_bytes) {
  wire::PacketSpec s;
  s.src_mac = from.mac();
  s.dst_mac = to.mac();
  s.src_ip = from.ipv4();
  s.dst_ip = to.ipv4();
  s.udp_src_port = wire::roce_udp_src_port(1, 2);
  s.opcode = wire::op::kRc | wire::op::kSendOnly;
  s.dest_qp = 2;
  s.payload_len = frame_bytes - kSendOnlyOverhead;
  return s;
}

struct Fixture {
  PortPair pair;
  std::vector<uint8_t> frame;
  wire::PacketSpec spec;
};

bool setup(benchmark::State& state, std::unique_ptr<Fixture>* out) {
  auto pair = make_port_pair(bench_config("10.77.0.1"), bench_config("10.77.0.2"));
  if (!pair) {
    state.SkipWithError(pair.status().message().c_str());
    return false;
  }
  auto f = std::make_unique<Fixture>(Fixture{std::move(pair.value()), {}, {}});
  f->spec = spec_for(f->pair.a(), f->pair.b(), uint32_t(state.range(0)));
  f->frame.resize(wire::frame_len(f->spec));
  std::vector<uint8_t> payload(f->spec.payload_len, 0x5A);
  wire::build_frame(f->frame.data(), f->frame.size(), f->spec, payload.data());
  *out = std::move(f);
  return true;
}

// Fills n mbufs of a's pool with the prebuilt frame.
bool fill(Port& a, const std::vector<uint8_t>& frame, rte_mbuf** m, uint16_t n) {
  for (uint16_t i = 0; i < n; ++i) {
    m[i] = a.alloc_mbuf();
    if (m[i] == nullptr) return false;
    void* p = rte_pktmbuf_append(m[i], uint16_t(frame.size()));
    std::memcpy(p, frame.data(), frame.size());
  }
  return true;
}

void finish(benchmark::State& state, const Fixture& f) {
  state.SetItemsProcessed(int64_t(state.iterations()) * kBurst);
  state.SetBytesProcessed(int64_t(state.iterations()) * kBurst * int64_t(f.frame.size()));
  const PortCounters& c = const_cast<PortPair&>(f.pair).b().counters();
  if (c.rx_dropped() != 0) state.SkipWithError("receiver dropped frames");
}

// Port::transmit -> ring -> Port::receive (parse + ICRC verify), then free.
void BM_PortPairBurst(benchmark::State& state) {
  std::unique_ptr<Fixture> f;
  if (!setup(state, &f)) return;
  Port& a = f->pair.a();
  Port& b = f->pair.b();
  rte_mbuf* tx[kBurst];
  rte_mbuf* rx[kBurst];
  wire::PacketView views[kBurst];
  const Nanos now = monotonic_now();
  for (auto _ : state) {
    if (!fill(a, f->frame, tx, kBurst)) {
      state.SkipWithError("mbuf pool empty");
      break;
    }
    a.transmit(tx, kBurst);
    uint16_t got = 0;
    while (got < kBurst) {
      const uint16_t n = b.receive(rx, views, kBurst, now);
      if (n == 0) break;
      benchmark::DoNotOptimize(views[0].payload_len);
      rte_pktmbuf_free_bulk(rx, n);
      got = uint16_t(got + n);
    }
  }
  finish(state, *f);
}
BENCHMARK(BM_PortPairBurst)->Arg(64)->Arg(256)->Arg(1024)->Arg(1500);

// The same frames through the bare rte_eth_tx_burst / rte_eth_rx_burst on the
// same pair: what the Port's classification costs on top.
void BM_RawEthdevBurst(benchmark::State& state) {
  std::unique_ptr<Fixture> f;
  if (!setup(state, &f)) return;
  Port& a = f->pair.a();
  Port& b = f->pair.b();
  rte_mbuf* tx[kBurst];
  rte_mbuf* rx[kBurst];
  for (auto _ : state) {
    if (!fill(a, f->frame, tx, kBurst)) {
      state.SkipWithError("mbuf pool empty");
      break;
    }
    const uint16_t sent = rte_eth_tx_burst(a.port_id(), 0, tx, kBurst);
    if (sent < kBurst) rte_pktmbuf_free_bulk(tx + sent, kBurst - sent);
    uint16_t got = 0;
    while (got < sent) {
      const uint16_t n = rte_eth_rx_burst(b.port_id(), 0, rx, kBurst);
      if (n == 0) break;
      benchmark::DoNotOptimize(rx[0]->pkt_len);
      rte_pktmbuf_free_bulk(rx, n);
      got = uint16_t(got + n);
    }
  }
  state.SetItemsProcessed(int64_t(state.iterations()) * kBurst);
  state.SetBytesProcessed(int64_t(state.iterations()) * kBurst * int64_t(f->frame.size()));
}
BENCHMARK(BM_RawEthdevBurst)->Arg(64)->Arg(256)->Arg(1024)->Arg(1500);

// As BM_PortPairBurst, but the sender writes headers, payload and ICRC into
// each mbuf (build_frame), as the engine will.
void BM_PortPairBurstBuild(benchmark::State& state) {
  std::unique_ptr<Fixture> f;
  if (!setup(state, &f)) return;
  Port& a = f->pair.a();
  Port& b = f->pair.b();
  std::vector<uint8_t> payload(f->spec.payload_len, 0x5A);
  const size_t len = f->frame.size();
  rte_mbuf* tx[kBurst];
  rte_mbuf* rx[kBurst];
  wire::PacketView views[kBurst];
  const Nanos now = monotonic_now();
  uint32_t psn = 0;
  for (auto _ : state) {
    for (uint16_t i = 0; i < kBurst; ++i) {
      tx[i] = a.alloc_mbuf();
      auto* p = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(tx[i], uint16_t(len)));
      f->spec.psn = psn++ & kMask24;
      wire::build_frame(p, len, f->spec, payload.data());
    }
    a.transmit(tx, kBurst);
    uint16_t got = 0;
    while (got < kBurst) {
      const uint16_t n = b.receive(rx, views, kBurst, now);
      if (n == 0) break;
      rte_pktmbuf_free_bulk(rx, n);
      got = uint16_t(got + n);
    }
  }
  finish(state, *f);
}
BENCHMARK(BM_PortPairBurstBuild)->Arg(64)->Arg(256)->Arg(1024)->Arg(1500);

}  // namespace
}  // namespace droce::nic

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  const droce::Status st = droce::nic::eal_init();
  if (!st) {
    std::fprintf(stderr, "bench_port: %s\n", st.message().c_str());
    return 1;
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  droce::nic::eal_cleanup();
  return 0;
}
