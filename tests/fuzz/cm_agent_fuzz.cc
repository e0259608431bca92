// libFuzzer target for the CM agent (nic/cm/agent.h): any sequence of MADs
// from any source, between timer runs, against an agent with a listener, an
// established connection and a pending one, never crashes it, and every MAD
// the agent sends in answer is a well-formed CM MAD.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "nic/cm/agent.h"

namespace {

using namespace droce::cm;

constexpr uint32_t kOurIp = 0x0A000002;
constexpr uint32_t kPeerIp = 0x0A000001;

struct Out : AgentOutput {
  std::vector<std::vector<uint8_t>> sent;
  void send_mad(uint32_t, const uint8_t* mad) override {
    CmMad m;
    if (decode_cm_mad(std::span<const uint8_t>(mad, kMadLen), &m) != MadError::kOk) __builtin_trap();
    sent.emplace_back(mad, mad + kMadLen);
  }
  void on_event(const AgentEvent& ev) override {
    if (ev.msg == nullptr) __builtin_trap();
  }
};

int g_listener;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Out out_a, out_b;
  AgentConfig ca;
  ca.local_ip = kPeerIp;
  ca.seed = 1;
  AgentConfig cb;
  cb.local_ip = kOurIp;
  cb.seed = 2;
  Agent a(ca, &out_a), b(cb, &out_b);
  AgentNanos now = 1000000000;
  b.listen(0x1061C06, 0, &g_listener);
  // One connection up to established, one pending at b, to give the fuzzed
  // MADs comm IDs and states to hit.
  ConnectParams p;
  p.peer_ip = kOurIp;
  p.service_id = 0x1061C06;
  const uint32_t c1 = a.connect(p, now);
  b.on_mad(kPeerIp, out_a.sent.back(), now);
  a.connect(p, now);
  b.on_mad(kPeerIp, out_a.sent.back(), now);
  (void)c1;
  // Each 257-byte piece: one selector byte (source, attribute), then a MAD
  // whose header is made valid so that every message handler sees the bytes.
  for (size_t off = 0; off < size; off += 1 + kMadLen) {
    const uint8_t sel = data[off];
    uint8_t mad[kMadLen] = {};
    const size_t n = size - off - 1 < kMadLen ? size - off - 1 : kMadLen;
    if (n > 0) std::memcpy(mad, data + off + 1, n);
    if (sel & 0x80) {
      mad[0] = kMadBaseVersion;
      mad[1] = kMgmtClassCm;
      mad[2] = kCmClassVersion;
      mad[3] = kMadMethodSend;
      const uint16_t attr = uint16_t(kAttrReq + (sel & 0x0F) % 9);
      mad[16] = uint8_t(attr >> 8);
      mad[17] = uint8_t(attr);
    }
    // Aim at the agent's connections: comm IDs it knows, taken from what it sent.
    if ((sel & 0x40) && !out_b.sent.empty()) std::memcpy(mad + 24 + 4, out_b.sent.back().data() + 24, 4);
    const uint32_t src = (sel & 0x20) ? kPeerIp : 0x0A0000FF;
    b.on_mad(src, std::span<const uint8_t>(mad, n + 1 > kMadLen ? kMadLen : (sel & 0x10 ? n : kMadLen)), now);
    now += AgentNanos(sel & 0x0F) * 700000000ull;
    b.on_timer(now);
  }
  b.destroy_all(now);
  for (int i = 0; i < 20; ++i) {
    now += 10000000000ull;
    b.on_timer(now);
  }
  return 0;
}
