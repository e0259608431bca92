// droce-demo: the lab demo on the embedded default. Two DPDK ports joined in
// this process, one resolves the other by ARP, then a burst of self-built
// RoCEv2 packets (every opcode family, and a few broken ones) crosses over,
// is parsed and ICRC-checked on arrival, and the counters are printed.
#include <rte_mbuf.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "nic/base/clock.h"
#include "nic/config.h"
#include "nic/eal.h"
#include "nic/port.h"
#include "nic/wire/builder.h"
#include "nic/wire/packet.h"
#include "nic/wire/udp.h"

namespace {

using droce::Nanos;
using droce::nic::Port;
namespace wire = droce::wire;
namespace op = droce::wire::op;

int fail(const std::string& what) {
  std::fprintf(stderr, "droce-demo: %s\n", what.c_str());
  return 1;
}

// Pumps both ports until `done` or the deadline; returns false on timeout.
template <typename Done>
bool pump(Port& a, Port& b, std::map<std::string, uint64_t>* received, Nanos deadline,
          Done done) {
  rte_mbuf* mbufs[32];
  wire::PacketView views[32];
  while (!done()) {
    Nanos now = droce::monotonic_now();
    if (now > deadline) return false;
    a.poll(now);
    b.poll(now);
    uint16_t n = a.receive(mbufs, views, 32, now);
    rte_pktmbuf_free_bulk(mbufs, n);
    n = b.receive(mbufs, views, 32, now);
    for (uint16_t i = 0; i < n; ++i) (*received)[views[i].op->name]++;
    rte_pktmbuf_free_bulk(mbufs, n);
  }
  return true;
}

}  // namespace

int main() {
  if (auto st = droce::nic::eal_init(); !st) return fail(st.message());

  auto env = droce::nic::port_config_from_env();
  if (!env) return fail(env.status().message());
  droce::nic::PortConfig ca = env.value(), cb = env.value();
  ca.ipv4 = droce::nic::parse_ipv4("10.77.0.1").value();
  cb.ipv4 = droce::nic::parse_ipv4("10.77.0.2").value();
  auto pair = droce::nic::make_port_pair(ca, cb);
  if (!pair) return fail(pair.status().message());
  Port& a = pair->a();
  Port& b = pair->b();
  std::printf("ports: %s %s ip %s, %s %s ip %s, MTU %u, path MTU %u\n", a.name().c_str(),
              "a", droce::nic::format_ipv4(a.ipv4()).c_str(), b.name().c_str(), "b",
              droce::nic::format_ipv4(b.ipv4()).c_str(), a.mtu(), a.path_mtu());

  // 1. ARP: a resolves b.
  std::map<std::string, uint64_t> received;
  wire::MacAddr peer{};
  Nanos deadline = droce::monotonic_now() + 2 * droce::kNanosPerSec;
  bool resolved = pump(a, b, &received, deadline, [&] {
    return a.resolve(b.ipv4(), &peer, droce::monotonic_now()) == droce::nic::ArpResult::kResolved;
  });
  if (!resolved) return fail("ARP: b did not answer within 2 s");
  std::printf("arp: a resolved %s -> %02x:%02x:%02x:%02x:%02x:%02x\n",
              droce::nic::format_ipv4(b.ipv4()).c_str(), peer[0], peer[1], peer[2], peer[3],
              peer[4], peer[5]);

  // 2. A burst of every opcode the wire layer knows, at sizes the path MTU allows.
  const uint8_t opcodes[] = {
      op::kSendOnly, op::kSendFirst, op::kSendMiddle, op::kSendLast, op::kSendOnlyImm,
      op::kWriteOnly, op::kWriteFirst, op::kWriteMiddle, op::kWriteLastImm, op::kReadRequest,
      op::kReadRespFirst, op::kReadRespMiddle, op::kReadRespLast, op::kAck, op::kAtomicAck,
      op::kCmpSwap, op::kFetchAdd, op::kSendOnlyInv, op::kUc | op::kSendOnly,
      op::kUc | op::kWriteOnly, op::kUd | op::kSendOnly, op::kUd | op::kSendOnlyImm, op::kCnp};
  const int kRounds = 100;
  std::vector<uint8_t> payload(a.path_mtu());
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = uint8_t(i * 7 + 1);

  uint64_t sent = 0, corrupted = 0, bytes = 0;
  Nanos t0 = droce::monotonic_now();
  uint32_t psn = 0;
  for (int round = 0; round < kRounds; ++round) {
    rte_mbuf* burst[64];
    uint16_t n = 0;
    for (uint8_t opc : opcodes) {
      const wire::OpcodeInfo& info = wire::opcode_info(opc);
      wire::PacketSpec s;
      s.src_mac = a.mac();
      s.dst_mac = peer;
      s.src_ip = a.ipv4();
      s.dst_ip = b.ipv4();
      s.udp_src_port = wire::roce_udp_src_port(0x11, 0x12);
      s.opcode = opc;
      s.dest_qp = 0x12;
      s.psn = psn++ & 0xFFFFFF;
      s.ackreq = info.has(wire::kOpEnd);
      s.reth_len = a.path_mtu();
      s.deth_qkey = 0x11111111;
      s.deth_src_qp = 0x11;
      // FIRST/MIDDLE carry exactly one path MTU; others a size that varies per round.
      if (info.has(wire::kOpPayload)) {
        s.payload_len = info.has(wire::kOpFirst) || info.has(wire::kOpMiddle)
                            ? a.path_mtu()
                            : uint32_t(round * 10) % a.path_mtu();
      }
      rte_mbuf* m = a.alloc_mbuf();
      if (m == nullptr) return fail("mbuf pool empty");
      size_t len = wire::build_frame(rte_pktmbuf_mtod(m, uint8_t*), rte_pktmbuf_tailroom(m), s,
                                     payload.data());
      if (len == 0) return fail(std::string("could not build ") + info.name);
      m->data_len = m->pkt_len = uint32_t(len);
      // Every 10th round, one frame gets a flipped payload bit: b must drop it (bad ICRC).
      if (round % 10 == 9 && opc == op::kSendOnly && s.payload_len > 0) {
        rte_pktmbuf_mtod(m, uint8_t*)[len - 5] ^= 0x01;
        ++corrupted;
      }
      bytes += len;
      burst[n++] = m;
    }
    sent += a.transmit(burst, n);
    uint64_t want = sent - corrupted;
    if (!pump(a, b, &received, droce::monotonic_now() + 2 * droce::kNanosPerSec,
              [&] { return b.counters().rx_roce + b.counters().parse_drop(wire::ParseError::kBadIcrc) >= sent; })) {
      return fail("frames did not arrive within 2 s (received " +
                  std::to_string(b.counters().rx_roce) + " of " + std::to_string(want) + ")");
    }
  }
  Nanos elapsed = droce::monotonic_now() - t0;

  std::printf("sent: %lu RoCEv2 frames (%lu bytes) a -> b in %.1f ms, %lu with a flipped bit\n",
              (unsigned long)sent, (unsigned long)bytes, double(elapsed) / 1e6,
              (unsigned long)corrupted);
  std::printf("received by b, parsed and ICRC-verified, per opcode:\n");
  uint64_t total = 0;
  for (const auto& [name, count] : received) {
    std::printf("  %-34s %lu\n", name.c_str(), (unsigned long)count);
    total += count;
  }
  std::printf("  %-34s %lu\n", "total", (unsigned long)total);
  std::printf("port a counters: %s\n", droce::nic::format_counters(a.counters()).c_str());
  std::printf("port b counters: %s\n", droce::nic::format_counters(b.counters()).c_str());
  const uint64_t bad = b.counters().parse_drop(wire::ParseError::kBadIcrc);
  if (total != sent - corrupted || bad != corrupted) {
    return fail("mismatch: expected " + std::to_string(sent - corrupted) + " good and " +
                std::to_string(corrupted) + " bad-ICRC frames");
  }
  std::printf("ok: every good frame arrived intact, every corrupted frame was counted and dropped\n");
  return 0;
}
