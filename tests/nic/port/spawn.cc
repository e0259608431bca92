// Test helper: child processes with posix_spawn and bounded waits.
#include "tests/nic/port/spawn.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace droce::nic::test {

bool spawn(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
           const std::string& output_path, Child* child) {
  std::vector<std::string> envs;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string kv = *e;
    const std::string key = kv.substr(0, kv.find('='));
    if (env.count(key) == 0) envs.push_back(kv);
  }
  for (const auto& [k, v] : env) {
    if (!v.empty()) envs.push_back(k + "=" + v);
  }
  std::vector<char*> envp, args;
  for (auto& s : envs) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_copy = argv;
  for (auto& s : argv_copy) args.push_back(s.data());
  args.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, output_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  child->output_path = output_path;
  const int rc = posix_spawn(&child->pid, args[0], &fa, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) child->pid = -1;
  return rc == 0;
}

bool wait_child(Child* child, int timeout_ms) {
  if (child->pid <= 0) return false;
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    int status = 0;
    const pid_t r = waitpid(child->pid, &status, WNOHANG);
    if (r == child->pid) {
      child->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      child->pid = -1;
      return true;
    }
    if (std::chrono::steady_clock::now() >= end) {
      kill_child(child);
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

void kill_child(Child* child) {
  if (child->pid <= 0) return;
  kill(child->pid, SIGKILL);
  int status = 0;
  waitpid(child->pid, &status, 0);
  child->exit_code = 128 + SIGKILL;
  child->pid = -1;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

int shell(const std::string& cmd) {
  const int rc = std::system(cmd.c_str());
  if (rc == -1 || !WIFEXITED(rc)) return -1;
  return WEXITSTATUS(rc);
}

TempDir::TempDir() {
  char tmpl[] = "/tmp/droce-port-XXXXXX";
  if (mkdtemp(tmpl) != nullptr) path_ = tmpl;
}

TempDir::~TempDir() {
  if (!path_.empty()) shell("rm -rf '" + path_ + "'");
}

void remove_dpdk_runtime_dir(const std::string& prefix) {
  // Where DPDK puts it: /var/run/dpdk for root, else $XDG_RUNTIME_DIR/dpdk or /tmp/dpdk.
  std::vector<std::string> bases = {"/var/run/dpdk", "/tmp/dpdk"};
  if (const char* x = std::getenv("XDG_RUNTIME_DIR")) bases.push_back(std::string(x) + "/dpdk");
  for (const auto& b : bases) shell("rm -rf '" + b + "/" + prefix + "'");
}

std::string tests_dir() {
  const char* b = std::getenv("DROCE_BUILD_DIR");
  return std::string(b ? b : ".") + "/tests";
}

}  // namespace droce::nic::test
