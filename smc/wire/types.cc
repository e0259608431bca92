// GIDs and EIDs as SMC-R carries them (RFC 7609 section 3.5; Linux 6.1
// smc_ib.h smc_ib_gid_to_ipv4, smc_clc.c smc_clc_ueid_valid).
#include "smc/wire/types.h"

#include <algorithm>

#include "smc/wire/bytes.h"

namespace droce::smc::wire {
namespace {

bool upper_alnum(uint8_t c) { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }
bool ueid_char(uint8_t c) { return upper_alnum(c) || c == '.' || c == '-'; }

}  // namespace

Gid ipv4_mapped_gid(uint32_t ipv4) {
  Gid g{};
  g[10] = 0xFF;
  g[11] = 0xFF;
  put_be32(g.data() + 12, ipv4);
  return g;
}

bool gid_to_ipv4(const Gid& gid, uint32_t* ipv4) {
  // Linux: ipv6_addr_v4mapped() or the first 96 bits zero (IPv4-compatible,
  // which includes the all-zero GID: it yields 0.0.0.0, not INADDR_NONE).
  const bool first80_zero =
      std::all_of(gid.begin(), gid.begin() + 10, [](uint8_t b) { return b == 0; });
  const bool mapped = first80_zero && gid[10] == 0xFF && gid[11] == 0xFF;
  const bool compat = first80_zero && gid[10] == 0 && gid[11] == 0;
  if (!mapped && !compat) return false;
  *ipv4 = get_be32(gid.data() + 12);
  return true;
}

bool make_ueid(std::string_view text, Eid* out) {
  if (text.empty() || text.size() > out->size()) return false;
  Eid e;
  e.fill(' ');
  for (size_t i = 0; i < text.size(); ++i) {
    uint8_t c = uint8_t(text[i]);
    if (c >= 'a' && c <= 'z') c = uint8_t(c - 'a' + 'A');
    if (i == 0 ? !upper_alnum(c) : !ueid_char(c)) return false;
    e[i] = c;
  }
  *out = e;
  return true;
}

bool ueid_valid(const Eid& eid) {
  // Linux trims trailing isspace(), then wants [A-Z0-9] first and [A-Z0-9.-]
  // up to the last non-blank. droce accepts only 0x20 as padding and only
  // ASCII (the kernel's ctype also passes Latin-1 capitals and \t..\r).
  size_t end = eid.size();
  while (end > 0 && eid[end - 1] == ' ') --end;
  if (end == 0 || !upper_alnum(eid[0])) return false;
  return std::all_of(eid.begin(), eid.begin() + end, ueid_char);
}

std::string eid_text(const Eid& eid) {
  size_t end = eid.size();
  while (end > 0 && (eid[end - 1] == ' ' || eid[end - 1] == 0)) --end;
  std::string s;
  s.reserve(end);
  for (size_t i = 0; i < end; ++i)
    s.push_back(eid[i] >= 0x20 && eid[i] < 0x7F ? char(eid[i]) : '?');
  return s;
}

}  // namespace droce::smc::wire
