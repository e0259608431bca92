// A client of DPDK's telemetry socket (v2: <runtime dir>/dpdk_telemetry.v2,
// AF_UNIX SOCK_SEQPACKET; each command is one message, each reply one JSON
// message), and where DPDK puts that socket for a --file-prefix.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace droce::stat {

inline constexpr const char* kDefaultFilePrefix = "rte";  // DPDK's, without --file-prefix
inline constexpr const char* kSocketName = "dpdk_telemetry.v2";

// DPDK's runtime directories, as its EAL picks them: $RUNTIME_DIRECTORY,
// else /var/run for root and $XDG_RUNTIME_DIR (or /tmp) for anyone else;
// then dpdk/<prefix>.
std::string dpdk_runtime_base();  // .../dpdk
std::string socket_path(const std::string& prefix);

// A telemetry socket found under dpdk_runtime_base().
struct Candidate {
  std::string prefix;
  std::string path;
  pid_t pid = 0;    // from the greeting
  std::string app;  // argv[0]'s base name, from /proc
};
// Every prefix under the runtime base whose socket accepts a connection
// (sockets of exited processes are left out).
std::vector<Candidate> live_sockets();

class TelemetryClient {
 public:
  TelemetryClient() = default;
  ~TelemetryClient();
  TelemetryClient(const TelemetryClient&) = delete;
  TelemetryClient& operator=(const TelemetryClient&) = delete;

  // Connects and reads the greeting ({"version", "pid", "max_output_len"}).
  // False with *error naming the path when nothing listens there.
  bool connect(const std::string& path, std::string* error);
  // One command ("/droce/ports", "/droce/qp,17"): the reply's text. Replies
  // wait at most timeout_ms.
  bool query(const std::string& command, std::string* reply, std::string* error);
  pid_t pid() const { return pid_; }
  const std::string& version() const { return version_; }

 private:
  int fd_ = -1;
  pid_t pid_ = 0;
  std::string version_;
  std::string path_;
  static constexpr int kTimeoutMs = 5000;
};

}  // namespace droce::stat
