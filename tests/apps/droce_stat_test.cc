// droce-stat and the /droce/* telemetry commands against a live process:
// stat_traffic (two devices, RC WRITEs between them, droce's default EAL
// arguments) is read twice while it runs, and the counters must have grown.
// Also: a wrong --file-prefix gives an error naming the socket path, and
// Debian's dpdk-telemetry.py shows /droce/ports.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "tests/apps/mini_json.h"
#include "tests/common/process.h"

namespace droce::test {
namespace {

std::string bin(const char* name) {
  const char* b = std::getenv("DROCE_BUILD_DIR");
  return b == nullptr ? std::string() : std::string(b) + "/" + name;
}

// Runs argv, returning its exit status and output.
int run(const std::vector<std::string>& argv, const std::string& out_path, std::string* out,
        const std::map<std::string, std::string>& env = {}) {
  Process p;
  if (!start(argv, env, out_path, &p)) return -1;
  const bool exited = wait_for(&p, 20000);
  *out = read_file(out_path);
  return exited ? p.exit_code : -2;
}

class LiveProcess : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(bin("bin").empty()) << "DROCE_BUILD_DIR is not set";
    // The embedded default EAL arguments: nothing in the environment chooses them.
    ASSERT_TRUE(start({bin("tests/stat_traffic"), "120"}, {{"DROCE_EAL_ARGS", ""}},
                      dir_.path() + "/traffic.txt", &traffic_));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (read_file(dir_.path() + "/traffic.txt").find("running") == std::string::npos &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_NE(read_file(dir_.path() + "/traffic.txt").find("running"), std::string::npos)
        << read_file(dir_.path() + "/traffic.txt");
  }
  // stat_traffic stops at SIGTERM and tears down: a sanitizer report
  // (a data race between the telemetry thread and an engine, a leak) fails it.
  void TearDown() override {
    if (traffic_.pid <= 0) return;
    kill(traffic_.pid, SIGTERM);
    EXPECT_TRUE(wait_for(&traffic_, 20000));
    EXPECT_EQ(traffic_.exit_code, 0) << read_file(dir_.path() + "/traffic.txt");
  }

  // droce-stat --json --pid <traffic>, parsed.
  Json stat_json() {
    std::string out;
    const int rc = run({bin("bin/droce-stat"), "--json", "--pid", std::to_string(traffic_.pid)},
                       dir_.path() + "/stat.txt", &out);
    EXPECT_EQ(rc, 0) << out;
    Json j;
    JsonParser p(out);
    EXPECT_TRUE(p.parse(&j)) << p.error() << "\n" << out;
    return j;
  }

  TempDir dir_;
  Process traffic_;
};

uint64_t qp_counter(const Json& stat, const std::string& port, const std::string& name) {
  const Json& qps = stat.at("qps").at(port);
  EXPECT_EQ(qps.obj.size(), 1u) << "port " << port;
  if (qps.obj.empty()) return 0;
  return qps.obj.begin()->second.at("counters").at(name).u64();
}

TEST_F(LiveProcess, CountersGrowBetweenTwoReads) {
  const Json first = stat_json();
  ASSERT_EQ(first.kind, Json::Kind::kObject);
  EXPECT_EQ(first.at("pid").u64(), uint64_t(traffic_.pid));
  EXPECT_EQ(first.at("file_prefix").str.rfind("droce-" + std::to_string(traffic_.pid) + "-", 0), 0u)
      << first.at("file_prefix").str;
  // Both devices of the process, each with its port, engine and drop counters.
  const Json& ports = first.at("ports");
  ASSERT_EQ(ports.obj.size(), 2u);
  std::map<std::string, std::string> port_of;  // device -> port id
  for (const auto& [id, p] : ports.obj) {
    port_of[p.at("device").str] = id;
    EXPECT_EQ(p.at("qps").u64(), 1u);
    EXPECT_EQ(p.at("link_up").u64(), 1u);
    for (const char* section : {"engine", "port", "parse_drops", "port_drops", "gsi"}) {
      EXPECT_EQ(p.at(section).kind, Json::Kind::kObject) << section;
    }
    EXPECT_TRUE(p.at("engine").has("rx_no_qp"));
    EXPECT_TRUE(p.at("gsi").has("rx_mads"));
    EXPECT_TRUE(p.at("parse_drops").has("bad_icrc"));
    EXPECT_TRUE(p.at("port_drops").has("not_our_mac"));
  }
  ASSERT_EQ(port_of.count("droce0"), 1u);
  ASSERT_EQ(port_of.count("droce1"), 1u);
  const std::string a = port_of["droce0"], b = port_of["droce1"];
  const Json& qa = first.at("qps").at(a);
  ASSERT_EQ(qa.obj.size(), 1u);
  EXPECT_EQ(qa.obj.begin()->second.at("type").str, "RC");
  EXPECT_EQ(qa.obj.begin()->second.at("state").str, "RTS");
  EXPECT_TRUE(qa.obj.begin()->second.at("counters").has("drop_bad_qkey"));

  // Traffic goes on: a second read sees more, on both sides.
  Json second;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  do {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    second = stat_json();
  } while (qp_counter(second, b, "rx_packets") <= qp_counter(first, b, "rx_packets") &&
           std::chrono::steady_clock::now() < deadline);
  EXPECT_GT(qp_counter(second, a, "tx_packets"), qp_counter(first, a, "tx_packets"));
  EXPECT_GT(qp_counter(second, b, "rx_packets"), qp_counter(first, b, "rx_packets"));
  EXPECT_GT(second.at("ports").at(a).at("port").at("tx_packets").u64(),
            first.at("ports").at(a).at("port").at("tx_packets").u64());
  EXPECT_GT(second.at("ports").at(b).at("port").at("rx_roce").u64(),
            first.at("ports").at(b).at("port").at("rx_roce").u64());
  EXPECT_GT(second.at("ports").at(a).at("engine").at("polls").u64(),
            first.at("ports").at(a).at("engine").at("polls").u64());
}

TEST_F(LiveProcess, HumanReadableByDefault) {
  std::string out;
  ASSERT_EQ(run({bin("bin/droce-stat"), "--pid", std::to_string(traffic_.pid)},
                dir_.path() + "/human.txt", &out),
            0)
      << out;
  EXPECT_NE(out.find("droce process " + std::to_string(traffic_.pid)), std::string::npos) << out;
  EXPECT_NE(out.find("droce0 on "), std::string::npos) << out;
  EXPECT_NE(out.find("droce1 on "), std::string::npos) << out;
  EXPECT_NE(out.find(": RC RTS -> qp "), std::string::npos) << out;
  EXPECT_NE(out.find("tx_packets "), std::string::npos) << out;
}

// Debian's client (package dpdk-dev) on the same socket.
TEST_F(LiveProcess, DpdkTelemetryPyShowsPorts) {
  const char* py = "/usr/bin/dpdk-telemetry.py";
  if (access(py, X_OK) != 0) GTEST_SKIP() << py << " is not installed (package dpdk-dev)";
  const Json stat = stat_json();
  const std::string prefix = stat.at("file_prefix").str;
  ASSERT_FALSE(prefix.empty());
  const std::string cmd = "echo /droce/ports | " + std::string(py) + " -f " + prefix + " > " +
                          dir_.path() + "/py.txt 2>&1";
  EXPECT_EQ(shell(cmd), 0) << read_file(dir_.path() + "/py.txt");
  const std::string out = read_file(dir_.path() + "/py.txt");
  Json j;
  JsonParser p(out);
  ASSERT_TRUE(p.parse(&j)) << p.error() << "\n" << out;
  EXPECT_EQ(j.at("/droce/ports").obj.size(), 2u) << out;
}

TEST(DroceStat, WrongPrefixNamesTheSocket) {
  ASSERT_FALSE(bin("bin").empty()) << "DROCE_BUILD_DIR is not set";
  TempDir dir;
  std::string out;
  const std::string prefix = "droce-stat-test-no-such-prefix-" + std::to_string(getpid());
  // A private runtime directory, so the path is known whoever runs the test.
  const int rc = run({bin("bin/droce-stat"), "--file-prefix", prefix}, dir.path() + "/out.txt",
                     &out, {{"RUNTIME_DIRECTORY", dir.path()}});
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find(dir.path() + "/dpdk/" + prefix + "/dpdk_telemetry.v2"), std::string::npos)
      << out;
  EXPECT_NE(out.find("No such file or directory"), std::string::npos) << out;
}

TEST(DroceStat, NothingRunningNamesTheDefaultSocket) {
  ASSERT_FALSE(bin("bin").empty()) << "DROCE_BUILD_DIR is not set";
  TempDir dir;
  std::string out;
  const int rc = run({bin("bin/droce-stat"), "--json"}, dir.path() + "/out.txt", &out,
                     {{"RUNTIME_DIRECTORY", dir.path()}});
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("no droce process found: nothing listens at " + dir.path() +
                     "/dpdk/rte/dpdk_telemetry.v2"),
            std::string::npos)
      << out;
}

TEST(DroceStat, BadArgumentsAreUsageErrors) {
  ASSERT_FALSE(bin("bin").empty()) << "DROCE_BUILD_DIR is not set";
  TempDir dir;
  std::string out;
  EXPECT_EQ(run({bin("bin/droce-stat"), "--frobnicate"}, dir.path() + "/out.txt", &out), 2) << out;
  EXPECT_NE(out.find("usage: droce-stat"), std::string::npos) << out;
}

}  // namespace
}  // namespace droce::test
