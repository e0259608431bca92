// Identifiers that SMC-R messages carry: GIDs, MACs, system IDs and EIDs,
// and the rules Linux applies to them (RFC 7609 section 3.5; Linux 6.1
// smc_clc.c smc_clc_ueid_valid, reference/smc-v2-linux61.md B3).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace droce::smc::wire {

using Gid = std::array<uint8_t, 16>;      // RoCE GID; RoCEv2 IPv4: ::ffff:a.b.c.d
using Mac = std::array<uint8_t, 6>;
using SystemId = std::array<uint8_t, 8>;  // 2 random bytes + a RoCE port MAC
using Eid = std::array<uint8_t, 32>;      // enterprise ID: ASCII, space padded

// ::ffff:a.b.c.d for an IPv4 address in host order.
Gid ipv4_mapped_gid(uint32_t ipv4);
// The IPv4 address (host order) inside an IPv4-mapped or IPv4-compatible GID,
// or false when the GID is neither (smc_ib_gid_to_ipv4).
bool gid_to_ipv4(const Gid& gid, uint32_t* ipv4);

// A user EID as Linux stores it: 1..32 characters, the first [A-Z0-9], the
// rest [A-Z0-9.-], upper-cased, padded with spaces to 32 bytes. Returns false
// (and leaves *out alone) when `text` breaks those rules.
bool make_ueid(std::string_view text, Eid* out);
// Whether 32 bytes are a valid space-padded UEID (smc_clc_ueid_valid).
bool ueid_valid(const Eid& eid);
// The EID without its padding, for messages and `droce-smc stat`.
std::string eid_text(const Eid& eid);

}  // namespace droce::smc::wire
