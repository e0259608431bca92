// Test helper: child processes for tests of every layer (port peers,
// Debian's ibverbs-utils and perftest on the drop-in): posix_spawn with extra
// environment, output to a file, bounded waits, and the paths they need.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

namespace droce::test {

struct Process {
  pid_t pid = -1;
  std::string output_path;  // stdout and stderr
  int exit_code = -1;       // after wait: exit status, or 128 + signal
};

// Starts argv (argv[0] a path) with the current environment plus env
// (an empty value removes the variable); output goes to output_path.
bool start(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
           const std::string& output_path, Process* p);
// Waits up to timeout_ms, then kills (SIGKILL). True when it exited by itself.
bool wait_for(Process* p, int timeout_ms);
void kill_and_reap(Process* p);

std::string read_file(const std::string& path);

// Runs a shell command; its exit status, or -1 if it did not exit normally.
int shell(const std::string& cmd);

// The build's test programs ($DROCE_BUILD_DIR/tests) and drop-in directory
// ($DROCE_BUILD_DIR/lib); "" when DROCE_BUILD_DIR is not set.
std::string tests_dir();
std::string dropin_lib_dir();
// True when this test binary is built with AddressSanitizer: so is the
// drop-in, which then cannot be loaded by an uninstrumented program.
bool sanitized_build();

// True once a TCP socket listens on port (IPv4 or IPv6), per /proc/net/tcp*;
// with in_netns_of a pid, in that process's network namespace.
bool tcp_listening(int port, pid_t in_netns_of = 0);
// A TCP port that was free a moment ago.
int free_tcp_port();

// A fresh directory under /tmp, removed on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// ---- running as user nobody (uid/gid 65534, through setpriv) ----
// The checkout, and with it the build, may sit where nobody cannot read it (a
// clone under /root, mode 0700). A test that runs a program as nobody runs
// copies instead, made in a directory of its own:

// Copies each file into dir under its own name (a symlink's target is copied
// under the link's name), dir made 0755, every copy readable by all and, when
// its source is executable, runnable by all. "" on success, else what failed.
std::string copy_for_nobody(const std::vector<std::string>& files, const std::string& dir);
// What a sanitized child running as nobody needs in its environment: when
// this process's LSAN_OPTIONS names a suppressions file, that file copied into
// dir and (*env)["LSAN_OPTIONS"] naming the copy. "" on success, else what failed.
std::string sanitizer_env_for_nobody(const std::string& dir, std::map<std::string, std::string>* env);
// setpriv's argv prefix that drops to nobody, no supplementary groups.
std::vector<std::string> as_nobody_argv();

// Removes DPDK's runtime directory for a --file-prefix.
void remove_dpdk_runtime_dir(const std::string& prefix);

}  // namespace droce::test
