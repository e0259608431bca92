// SMC-R settings from the environment (see config.h).
#include "smc/config.h"

#include <cerrno>
#include <cstdlib>
#include <string_view>

namespace droce::smc {
namespace {

// Parses an integer in [lo, hi]; false with *error when it is not one.
bool parse_int(const char* name, long lo, long hi, long* out, std::string* error) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return false;
  char* end = nullptr;
  errno = 0;
  const long n = std::strtol(v, &end, 10);
  if (errno != 0 || end == v || *end != '\0' || n < lo || n > hi) {
    if (error->empty()) {
      *error = std::string(name) + ": '" + v + "' is not a number in [" + std::to_string(lo) +
               ", " + std::to_string(hi) + "]";
    }
    return false;
  }
  *out = n;
  return true;
}

}  // namespace

uint32_t round_buffer_size(uint32_t bytes) {
  uint32_t size = wire::kRmbeMinSize;
  while (size < bytes && size < wire::rmbe_uncompress(wire::kRmbeMaxSizeCode)) size <<= 1;
  return size;
}

Config config_from_env(std::string* error) {
  Config c;
  error->clear();
  if (const char* v = std::getenv("SMC_DEVICE"); v != nullptr) c.device = v;
  long n = 0;
  if (parse_int("SMC_GID_INDEX", 0, 1023, &n, error)) c.gid_index = int(n);
  if (parse_int("SMC_WMEM", 16384, 524288, &n, error)) c.sndbuf_size = round_buffer_size(uint32_t(n));
  if (parse_int("SMC_RMEM", 16384, 524288, &n, error)) c.rmb_size = round_buffer_size(uint32_t(n));
  if (parse_int("SMC_CLC_WAIT_MS", 1, 600000, &n, error)) c.clc_wait_ms = int(n);
  if (parse_int("SMC_LLC_WAIT_MS", 1, 600000, &n, error)) c.llc_wait_ms = int(n);
  if (parse_int("SMC_CLOSE_WAIT_MS", 1, 600000, &n, error)) c.close_wait_ms = int(n);
  if (parse_int("SMC_LGR_IDLE_MS", 1, 86400000, &n, error)) c.lgr_idle_ms = int(n);
  if (parse_int("SMC_BUSY_POLL_US", 0, 1000000, &n, error)) c.busy_poll_us = int(n);
  if (parse_int("SMC_TESTLINK_MS", 0, 86400000, &n, error)) c.testlink_ms = int(n);
  if (const char* v = std::getenv("SMC_CAPABILITY"); v != nullptr && *v != '\0') {
    if (std::string_view(v) == "tcp-option") {
      c.capability_tcp_option = true;
      c.capability_local = true;
    } else if (std::string_view(v) == "local") {
      c.capability_tcp_option = false;
      c.capability_local = true;
    } else if (std::string_view(v) == "peek") {
      c.capability_tcp_option = false;
      c.capability_local = false;
    } else if (error->empty()) {
      *error = std::string("SMC_CAPABILITY: '") + v + "' is not tcp-option, local or peek";
    }
  }
  if (parse_int("SMC_MTU", 1, 5, &n, error)) c.mtu = uint8_t(n);
  if (const char* v = std::getenv("SMC_VERSIONS"); v != nullptr && *v != '\0') {
    const std::string_view s(v);
    const bool ok = s == "1" || s == "2" || s == "1,2" || s == "2,1";
    if (ok) {
      c.v1 = s.find('1') != std::string_view::npos;
      c.v2 = s.find('2') != std::string_view::npos;
    } else if (error->empty()) {
      *error = std::string("SMC_VERSIONS: '") + v + "' is not 1, 2 or 1,2";
    }
  }
  const char* ueid = std::getenv("SMC_UEID");
  if (ueid == nullptr || *ueid == '\0') ueid = "DROCE";
  if (!wire::make_ueid(ueid, &c.ueid)) {
    if (error->empty()) {
      *error = std::string("SMC_UEID: '") + ueid +
               "' is not a user EID (1-32 characters, the first A-Z or 0-9, then A-Z 0-9 . -)";
    }
    wire::make_ueid("DROCE", &c.ueid);
  }
  return c;
}

}  // namespace droce::smc
