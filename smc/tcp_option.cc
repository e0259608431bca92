// TCP option 254 from userspace: loading, the cgroup's life, and the
// per-socket state (see tcp_option.h; smc-v2-linux61.md B10).
#include "smc/tcp_option.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>

#include "smc/bpf/tcp_option.h"
#include "smc/log.h"

// The compiled program (build/smc/tcp_option_bpf_obj.cc, made from
// smc/bpf/tcp_option.bpf.c by clang -target bpf).
extern const unsigned char droce_tcp_option_bpf_obj[];
extern const unsigned long droce_tcp_option_bpf_obj_len;

namespace droce::smc {
namespace tcp_option_detail {

namespace {

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t end = s.find(sep, start);
    if (end == std::string_view::npos) {
      out.push_back(s.substr(start));
      break;
    }
    out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::string cgroup2_mount(std::string_view mountinfo) {
  // proc(5): "id parent maj:min root mount-point options [optional...] - fstype source
  // super-options".
  for (std::string_view line : split(mountinfo, '\n')) {
    const size_t dash = line.find(" - ");
    if (dash == std::string_view::npos) continue;
    const std::vector<std::string_view> tail = split(line.substr(dash + 3), ' ');
    if (tail.empty() || tail[0] != "cgroup2") continue;
    const std::vector<std::string_view> head = split(line.substr(0, dash), ' ');
    if (head.size() < 5) continue;
    return std::string(head[4]);
  }
  return "";
}

std::string cgroup2_path(std::string_view proc_cgroup) {
  for (std::string_view line : split(proc_cgroup, '\n')) {
    if (line.substr(0, 3) == "0::") return std::string(line.substr(3));
  }
  return "";
}

pid_t droce_cgroup_pid(std::string_view name) {
  constexpr std::string_view kPrefix = "droce-smc-";
  if (name.substr(0, kPrefix.size()) != kPrefix || name.size() == kPrefix.size()) return 0;
  long pid = 0;
  for (char c : name.substr(kPrefix.size())) {
    if (c < '0' || c > '9' || pid > 100000000) return 0;
    pid = pid * 10 + (c - '0');
  }
  return pid_t(pid);
}

std::string parent_for(std::string_view own) {
  std::string p(own);
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  const size_t slash = p.rfind('/');
  if (slash != std::string::npos && droce_cgroup_pid(std::string_view(p).substr(slash + 1)) != 0) {
    p.resize(slash == 0 ? 1 : slash);
  }
  return p.empty() ? "/" : p;
}

std::vector<std::string> remove_stale(const std::string& dir, std::vector<std::string>* kept) {
  std::vector<std::string> removed;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return removed;
  while (dirent* e = ::readdir(d)) {
    const pid_t pid = droce_cgroup_pid(e->d_name);
    if (pid == 0) continue;
    // kill(pid, 0) fails with ESRCH only when no such process exists
    // (EPERM means it lives under another user).
    if (::kill(pid, 0) == 0 || errno != ESRCH) continue;
    const std::string path = dir + "/" + e->d_name;
    if (::rmdir(path.c_str()) == 0) {
      removed.push_back(e->d_name);
    } else if (kept != nullptr) {
      kept->push_back(std::string(e->d_name) + ": " + std::strerror(errno));
    }
  }
  ::closedir(d);
  return removed;
}

}  // namespace tcp_option_detail

namespace {

using namespace tcp_option_detail;

// Guards g_instance and every acquire/shutdown; recursive because a failed
// acquire destroys its half-built instance while holding it.
std::recursive_mutex g_mu;
std::weak_ptr<TcpOption> g_instance;
TcpOption* g_live = nullptr;  // the instance that has not shut down yet
bool g_atexit = false;

int libbpf_print(enum libbpf_print_level level, const char* fmt, va_list ap) {
  if (level == LIBBPF_DEBUG || !log_enabled()) return 0;
  std::fputs("droce-smc: libbpf: ", stderr);
  return std::vfprintf(stderr, fmt, ap);
}

bool write_text(const std::string& path, const std::string& text, std::string* err) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    *err = path + ": " + std::strerror(errno);
    return false;
  }
  const ssize_t n = ::write(fd, text.data(), text.size());
  const int e = errno;
  ::close(fd);
  if (n != ssize_t(text.size())) {
    *err = path + ": " + std::strerror(e);
    return false;
  }
  return true;
}

}  // namespace

std::shared_ptr<TcpOption> TcpOption::acquire(std::string* why) {
  std::lock_guard<std::recursive_mutex> lk(g_mu);
  if (auto live = g_instance.lock()) return live;

  const std::string mount = cgroup2_mount(read_text("/proc/self/mountinfo"));
  if (mount.empty()) {
    *why = "no cgroup v2 hierarchy is mounted";
    return nullptr;
  }
  const std::string own = cgroup2_path(read_text("/proc/self/cgroup"));
  if (own.empty()) {
    *why = "this process is in no cgroup v2";
    return nullptr;
  }
  std::shared_ptr<TcpOption> t(new TcpOption());
  t->parent_ = mount + (own == "/" ? "" : own);
  const std::string base = mount + (parent_for(own) == "/" ? "" : parent_for(own));

  // Load first: a process without the rights to (CAP_BPF and CAP_NET_ADMIN)
  // stops here and leaves no cgroup behind.
  libbpf_set_print(libbpf_print);
  LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = "droce_smc_tcp_option");
  t->obj_ = bpf_object__open_mem(droce_tcp_option_bpf_obj, droce_tcp_option_bpf_obj_len, &opts);
  if (t->obj_ == nullptr) {
    *why = std::string("opening the BPF object: ") + std::strerror(errno);
    return nullptr;
  }
  if (const int e = bpf_object__load(t->obj_); e != 0) {
    *why = std::string("loading the sock_ops program: ") + std::strerror(-e);
    return nullptr;  // the destructor closes obj_
  }
  t->map_fd_ = bpf_object__find_map_fd_by_name(t->obj_, DROCE_SMC_SK_MAP);
  bpf_program* prog = bpf_object__find_program_by_name(t->obj_, "droce_smc_sockops");
  if (t->map_fd_ < 0 || prog == nullptr) {
    *why = "the BPF object lacks its map or program";
    return nullptr;
  }

  std::vector<std::string> kept;
  for (const std::string& name : remove_stale(base, &kept)) {
    SMC_LOG("removed the cgroup %s/%s of a droce process that is gone", base.c_str(), name.c_str());
  }
  for (const std::string& k : kept)
    SMC_LOG("left the cgroup %s/%s (still has processes)", base.c_str(), k.c_str());

  t->cgroup_ = base + "/droce-smc-" + std::to_string(getpid());
  if (::mkdir(t->cgroup_.c_str(), 0755) != 0 && errno != EEXIST) {
    *why = "creating the cgroup " + t->cgroup_ + ": " + std::strerror(errno);
    t->cgroup_.clear();
    return nullptr;
  }
  const int cg = ::open(t->cgroup_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cg < 0) {
    *why = t->cgroup_ + ": " + std::strerror(errno);
    return nullptr;  // the destructor removes the cgroup
  }
  // A BPF link, not a plain attachment: it ends with its descriptor, so a
  // crashed process leaves no program attached (only the empty directory,
  // which the next start removes).
  t->link_ = bpf_program__attach_cgroup(prog, cg);
  const int attach_err = t->link_ == nullptr ? errno : 0;
  ::close(cg);
  if (t->link_ == nullptr) {
    *why = "attaching to " + t->cgroup_ + ": " + std::strerror(attach_err);
    return nullptr;
  }
  std::string err;
  if (!write_text(t->cgroup_ + "/cgroup.procs", std::to_string(getpid()), &err)) {
    *why = "moving the process into its cgroup: " + err;
    return nullptr;
  }
  g_instance = t;
  g_live = t.get();
  if (!g_atexit) {
    g_atexit = true;
    std::atexit(at_exit);
  }
  return t;
}

TcpOption::~TcpOption() {
  std::lock_guard<std::recursive_mutex> lk(g_mu);
  shutdown();
}

void TcpOption::at_exit() {
  std::lock_guard<std::recursive_mutex> lk(g_mu);
  if (g_live != nullptr) g_live->shutdown();
}

// Caller holds g_mu.
void TcpOption::shutdown() {
  if (down_) return;
  down_ = true;
  if (g_live == this) g_live = nullptr;
  if (link_ != nullptr) bpf_link__destroy(link_);  // detaches
  link_ = nullptr;
  if (!cgroup_.empty()) {
    std::string err;
    // A cgroup with a process in it cannot be removed: go back first.
    if (!write_text(parent_ + "/cgroup.procs", std::to_string(getpid()), &err)) {
      SMC_LOG("leaving the cgroup %s: %s", cgroup_.c_str(), err.c_str());
    }
    if (::rmdir(cgroup_.c_str()) != 0) {
      SMC_LOG("removing the cgroup %s: %s", cgroup_.c_str(), std::strerror(errno));
    }
  }
  if (obj_ != nullptr) bpf_object__close(obj_);
  obj_ = nullptr;
  map_fd_ = -1;
}

bool TcpOption::mark(int tcp_fd, std::string* err) {
  droce_smc_sk st{};
  st.flags = DROCE_SMC_SK_WANT;
  if (bpf_map_update_elem(map_fd_, &tcp_fd, &st, BPF_ANY) != 0) {
    *err = std::string("marking the socket for TCP option 254: ") + std::strerror(errno);
    return false;
  }
  return true;
}

TcpOption::Peer TcpOption::peer(int tcp_fd, int wait_ms) const {
  for (int waited = 0;; ++waited) {
    droce_smc_sk st{};
    if (bpf_map_lookup_elem(map_fd_, &tcp_fd, &st) != 0) return Peer::kUnknown;
    if (st.flags & DROCE_SMC_SK_CHECKED)
      return (st.flags & DROCE_SMC_SK_PEER_SMC) ? Peer::kSmc : Peer::kNotSmc;
    if (waited >= wait_ms) return Peer::kUnknown;
    ::usleep(1000);
  }
}

}  // namespace droce::smc
