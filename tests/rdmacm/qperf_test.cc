// Debian's unmodified qperf 0.4.11 with -cm1 (its RC tests connect through
// rdma_cm) on the drop-in librdmacm.so.1 and libibverbs.so.1, between two
// processes whose droce ports sit on the two ends of a veth pair (DPDK's
// net_af_packet) inside a network namespace the test creates.
//
// Why a veth pair and not net_memif: qperf's server opens the device only
// when a test request arrives, after the client has opened its own, so
// neither side can be a memif server that is there first. A veth link is up
// whatever the processes do.
//
// Why 127.0.0.1 and 127.0.0.2: qperf hands the host name of its TCP control
// connection (port 19765) to rdma_resolve_addr, so the droce addresses must
// also be reachable by kernel TCP. Loopback addresses are, on the
// namespace's lo, and the kernel drops 127/8 arriving on the veths as
// martians, so it never answers droce's ARP or RoCEv2 frames itself.
//
// Skipped (saying why) without root, ip or qperf, and in the sanitizer build,
// where the drop-ins are ASan-instrumented and qperf cannot load them.
// qperf's UD tests do not use the CM and cannot run on any RoCE device: a
// test checks that droce refuses them as such a device does.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <cstdlib>
#include <ostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/common/netns.h"
#include "tests/common/process.h"

namespace droce::test {
namespace {

constexpr int kQperfPort = 19765;  // qperf's default; the namespace is ours
constexpr int kAttempts = 3;

bool have(const std::string& path) { return access(path.c_str(), X_OK) == 0; }

struct QperfCase {
  const char* test;    // qperf's test name
  const char* figure;  // the result line's name: "latency", "bw", "msg_rate"
};
void PrintTo(const QperfCase& c, std::ostream* os) { *os << c.test; }

class RdmacmQperf : public ::testing::TestWithParam<QperfCase> {};

// qperf prints "    bw  =  344 MB/sec": the number after "name  =" on a
// line of its own, or -1 when absent.
double figure(const std::string& out, const std::string& name) {
  std::istringstream lines(out);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::string key, eq;
    double value = 0;
    if (words >> key >> eq >> value && key == name && eq == "=") return value;
  }
  return -1;
}

struct QperfRun {
  bool ran = false;  // false: skipped, *skip says why
  int exit_code = -1;
  int attempts = 0;
  std::string client, server;
};

// qperf's server on 127.0.0.1 (dqa) and its client on 127.0.0.2 (dqb) in a
// namespace of their own, the client with args (e.g. "-cm1 ... rc_lat").
QperfRun run_qperf(const std::vector<std::string>& args, std::string* skip) {
  QperfRun r;
  if (sanitized_build()) {
    *skip = "sanitizer build: the ASan drop-ins cannot be loaded by qperf";
    return r;
  }
  if (!have("/usr/bin/qperf")) {
    *skip = "/usr/bin/qperf is not installed (package qperf, scripts/install-deps)";
    return r;
  }
  if (!have("/usr/bin/ip")) {
    *skip = "/usr/bin/ip is not installed (package iproute2)";
    return r;
  }
  EXPECT_FALSE(dropin_lib_dir().empty()) << "DROCE_BUILD_DIR is not set";
  const std::string tag = std::to_string(getpid()) + "-" +
                          std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 100000);
  TempDir dir;
  Process server, client;  // declared before the namespace: its cleanups kill them
  Netns ns("droce-qp-" + tag);
  if (!ns.created()) {
    *skip = "cannot create network namespace " + ns.name() + " (needs root and netns support): " + ns.error() +
            "; qperf not run";
    return r;
  }
  r.ran = true;
  ns.at_exit([&] {
    kill_and_reap(&client);
    kill_and_reap(&server);
  });
  EXPECT_FALSE(dir.path().empty());
  EXPECT_EQ(ns.ip("link set lo up"), 0);
  // Interface indexes far apart: DPDK's af_packet joins a fanout group named
  // (pid ^ ifindex) & 0xffff, per namespace, and two processes started one
  // after the other (pids n, n+1) on neighbouring indexes can pick the same
  // group, which the kernel refuses (EINVAL) for sockets on another device.
  EXPECT_EQ(ns.ip("link add dqa index 1000 type veth peer name dqb index 3000"), 0);
  EXPECT_EQ(ns.ip("link set dqa up"), 0);
  EXPECT_EQ(ns.ip("link set dqb up"), 0);

  auto env = [&](const char* ip, const char* iface, const char* prefix) {
    return std::map<std::string, std::string>{
        {"LD_LIBRARY_PATH", dropin_lib_dir()},
        {"DROCE_EAL_ARGS", std::string("--no-huge --no-pci -m 256 --no-telemetry --log-level=*:error --file-prefix ") +
                               prefix + tag + " --vdev=net_af_packet0,iface=" + iface},
        {"DROCE_IPV4", ip},
        {"DROCE_MTU", ""},
        {"DROCE_CAPTURE", ""},
        {"DROCE_FAULTS", ""},
        {"DROCE_ENGINE_CPU", ""}};
  };
  std::vector<std::string> argv = ns.exec_argv();
  argv.push_back("/usr/bin/qperf");
  EXPECT_TRUE(start(argv, env("127.0.0.1", "dqa", "droce-qp-s-"), dir.path() + "/server.txt", &server));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!tcp_listening(kQperfPort, server.pid) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_TRUE(tcp_listening(kQperfPort, server.pid)) << read_file(dir.path() + "/server.txt");

  for (r.attempts = 1; r.attempts <= kAttempts; ++r.attempts) {
    client = Process();
    argv = ns.exec_argv();
    argv.push_back("/usr/bin/qperf");
    argv.insert(argv.end(), args.begin(), args.end());
    EXPECT_TRUE(start(argv, env("127.0.0.2", "dqb", "droce-qp-c-"), dir.path() + "/client.txt", &client));
    EXPECT_TRUE(wait_for(&client, 60000)) << read_file(dir.path() + "/client.txt");
    r.client = read_file(dir.path() + "/client.txt");
    // qperf 0.4.11 tells the client its port before its server's rdma_listen
    // (fixed later upstream, "Fix rdmacm race"): a fast client is rejected
    // with REJ 8, on a kernel device too, and a user starts it again.
    if (client.exit_code == 0 || r.client.find("Event rejected") == std::string::npos) break;
  }
  r.attempts = std::min(r.attempts, kAttempts);
  r.exit_code = client.exit_code;
  kill_and_reap(&server);
  r.server = read_file(dir.path() + "/server.txt");
  remove_dpdk_runtime_dir("droce-qp-s-" + tag);
  remove_dpdk_runtime_dir("droce-qp-c-" + tag);
  return r;
}

std::string describe(const QperfRun& r) {
  return "client (exit " + std::to_string(r.exit_code) + ", attempt " + std::to_string(r.attempts) + "):\n" +
         r.client + "\nserver:\n" + r.server;
}

TEST_P(RdmacmQperf, OverVethInNamespace) {
  const QperfCase& c = GetParam();
  std::string skip;
  const QperfRun r = run_qperf({"-cm1", "-t", "1", "127.0.0.1", c.test}, &skip);
  if (!r.ran) GTEST_SKIP() << skip;
  const std::string both = describe(r);
  EXPECT_EQ(r.exit_code, 0) << both;
  EXPECT_EQ(r.client.find("failed"), std::string::npos) << both;
  EXPECT_EQ(r.client.find("unexpected"), std::string::npos) << both;
  EXPECT_NE(r.client.find(std::string(c.test) + ":"), std::string::npos) << both;
  EXPECT_GT(figure(r.client, c.figure), 0) << c.figure << " missing or zero\n" << both;
  std::printf("%s\n", both.c_str());
}

// qperf 0.4.11's UD tests (which never use the CM) build their address
// handle with LID 0 and no GRH: no destination at all on RoCE, where every
// device refuses it (the kernel's rdma_check_ah_attr and rxe, mlx5's
// provider: EINVAL). droce refuses it the same way, with the error qperf
// reports on a kernel RoCE device.
TEST(RdmacmQperfUd, AddressHandleWithoutGrhIsRefusedAsOnRoce) {
  std::string skip;
  const QperfRun r = run_qperf({"-t", "1", "127.0.0.1", "ud_lat"}, &skip);
  if (!r.ran) GTEST_SKIP() << skip;
  const std::string both = describe(r);
  EXPECT_NE(r.exit_code, 0) << both;
  EXPECT_NE((r.client + r.server).find("failed to create address handle: Invalid argument"), std::string::npos)
      << both;
  EXPECT_EQ(figure(r.client, "latency"), -1) << both;
}

// Every RC test of qperf 0.4.11 (UC and UD ignore -cm1 and need a GRH that
// qperf only sets through the CM, so they fail on RoCE as on rxe).
const QperfCase kCases[] = {
    {"rc_lat", "latency"},          {"rc_bw", "bw"},
    {"rc_bi_bw", "bw"},             {"rc_rdma_write_lat", "latency"},
    {"rc_rdma_write_bw", "bw"},     {"rc_rdma_write_poll_lat", "latency"},
    {"rc_rdma_read_lat", "latency"}, {"rc_rdma_read_bw", "bw"},
    {"rc_compare_swap_mr", "msg_rate"}, {"rc_fetch_add_mr", "msg_rate"},
};

INSTANTIATE_TEST_SUITE_P(Debian, RdmacmQperf, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<QperfCase>& i) { return std::string(i.param.test); });

}  // namespace
}  // namespace droce::test
