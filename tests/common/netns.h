// Test helper: a network namespace the test creates itself, so that traffic
// through the kernel (tap devices, bridges) stays inside it; always deleted.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace droce::test {

// Runs `sh -c cmd` and returns its standard output; *status gets the exit
// status (-1 if it could not run) when status is not null.
std::string command_output(const std::string& cmd, int* status = nullptr);

class Netns {
 public:
  // `ip netns add name`, then `ip netns exec name true`; created() says
  // whether both worked (root needed), error() what failed.
  explicit Netns(std::string name);
  // Runs the cleanups (last added first), then deletes the namespace.
  ~Netns();
  Netns(const Netns&) = delete;
  Netns& operator=(const Netns&) = delete;

  bool created() const { return created_; }
  const std::string& error() const { return error_; }
  const std::string& name() const { return name_; }
  // `ip -n <name> <args>`, output discarded; returns the exit status.
  int ip(const std::string& args) const;
  // True once interface dev exists in the namespace and is administratively up.
  bool link_up(const std::string& dev) const;
  // argv prefix that runs a program inside the namespace.
  std::vector<std::string> exec_argv() const { return {"/usr/bin/ip", "netns", "exec", name_}; }
  // Something to do before the namespace goes (kill a child still in it ...).
  void at_exit(std::function<void()> fn) { cleanups_.push_back(std::move(fn)); }

 private:
  std::string name_;
  bool created_ = false;
  std::string error_;
  std::vector<std::function<void()>> cleanups_;
};

}  // namespace droce::test
