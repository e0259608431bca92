// Port configuration from the environment (DROCE_IPV4, DROCE_MTU, DROCE_CAPTURE),
// IPv4 text form, path MTU (IBTA vol. 1 9.7.6; rxe's rule) and the RoCEv2 GID (annex A17.8).
#include "nic/config.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace droce::nic {
namespace {

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
  return cfg;
}

}  // namespace droce::nic
