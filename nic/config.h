// Port configuration from the environment: DROCE_IPV4, DROCE_MTU, DROCE_CAPTURE.
#pragma once

#include <cstdint>
#include <string>

#include "nic/arp.h"
#include "nic/base/status.h"

namespace droce::nic {

inline constexpr const char* kDefaultIpv4 = "10.77.0.1";
inline constexpr uint16_t kDefaultMtu = 1500;
inline constexpr uint16_t kMinMtu = 576;
inline constexpr uint16_t kMaxMtu = 9000;

struct PortConfig {
  uint32_t ipv4 = 0;  // host byte order
  uint16_t mtu = kDefaultMtu;
  std::string capture_path;  // empty: no capture
  // Zero-copy transmit where the PMD allows it (Port::tx_chains);
  // DROCE_ZERO_COPY=0 turns it off (every payload copied into the frame).
  bool zero_copy = true;
  // Sizing (not from the environment). The mempool must cover both rings
  // plus the mbufs the engine holds.
  uint16_t rx_desc = 1024;  // rx ring entries
  uint16_t tx_desc = 1024;  // tx ring entries
  uint32_t mbufs = 4095;    // mempool size (2^n - 1 is optimal for DPDK's ring)
  ArpConfig arp;            // neighbor resolution timing
};

// Reads DROCE_IPV4 / DROCE_MTU / DROCE_CAPTURE / DROCE_ZERO_COPY; a bad value is an error naming the variable.
Result<PortConfig> port_config_from_env();

// DROCE_ENGINE_CPU: the CPU the engine threads are pinned to (they then poll
// without pause), or -1 when unset or empty. A value that is not a CPU this
// process may run on is an error naming the variable and the CPUs it may use.
Result<int> engine_cpu_from_env();

// Parses dotted-quad IPv4 text into host byte order.
Result<uint32_t> parse_ipv4(const std::string& text);
std::string format_ipv4(uint32_t ip);

// Path MTU for an Ethernet MTU: the largest IB MTU (256..4096) whose packets
// fit with worst-case headers, as rxe does (IB MTU + 80 <= Ethernet MTU; 80 =
// IPv6 40 + UDP 8 + BTH 12 + RETH/ImmDt 20): 1500 -> 1024, 9000 -> 4096.
uint32_t path_mtu_for(uint16_t eth_mtu);

// What a PMD reports of frame sizes (rte_eth_dev_info), for the MTU check.
struct PmdFrameLimits {
  std::string driver;          // e.g. "net_memif"
  uint16_t min_mtu = 0;
  uint16_t max_mtu = 0;        // 65535 when the PMD gives only max_rx_pktlen
  uint32_t max_rx_pktlen = 0;  // largest frame, L2 header and FCS included
  uint32_t memif_bsize = 0;    // net_memif: its packet buffer size (vdev argument bsize)
};

// net_memif's packet buffer size when its vdev arguments give none.
inline constexpr uint32_t kMemifDefaultBsize = 2048;
// Reads bsize=N from a net_memif vdev's arguments ("role=server,bsize=9216,...");
// kMemifDefaultBsize without one, 0 for a value that is not a number.
uint32_t memif_bsize_from_args(const std::string& args);

// The largest MTU a PMD takes: max_mtu, and max_rx_pktlen less the L2
// overhead, which ethdev takes as max_rx_pktlen - max_mtu when the PMD gives
// both and as Ethernet header + FCS (18) otherwise (ethdev's own rule, so an
// MTU this allows passes rte_eth_dev_configure).
uint32_t pmd_max_mtu(const PmdFrameLimits& pmd);

// The MTU to configure the ethdev with so that the port carries frames of
// `mtu` bytes, or a kBadConfig error naming DROCE_MTU, the device and the
// largest MTU it takes. Usually `mtu` itself. net_memif checks no frame
// length on either side, yet DPDK 22.11 reports 1518-byte frames for it: it is
// configured at the MTU it reports and carries jumbo frames all the same, as
// long as a frame fits one of its buffers (bsize). A longer frame would be
// split over chained descriptors, and DPDK 22.11's memif transmit does not
// clear the chain flag (MEMIF_DESC_FLAG_NEXT) of a packet's first
// descriptor, so a short frame in a slot a long one used before is joined to
// the frames after it; droce refuses that setting, at any MTU, instead.
Result<uint16_t> ethdev_mtu_for(uint16_t mtu, const PmdFrameLimits& pmd,
                                const std::string& device);

// RoCEv2 GID for an IPv4 address: ::ffff:a.b.c.d (IPv4-mapped IPv6, annex A17.8).
void ipv4_to_gid(uint32_t ip, uint8_t gid[16]);
// The IPv4 address of an IPv4-mapped GID (host byte order); false for any
// other GID (an IPv6 one).
bool gid_to_ipv4(const uint8_t gid[16], uint32_t* ip);

}  // namespace droce::nic
