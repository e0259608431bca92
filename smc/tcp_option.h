// TCP option 254 from userspace (smc-v2-linux61.md B10): the sock_ops program
// of smc/bpf/tcp_option.bpf.c, loaded with libbpf and attached to a cgroup v2
// of droce's own ("droce-smc-<pid>", made next to the process's cgroup, the
// process moved into it), never to the root or a shared cgroup. Linux gates
// SMC on this option in both directions; with it droce does the same.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

struct bpf_object;
struct bpf_link;

namespace droce::smc {

// Threading: mark and peer may be called from any thread; acquire and the
// destructor serialise on a process-wide lock.
class TcpOption {
 public:
  // The process's instance. The first call removes stale droce cgroups
  // (their process is gone), creates the cgroup, moves the process into it,
  // loads the program and attaches it there; later calls share that
  // instance. nullptr with *why when that is not possible (no cgroup v2
  // mounted, not allowed to load BPF or to make a cgroup, ...). The last
  // owner's release detaches the program, moves the process back and
  // removes the cgroup; so does the process's normal exit.
  static std::shared_ptr<TcpOption> acquire(std::string* why);
  ~TcpOption();
  TcpOption(const TcpOption&) = delete;
  TcpOption& operator=(const TcpOption&) = delete;

  // Marks a TCP socket of this process, before connect() or listen(): its
  // SYN, or its SYN-ACKs to SYNs that carried the option, carry it. Sockets
  // created before acquire() moved the process are outside the cgroup and
  // are never marked effectively (socket() binds a socket to its cgroup).
  bool mark(int tcp_fd, std::string* err);

  enum class Peer : uint8_t {
    kUnknown,  // not marked, or the handshake was not seen
    kSmc,      // the peer's SYN-ACK (connect) / SYN (accept) carried the option
    kNotSmc,   // it did not
  };
  // After connect() returned (the SYN-ACK is handled before connect()
  // returns), or for an accepted socket of a marked listener: such a socket
  // may be accepted a moment before its handshake's callback ran, so a
  // marked socket whose verdict is not there yet is polled for up to
  // wait_ms.
  Peer peer(int tcp_fd, int wait_ms = 0) const;

  // The cgroup directory this process runs in while the option is on.
  const std::string& cgroup() const { return cgroup_; }

 private:
  TcpOption() = default;
  void shutdown();
  static void at_exit();

  std::string cgroup_;  // <mount>/<parent>/droce-smc-<pid>
  std::string parent_;  // where the process was, and returns to
  int map_fd_ = -1;     // the socket storage map
  ::bpf_object* obj_ = nullptr;
  ::bpf_link* link_ = nullptr;
  bool down_ = false;
};

// The pure parts, for tests.
namespace tcp_option_detail {

// The mount point of the cgroup v2 hierarchy in /proc/self/mountinfo text
// ("" when none is mounted).
std::string cgroup2_mount(std::string_view mountinfo);
// The process's cgroup v2 path from /proc/self/cgroup text (the "0::" line),
// "" when there is none.
std::string cgroup2_path(std::string_view proc_cgroup);
// "droce-smc-<pid>" -> pid; 0 for any other name.
pid_t droce_cgroup_pid(std::string_view name);
// The cgroup (path below the mount) under which a process in `own` makes
// its droce cgroup: own, or own's parent when own is itself a droce cgroup
// (a droce process started by another), so that each can remove its own.
std::string parent_for(std::string_view own);
// Removes the droce cgroups directly under dir whose process is dead;
// returns their names. Those still holding processes (children of a
// crashed droce) are left and named in *kept.
std::vector<std::string> remove_stale(const std::string& dir, std::vector<std::string>* kept);

}  // namespace tcp_option_detail
}  // namespace droce::smc
