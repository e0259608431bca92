// DROCE_LOG switch.
#include "nic/base/log.h"

#include <cstdlib>
#include <cstring>

namespace droce {

bool log_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("DROCE_LOG");
    return v != nullptr && std::strcmp(v, "0") != 0 && *v != '\0';
  }();
  return enabled;
}

}  // namespace droce
