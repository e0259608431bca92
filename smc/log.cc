// SMC_LOG (see log.h).
#include "smc/log.h"

#include <cstdlib>
#include <cstring>

namespace droce::smc {

bool log_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("SMC_LOG");
    return v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0;
  }();
  return on;
}

}  // namespace droce::smc
