// port_peer: one droce port in its own process, for the multi-process tests
// (memif, tap). Resolves its peer by ARP, sends --count RoCEv2 SEND_ONLY
// packets (PSN 0..count-1), receives the peer's, checks order and payload,
// prints counters. Every wait is bounded by --timeout-ms.
//
//   port_peer --check-eal
//   port_peer --port NAME --peer A.B.C.D [--count N] [--payload BYTES]
//             [--timeout-ms T] [--min-junk K] [--linger-ms L]
//
// Own address from DROCE_IPV4, EAL from DROCE_EAL_ARGS. Exit 0 on success,
// 1 on timeout or bad data, 2 on usage, 3 on EAL/port errors.
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <rte_mbuf.h>

#include "nic/eal.h"
#include "nic/port.h"
#include "nic/wire/builder.h"
#include "nic/wire/udp.h"

namespace droce::nic {
namespace {

struct Options {
  bool check_eal = false;
  std::string port;
  uint32_t peer = 0;
  uint32_t count = 200;
  uint32_t payload = 256;
  uint64_t timeout_ms = 15000;
  uint64_t min_junk = 0;
  uint64_t linger_ms = 200;
};

int usage() {
  std::fprintf(stderr,
               "usage: port_peer --check-eal\n"
               "       port_peer --port NAME --peer A.B.C.D [--count N] [--payload BYTES]\n"
               "                 [--timeout-ms T] [--min-junk K] [--linger-ms L]\n");
  return 2;
}

uint8_t pattern(uint32_t psn, uint32_t k) { return uint8_t(psn * 13 + k); }

int cpus_allowed() {
  cpu_set_t set;
  CPU_ZERO(&set);
  return pthread_getaffinity_np(pthread_self(), sizeof(set), &set) == 0 ? CPU_COUNT(&set) : -1;
}

int check_eal() {
  const int cpus_before = cpus_allowed();
  const Status first = eal_init();
  std::printf("affinity: before=%d after=%d\n", cpus_before, cpus_allowed());
  const Status again = eal_init();
  std::printf("eal: %s%s\n", first.is_ok() ? "ok" : "error: ", first.message().c_str());
  std::printf("eal again: %s\n", again.is_ok() == first.is_ok() &&
                                         again.message() == first.message()
                                     ? "same"
                                     : "different");
  if (!first.is_ok()) {
    // A port cannot open without EAL; the error says why.
    PortConfig cfg;
    cfg.ipv4 = 0x0A000001;
    auto p = Port::open(0, cfg);
    std::printf("open: %s\n", p.is_ok() ? "ok" : p.status().message().c_str());
  }
  std::fflush(stdout);
  if (first.is_ok()) eal_cleanup();
  return first.is_ok() ? 0 : 3;
}

int run(const Options& o) {
  auto cfg = port_config_from_env();
  if (!cfg) {
    std::printf("config: %s\n", cfg.status().message().c_str());
    return 3;
  }
  cfg->arp.retry_interval = 50 * kNanosPerMs;
  cfg->arp.max_requests = 5;
  cfg->arp.failed_hold = 0;  // keep trying until the deadline
  auto opened = Port::open_by_name(o.port, *cfg);
  if (!opened) {
    std::printf("open: %s\n", opened.status().message().c_str());
    return 3;
  }
  Port& port = *opened.value();
  const wire::MacAddr& me = port.mac();
  std::printf("port_peer: port=%s ip=%s mac=%02x:%02x:%02x:%02x:%02x:%02x\n", o.port.c_str(),
              format_ipv4(port.ipv4()).c_str(), me[0], me[1], me[2], me[3], me[4], me[5]);
  std::fflush(stdout);

  const Nanos start = monotonic_now();
  const Nanos deadline = start + o.timeout_ms * kNanosPerMs;
  Nanos done_at = 0;
  bool resolved = false;
  wire::MacAddr peer_mac{};
  uint32_t sent = 0, received = 0, out_of_order = 0, bad_payload = 0, foreign = 0;
  Nanos resolved_at = 0;
  rte_mbuf* mbufs[32];
  wire::PacketView views[32];

  wire::PacketSpec spec;
  spec.src_mac = me;
  spec.src_ip = port.ipv4();
  spec.dst_ip = o.peer;
  spec.udp_src_port = wire::roce_udp_src_port(1, 2);
  spec.opcode = wire::op::kUd | wire::op::kSendOnly;
  spec.dest_qp = 2;
  spec.deth_qkey = 0x11111111;
  spec.deth_src_qp = 1;
  spec.payload_len = o.payload;

  for (;;) {
    const Nanos now = monotonic_now();
    if (now >= deadline) break;
    port.poll(now);
    const uint16_t n = port.receive(mbufs, views, 32, now);
    for (uint16_t i = 0; i < n; ++i) {
      const wire::PacketView& v = views[i];
      if (v.ipv4().src.get() != o.peer) {
        ++foreign;
      } else {
        const uint32_t psn = v.bth().psn();
        if (psn != received) ++out_of_order;
        bool ok = v.payload_len == o.payload;
        for (uint32_t k = 0; ok && k < v.payload_len; ++k) ok = v.payload()[k] == pattern(psn, k);
        if (!ok) ++bad_payload;
        ++received;
      }
      rte_pktmbuf_free(mbufs[i]);
    }
    if (!resolved && port.link_up()) {
      resolved = port.resolve(o.peer, &peer_mac, now) == ArpResult::kResolved;
      if (resolved) resolved_at = now;
    }
    if (resolved && sent < o.count) {
      spec.dst_mac = peer_mac;
      rte_mbuf* burst[16];
      uint16_t k = 0;
      for (; k < 16 && sent + k < o.count; ++k) {
        rte_mbuf* m = port.alloc_mbuf();
        if (m == nullptr) break;
        spec.psn = sent + k;
        spec.ip_id = uint16_t(sent + k);
        const size_t len = wire::frame_len(spec);
        auto* p = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, uint16_t(len)));
        const size_t off = p ? wire::write_headers(p, len, spec) : 0;
        if (off == 0) {
          rte_pktmbuf_free(m);
          break;
        }
        for (uint32_t b = 0; b < o.payload; ++b) p[off + b] = pattern(spec.psn, b);
        wire::finish_frame(p, spec);
        burst[k] = m;
      }
      // A frame the device refused is gone (counted); resend that PSN next time.
      sent += port.transmit(burst, k);
    }
    const bool finished = sent == o.count && received >= o.count &&
                          port.counters().rx_dropped() >= o.min_junk;
    if (finished && done_at == 0) done_at = now;
    if (done_at != 0 && now - done_at >= o.linger_ms * kNanosPerMs) break;
    if (n == 0) usleep(50);  // two processes may share one core
  }

  const bool ok = done_at != 0 && out_of_order == 0 && bad_payload == 0 && received == o.count;
  std::printf(
      "port_peer: result=%s resolved=%d resolve_ms=%lu sent=%u received=%u in_order=%d "
      "bad_payload=%u foreign=%u junk=%lu\n",
      ok ? "ok" : "FAILED", resolved ? 1 : 0,
      (unsigned long)(resolved ? (resolved_at - start) / kNanosPerMs : 0), sent, received,
      out_of_order == 0 ? 1 : 0, bad_payload, foreign,
      (unsigned long)port.counters().rx_dropped());
  std::printf("port_peer: counters %s\n", format_counters(port.counters()).c_str());
  std::fflush(stdout);
  opened.value().reset();
  eal_cleanup();
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace droce::nic

int main(int argc, char** argv) {
  using droce::nic::Options;
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    if (a == "--check-eal") {
      o.check_eal = true;
      continue;
    }
    const char* v = next();
    if (v == nullptr) return droce::nic::usage();
    if (a == "--port") {
      o.port = v;
    } else if (a == "--peer") {
      auto ip = droce::nic::parse_ipv4(v);
      if (!ip) return droce::nic::usage();
      o.peer = *ip;
    } else if (a == "--count") {
      o.count = uint32_t(std::strtoul(v, nullptr, 10));
    } else if (a == "--payload") {
      o.payload = uint32_t(std::strtoul(v, nullptr, 10));
    } else if (a == "--timeout-ms") {
      o.timeout_ms = std::strtoull(v, nullptr, 10);
    } else if (a == "--min-junk") {
      o.min_junk = std::strtoull(v, nullptr, 10);
    } else if (a == "--linger-ms") {
      o.linger_ms = std::strtoull(v, nullptr, 10);
    } else {
      return droce::nic::usage();
    }
  }
  if (o.check_eal) return droce::nic::check_eal();
  if (o.port.empty() || o.peer == 0) return droce::nic::usage();
  return droce::nic::run(o);
}
