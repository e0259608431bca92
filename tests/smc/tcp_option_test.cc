// TCP option 254 from userspace (smc/tcp_option.h): the pure parts (mountinfo,
// /proc/self/cgroup, droce cgroup names, stale cleanup), then the real thing
// as root: the program loaded into a cgroup of the test's own, the option
// seen by the BPF program on SYN and SYN-ACK of marked sockets on 127.0.0.1
// only, the cgroup gone after release and after a crash on the next start.
#include "smc/tcp_option.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace droce::smc {
namespace {

using namespace tcp_option_detail;

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

TEST(TcpOptionDetail, FindsTheCgroup2MountInMountinfo) {
  // A hybrid host (this machine): v1 controllers and the unified hierarchy.
  const std::string hybrid =
      "25 30 0:23 / /sys rw,nosuid - sysfs sysfs rw\n"
      "33 25 0:28 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755\n"
      "34 33 0:29 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 "
      "cgroup2 rw\n"
      "35 33 0:30 / /sys/fs/cgroup/systemd rw shared:11 - cgroup cgroup rw,name=systemd\n";
  EXPECT_EQ(cgroup2_mount(hybrid), "/sys/fs/cgroup/unified");
  // A unified host; optional fields before the separator.
  EXPECT_EQ(cgroup2_mount("30 1 0:26 / /sys/fs/cgroup rw,nosuid shared:4 master:1 - cgroup2 "
                          "cgroup2 rw,nsdelegate\n"),
            "/sys/fs/cgroup");
  // v1 only, or nothing.
  EXPECT_EQ(cgroup2_mount("35 33 0:30 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"), "");
  EXPECT_EQ(cgroup2_mount(""), "");
}

TEST(TcpOptionDetail, ReadsTheV2LineOfProcSelfCgroup) {
  EXPECT_EQ(cgroup2_path("9:name=systemd:/\n4:memory:/x/y\n0::/\n"), "/");
  EXPECT_EQ(cgroup2_path("0::/user.slice/session-3.scope\n"), "/user.slice/session-3.scope");
  EXPECT_EQ(cgroup2_path("4:memory:/x\n"), "") << "v1 only";
}

TEST(TcpOptionDetail, NamesDroceCgroupsWithThePid) {
  EXPECT_EQ(droce_cgroup_pid("droce-smc-1234"), 1234);
  EXPECT_EQ(droce_cgroup_pid("droce-smc-"), 0);
  EXPECT_EQ(droce_cgroup_pid("droce-smc-12a"), 0);
  EXPECT_EQ(droce_cgroup_pid("system.slice"), 0);
  EXPECT_EQ(droce_cgroup_pid("droce-smc-99999999999"), 0) << "not a pid";
}

TEST(TcpOptionDetail, MakesItsCgroupNextToAnotherDroceProcesssOne) {
  EXPECT_EQ(parent_for("/"), "/");
  EXPECT_EQ(parent_for("/user.slice/session-3.scope"), "/user.slice/session-3.scope");
  // Started by a droce process (it sits in that one's cgroup): a sibling,
  // so that each removes its own on exit.
  EXPECT_EQ(parent_for("/droce-smc-77"), "/");
  EXPECT_EQ(parent_for("/a/b/droce-smc-77"), "/a/b");
}

// A pid that was alive a moment ago and is not any more.
pid_t dead_pid() {
  const pid_t p = fork();
  if (p == 0) _exit(0);
  int st = 0;
  waitpid(p, &st, 0);
  return p;
}

TEST(TcpOptionDetail, RemovesOnlyCgroupsOfDeadProcesses) {
  char tmpl[] = "/tmp/droce-tcpopt-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  const std::string dead = "droce-smc-" + std::to_string(dead_pid());
  const std::string alive = "droce-smc-" + std::to_string(getpid());
  for (const std::string& n : {dead, alive, std::string("other"), std::string("droce-smc-x")}) {
    ASSERT_EQ(::mkdir((dir + "/" + n).c_str(), 0755), 0) << n;
  }
  std::vector<std::string> kept;
  EXPECT_EQ(remove_stale(dir, &kept), std::vector<std::string>{dead});
  EXPECT_TRUE(kept.empty());
  EXPECT_FALSE(exists(dir + "/" + dead));
  EXPECT_TRUE(exists(dir + "/" + alive));
  EXPECT_TRUE(exists(dir + "/other"));
  EXPECT_TRUE(exists(dir + "/droce-smc-x"));
  // One that cannot go (here: not empty, as a cgroup with processes) is kept.
  const std::string busy = "droce-smc-" + std::to_string(dead_pid());
  ASSERT_EQ(::mkdir((dir + "/" + busy).c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((dir + "/" + busy + "/in").c_str(), 0755), 0);
  EXPECT_TRUE(remove_stale(dir, &kept).empty());
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(kept[0].rfind(busy, 0), 0u) << kept[0];
  for (const std::string& n :
       {busy + "/in", busy, alive, std::string("other"), std::string("droce-smc-x")}) {
    ::rmdir((dir + "/" + n).c_str());
  }
  ::rmdir(dir.c_str());
}

// --- as root, with a cgroup v2 hierarchy ---------------------------------

std::string skip_reason() {
  if (geteuid() != 0) return "needs root to load a BPF program and make a cgroup";
  if (cgroup2_mount(read_text("/proc/self/mountinfo")).empty())
    return "no cgroup v2 hierarchy is mounted";
  return "";
}

int listener(int* port) {
  const int l = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(l, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
  socklen_t sl = sizeof(sa);
  EXPECT_EQ(::getsockname(l, reinterpret_cast<sockaddr*>(&sa), &sl), 0);
  *port = ntohs(sa.sin_port);
  return l;
}

// Connects a fresh socket (marked first when t is given) to port; returns it.
int connect_to(int port, TcpOption* t) {
  const int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  std::string err;
  if (t != nullptr) {
    EXPECT_TRUE(t->mark(c, &err)) << err;
  }
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(uint16_t(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(c, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0) << strerror(errno);
  return c;
}

TEST(TcpOption, PeersSeeEachOthersOptionOnlyOnMarkedSockets) {
  if (const std::string why = skip_reason(); !why.empty()) GTEST_SKIP() << why;
  const std::string before = cgroup2_path(read_text("/proc/self/cgroup"));
  std::string why;
  std::shared_ptr<TcpOption> t = TcpOption::acquire(&why);
  ASSERT_NE(t, nullptr) << why;
  EXPECT_EQ(TcpOption::acquire(&why), t) << "one per process";
  const std::string name = "droce-smc-" + std::to_string(getpid());
  EXPECT_EQ(t->cgroup().substr(t->cgroup().size() - name.size()), name);
  EXPECT_TRUE(exists(t->cgroup()));
  EXPECT_NE(cgroup2_path(read_text("/proc/self/cgroup")).find(name), std::string::npos)
      << "moved into it";
  EXPECT_EQ(read_text(t->cgroup() + "/cgroup.procs"), std::to_string(getpid()) + "\n");

  int port = 0;
  const int marked_l = listener(&port);
  std::string err;
  ASSERT_TRUE(t->mark(marked_l, &err)) << err;
  ASSERT_EQ(::listen(marked_l, 8), 0);
  int plain_port = 0;
  const int plain_l = listener(&plain_port);
  ASSERT_EQ(::listen(plain_l, 8), 0);

  // Both ends marked: each sees the other's option.
  int c = connect_to(port, t.get());
  EXPECT_EQ(t->peer(c), TcpOption::Peer::kSmc) << "the SYN-ACK carried it";
  int a = ::accept(marked_l, nullptr, nullptr);
  ASSERT_GE(a, 0);
  EXPECT_EQ(t->peer(a, 1000), TcpOption::Peer::kSmc) << "the SYN carried it";
  ::close(a);
  ::close(c);

  // An unmarked client (any other socket): no option in its SYN, so none
  // in the SYN-ACK either, and the server knows.
  c = connect_to(port, nullptr);
  EXPECT_EQ(t->peer(c), TcpOption::Peer::kUnknown) << "not ours";
  a = ::accept(marked_l, nullptr, nullptr);
  ASSERT_GE(a, 0);
  EXPECT_EQ(t->peer(a, 1000), TcpOption::Peer::kNotSmc);
  ::close(a);
  ::close(c);

  // A marked client to an unmarked listener: the SYN-ACK lacks it.
  c = connect_to(plain_port, t.get());
  EXPECT_EQ(t->peer(c), TcpOption::Peer::kNotSmc);
  a = ::accept(plain_l, nullptr, nullptr);
  ASSERT_GE(a, 0);
  EXPECT_EQ(t->peer(a, 1000), TcpOption::Peer::kUnknown) << "not marked: nothing to wait for";
  ::close(a);
  ::close(c);
  ::close(marked_l);
  ::close(plain_l);

  const std::string cg = t->cgroup();
  t.reset();
  EXPECT_FALSE(exists(cg)) << "removed on release";
  EXPECT_EQ(cgroup2_path(read_text("/proc/self/cgroup")), before) << "back where it was";
}

TEST(TcpOption, ACrashedProcesssCgroupIsRemovedOnTheNextStart) {
  if (const std::string why = skip_reason(); !why.empty()) GTEST_SKIP() << why;
  int pipefd[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  const pid_t child = fork();
  if (child == 0) {
    std::string why;
    auto t = TcpOption::acquire(&why);
    const std::string cg = t != nullptr ? t->cgroup() : "";
    (void)!::write(pipefd[1], cg.data(), cg.size());
    ::close(pipefd[1]);
    raise(SIGKILL);  // a crash: no destructor, no atexit
    _exit(1);
  }
  ::close(pipefd[1]);
  char buf[512] = {};
  const ssize_t n = ::read(pipefd[0], buf, sizeof(buf) - 1);
  ::close(pipefd[0]);
  int st = 0;
  ASSERT_EQ(waitpid(child, &st, 0), child);
  ASSERT_TRUE(WIFSIGNALED(st));
  ASSERT_GT(n, 0) << "the child could not acquire the option";
  const std::string stale(buf, size_t(n));
  EXPECT_EQ(stale.substr(stale.rfind('/') + 1), "droce-smc-" + std::to_string(child));
  // The crash left the directory, unless a droce process running in
  // parallel (another test) started meanwhile and removed it already.

  std::string why;
  std::shared_ptr<TcpOption> t = TcpOption::acquire(&why);
  ASSERT_NE(t, nullptr) << why;
  EXPECT_FALSE(exists(stale)) << "the next start removed it";
  t.reset();
}

}  // namespace
}  // namespace droce::smc
