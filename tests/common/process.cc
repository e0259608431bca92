// Test helper: child processes (see process.h).
#include "tests/common/process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace droce::test {

bool start(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
           const std::string& output_path, Process* p) {
  std::map<std::string, std::string> merged;
  for (char** e = environ; *e != nullptr; ++e) {
    const char* eq = std::strchr(*e, '=');
    if (eq != nullptr) merged[std::string(*e, size_t(eq - *e))] = eq + 1;
  }
  for (const auto& [k, v] : env) {
    if (v.empty()) {
      merged.erase(k);
    } else {
      merged[k] = v;
    }
  }
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : merged) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp, args;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_copy = argv;
  for (auto& s : argv_copy) args.push_back(s.data());
  args.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, output_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  p->output_path = output_path;
  const int rc = posix_spawn(&p->pid, args[0], &fa, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) p->pid = -1;
  return rc == 0;
}

bool wait_for(Process* p, int timeout_ms) {
  if (p->pid < 0) return false;
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    int status = 0;
    const pid_t r = waitpid(p->pid, &status, WNOHANG);
    if (r == p->pid) {
      p->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      p->pid = -1;
      return true;
    }
    if (std::chrono::steady_clock::now() > end) {
      kill_and_reap(p);
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

void kill_and_reap(Process* p) {
  if (p->pid < 0) return;
  kill(p->pid, SIGKILL);
  int status = 0;
  waitpid(p->pid, &status, 0);
  p->exit_code = 128 + SIGKILL;
  p->pid = -1;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int shell(const std::string& cmd) {
  const int rc = std::system(cmd.c_str());
  if (rc == -1 || !WIFEXITED(rc)) return -1;
  return WEXITSTATUS(rc);
}

std::string tests_dir() {
  const char* b = std::getenv("DROCE_BUILD_DIR");
  return b != nullptr ? std::string(b) + "/tests" : std::string();
}

std::string dropin_lib_dir() {
  const char* b = std::getenv("DROCE_BUILD_DIR");
  return b != nullptr ? std::string(b) + "/lib" : std::string();
}

bool sanitized_build() {
#if defined(__SANITIZE_ADDRESS__)
  return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
  return true;
#else
  return false;
#endif
#else
  return false;
#endif
}

bool tcp_listening(int port, pid_t in_netns_of) {
  char want[8];
  std::snprintf(want, sizeof(want), ":%04X", port);
  const std::string dir =
      in_netns_of > 0 ? "/proc/" + std::to_string(in_netns_of) + "/net/" : "/proc/net/";
  for (const char* f : {"tcp", "tcp6"}) {
    std::ifstream in(dir + f);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream ls(line);
      std::string sl, local, remote, state;
      ls >> sl >> local >> remote >> state;
      if (state == "0A" && local.size() > 5 && local.compare(local.size() - 5, 5, want) == 0) {
        return true;
      }
    }
  }
  return false;
}

int free_tcp_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  int port = -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  close(fd);
  return port;
}

TempDir::TempDir() {
  char tmpl[] = "/tmp/droce-test-XXXXXX";
  const char* d = mkdtemp(tmpl);
  path_ = d != nullptr ? d : "";
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string copy_for_nobody(const std::vector<std::string>& files, const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return "cannot create " + dir + ": " + ec.message();
  fs::permissions(dir, fs::perms(0755), ec);
  if (ec) return "cannot chmod 0755 " + dir + ": " + ec.message();
  for (const std::string& f : files) {
    const fs::path to = fs::path(dir) / fs::path(f).filename();
    fs::copy_file(f, to, fs::copy_options::overwrite_existing, ec);  // follows symlinks
    if (ec) return "cannot copy " + f + " to " + to.string() + ": " + ec.message();
    const fs::perms src = fs::status(f, ec).permissions();
    if (ec) return "cannot stat " + f + ": " + ec.message();
    const bool exec = (src & fs::perms::owner_exec) != fs::perms::none;
    fs::permissions(to, fs::perms(exec ? 0755 : 0644), ec);
    if (ec) return "cannot chmod " + to.string() + ": " + ec.message();
  }
  return "";
}

std::string sanitizer_env_for_nobody(const std::string& dir, std::map<std::string, std::string>* env) {
  const char* opts = std::getenv("LSAN_OPTIONS");
  if (opts == nullptr) return "";
  // "suppressions=/path/lsan.supp:print_suppressions=0": options split on ':'.
  std::string out, supp;
  std::istringstream in(opts);
  for (std::string opt; std::getline(in, opt, ':');) {
    if (opt.rfind("suppressions=", 0) == 0) {
      supp = opt.substr(std::strlen("suppressions="));
      opt = "suppressions=" + dir + "/" + std::filesystem::path(supp).filename().string();
    }
    out += (out.empty() ? "" : ":") + opt;
  }
  if (supp.empty()) return "";
  const std::string err = copy_for_nobody({supp}, dir);
  if (err.empty()) (*env)["LSAN_OPTIONS"] = out;
  return err;
}

std::vector<std::string> as_nobody_argv() {
  return {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"};
}

void remove_dpdk_runtime_dir(const std::string& prefix) {
  std::error_code ec;
  for (const char* base : {"/var/run/dpdk/", "/tmp/dpdk/"}) {
    std::filesystem::remove_all(std::string(base) + prefix, ec);
  }
  if (const char* xdg = std::getenv("XDG_RUNTIME_DIR")) {
    std::filesystem::remove_all(std::string(xdg) + "/dpdk/" + prefix, ec);
  }
}

}  // namespace droce::test
