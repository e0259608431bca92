// DPDK's EAL: the one per-process singleton, initialised once from
// DROCE_EAL_ARGS or the embedded default (no hugepages, no PCI, unique
// --file-prefix, one in-process loopback vdev).
#pragma once

#include <string>
#include <vector>

#include "nic/base/status.h"

namespace droce::nic {

// The embedded default EAL arguments (argv[0] excluded), with a file prefix
// unique to this process.
std::vector<std::string> default_eal_args();

// Splits DROCE_EAL_ARGS-style text on whitespace.
std::vector<std::string> split_eal_args(const std::string& text);

// Initialises EAL once per process (thread-safe). Later calls return the
// first call's status. Errors name DROCE_EAL_ARGS and never abort.
Status eal_init();

// True once eal_init() succeeded.
bool eal_ready();

}  // namespace droce::nic
