// nic/wire benchmarks (issue 3 section 6): ICRC against memcpy of the same bytes
// (goal: ICRC <= 1.5x memcpy), and parsing/building a typical RC WRITE_ONLY frame.
#include <benchmark/benchmark.h>
#include <isa-l/crc.h>

#include <cstring>
#include <vector>

#include "nic/wire/builder.h"
#include "nic/wire/icrc.h"
#include "nic/wire/packet.h"

namespace droce::wire {
namespace {

constexpr int64_t kMinBytes = 64, kMaxBytes = 64 << 10;
// Bytes under the ICRC of an RC ACKNOWLEDGE (IPv4 20 + UDP 8 + BTH 12 + AETH 4).
constexpr int64_t kAckBytes = 44;

// A PMTU-sized RC RDMA WRITE ONLY, as rxe sends it on a 1500-byte link.
PacketSpec write_only_spec(uint32_t payload_len) {
  PacketSpec s;
  s.src_mac = {0x02, 0, 0, 0, 0, 1};
  s.dst_mac = {0x02, 0, 0, 0, 0, 2};
  s.src_ip = 0x0A000001;
  s.dst_ip = 0x0A000002;
  s.udp_src_port = roce_udp_src_port(17, 18);
  s.opcode = op::kWriteOnly;
  s.ackreq = true;
  s.dest_qp = 18;
  s.psn = 0x123456;
  s.reth_va = 0x7F0000001000ull;
  s.reth_rkey = 0x1234;
  s.reth_len = payload_len;
  s.payload_len = payload_len;
  return s;
}

void BM_Memcpy(benchmark::State& state) {
  const size_t n = size_t(state.range(0));
  std::vector<uint8_t> src(n, 0x5A), dst(n);
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), n);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(n));
}
BENCHMARK(BM_Memcpy)->RangeMultiplier(4)->Range(kMinBytes, kMaxBytes);

// ICRC over n bytes starting at a real IPv4/UDP/BTH header: one ISA-L call
// plus masking and restoring the variant fields, as the parser does.
void icrc_bench(benchmark::State& state, IcrcPath path) {
  if (!icrc_path_supported(path)) {
    state.SkipWithError("path not supported on this CPU");
    return;
  }
  const size_t n = size_t(state.range(0));
  const PacketSpec s = write_only_spec(0);
  std::vector<uint8_t> frame(frame_len(s));
  build_frame(frame.data(), frame.size(), s, nullptr);
  // As in a received mbuf: the IP header 14 bytes into a 64-byte aligned buffer.
  std::vector<uint8_t> storage(n + 4 + 128, 0x5A);
  uint8_t* l3 = reinterpret_cast<uint8_t*>((uintptr_t(storage.data()) + 63) & ~uintptr_t(63)) +
                sizeof(EthHdr);
  std::memcpy(l3, frame.data() + sizeof(EthHdr), header_len(s) - sizeof(EthHdr));
  for (auto _ : state) {
    benchmark::DoNotOptimize(icrc_compute_with(path, l3, n, false));
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(n));
}

// What icrc_compute (parser, builder) does on this CPU.
void BM_Icrc(benchmark::State& state) { icrc_bench(state, IcrcPath::kAuto); }
BENCHMARK(BM_Icrc)->Arg(kAckBytes)->RangeMultiplier(4)->Range(kMinBytes, kMaxBytes);

// The other masking paths, for comparison (see nic/wire/icrc.cc).
void BM_Icrc_Bytes(benchmark::State& state) { icrc_bench(state, IcrcPath::kBytes); }
BENCHMARK(BM_Icrc_Bytes)->Arg(kAckBytes)->RangeMultiplier(4)->Range(kMinBytes, kMaxBytes);
void BM_Icrc_Xmm(benchmark::State& state) { icrc_bench(state, IcrcPath::kXmm); }
BENCHMARK(BM_Icrc_Xmm)->Arg(kAckBytes)->RangeMultiplier(4)->Range(kMinBytes, kMaxBytes);

// The floor: the bare ISA-L call, no masking (not a valid ICRC).
void BM_IsalCrc(benchmark::State& state) {
  const size_t n = size_t(state.range(0));
  std::vector<uint8_t> storage(n + 128, 0x5A);
  const uint8_t* p = reinterpret_cast<uint8_t*>((uintptr_t(storage.data()) + 63) & ~uintptr_t(63)) +
                     sizeof(EthHdr);
  for (auto _ : state) benchmark::DoNotOptimize(crc32_gzip_refl(kIcrcSeed, p, n));
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(n));
}
BENCHMARK(BM_IsalCrc)->Arg(kAckBytes)->RangeMultiplier(4)->Range(kMinBytes, kMaxBytes);

void parse_bench(benchmark::State& state, bool verify, const PacketSpec& s) {
  std::vector<uint8_t> frame(frame_len(s));
  build_frame(frame.data(), frame.size(), s, nullptr);
  PacketView v;
  for (auto _ : state) {
    const ParseError r =
        parse_frame(frame.data(), frame.size(), &v, ParseOptions{.verify_icrc = verify});
    if (r != ParseError::kOk) {
      state.SkipWithError("frame did not parse");
      break;
    }
    benchmark::DoNotOptimize(v);
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(frame.size()));
}

// Parse with ICRC verification: what the engine does for each received frame.
void BM_ParseFrame(benchmark::State& state) { parse_bench(state, true, write_only_spec(1024)); }
BENCHMARK(BM_ParseFrame);

void BM_ParseFrame_NoIcrc(benchmark::State& state) {
  parse_bench(state, false, write_only_spec(1024));
}
BENCHMARK(BM_ParseFrame_NoIcrc);

// A 62-byte RC ACKNOWLEDGE (44 bytes under the ICRC): the smallest common frame.
void BM_ParseFrame_Ack(benchmark::State& state) {
  PacketSpec s = write_only_spec(0);
  s.opcode = op::kAck;
  s.aeth_syndrome = kAethCreditInvalid;
  parse_bench(state, true, s);
}
BENCHMARK(BM_ParseFrame_Ack);

// Headers + ICRC of the same frame (payload already in place).
void BM_BuildFrame(benchmark::State& state) {
  const PacketSpec s = write_only_spec(1024);
  std::vector<uint8_t> frame(frame_len(s));
  for (auto _ : state) {
    write_headers(frame.data(), frame.size(), s);
    finish_frame(frame.data(), s);
    benchmark::DoNotOptimize(frame.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
}
BENCHMARK(BM_BuildFrame);

// The headers alone, field by field and from a per-QP template (the
// engine's RC/UC path), for a WRITE MIDDLE (BTH only) whose PSN and IP id
// change every time.
void headers_bench(benchmark::State& state, bool templated) {
  PacketSpec s = write_only_spec(1024);
  s.opcode = op::kWriteMiddle;
  std::vector<uint8_t> frame(frame_len(s));
  HeaderTemplate t;
  for (auto _ : state) {
    ++s.psn;
    ++s.ip_id;
    const size_t off = templated ? write_headers(frame.data(), frame.size(), s, &t)
                                 : write_headers(frame.data(), frame.size(), s);
    benchmark::DoNotOptimize(off);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
}
void BM_WriteHeaders(benchmark::State& state) { headers_bench(state, false); }
BENCHMARK(BM_WriteHeaders);
void BM_WriteHeadersTemplate(benchmark::State& state) { headers_bench(state, true); }
BENCHMARK(BM_WriteHeadersTemplate);

}  // namespace
}  // namespace droce::wire

BENCHMARK_MAIN();
