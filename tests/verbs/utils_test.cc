// Debian's ibverbs-utils, unmodified, on the drop-in libibverbs (issue 5
// section 4): ibv_devices and ibv_devinfo -v with LD_LIBRARY_PATH, and
// ibv_rc_pingpong between two processes joined by net_memif.
// Skipped (visibly) when the binaries are absent, and in the sanitizer build:
// there the drop-in is ASan-instrumented and an uninstrumented program
// cannot load it.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <ostream>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "tests/common/netns.h"
#include "tests/common/process.h"

namespace droce::test {
namespace {

constexpr int kToolTimeoutMs = 30000;
constexpr int kPingPongTimeoutMs = 90000;

bool have(const char* path) { return access(path, X_OK) == 0; }

// True when some line of text, split on whitespace, matches want word by
// word; "#" matches a number, "*" any word. (std::regex trips GCC 12's
// -Wmaybe-uninitialized under ASan.)
bool has_line(const std::string& text, const std::vector<std::string>& want) {
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::vector<std::string> got;
    for (std::string w; words >> w;) got.push_back(w);
    if (got.size() != want.size()) continue;
    bool ok = true;
    for (size_t i = 0; i < got.size() && ok; ++i) {
      if (want[i] == "*") continue;
      if (want[i] == "#") {
        ok = !got[i].empty() && got[i].find_first_not_of("0123456789.") == std::string::npos;
      } else {
        ok = got[i] == want[i];
      }
    }
    if (ok) return true;
  }
  return false;
}

#define SKIP_UNLESS_RUNNABLE(tool)                                                     \
  do {                                                                                 \
    if (sanitized_build()) {                                                           \
      GTEST_SKIP() << "sanitizer build: the ASan drop-in cannot be loaded by " tool;   \
    }                                                                                  \
    if (!have(tool)) GTEST_SKIP() << tool " is not installed (package ibverbs-utils)"; \
    ASSERT_FALSE(dropin_lib_dir().empty()) << "DROCE_BUILD_DIR is not set";            \
  } while (0)

// Runs a tool on the drop-in with the embedded default configuration.
std::string run_tool(const std::vector<std::string>& argv, int* exit_code) {
  TempDir dir;
  Process p;
  const std::map<std::string, std::string> env = {{"LD_LIBRARY_PATH", dropin_lib_dir()},
                                                  {"DROCE_EAL_ARGS", ""},
                                                  {"DROCE_IPV4", ""},
                                                  {"DROCE_MTU", ""},
                                                  {"DROCE_CAPTURE", ""}};
  if (!start(argv, env, dir.path() + "/out.txt", &p)) {
    *exit_code = -1;
    return "";
  }
  wait_for(&p, kToolTimeoutMs);
  *exit_code = p.exit_code;
  return read_file(p.output_path);
}

TEST(IbverbsUtils, DevicesListsDroce0) {
  SKIP_UNLESS_RUNNABLE("/usr/bin/ibv_devices");
  int rc = -1;
  const std::string out = run_tool({"/usr/bin/ibv_devices"}, &rc);
  EXPECT_EQ(rc, 0) << out;
  // "    droce0          	ec3645fffeac3c34": the node GUID is the MAC's EUI-64.
  std::istringstream lines(out);
  bool found = false;
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::string name, guid, rest;
    words >> name >> guid;
    if (name == "droce0" && !(words >> rest)) {
      found = guid.size() == 16 && guid.substr(6, 4) == "fffe" &&
              guid.find_first_not_of("0123456789abcdef") == std::string::npos;
    }
  }
  EXPECT_TRUE(found) << out;
}

TEST(IbverbsUtils, DevinfoShowsRoceV2Port) {
  SKIP_UNLESS_RUNNABLE("/usr/bin/ibv_devinfo");
  int rc = -1;
  const std::string out = run_tool({"/usr/bin/ibv_devinfo", "-v"}, &rc);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("hca_id:\tdroce0"), std::string::npos) << out;
  EXPECT_NE(out.find("transport:\t\t\tInfiniBand (0)"), std::string::npos) << out;
  EXPECT_NE(out.find("vendor_id:\t\t\t0xffffff"), std::string::npos) << out;
  EXPECT_NE(out.find("state:\t\t\tPORT_ACTIVE (4)"), std::string::npos) << out;
  EXPECT_NE(out.find("active_mtu:\t\t1024 (3)"), std::string::npos) << out;
  EXPECT_NE(out.find("link_layer:\t\tEthernet"), std::string::npos) << out;
  EXPECT_NE(out.find("GID[  0]:\t\t::ffff:10.77.0.1, RoCE v2"), std::string::npos) << out;
  // Only index 0 is populated.
  EXPECT_EQ(out.find("GID[  1]"), std::string::npos) << out;
}

TEST(IbverbsUtils, DevinfoNamesABadSetting) {
  SKIP_UNLESS_RUNNABLE("/usr/bin/ibv_devinfo");
  TempDir dir;
  Process p;
  ASSERT_TRUE(start({"/usr/bin/ibv_devinfo"},
                    {{"LD_LIBRARY_PATH", dropin_lib_dir()}, {"DROCE_IPV4", "10.0.0.300"}},
                    dir.path() + "/out.txt", &p));
  ASSERT_TRUE(wait_for(&p, kToolTimeoutMs));
  const std::string out = read_file(p.output_path);
  EXPECT_NE(p.exit_code, 0) << out;
  EXPECT_NE(out.find("DROCE_IPV4"), std::string::npos) << out;
  EXPECT_EQ(out.find("Aborted"), std::string::npos) << out;
}

// ---- the ABI: what the drop-in exports ----

// "VERSION name" for each symbol objdump -T lists as defined in path; hidden
// (non-default) versions, shown in parentheses, are left out.
std::set<std::string> exported(const std::string& path, std::string* soname) {
  TempDir dir;
  Process p;
  std::set<std::string> out;
  if (!start({"/usr/bin/objdump", "-T", "-p", path}, {}, dir.path() + "/t.txt", &p) ||
      !wait_for(&p, kToolTimeoutMs) || p.exit_code != 0) {
    return out;
  }
  std::istringstream lines(read_file(p.output_path));
  for (std::string line; std::getline(lines, line);) {
    std::istringstream w(line);
    std::vector<std::string> f;
    for (std::string x; w >> x;) f.push_back(x);
    if (f.size() == 2 && f[0] == "SONAME") *soname = f[1];
    if (f.size() < 4 || line.find("*UND*") != std::string::npos) continue;
    if (line.find(" DF ") == std::string::npos && line.find(" DO ") == std::string::npos) continue;
    const std::string& version = f[f.size() - 2];
    const std::string& name = f.back();
    if (version.rfind("IBVERBS", 0) == 0 && version != name) out.insert(version + " " + name);
  }
  return out;
}

// Every default-versioned symbol of rdma-core's libibverbs.so.1 (Debian 12:
// v44) is exported by the drop-in under the same version, so programs and the
// providers that DPDK's mlx PMDs pull in (loaded with BIND_NOW) resolve.
TEST(DropinAbi, ExportsWhatRdmaCoreExports) {
  const char* system_lib = "/usr/lib/x86_64-linux-gnu/libibverbs.so.1";
  if (!have("/usr/bin/objdump")) GTEST_SKIP() << "objdump (binutils) is not installed";
  if (access(system_lib, R_OK) != 0) GTEST_SKIP() << system_lib << " is not installed";
  ASSERT_FALSE(dropin_lib_dir().empty()) << "DROCE_BUILD_DIR is not set";
  std::string theirs_soname, ours_soname;
  const std::set<std::string> theirs = exported(system_lib, &theirs_soname);
  const std::set<std::string> ours = exported(dropin_lib_dir() + "/libibverbs.so.1", &ours_soname);
  ASSERT_GT(theirs.size(), 100u);
  EXPECT_EQ(ours_soname, "libibverbs.so.1");
  std::string missing;
  for (const std::string& s : theirs) {
    if (ours.count(s) == 0) missing += s + "\n";
  }
  EXPECT_TRUE(missing.empty()) << "not exported by the drop-in:\n" << missing;
  std::string extra;
  for (const std::string& s : ours) {
    if (theirs.count(s) == 0) extra += s + "\n";
  }
  // Only ibv_register_driver, which rdma-core keeps as a hidden compat symbol.
  EXPECT_EQ(extra, "IBVERBS_1.1 ibv_register_driver\n");
}

// ---- the pingpong examples over net_memif ----

struct PingPongResult {
  bool ok = false;
  std::string server, client;  // outputs, each ending with its exit status
};

// Server first (memif role=server listens on the socket; the program listens
// on TCP), then the client once the server's TCP port is up.
// as_nobody: both processes run as user nobody (setpriv), no capabilities.
// mtu: DROCE_MTU of both processes ("" for the default).
PingPongResult pingpong(const std::string& program, const std::vector<std::string>& extra,
                        bool as_nobody = false, const std::string& faults = "",
                        const std::string& mtu = "", const std::string& vdev_extra = "") {
  PingPongResult r;
  TempDir dir;
  // As nobody: dir open to all (the memif socket, DPDK's runtime files), and
  // the drop-in copied into it, since the build may sit where nobody cannot
  // read it (a checkout under /root).
  std::string lib_dir = dropin_lib_dir();
  if (as_nobody) {
    EXPECT_EQ(chmod(dir.path().c_str(), 0777), 0);
    lib_dir = dir.path() + "/lib";
    const std::string err = copy_for_nobody({dropin_lib_dir() + "/libibverbs.so.1"}, lib_dir);
    EXPECT_EQ(err, "");
    if (!err.empty()) return r;
  }
  const std::string sock = dir.path() + "/memif.sock";
  const std::string tag =
      std::to_string(getpid()) + "-" +
      std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 100000);
  const std::string prefix_s = "droce-pp-s-" + tag, prefix_c = "droce-pp-c-" + tag;
  const int port = free_tcp_port();
  EXPECT_GT(port, 0);
  auto eal = [&](const std::string& prefix, const char* role) {
    return "--no-huge --no-pci -m 256 --no-telemetry --log-level=*:warning --file-prefix " +
           prefix + " --vdev=net_memif0" + vdev_extra + ",role=" + role + ",socket=" + sock;
  };
  std::vector<std::string> args;
  if (as_nobody) args = as_nobody_argv();
  args.insert(args.end(), {program, "-g", "0", "-d", "droce0", "-p", std::to_string(port)});
  args.insert(args.end(), extra.begin(), extra.end());
  // An unprivileged DPDK keeps its runtime files in $XDG_RUNTIME_DIR or /tmp.
  const std::string xdg = as_nobody ? dir.path() : std::string();
  Process server, client;
  // The client starts only once the server listens on TCP, so the server must
  // not sit out DROCE_LINK_WAIT_MS in ibv_open_device for a memif peer that
  // cannot come yet: it opens with its link down (the programs do not mind).
  EXPECT_TRUE(start(args,
                    {{"LD_LIBRARY_PATH", lib_dir},
                     {"DROCE_EAL_ARGS", eal(prefix_s, "server")},
                     {"DROCE_LINK_WAIT_MS", "0"},
                     {"DROCE_IPV4", "10.0.0.1"},
                     {"DROCE_FAULTS", faults},
                     {"DROCE_LOG", faults.empty() ? "" : "1"},
                     {"DROCE_MTU", mtu},
                     {"XDG_RUNTIME_DIR", xdg}},
                    dir.path() + "/server.txt", &server));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!tcp_listening(port) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(tcp_listening(port)) << read_file(dir.path() + "/server.txt");
  args.push_back("127.0.0.1");
  EXPECT_TRUE(start(args,
                    {{"LD_LIBRARY_PATH", lib_dir},
                     {"DROCE_EAL_ARGS", eal(prefix_c, "client")},
                     {"DROCE_IPV4", "10.0.0.2"},
                     {"DROCE_FAULTS", faults},
                     {"DROCE_LOG", faults.empty() ? "" : "1"},
                     {"DROCE_MTU", mtu},
                     {"XDG_RUNTIME_DIR", xdg}},
                    dir.path() + "/client.txt", &client));
  const bool client_done = wait_for(&client, kPingPongTimeoutMs);
  const bool server_done = wait_for(&server, client_done ? 10000 : 1000);
  r.server = read_file(dir.path() + "/server.txt") + "[exit status " +
             std::to_string(server.exit_code) + (server_done ? "]" : ", killed after the timeout]");
  r.client = read_file(dir.path() + "/client.txt") + "[exit status " +
             std::to_string(client.exit_code) + (client_done ? "]" : ", killed after the timeout]");
  r.ok = client_done && server_done && client.exit_code == 0 && server.exit_code == 0;
  remove_dpdk_runtime_dir(prefix_s);
  remove_dpdk_runtime_dir(prefix_c);
  return r;
}

// "8192000 bytes in 0.21 seconds = 312.15 Mbit/sec" and
// "1000 iters in 0.21 seconds = 209.93 usec/iter".
void expect_result_lines(const std::string& out, int iters) {
  EXPECT_TRUE(has_line(out, {"#", "bytes", "in", "#", "seconds", "=", "#", "Mbit/sec"})) << out;
  EXPECT_TRUE(
      has_line(out, {std::to_string(iters), "iters", "in", "#", "seconds", "=", "#", "usec/iter"}))
      << out;
  EXPECT_NE(out.find("GID ::ffff:10.0.0."), std::string::npos) << out;
}

struct PingPongCase {
  const char* program;  // in /usr/bin
  std::vector<std::string> args;
  int iters;
};

void PrintTo(const PingPongCase& c, std::ostream* os) {
  *os << c.program;
  for (const std::string& a : c.args) *os << ' ' << a;
  *os << " -n " << c.iters;
}

class PingPong : public ::testing::TestWithParam<PingPongCase> {};

TEST_P(PingPong, OverMemif) {
  const PingPongCase& c = GetParam();
  const std::string path = std::string("/usr/bin/") + c.program;
  if (sanitized_build())
    GTEST_SKIP() << "sanitizer build: the ASan drop-in cannot be loaded by " << path;
  if (!have(path.c_str())) GTEST_SKIP() << path << " is not installed (package ibverbs-utils)";
  ASSERT_FALSE(dropin_lib_dir().empty()) << "DROCE_BUILD_DIR is not set";
  std::vector<std::string> extra = c.args;
  extra.push_back("-n");
  extra.push_back(std::to_string(c.iters));
  const PingPongResult r = pingpong(path, extra);
  EXPECT_TRUE(r.ok) << "server:\n" << r.server << "\nclient:\n" << r.client;
  expect_result_lines(r.server, c.iters);
  expect_result_lines(r.client, c.iters);
  std::printf("server:\n%s\nclient:\n%s\n", r.server.c_str(), r.client.c_str());
}

// No root and no capabilities needed: the same over memif as user nobody.
TEST(PingPongUnprivileged, RcOverMemifAsNobody) {
  const char* path = "/usr/bin/ibv_rc_pingpong";
  if (sanitized_build())
    GTEST_SKIP() << "sanitizer build: the ASan drop-in cannot be loaded by " << path;
  if (!have(path)) GTEST_SKIP() << path << " is not installed (package ibverbs-utils)";
  if (getuid() != 0) GTEST_SKIP() << "not root: the other pingpong tests already run unprivileged";
  if (!have("/usr/bin/setpriv")) GTEST_SKIP() << "/usr/bin/setpriv is not installed (package util-linux)";
  ASSERT_FALSE(dropin_lib_dir().empty()) << "DROCE_BUILD_DIR is not set";
  ASSERT_EQ(access(dropin_lib_dir().c_str(), R_OK | X_OK), 0);
  const PingPongResult r = pingpong(path, {"-s", "4096", "-c", "-n", "200"}, true);
  EXPECT_TRUE(r.ok) << "server:\n" << r.server << "\nclient:\n" << r.client;
  expect_result_lines(r.server, 200);
  expect_result_lines(r.client, 200);
}

// DROCE_FAULTS under an unmodified program: 5 % of the frames each side sends
// are dropped, RC retransmits, and the content check (-c) still passes.
// DROCE_MTU=9000 on both memif ports (9216-byte memif buffers): path MTU
// 4096 (-m 4096, which ibv_modify_qp refuses on a 1500-byte port), 64 KiB
// SENDs both ways, each 16 packets of 4096 bytes, with ACKs between them.
TEST(PingPongJumbo, RcAtPathMtu4096OverMemif) {
  const char* path = "/usr/bin/ibv_rc_pingpong";
  if (sanitized_build())
    GTEST_SKIP() << "sanitizer build: the ASan drop-in cannot be loaded by " << path;
  if (!have(path)) GTEST_SKIP() << path << " is not installed (package ibverbs-utils)";
  ASSERT_FALSE(dropin_lib_dir().empty()) << "DROCE_BUILD_DIR is not set";
  const PingPongResult r =
      pingpong(path, {"-m", "4096", "-s", "65536", "-n", "200", "-c"}, false, "", "9000",
               ",bsize=9216");
  EXPECT_TRUE(r.ok) << "server:\n" << r.server << "\nclient:\n" << r.client;
  expect_result_lines(r.server, 200);
  expect_result_lines(r.client, 200);
}

TEST(PingPongFaults, RcSurvivesFivePercentDrop) {
  const char* path = "/usr/bin/ibv_rc_pingpong";
  if (sanitized_build())
    GTEST_SKIP() << "sanitizer build: the ASan drop-in cannot be loaded by " << path;
  if (!have(path)) GTEST_SKIP() << path << " is not installed (package ibverbs-utils)";
  ASSERT_FALSE(dropin_lib_dir().empty()) << "DROCE_BUILD_DIR is not set";
  const PingPongResult r =
      pingpong(path, {"-s", "4096", "-c", "-n", "200"}, false, "drop=0.05,seed=7");
  EXPECT_TRUE(r.ok) << "server:\n" << r.server << "\nclient:\n" << r.client;
  EXPECT_NE(r.server.find("droce0: DROCE_FAULTS active on transmit"), std::string::npos)
      << r.server;
  EXPECT_NE(r.client.find("droce0: DROCE_FAULTS active on transmit"), std::string::npos)
      << r.client;
  expect_result_lines(r.server, 200);
  expect_result_lines(r.client, 200);
  std::printf("server:\n%s\nclient:\n%s\n", r.server.c_str(), r.client.c_str());
}

// ---- the pingpong examples over net_tap, through a kernel bridge ----

// rc_pingpong and ud_pingpong between two processes on net_tap devices
// joined by a Linux bridge inside a network namespace the test creates (and
// always deletes), so the RoCEv2 frames cross the kernel; tcpdump records the
// bridge and tshark must decode the RoCEv2 frames as InfiniBand, none malformed.
struct TapCase {
  const char* program;  // in /usr/bin
  std::vector<std::string> args;
  int iters;
  bool ud;
};

void PrintTo(const TapCase& c, std::ostream* os) {
  *os << c.program;
  for (const std::string& a : c.args) *os << ' ' << a;
  *os << " -n " << c.iters;
}

class PingPongTap : public ::testing::TestWithParam<TapCase> {};

// The threads of a program that did not finish, for the failure report: where
// a hung pair waits says more than its output (gdb when installed; it is not
// one of scripts/install-deps' packages).
std::string thread_stacks(const Process& p) {
  if (p.pid <= 0) return "(no process)\n";
  if (!have("/usr/bin/gdb")) return "(gdb is not installed: no stacks)\n";
  return command_output("timeout 60 /usr/bin/gdb -p " + std::to_string(p.pid) +
                        " -batch -nx -ex 'thread apply all bt 12' 2>&1 | grep -E '^(Thread|#)' | head -200");
}

// Every frame of the bridge capture, one line each, for the failure report.
std::string capture_listing(const std::string& pcap) {
  return command_output("tshark -r " + pcap +
                        " -T fields -E separator=' ' -e frame.time_relative -e eth.src -e eth.dst"
                        " -e arp.opcode -e arp.src.proto_ipv4 -e arp.dst.proto_ipv4 -e ip.src -e ip.dst"
                        " -e infiniband.bth.opcode -e infiniband.bth.destqp -e infiniband.bth.psn"
                        " 2>&1 | head -120");
}

// Once a process's tap port has started (the PMD sets the kernel side up),
// join it to the bridge. The tap PMD gives the kernel side the port's own MAC;
// a bridge treats its ports' addresses as local and would deliver frames for
// droce to the host instead of forwarding them, so the kernel side gets an
// address of its own first.
::testing::AssertionResult join_bridge(const Netns& ns, const std::string& tap,
                                       const std::string& mac, const Process& p) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!ns.link_up(tap)) {
    if (std::chrono::steady_clock::now() > deadline || p.pid < 0) {
      return ::testing::AssertionFailure()
             << tap << " did not come up\n" << read_file(p.output_path);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (ns.ip("link set " + tap + " address " + mac) != 0 ||
      ns.ip("link set " + tap + " master br0") != 0 || ns.ip("link set " + tap + " up") != 0) {
    return ::testing::AssertionFailure() << "could not join " << tap << " to br0";
  }
  return ::testing::AssertionSuccess();
}

TEST_P(PingPongTap, ThroughAKernelBridge) {
  const TapCase& c = GetParam();
  const std::string path = std::string("/usr/bin/") + c.program;
  if (sanitized_build())
    GTEST_SKIP() << "sanitizer build: the ASan drop-in cannot be loaded by " << path;
  if (!have(path.c_str())) GTEST_SKIP() << path << " is not installed (package ibverbs-utils)";
  for (const char* tool : {"/usr/bin/tcpdump", "/usr/bin/tshark", "/usr/bin/ip"}) {
    if (!have(tool)) GTEST_SKIP() << tool << " is not installed (scripts/install-deps)";
  }
  ASSERT_FALSE(dropin_lib_dir().empty()) << "DROCE_BUILD_DIR is not set";
  const std::string tag =
      std::to_string(getpid()) + "-" +
      std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 100000);
  // Declared before the namespace: its cleanups kill these processes.
  TempDir dir;
  Process dump, procs[2];  // tcpdump; the pingpong server and client
  Netns ns("droce-vt-" + tag);
  if (!ns.created()) {
    GTEST_SKIP() << "cannot create network namespace " << ns.name()
                 << " (needs root and netns support): " << ns.error() << "; net_tap pingpong not run";
  }
  ASSERT_FALSE(dir.path().empty());
  ASSERT_EQ(ns.ip("link set lo up"), 0);  // the programs' TCP exchange uses 127.0.0.1
  ASSERT_EQ(ns.ip("link add br0 type bridge"), 0);
  ASSERT_EQ(ns.ip("link set br0 up"), 0);

  // tcpdump keeps root (-Z root) to write into the test's private directory;
  // --immediate-mode so that no frame is left in a ring block at SIGINT, and
  // a 32 MiB buffer (-B) so that a busy machine does not make it drop any.
  const std::string pcap = dir.path() + "/bridge.pcap";
  std::vector<std::string> argv = ns.exec_argv();
  argv.insert(argv.end(), {"/usr/bin/tcpdump", "-i", "br0", "-w", pcap, "-U", "--immediate-mode",
                           "-Z", "root", "-B", "32768", "-s", "0", "udp port 4791 or arp"});
  ASSERT_TRUE(start(argv, {}, dir.path() + "/tcpdump.txt", &dump));
  ns.at_exit([&dump] { kill_and_reap(&dump); });
  const auto listening = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (read_file(dump.output_path).find("listening on br0") == std::string::npos &&
         std::chrono::steady_clock::now() < listening) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_NE(read_file(dump.output_path).find("listening on br0"), std::string::npos)
      << read_file(dump.output_path);

  // Known flaky start, cause not found (docs/status.md "PingPongTap"): now
  // and then, under a full ctest -j2, an RC pair's first SEND never crosses
  // the bridge (ARP unanswered, or no ACK) and both programs end with
  // "transport retry counter exceeded" before their first iteration. The
  // programs' output cannot tell at which iteration that happened, so any RC
  // run ending so is run again once, with new taps, as a user would; any
  // other failure, or a second one, fails the test.
  bool client_done = false, server_done = false, pair_ok = false;
  std::string server, client, hung_stacks;
  for (int attempt = 0; attempt < 2; ++attempt) {
    const int port = 18515 + attempt;  // the namespace is ours: nothing else listens in it
    const std::string sfx = tag.substr(tag.size() - 4) + (attempt == 0 ? "" : "r");
    const std::string tap[2] = {"dvta" + sfx, "dvtb" + sfx};
    const std::string prefix[2] = {"droce-vt-s-" + tag + "-" + std::to_string(attempt),
                                   "droce-vt-c-" + tag + "-" + std::to_string(attempt)};
    for (int i = 0; i < 2; ++i) {
      std::vector<std::string> args = ns.exec_argv();
      // Line-buffered, so that a run stopped by the test's timeout still shows
      // how far it got (local/remote address lines).
      args.insert(args.end(), {"/usr/bin/stdbuf", "-oL", path, "-g", "0", "-d", "droce0", "-p", std::to_string(port)});
      args.insert(args.end(), c.args.begin(), c.args.end());
      args.insert(args.end(), {"-n", std::to_string(c.iters)});
      if (i == 1) args.push_back("127.0.0.1");
      ASSERT_TRUE(start(args,
                        {{"LD_LIBRARY_PATH", dropin_lib_dir()},
                         {"DROCE_EAL_ARGS",
                          "--no-huge --no-pci -m 256 --no-telemetry --log-level=*:error "
                          "--file-prefix " +
                              prefix[i] + " --vdev=net_tap0,iface=" + tap[i]},
                         {"DROCE_IPV4", "10.0.0." + std::to_string(i + 1)},
                         {"DROCE_MTU", ""},
                         {"DROCE_CAPTURE", ""},
                         {"DROCE_FAULTS", ""}},
                        dir.path() + (i == 0 ? "/server.txt" : "/client.txt"), &procs[i]));
      ns.at_exit([p = &procs[i]] { kill_and_reap(p); });
      ns.at_exit([pre = prefix[i]] { remove_dpdk_runtime_dir(pre); });
      ASSERT_TRUE(join_bridge(ns, tap[i], "02:00:00:00:9a:0" + std::to_string(i + 1), procs[i]));
      if (i == 0) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (!tcp_listening(port, procs[0].pid) && procs[0].pid > 0 &&
               std::chrono::steady_clock::now() < deadline) {
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        ASSERT_TRUE(tcp_listening(port, procs[0].pid)) << read_file(procs[0].output_path);
      }
    }
    client_done = wait_for(&procs[1], kPingPongTimeoutMs);
    server_done = wait_for(&procs[0], client_done ? 10000 : 1000);
    if (!client_done || !server_done) {
      hung_stacks += "server threads:\n" + (server_done ? std::string("(exited)\n") : thread_stacks(procs[0]));
      hung_stacks += "client threads:\n" + (client_done ? std::string("(exited)\n") : thread_stacks(procs[1]));
    }
    server = read_file(procs[0].output_path);
    client = read_file(procs[1].output_path);
    pair_ok = client_done && server_done && procs[0].exit_code == 0 && procs[1].exit_code == 0;
    const std::string kRetryExceeded = "transport retry counter exceeded";
    if (pair_ok || attempt == 1 || c.ud || client.find(kRetryExceeded) == std::string::npos) break;
    std::printf("PingPongTap: the pair ended with %s; running it again once:\n"
                "server:\n%s\nclient:\n%s\n", kRetryExceeded.c_str(), server.c_str(), client.c_str());
    kill_and_reap(&procs[0]);
    kill_and_reap(&procs[1]);
  }
  EXPECT_TRUE(pair_ok) << "server (exit " << procs[0].exit_code << "):\n" << server
                       << "\nclient (exit " << procs[1].exit_code << "):\n" << client << hung_stacks;
  expect_result_lines(server, c.iters);
  expect_result_lines(client, c.iters);
  std::printf("server:\n%s\nclient:\n%s\n", server.c_str(), client.c_str());

  // tcpdump writes each frame as it takes it (-U); once the file stops
  // growing, SIGINT makes it exit with its summary.
  for (int stable = 0, waited = 0; stable < 3 && waited < 5000; waited += 100) {
    const auto before = std::filesystem::file_size(pcap);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    stable = std::filesystem::file_size(pcap) == before ? stable + 1 : 0;
  }
  kill(dump.pid, SIGINT);
  ASSERT_TRUE(wait_for(&dump, 10000)) << read_file(dump.output_path);
  const std::string summary = read_file(dump.output_path);
  EXPECT_NE(summary.find("\n0 packets dropped by kernel"), std::string::npos) << summary;
  if (!pair_ok) std::printf("the bridge's frames (seconds, MACs, ARP, IPs, BTH opcode, QPN, PSN):\n%s\n",
                            capture_listing(pcap).c_str());

  // One tshark pass: the BTH opcode and any malformed or error-level expert
  // item of every RoCEv2 frame on the bridge. The payload is the programs'
  // raw buffer; Wireshark's heuristic guess that it is RPC-over-RDMA (it takes
  // a 1-byte SEND for a broken RPC header and calls it malformed) is off.
  int st = -1;
  const std::string fields = command_output(
      "tshark -r " + pcap + " --disable-protocol rpcordma" +
          " -Y udp.port==4791 -T fields -E separator=, -e infiniband.bth.opcode "
          "-e _ws.malformed -e _ws.expert.severity 2>/dev/null",
      &st);
  EXPECT_EQ(st, 0);
  std::istringstream lines(fields);
  int roce = 0, sends = 0, undecoded = 0;
  std::string bad;
  for (std::string line; std::getline(lines, line);) {
    ++roce;
    std::vector<std::string> f;
    std::istringstream cols(line);
    for (std::string col; std::getline(cols, col, ',');) f.push_back(col);
    f.resize(3);
    if (f[0].empty()) ++undecoded;
    // Messages as their last packet: RC SEND_LAST 2, SEND_ONLY 4; UD SEND_ONLY 100.
    if (c.ud ? f[0] == "100" : (f[0] == "2" || f[0] == "4")) ++sends;
    // Expert severity: 0x800000 is PI_ERROR.
    if (!f[1].empty() || (!f[2].empty() && std::stol(f[2]) >= 0x800000)) bad += line + "\n";
  }
  // Each side sends one message per iteration (plus the client's first; RC
  // may retransmit); every one crossed the bridge.
  EXPECT_GE(sends, 2 * c.iters) << fields;
  if (c.ud) {
    EXPECT_LE(sends, 2 * c.iters + 1) << "UD never retransmits";
  }
  EXPECT_EQ(undecoded, 0) << "frames on UDP 4791 that tshark did not decode as InfiniBand\n"
                          << fields;
  EXPECT_EQ(bad, "") << "malformed or expert errors";
  std::printf("bridge capture: %d RoCEv2 frames, %d SEND messages, all decoded by tshark\n", roce,
              sends);
}

INSTANTIATE_TEST_SUITE_P(
    Debian, PingPongTap,
    ::testing::Values(TapCase{"ibv_rc_pingpong", {"-s", "4096", "-c"}, 200, false},
                      TapCase{"ibv_rc_pingpong", {"-s", "1", "-e"}, 200, false},
                      TapCase{"ibv_ud_pingpong", {"-s", "1024"}, 200, true},
                      TapCase{"ibv_ud_pingpong", {"-s", "1", "-e"}, 200, true}),
    [](const ::testing::TestParamInfo<TapCase>& info) {
      std::string name = info.param.program + 4;
      for (const std::string& a : info.param.args) {
        name += '_';
        for (char ch : a) {
          if (std::isalnum(static_cast<unsigned char>(ch))) name += ch;
        }
      }
      return name;
    });

std::string case_name(const ::testing::TestParamInfo<PingPongCase>& info) {
  std::string name = info.param.program + 4;  // without "ibv_"
  for (const std::string& a : info.param.args) {
    name += '_';
    for (char c : a) {
      if (std::isalnum(static_cast<unsigned char>(c))) name += c;
    }
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(
    Debian, PingPong,
    ::testing::Values(PingPongCase{"ibv_rc_pingpong", {"-s", "1"}, 500},
                      PingPongCase{"ibv_rc_pingpong", {"-s", "4096"}, 500},
                      PingPongCase{"ibv_rc_pingpong", {"-s", "1048576"}, 20},
                      PingPongCase{"ibv_rc_pingpong", {"-s", "1", "-c"}, 500},
                      PingPongCase{"ibv_rc_pingpong", {"-s", "4096", "-c"}, 500},
                      PingPongCase{"ibv_rc_pingpong", {"-s", "1", "-e"}, 500},
                      PingPongCase{"ibv_rc_pingpong", {"-s", "4096", "-e", "-c"}, 500},
                      PingPongCase{"ibv_rc_pingpong", {"-s", "4096", "-N"}, 500},
                      PingPongCase{"ibv_uc_pingpong", {"-s", "1"}, 500},
                      PingPongCase{"ibv_uc_pingpong", {"-s", "4096", "-e"}, 500},
                      PingPongCase{"ibv_ud_pingpong", {"-s", "1"}, 500},
                      PingPongCase{"ibv_ud_pingpong", {"-s", "1024", "-e"}, 500},
                      PingPongCase{"ibv_srq_pingpong", {"-s", "1"}, 500},
                      PingPongCase{"ibv_srq_pingpong", {"-s", "4096", "-e"}, 500}),
    case_name);

}  // namespace
}  // namespace droce::test
