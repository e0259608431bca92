// DPDK telemetry v2 client (telemetry_client.h).
#include "apps/droce-stat/telemetry_client.h"

#include <dirent.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "apps/droce-stat/json.h"

namespace droce::stat {
namespace {

// The largest reply DPDK 22.11 sends is 16 KiB (its max_output_len); room for more.
constexpr size_t kMaxReply = 1 << 20;

std::string app_name(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/cmdline");
  std::string argv0;
  std::getline(f, argv0, '\0');
  const size_t slash = argv0.rfind('/');
  return slash == std::string::npos ? argv0 : argv0.substr(slash + 1);
}

}  // namespace

std::string dpdk_runtime_base() {
  const char* dir = std::getenv("RUNTIME_DIRECTORY");
  if (dir == nullptr || *dir == '\0') {
    if (getuid() == 0) {
      dir = "/var/run";
    } else {
      dir = std::getenv("XDG_RUNTIME_DIR");
      if (dir == nullptr || *dir == '\0') dir = "/tmp";
    }
  }
  return std::string(dir) + "/dpdk";
}

std::string socket_path(const std::string& prefix) {
  return dpdk_runtime_base() + "/" + prefix + "/" + kSocketName;
}

std::vector<Candidate> live_sockets() {
  std::vector<Candidate> out;
  const std::string base = dpdk_runtime_base();
  DIR* d = opendir(base.c_str());
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    Candidate c;
    c.prefix = e->d_name;
    c.path = base + "/" + c.prefix + "/" + kSocketName;
    if (access(c.path.c_str(), F_OK) != 0) continue;
    TelemetryClient client;
    std::string err;
    if (!client.connect(c.path, &err)) continue;
    c.pid = client.pid();
    c.app = app_name(c.pid);
    out.push_back(std::move(c));
  }
  closedir(d);
  std::sort(out.begin(), out.end(),
            [](const Candidate& a, const Candidate& b) { return a.prefix < b.prefix; });
  return out;
}

TelemetryClient::~TelemetryClient() {
  if (fd_ >= 0) close(fd_);
}

bool TelemetryClient::connect(const std::string& path, std::string* error) {
  path_ = path;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    *error = path + ": path too long for a unix socket";
    return false;
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  fd_ = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    *error = std::string("socket: ") + std::strerror(errno);
    return false;
  }
  timeval tv{kTimeoutMs / 1000, (kTimeoutMs % 1000) * 1000};
  setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int err = errno;
    *error = "cannot connect to DPDK telemetry socket " + path + ": " + std::strerror(err);
    if (err == ENOENT) {
      *error += " (no DPDK process with telemetry runs with that file prefix)";
    } else if (err == ECONNREFUSED) {
      *error += " (the process that made it has exited)";
    }
    close(fd_);
    fd_ = -1;
    return false;
  }
  std::string greeting;
  // The greeting is the first message; query() with an empty command only reads.
  if (!query("", &greeting, error)) return false;
  Json g;
  std::string perr;
  if (!parse_json(greeting, &g, &perr) || !g.is_object()) {
    *error = path + ": not a DPDK telemetry v2 greeting: " + greeting;
    return false;
  }
  pid_ = pid_t(g.u64("pid"));
  version_ = g.string_at("version");
  return true;
}

bool TelemetryClient::query(const std::string& command, std::string* reply, std::string* error) {
  if (fd_ < 0) {
    *error = "not connected";
    return false;
  }
  if (!command.empty() && send(fd_, command.data(), command.size(), MSG_NOSIGNAL) < 0) {
    *error = path_ + ": send: " + std::strerror(errno);
    return false;
  }
  std::string buf(kMaxReply, '\0');
  const ssize_t n = recv(fd_, buf.data(), buf.size(), 0);
  if (n < 0) {
    *error = path_ + ": " +
             (errno == EAGAIN ? std::string("no reply within 5 s")
                              : std::string("recv: ") + std::strerror(errno));
    return false;
  }
  if (n == 0) {
    *error = path_ + ": the process closed the connection";
    return false;
  }
  buf.resize(size_t(n));
  *reply = std::move(buf);
  return true;
}

}  // namespace droce::stat
