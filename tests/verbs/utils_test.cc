// Debian's ibverbs-utils, unmodified, on the drop-in libibverbs (issue 5
// section 4): ibv_devices and ibv_devinfo -v with LD_LIBRARY_PATH, and
// ibv_rc_pingpong between two processes joined by net_memif.
// Skipped (visibly) when the binaries are absent, and in the sanitizer build:
// there the drop-in is ASan-instrumented and an uninstrumented program
// cannot load it.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <ostream>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "tests/verbs/process.h"

namespace droce::verbs::test {
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
PingPongResult pingpong(const std::string& program, const std::vector<std::string>& extra,
                        bool as_nobody = false, const std::string& faults = "") {
  PingPongResult r;
  TempDir dir;
  if (as_nobody) chmod(dir.path().c_str(), 0777);
  const std::string sock = dir.path() + "/memif.sock";
  const std::string tag =
      std::to_string(getpid()) + "-" +
      std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 100000);
  const std::string prefix_s = "droce-pp-s-" + tag, prefix_c = "droce-pp-c-" + tag;
  const int port = free_tcp_port();
  EXPECT_GT(port, 0);
  auto eal = [&](const std::string& prefix, const char* role) {
    return "--no-huge --no-pci -m 256 --no-telemetry --log-level=*:warning --file-prefix " +
           prefix + " --vdev=net_memif0,role=" + role + ",socket=" + sock;
  };
  std::vector<std::string> args;
  if (as_nobody) {
    args = {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"};
  }
  args.insert(args.end(), {program, "-g", "0", "-d", "droce0", "-p", std::to_string(port)});
  args.insert(args.end(), extra.begin(), extra.end());
  // An unprivileged DPDK keeps its runtime files in $XDG_RUNTIME_DIR or /tmp.
  const std::string xdg = as_nobody ? dir.path() : std::string();
  Process server, client;
  EXPECT_TRUE(start(args,
                    {{"LD_LIBRARY_PATH", dropin_lib_dir()},
                     {"DROCE_EAL_ARGS", eal(prefix_s, "server")},
                     {"DROCE_IPV4", "10.0.0.1"},
                     {"DROCE_FAULTS", faults},
                     {"DROCE_LOG", faults.empty() ? "" : "1"},
                     {"XDG_RUNTIME_DIR", xdg}},
                    dir.path() + "/server.txt", &server));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!tcp_listening(port) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(tcp_listening(port)) << read_file(dir.path() + "/server.txt");
  args.push_back("127.0.0.1");
  EXPECT_TRUE(start(args,
                    {{"LD_LIBRARY_PATH", dropin_lib_dir()},
                     {"DROCE_EAL_ARGS", eal(prefix_c, "client")},
                     {"DROCE_IPV4", "10.0.0.2"},
                     {"DROCE_FAULTS", faults},
                     {"DROCE_LOG", faults.empty() ? "" : "1"},
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
  if (!have("/usr/bin/setpriv")) GTEST_SKIP() << "setpriv (util-linux) is not installed";
  ASSERT_FALSE(dropin_lib_dir().empty()) << "DROCE_BUILD_DIR is not set";
  ASSERT_EQ(access(dropin_lib_dir().c_str(), R_OK | X_OK), 0);
  const PingPongResult r = pingpong(path, {"-s", "4096", "-c", "-n", "200"}, true);
  EXPECT_TRUE(r.ok) << "server:\n" << r.server << "\nclient:\n" << r.client;
  expect_result_lines(r.server, 200);
  expect_result_lines(r.client, 200);
}

// DROCE_FAULTS under an unmodified program: 5 % of the frames each side sends
// are dropped, RC retransmits, and the content check (-c) still passes.
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
}  // namespace droce::verbs::test
