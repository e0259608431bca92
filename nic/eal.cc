// DPDK EAL initialisation, once per process, from DROCE_EAL_ARGS or the
// embedded default; failures become a Status naming DROCE_EAL_ARGS.
#include "nic/eal.h"

#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>
#include <string>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mempool.h>

#include "nic/base/log.h"
#include "nic/base/tsan.h"
#include "nic/telemetry.h"

namespace droce::nic {
namespace {

constexpr const char* kEnvEalArgs = "DROCE_EAL_ARGS";

// Memory for EAL with --no-huge: anonymous memory reserved up front but only
// touched as mempools are filled. A 1500-MTU port's pool (4095 mbufs) takes
// ~10 MB, a 9000-MTU one ~37 MB; 256 MB holds a few dozen ports at once.
constexpr const char* kDefaultMemoryMb = "256";

struct EalState {
  std::mutex mu;  // guards every field
  bool attempted = false;
  bool ready = false;
  bool cleaned = false;
  Status status;
  std::vector<std::string> args;
  std::string owned_runtime_dir;  // removed at cleanup/exit: a prefix droce generated
  pid_t owner = 0;                // the process that initialised EAL (not a forked child)
  // Removals DPDK reported per port id (port_removals); written by the
  // callback on whatever thread raises the event, read by the engines.
  std::atomic<uint32_t> removals[RTE_MAX_ETHPORTS] = {};
};

EalState& state() {
  static EalState* s = new EalState;  // never destroyed: used from atexit
  return *s;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& a : v) {
    if (!out.empty()) out += ' ';
    out += a;
  }
  return out;
}

// Removes the files DPDK left in a runtime directory of our own file prefix
// (config, fbarray_*, mp_socket*), then the directory.
void remove_runtime_dir(const std::string& dir) {
  if (dir.empty()) return;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return;
  const int fd = dirfd(d);
  while (dirent* e = readdir(d)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    unlinkat(fd, e->d_name, 0);
  }
  closedir(d);
  rmdir(dir.c_str());
}

void remove_runtime_dir_at_exit() {
  EalState& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (getpid() != s.owner) return;  // a forked child exiting: not its directory
  remove_runtime_dir(s.owned_runtime_dir);
  s.owned_runtime_dir.clear();
}

// Removes runtime directories of default prefixes ("droce-<pid>-...") whose
// process is gone: a process that crashed or was killed never ran its exit
// handler. Live (or unknown) pids are left alone.
void sweep_stale_runtime_dirs(const std::string& own_dir) {
  const size_t slash = own_dir.rfind('/');
  if (slash == std::string::npos) return;
  const std::string base = own_dir.substr(0, slash);
  DIR* d = opendir(base.c_str());
  if (d == nullptr) return;
  while (dirent* e = readdir(d)) {
    int pid = 0;
    char rest[64];
    if (std::sscanf(e->d_name, "droce-%d-%63s", &pid, rest) != 2 || pid <= 0) continue;
    if (kill(pid, 0) == 0 || errno != ESRCH) continue;
    remove_runtime_dir(base + "/" + e->d_name);
  }
  closedir(d);
}

// RTE_ETH_EVENT_INTR_RMV (the PMD saw its device unplugged) and
// RTE_ETH_EVENT_DESTROY (the ethdev was released, as a vdev detached with
// rte_dev_remove is): counted per port id; the port's Device notices at its
// next poll. Runs on the thread that raised the event (EAL's interrupt
// thread, or the one detaching), so it only counts.
int on_port_removed(uint16_t port_id, rte_eth_event_type, void* arg, void*) {
  auto* s = static_cast<EalState*>(arg);
  if (port_id < RTE_MAX_ETHPORTS) s->removals[port_id].fetch_add(1, std::memory_order_release);
  return 0;
}

constexpr rte_eth_event_type kRemovalEvents[] = {RTE_ETH_EVENT_INTR_RMV, RTE_ETH_EVENT_DESTROY};

}  // namespace

uint32_t port_removals(uint16_t port_id) {
  return port_id < RTE_MAX_ETHPORTS ? state().removals[port_id].load(std::memory_order_acquire)
                                    : 0;
}

// No -d: a shared DPDK build (Debian's) loads every PMD in its plugin
// directory whatever -d names, so -d cannot make init cheaper; users' own
// DROCE_EAL_ARGS can still add -d for drivers elsewhere. Measured on the
// project machine: EAL init ~125 ms, of which ~100 ms is DPDK's TSC
// calibration sleep and ~25 ms loading the 128 plugins.
std::vector<std::string> default_eal_args() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  char prefix[64];
  std::snprintf(prefix, sizeof(prefix), "droce-%d-%lx", int(getpid()),
                (unsigned long)(ts.tv_sec * 1000000000L + ts.tv_nsec) & 0xFFFFFFFFFul);
  return {
      "--no-huge",  // works on a fresh machine: anonymous memory, IOVA as VA
      "--no-pci",   // never touch the host's NICs unless asked to
      "-m",
      kDefaultMemoryMb,
      "--file-prefix",  // separate runtime state per process (no --in-memory with --no-huge)
      prefix,
      "--vdev",
      kDefaultLoopbackVdev,
      // DPDK telemetry stays on (its socket thread sleeps in accept): droce-stat
      // and dpdk-telemetry.py read the counters through it (nic/telemetry.h).
      // Its warning that no legacy (v1) client is served says nothing to a
      // user; the first --log-level pattern that matches a log type wins.
      "--log-level=lib.telemetry:error",
      "--log-level=*:warning",  // drop EAL/PMD chatter below warnings
  };
}

std::vector<std::string> split_eal_args(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : text) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f') {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

Status eal_init() {
  EalState& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (s.cleaned) {
    return Status(Errc::kBusy, "DPDK EAL was already cleaned up in this process");
  }
  if (s.attempted) return s.status;
  s.attempted = true;

  const char* env = std::getenv(kEnvEalArgs);
  const bool from_env = env != nullptr && split_eal_args(env).size() > 0;
  s.args = from_env ? split_eal_args(env) : default_eal_args();

  // rte_eal_init may permute argv and keep pointers into it: the strings
  // live in s.args for the life of the process.
  std::vector<char*> argv;
  static char argv0[] = "droce";
  argv.push_back(argv0);
  for (auto& a : s.args) argv.push_back(a.data());
  argv.push_back(nullptr);

  // EAL pins the calling thread to its main lcore; a library must not.
  cpu_set_t saved;
  const bool have_affinity = pthread_getaffinity_np(pthread_self(), sizeof(saved), &saved) == 0;

  telemetry_register_commands();
  const int rc = rte_eal_init(int(argv.size() - 1), argv.data());
  const int err = rte_errno;

  if (have_affinity) pthread_setaffinity_np(pthread_self(), sizeof(saved), &saved);

  if (rc < 0) {
    std::string msg = "DPDK EAL initialisation failed: ";
    msg += rte_strerror(err);
    if (from_env) {
      msg += " (arguments from DROCE_EAL_ARGS=\"" + std::string(env) +
             "\"; fix or unset DROCE_EAL_ARGS)";
    } else {
      msg += " (embedded default arguments \"" + join(s.args) +
             "\"; set DROCE_EAL_ARGS to override)";
    }
    s.status = Status(err == ENOMEM ? Errc::kNoMemory : Errc::kBadConfig, msg);
    DROCE_DEBUG("%s", msg.c_str());
    return s.status;
  }
  s.ready = true;
  s.status = Status::ok();
  for (rte_eth_event_type ev : kRemovalEvents) {
    rte_eth_dev_callback_register(RTE_ETH_ALL, ev, on_port_removed, &s);
  }
  if (!from_env) {
    s.owned_runtime_dir = rte_eal_get_runtime_dir();
    s.owner = getpid();
    std::atexit(remove_runtime_dir_at_exit);
    sweep_stale_runtime_dirs(s.owned_runtime_dir);
  }
  DROCE_DEBUG("EAL ready: %s", join(s.args).c_str());
  return s.status;
}

bool eal_ready() {
  EalState& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  return s.ready;
}

std::vector<std::string> eal_args() {
  EalState& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  return s.args;
}

// rte_eal_cleanup (DPDK 22.11) never stops the interrupt thread: it frees
// the memory of the devices, alarms and interrupt sources while that thread
// may still be handling an event of a port closed just before (net_memif
// handles its peer's disconnect there) or rebuilding its wait list from the
// sources it is about to free: a crash at exit, seen under load with both
// memif ends in one process. The same thread handling a memif peer's
// disconnect while the test closes that port crashed as well. So: wait,
// bounded, until the thread sits in epoll_wait with nothing pending (twice
// in a row, 2 ms apart), read from /proc/self/task/<tid>/syscall. Only tests
// and benchmarks need this: a program's process just exits.
void eal_wait_interrupt_thread_idle() {
  DIR* d = opendir("/proc/self/task");
  if (d == nullptr) return;
  std::string tid;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    char comm[32] = {};
    const std::string dir = std::string("/proc/self/task/") + e->d_name;
    if (FILE* f = std::fopen((dir + "/comm").c_str(), "r")) {
      if (std::fgets(comm, sizeof(comm), f) != nullptr && std::strncmp(comm, "eal-intr-thread", 15) == 0) tid = dir;
      std::fclose(f);
    }
  }
  closedir(d);
  if (tid.empty()) return;
  const auto in_epoll_wait = [&tid] {
    long nr = -1;
    if (FILE* f = std::fopen((tid + "/syscall").c_str(), "r")) {
      if (std::fscanf(f, "%ld", &nr) != 1) nr = -1;  // "running"
      std::fclose(f);
    }
#ifdef SYS_epoll_wait
    if (nr == SYS_epoll_wait) return true;
#endif
    return nr == SYS_epoll_pwait;
  };
  int quiet = 0;
  for (int i = 0; i < 500 && quiet < 2; ++i) {  // at most 1 s
    quiet = in_epoll_wait() ? quiet + 1 : 0;
    const timespec ts{0, 2 * 1000 * 1000};
    nanosleep(&ts, nullptr);
  }
}

namespace {

thread_local bool t_lcore_tried = false;

// A thread that gets an lcore id another thread gave back uses that id's
// mempool caches after it; DPDK orders the two with its lcore lock, which
// ThreadSanitizer cannot see (DPDK is not instrumented), so the hand-over
// is annotated on one object per id (nic/base/tsan.h).
char g_lcore_handover[RTE_MAX_LCORE];

// Runs at the exit of a thread eal_register_thread registered. Under the
// state's lock, so eal_cleanup cannot run meanwhile; after it, DPDK's lcore
// table is gone and nothing is given back.
struct LcoreRelease {
  ~LcoreRelease() {
    EalState& s = state();
    std::lock_guard<std::mutex> lock(s.mu);
    if (!s.ready || rte_lcore_id() == LCORE_ID_ANY) return;
    // Under the mempool list's read lock: no pool is freed meanwhile.
    rte_mempool_walk(
        [](rte_mempool* mp, void*) {
          if (rte_mempool_cache* c = rte_mempool_default_cache(mp, rte_lcore_id())) {
            rte_mempool_cache_flush(c, mp);
          }
        },
        nullptr);
    tsan_release(&g_lcore_handover[rte_lcore_id()]);
    rte_thread_unregister();
  }
};

}  // namespace

int eal_register_thread() {
  if (!t_lcore_tried) {
    t_lcore_tried = true;
    if (rte_lcore_id() == LCORE_ID_ANY && eal_ready() && rte_thread_register() == 0 &&
        rte_lcore_id() != LCORE_ID_ANY) {
      tsan_acquire(&g_lcore_handover[rte_lcore_id()]);
      static thread_local LcoreRelease release;  // constructed here: destroyed at thread exit
      (void)release;
    }
  }
  const unsigned id = rte_lcore_id();
  return id == LCORE_ID_ANY ? -1 : int(id);
}

void eal_cleanup() {
  EalState& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (s.cleaned) return;
  s.cleaned = true;
  if (!s.ready) return;
  s.ready = false;
  for (rte_eth_event_type ev : kRemovalEvents) {
    rte_eth_dev_callback_unregister(RTE_ETH_ALL, ev, on_port_removed, &s);
  }
  eal_wait_interrupt_thread_idle();
  rte_eal_cleanup();
  remove_runtime_dir(s.owned_runtime_dir);
  s.owned_runtime_dir.clear();
}

}  // namespace droce::nic
