// Test helper: child processes with posix_spawn, output to a file, bounded waits.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

namespace droce::nic::test {

struct Child {
  pid_t pid = -1;
  std::string output_path;  // stdout and stderr
  int exit_code = -1;       // after wait: exit status, or 128 + signal
};

// Starts argv[0] (a path) with the current environment plus `env` overrides
// (an empty value removes the variable); stdout and stderr go to output_path.
bool spawn(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
           const std::string& output_path, Child* child);

// Waits up to timeout_ms for the child; kills it (SIGKILL) when the time is up.
// Returns true when it exited by itself.
bool wait_child(Child* child, int timeout_ms);

// Kills (SIGKILL) and reaps a child that is still running.
void kill_child(Child* child);

std::string read_file(const std::string& path);

// Runs a shell command, returns its exit status (-1 if it could not run).
int shell(const std::string& cmd);

// A fresh directory under /tmp, removed (recursively) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Removes the DPDK runtime directory of a --file-prefix a child used.
void remove_dpdk_runtime_dir(const std::string& prefix);

// Directory of the test programs (DROCE_BUILD_DIR/tests).
std::string tests_dir();

}  // namespace droce::nic::test
