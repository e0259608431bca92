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
  // Sizing (not from the environment). The mempool must cover both rings
  // plus the mbufs the engine holds.
  uint16_t rx_desc = 1024;  // rx ring entries
  uint16_t tx_desc = 1024;  // tx ring entries
  uint32_t mbufs = 4095;    // mempool size (2^n - 1 is optimal for DPDK's ring)
  ArpConfig arp;            // neighbor resolution timing
};

// Reads DROCE_IPV4 / DROCE_MTU / DROCE_CAPTURE; a bad value is an error naming the variable.
Result<PortConfig> port_config_from_env();

// Parses dotted-quad IPv4 text into host byte order.
Result<uint32_t> parse_ipv4(const std::string& text);
std::string format_ipv4(uint32_t ip);

// Path MTU for an Ethernet MTU: the largest IB MTU (256..4096) whose packets
// fit with worst-case headers, as rxe does (IB MTU + 80 <= Ethernet MTU; 80 =
// IPv6 40 + UDP 8 + BTH 12 + RETH/ImmDt 20): 1500 -> 1024, 9000 -> 4096.
uint32_t path_mtu_for(uint16_t eth_mtu);

// RoCEv2 GID for an IPv4 address: ::ffff:a.b.c.d (IPv4-mapped IPv6, annex A17.8).
void ipv4_to_gid(uint32_t ip, uint8_t gid[16]);
// The IPv4 address of an IPv4-mapped GID (host byte order); false for any
// other GID (an IPv6 one).
bool gid_to_ipv4(const uint8_t gid[16], uint32_t* ip);

}  // namespace droce::nic
