// Test helper: network namespaces (see netns.h).
#include "tests/common/netns.h"

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>

namespace droce::test {

std::string command_output(const std::string& cmd, int* status) {
  std::string out;
  FILE* f = popen(cmd.c_str(), "r");
  if (f == nullptr) {
    if (status != nullptr) *status = -1;
    return out;
  }
  char buf[512];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  const int st = pclose(f);
  if (status != nullptr) *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

Netns::Netns(std::string name) : name_(std::move(name)) {
  int st = -1;
  std::string out = command_output("ip netns add " + name_ + " 2>&1", &st);
  if (st != 0) {
    error_ = "`ip netns add " + name_ + "` failed (exit " + std::to_string(st) + "): " + out;
    return;
  }
  created_ = true;
  // ip netns exec makes / a slave mount first, which fails where / is not a
  // mount point (a chroot that is not bind-mounted onto itself).
  out = command_output("ip netns exec " + name_ + " true 2>&1", &st);
  if (st != 0) {
    error_ = "`ip netns exec " + name_ + " true` failed (exit " + std::to_string(st) + "): " + out +
             (out.find("make-rslave") != std::string::npos
                  ? " (/ is not a mount point: in a chroot, bind-mount its root onto itself,"
                    " docs/from-scratch.md)"
                  : "");
    std::system(("ip netns del " + name_ + " >/dev/null 2>&1").c_str());
    created_ = false;
  }
}

Netns::~Netns() {
  for (auto it = cleanups_.rbegin(); it != cleanups_.rend(); ++it) (*it)();
  if (created_) std::system(("ip netns del " + name_ + " >/dev/null 2>&1").c_str());
}

int Netns::ip(const std::string& args) const {
  const int st = std::system(("ip -n " + name_ + " " + args + " >/dev/null 2>&1").c_str());
  return st == -1 ? -1 : (WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

bool Netns::link_up(const std::string& dev) const {
  int st = -1;
  // "3: dta: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 ..."
  const std::string out = command_output("ip -n " + name_ + " -o link show " + dev + " 2>/dev/null", &st);
  const size_t open = out.find('<'), close = out.find('>');
  if (st != 0 || open == std::string::npos || close == std::string::npos) return false;
  const std::string flags = "," + out.substr(open + 1, close - open - 1) + ",";
  return flags.find(",UP,") != std::string::npos;
}

}  // namespace droce::test
