// Port configuration from the environment (DROCE_IPV4, DROCE_MTU, DROCE_CAPTURE),
// IPv4 text form, path MTU (IBTA vol. 1 9.7.6; rxe's rule) and the RoCEv2 GID (annex A17.8).
#include "nic/config.h"

#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace droce::nic {
namespace {

// What a memif buffer holds beyond the MTU: the Ethernet header and one VLAN
// tag (a peer may tag its frames); memif carries no FCS.
constexpr uint32_t kMemifFrameOverhead = 14 + 4;

// The largest RoCEv2 headers in front of an IB MTU worth of payload, as rxe
// counts them (RXE_MAX_HDR_LENGTH): IPv6 40 + UDP 8 + BTH 12 + up to 20 bytes
// of extension headers (RETH + ImmDt).
constexpr uint32_t kMaxRoceHeaders = 80;

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return (v != nullptr && *v != '\0') ? v : nullptr;
}

}  // namespace

Result<uint32_t> parse_ipv4(const std::string& text) {
  uint32_t ip = 0;
  const char* p = text.c_str();
  for (int part = 0; part < 4; ++part) {
    if (part > 0) {
      if (*p != '.') return Status(Errc::kInvalidArgument, "bad IPv4 address '" + text + "'");
      ++p;
    }
    if (*p < '0' || *p > '9') return Status(Errc::kInvalidArgument, "bad IPv4 address '" + text + "'");
    if (p[0] == '0' && p[1] >= '0' && p[1] <= '9') {
      // "010" means 8 to inet_aton and 10 to others: refuse the ambiguity.
      return Status(Errc::kInvalidArgument, "bad IPv4 address '" + text + "' (leading zero)");
    }
    uint32_t v = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9') {
      v = v * 10 + uint32_t(*p - '0');
      ++p;
      if (++digits > 3 || v > 255) {
        return Status(Errc::kInvalidArgument, "bad IPv4 address '" + text + "'");
      }
    }
    ip = ip << 8 | v;
  }
  if (*p != '\0') return Status(Errc::kInvalidArgument, "bad IPv4 address '" + text + "'");
  return ip;
}

std::string format_ipv4(uint32_t ip) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 0xFF, (ip >> 8) & 0xFF,
                ip & 0xFF);
  return buf;
}

uint32_t path_mtu_for(uint16_t eth_mtu) {
  uint32_t pmtu = 256;
  for (uint32_t m = 4096; m >= 256; m /= 2) {
    if (m + kMaxRoceHeaders <= eth_mtu) {
      pmtu = m;
      break;
    }
  }
  return pmtu;  // an MTU below 336 still gets the smallest IB MTU, as rxe does
}

uint32_t memif_bsize_from_args(const std::string& args) {
  size_t at = 0;
  while (at < args.size()) {
    const size_t end = std::min(args.find(',', at), args.size());
    if (args.compare(at, 6, "bsize=") == 0 && end > at + 6) {
      uint32_t v = 0;
      for (size_t i = at + 6; i < end; ++i) {
        if (args[i] < '0' || args[i] > '9' || v > 1'000'000) return 0;
        v = v * 10 + uint32_t(args[i] - '0');
      }
      return v;
    }
    at = end + 1;
  }
  return kMemifDefaultBsize;
}

uint32_t pmd_max_mtu(const PmdFrameLimits& pmd) {
  constexpr uint32_t kEthHeaderAndFcs = 18;  // RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN
  uint32_t overhead = kEthHeaderAndFcs;
  if (pmd.max_mtu != UINT16_MAX && pmd.max_rx_pktlen > pmd.max_mtu) {
    overhead = pmd.max_rx_pktlen - pmd.max_mtu;
  }
  const uint32_t by_frame = pmd.max_rx_pktlen > overhead ? pmd.max_rx_pktlen - overhead : 0;
  return std::min<uint32_t>(pmd.max_mtu, by_frame);
}

Result<uint16_t> ethdev_mtu_for(uint16_t mtu, const PmdFrameLimits& pmd,
                                const std::string& device) {
  const uint32_t max = pmd_max_mtu(pmd);
  if (pmd.driver == "net_memif" && mtu >= pmd.min_mtu && max >= pmd.min_mtu) {
    if (uint32_t(mtu) + kMemifFrameOverhead <= pmd.memif_bsize) {
      return uint16_t(std::min<uint32_t>(mtu, max));
    }
    const uint32_t want = (uint32_t(mtu) + kMemifFrameOverhead + 1023) / 1024 * 1024;
    return Status(Errc::kBadConfig,
                  "DROCE_MTU " + std::to_string(mtu) + ": device " + device +
                      " needs memif buffers of at least " +
                      std::to_string(mtu + kMemifFrameOverhead) + " bytes: add bsize=" +
                      std::to_string(want) + " to its --vdev arguments, on both peers (it has " +
                      std::to_string(pmd.memif_bsize) +
                      "; DPDK 22.11's memif corrupts frames spread over several buffers)");
  }
  if (mtu >= pmd.min_mtu && mtu <= max) return mtu;
  const std::string limits = mtu < pmd.min_mtu
                                 ? "at least " + std::to_string(pmd.min_mtu)
                                 : "at most " + std::to_string(max) + " (frames up to " +
                                       std::to_string(pmd.max_rx_pktlen) + " bytes)";
  return Status(Errc::kBadConfig,
                "DROCE_MTU " + std::to_string(mtu) + ": device " + device + " (driver " +
                    pmd.driver + ") takes an MTU of " + limits +
                    "; set DROCE_MTU to fit it (the default 1500 fits every Ethernet PMD), or "
                    "use a PMD that takes jumbo frames (net_ring, net_memif, most PCI NICs)");
}

void ipv4_to_gid(uint32_t ip, uint8_t gid[16]) {
  std::memset(gid, 0, 10);
  gid[10] = 0xFF;
  gid[11] = 0xFF;
  gid[12] = uint8_t(ip >> 24);
  gid[13] = uint8_t(ip >> 16);
  gid[14] = uint8_t(ip >> 8);
  gid[15] = uint8_t(ip);
}

bool gid_to_ipv4(const uint8_t gid[16], uint32_t* ip) {
  static constexpr uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
  if (std::memcmp(gid, kPrefix, sizeof(kPrefix)) != 0) return false;
  *ip = uint32_t(gid[12]) << 24 | uint32_t(gid[13]) << 16 | uint32_t(gid[14]) << 8 | gid[15];
  return true;
}

Result<int> engine_cpu_from_env() {
  const char* text = env("DROCE_ENGINE_CPU");
  if (text == nullptr) return -1;
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) CPU_SET(0, &allowed);
  std::string cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &allowed)) cpus += (cpus.empty() ? "" : ",") + std::to_string(c);
  }
  errno = 0;
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v < 0 || v >= CPU_SETSIZE ||
      !CPU_ISSET(int(v), &allowed)) {
    return Status(Errc::kBadConfig, std::string("DROCE_ENGINE_CPU: '") + text +
                                        "' is not a CPU this process may run on (" + cpus + ")");
  }
  return int(v);
}

Result<PortConfig> port_config_from_env() {
  PortConfig cfg;
  const char* ip_text = env("DROCE_IPV4");
  auto ip = parse_ipv4(ip_text ? ip_text : kDefaultIpv4);
  if (!ip) {
    return Status(Errc::kBadConfig, std::string("DROCE_IPV4: ") + ip.status().message() +
                                        " (expected a dotted-quad address such as " +
                                        kDefaultIpv4 + ")");
  }
  if (*ip == 0 || *ip == 0xFFFFFFFFu || (*ip >> 28) == 0xE) {
    return Status(Errc::kBadConfig, std::string("DROCE_IPV4: '") + ip_text +
                                        "' is not a unicast address");
  }
  cfg.ipv4 = *ip;

  if (const char* mtu_text = env("DROCE_MTU")) {
    errno = 0;
    char* end = nullptr;
    const long v = std::strtol(mtu_text, &end, 10);
    if (errno != 0 || end == mtu_text || *end != '\0' || v < kMinMtu || v > kMaxMtu) {
      return Status(Errc::kBadConfig, std::string("DROCE_MTU: '") + mtu_text +
                                          "' is not an MTU in [" + std::to_string(kMinMtu) +
                                          ", " + std::to_string(kMaxMtu) + "]");
    }
    cfg.mtu = uint16_t(v);
  }

  if (const char* cap = env("DROCE_CAPTURE")) cfg.capture_path = cap;
  if (const char* zc = env("DROCE_ZERO_COPY")) {
    const std::string v = zc;
    if (v != "0" && v != "1") {
      return Status(Errc::kBadConfig, "DROCE_ZERO_COPY: '" + v + "' is neither 0 nor 1");
    }
    cfg.zero_copy = v == "1";
  }
  return cfg;
}

}  // namespace droce::nic
