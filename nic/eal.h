// DPDK's EAL: the one per-process singleton, initialised once from
// DROCE_EAL_ARGS or the embedded default (no hugepages, no PCI, unique
// --file-prefix droce-<pid>-<time>, one in-process loopback vdev, telemetry on).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "nic/base/status.h"

namespace droce::nic {

// Name of the loopback vdev in the default arguments (a net_ring device with
// one ring: what it transmits it receives).
inline constexpr const char* kDefaultLoopbackVdev = "net_ring0";

// The embedded default EAL arguments (argv[0] excluded), with a file prefix
// unique to this process.
std::vector<std::string> default_eal_args();

// Splits DROCE_EAL_ARGS-style text on whitespace.
std::vector<std::string> split_eal_args(const std::string& text);

// Initialises EAL once per process (thread-safe). Later calls return the
// first call's status. Errors name DROCE_EAL_ARGS and never abort.
// The calling thread's CPU affinity is left as it was (EAL would pin it).
Status eal_init();

// True once eal_init() succeeded (and eal_cleanup() has not run).
bool eal_ready();

// The arguments eal_init() used (empty before it ran).
std::vector<std::string> eal_args();

// How many times DPDK has reported port_id removed since eal_init: the PMD
// saw its device unplugged (RTE_ETH_EVENT_INTR_RMV), or the ethdev was
// released (RTE_ETH_EVENT_DESTROY, e.g. a vdev detached with rte_dev_remove,
// and every close). Any thread.
uint32_t port_removals(uint16_t port_id);

// Waits (at most about a second) until DPDK's interrupt thread is blocked
// with nothing pending: the handlers of events already raised (a memif
// peer's disconnect) have run. For tests that close both ends of a link in
// one process, and for eal_cleanup. Any thread but the interrupt thread.
void eal_wait_interrupt_thread_idle();

// Gives the calling thread a DPDK lcore id (rte_thread_register) once, if
// it has none: only a thread with one has mempool caches, and without them
// each mbuf the thread allocates or frees is an atomic operation on the
// pool's shared ring (docs/benchmarks.md "mbuf caches"). At the thread's
// exit its caches are emptied into their pools and the id given back (not
// after eal_cleanup). Returns the thread's lcore id, or -1 when it has none:
// EAL not ready, no id left (RTE_MAX_LCORE), or a secondary DPDK process
// attached (DPDK then refuses). The first call does the work; later calls
// read a thread-local flag. Any thread but DPDK's own.
int eal_register_thread();

// Releases EAL (rte_eal_cleanup) and removes the runtime directory of a file
// prefix droce generated. Call at most once, at the end of the process, after
// every Port is closed; eal_init() fails afterwards. Without it, the runtime
// directory is still removed at exit.
void eal_cleanup();

}  // namespace droce::nic
