// Unmodified TCP programs on SMC-R (issue 13 section 3): Debian's iperf3,
// redis-server with redis-benchmark, and python3's http.server with curl,
// both ends under `droce-smc run` (libdroce-smc-preload.so) over net_memif;
// SMC-R must carry the connections (SMC_LOG says so). A program under the
// shim talking to one that is not gets TCP, its bytes intact. Skipped in the
// sanitizer build: an instrumented preload library cannot be loaded into an
// uninstrumented program.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <string>
#include <thread>

#include "tests/common/process.h"

namespace droce::test {
namespace {

std::string build_dir() {
  const char* b = std::getenv("DROCE_BUILD_DIR");
  return b != nullptr ? b : "";
}

bool wait_port(int port, int ms) {
  for (int i = 0; i < ms / 20; ++i) {
    if (tcp_listening(port)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

int count(const std::string& hay, const std::string& needle) {
  int n = 0;
  for (size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
  return n;
}

// Two programs over one memif link, each under the shim (or not).
class Pair {
 public:
  Pair() : tag_(std::to_string(getpid()) + "-" + std::to_string(++counter_)) {}
  ~Pair() {
    if (server_.pid > 0) {
      kill(server_.pid, SIGTERM);
      if (!wait_for(&server_, 10000)) ADD_FAILURE() << "server did not end on SIGTERM:\n" << server_log();
    }
    remove_dpdk_runtime_dir("pre-s-" + tag_);
    remove_dpdk_runtime_dir("pre-c-" + tag_);
  }
  std::map<std::string, std::string> env(const char* role, const char* ip) {
    return {{"DROCE_IPV4", ip},
            {"DROCE_LINK_WAIT_MS", std::string(role) == "server" ? "0" : "20000"},
            {"SMC_STAT_DIR", dir_.path()},
            {"SMC_LOG", "1"},
            {"DROCE_EAL_ARGS", std::string("--no-huge --no-pci -m 256 --no-telemetry --log-level=*:error ") +
                                   "--file-prefix pre-" + (std::string(role) == "server" ? "s-" : "c-") + tag_ +
                                   " --vdev=net_memif0,role=" + role + ",socket=" + dir_.path() + "/memif.sock"}};
  }
  std::vector<std::string> under_shim(std::vector<std::string> argv) {
    argv.insert(argv.begin(), {build_dir() + "/bin/droce-smc", "run"});
    return argv;
  }
  bool start_server(const std::vector<std::string>& argv, int port) {
    return start(argv, env("server", "10.0.0.1"), dir_.path() + "/server.txt", &server_) && wait_port(port, 20000);
  }
  // Runs the client to its end; its exit status (-1: killed after timeout_ms).
  int run_client(const std::vector<std::string>& argv, int timeout_ms) {
    Process c;
    if (!start(argv, env("client", "10.0.0.2"), dir_.path() + "/client.txt", &c)) return -2;
    return wait_for(&c, timeout_ms) ? c.exit_code : -1;
  }
  std::string server_log() { return read_file(dir_.path() + "/server.txt"); }
  std::string client_log() { return read_file(dir_.path() + "/client.txt"); }
  const std::string& dir() const { return dir_.path(); }

 private:
  static inline int counter_ = 0;
  TempDir dir_;
  std::string tag_;
  Process server_;
};

class SmcPreload : public ::testing::Test {
 protected:
  void SetUp() override {
    if (sanitized_build()) {
      GTEST_SKIP() << "the sanitizer build's preload library cannot be loaded into uninstrumented programs";
    }
    ASSERT_FALSE(build_dir().empty()) << "DROCE_BUILD_DIR is not set";
    ASSERT_EQ(access((build_dir() + "/lib/libdroce-smc-preload.so").c_str(), R_OK), 0);
  }
};

// iperf3's JSON result: bits per second received.
double iperf_bps(const std::string& log) {
  const std::string key = "\"sum_received\":";
  const size_t p = log.find(key);
  if (p == std::string::npos) return 0;
  const size_t b = log.find("\"bits_per_second\":", p);
  return b == std::string::npos ? 0 : std::atof(log.c_str() + b + 18);
}

TEST_F(SmcPreload, Iperf3BothEndsUnderTheShim) {
  if (access("/usr/bin/iperf3", X_OK) != 0) GTEST_SKIP() << "iperf3 is missing (scripts/install-deps installs it)";
  double smc_bps = 0, tcp_bps = 0;
  {
    Pair p;
    const int port = free_tcp_port();
    ASSERT_TRUE(p.start_server(p.under_shim({"/usr/bin/iperf3", "-s", "-1", "-B", "127.0.0.1", "-p",
                                             std::to_string(port)}),
                               port))
        << p.server_log();
    ASSERT_EQ(p.run_client(p.under_shim({"/usr/bin/iperf3", "-c", "127.0.0.1", "-p", std::to_string(port), "-t", "2",
                                         "-J"}),
                           120000),
              0)
        << p.client_log() << "\nserver:\n" << p.server_log();
    const std::string log = p.client_log();
    // The control connection and the data connection both on SMC-R.
    EXPECT_GE(count(log, "client: SMC-Rv2 connection"), 2) << log;
    EXPECT_EQ(count(log, "falling back to TCP"), 0) << log;
    smc_bps = iperf_bps(log);
    EXPECT_GT(smc_bps, 0) << log;
  }
  {
    // The same run of plain kernel TCP, for the figure beside it.
    Pair p;
    const int port = free_tcp_port();
    ASSERT_TRUE(p.start_server({"/usr/bin/iperf3", "-s", "-1", "-B", "127.0.0.1", "-p", std::to_string(port)}, port));
    ASSERT_EQ(p.run_client({"/usr/bin/iperf3", "-c", "127.0.0.1", "-p", std::to_string(port), "-t", "2", "-J"},
                           60000),
              0);
    tcp_bps = iperf_bps(p.client_log());
  }
  std::printf("iperf3 -t 2: SMC-R over memif %.2f Gbit/s, kernel TCP loopback %.2f Gbit/s (ratio %.3f)\n",
              smc_bps / 1e9, tcp_bps / 1e9, tcp_bps > 0 ? smc_bps / tcp_bps : 0);
}

TEST_F(SmcPreload, RedisBenchmarkAgainstRedisServer) {
  if (access("/usr/bin/redis-server", X_OK) != 0 || access("/usr/bin/redis-benchmark", X_OK) != 0) {
    GTEST_SKIP() << "redis-server / redis-benchmark missing (scripts/install-deps installs them)";
  }
  Pair p;
  const int port = free_tcp_port();
  ASSERT_TRUE(p.start_server(p.under_shim({"/usr/bin/redis-server", "--port", std::to_string(port), "--bind",
                                           "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", p.dir()}),
                             port))
      << p.server_log();
  ASSERT_EQ(p.run_client(p.under_shim({"/usr/bin/redis-benchmark", "-p", std::to_string(port), "-n", "2000", "-c", "4",
                                       "-t", "set,get", "-q"}),
                         180000),
            0)
      << p.client_log() << "\nserver:\n" << p.server_log();
  const std::string log = p.client_log();
  EXPECT_NE(log.find("SET:"), std::string::npos) << log;
  EXPECT_NE(log.find("GET:"), std::string::npos) << log;
  EXPECT_GE(count(log, "client: SMC-Rv2 connection"), 4) << log;
  EXPECT_EQ(count(log, "falling back to TCP"), 0) << log;
}

TEST_F(SmcPreload, CurlFetchesFromPythonHttpServer) {
  if (access("/usr/bin/python3", X_OK) != 0 || access("/usr/bin/curl", X_OK) != 0) {
    GTEST_SKIP() << "python3 / curl missing (scripts/install-deps installs them)";
  }
  Pair p;
  // A 3 MiB file of known bytes to serve.
  std::string body(3 << 20, '\0');
  for (size_t i = 0; i < body.size(); ++i) body[i] = char('a' + (i * 7919) % 26);
  { std::ofstream(p.dir() + "/file.bin", std::ios::binary) << body; }
  const int port = free_tcp_port();
  ASSERT_TRUE(p.start_server(p.under_shim({"/usr/bin/python3", "-m", "http.server", "--bind", "127.0.0.1",
                                           "--directory", p.dir(), std::to_string(port)}),
                             port))
      << p.server_log();
  const std::string out = p.dir() + "/fetched.bin";
  ASSERT_EQ(p.run_client(p.under_shim({"/usr/bin/curl", "-sS", "-o", out,
                                       "http://127.0.0.1:" + std::to_string(port) + "/file.bin"}),
                         120000),
            0)
      << p.client_log() << "\nserver:\n" << p.server_log();
  EXPECT_TRUE(read_file(out) == body) << "the fetched file differs";
  EXPECT_GE(count(p.client_log(), "client: SMC-Rv2 connection"), 1) << p.client_log();
  EXPECT_GE(count(p.server_log(), "server: SMC-Rv2 connection"), 1) << p.server_log();
}

// Only one end under the shim: TCP, nothing broken, the reason said.
TEST_F(SmcPreload, OneEndWithoutTheShimGetsTcp) {
  if (access("/usr/bin/python3", X_OK) != 0 || access("/usr/bin/curl", X_OK) != 0) {
    GTEST_SKIP() << "python3 / curl missing (scripts/install-deps installs them)";
  }
  std::string body(200000, 'x');
  {
    // curl under the shim, the server not: no Proposal is sent at all.
    Pair p;
    { std::ofstream(p.dir() + "/f", std::ios::binary) << body; }
    const int port = free_tcp_port();
    ASSERT_TRUE(p.start_server({"/usr/bin/python3", "-m", "http.server", "--bind", "127.0.0.1", "--directory", p.dir(),
                                std::to_string(port)},
                               port));
    const std::string out = p.dir() + "/got";
    ASSERT_EQ(p.run_client(p.under_shim({"/usr/bin/curl", "-sS", "-o", out,
                                         "http://127.0.0.1:" + std::to_string(port) + "/f"}),
                           60000),
              0)
        << p.client_log();
    EXPECT_TRUE(read_file(out) == body);
    EXPECT_NE(p.client_log().find("falling back to TCP: peer has not signalled SMC capability (03010000)"),
              std::string::npos)
        << p.client_log();
  }
  {
    // The server under the shim, curl not: the server sees no Proposal.
    Pair p;
    { std::ofstream(p.dir() + "/f", std::ios::binary) << body; }
    const int port = free_tcp_port();
    ASSERT_TRUE(p.start_server(p.under_shim({"/usr/bin/python3", "-m", "http.server", "--bind", "127.0.0.1",
                                             "--directory", p.dir(), std::to_string(port)}),
                               port));
    const std::string out = p.dir() + "/got";
    ASSERT_EQ(p.run_client({"/usr/bin/curl", "-sS", "-o", out, "http://127.0.0.1:" + std::to_string(port) + "/f"},
                           60000),
              0)
        << p.client_log();
    EXPECT_TRUE(read_file(out) == body);
    EXPECT_NE(p.server_log().find("falling back to TCP: peer has not signalled SMC capability (03010000)"),
              std::string::npos)
        << p.server_log();
  }
}

}  // namespace
}  // namespace droce::test
