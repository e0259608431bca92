// Congestion Notification Packet body (RoCEv2 annex A17.9.3): 16 reserved bytes after the BTH.
#pragma once

#include <cstdint>

namespace droce::wire {

inline constexpr uint8_t kOpcodeCnp = 0x81;

struct CnpBody {
  uint8_t reserved[16];  // zero
};
static_assert(sizeof(CnpBody) == 16);

}  // namespace droce::wire
