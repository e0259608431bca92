// Debian's perftest (ib_send_lat, ib_write_bw ...), unmodified, on the
// drop-in libibverbs between two processes joined by net_memif: each run
// passes on both sides and prints its result table line.
// Skipped (visibly) when perftest is absent, and in the sanitizer build: there
// the drop-in is ASan-instrumented and an uninstrumented program cannot load it.
//
// perftest checks for PORT_ACTIVE right after opening the device, before it
// talks to its peer over TCP. A net_memif link is up only once the client
// process has connected, so the server waits in ibv_open_device
// (DROCE_LINK_WAIT_MS) and listens on TCP only then; the client, whose link
// comes up at the same moment, lets it go first (droce's head start for the
// peer that was there first, verbs/device.cc). Should the client still reach
// its TCP connect first on a loaded machine (perftest does not retry:
// "Couldn't connect"), it is started again once the server listens, as a
// user would; the test reports the attempts.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <ostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/common/process.h"

namespace droce::test {
namespace {

constexpr int kRunTimeoutMs = 60000;
constexpr int kClientAttempts = 3;

bool have(const std::string& path) { return access(path.c_str(), X_OK) == 0; }

bool is_number(const std::string& w) {
  return !w.empty() && w.find_first_not_of("0123456789.") == std::string::npos;
}

// The data row of perftest's result table: first field the message size,
// second the iteration count, then `numbers` more numeric fields.
bool has_result_row(const std::string& out, const std::string& bytes, int iters, size_t numbers) {
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::vector<std::string> w;
    for (std::string x; words >> x;) w.push_back(x);
    if (w.size() != 2 + numbers || w[0] != bytes || w[1] != std::to_string(iters)) continue;
    bool ok = true;
    // perftest prints -nan for the deviation when its float sum goes negative.
    for (const std::string& x : w) ok = ok && (is_number(x) || x == "-nan" || x == "nan");
    if (ok) return true;
  }
  return false;
}

bool wait_until(const std::function<bool()>& cond, int timeout_ms) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!cond()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

// True once the memif server listens on sock: DPDK 22.11's memif uses an
// abstract socket by default (no file), listed in /proc/net/unix as "@sock".
bool unix_listening(const std::string& sock) {
  const std::string text = read_file("/proc/net/unix");
  return text.find(" @" + sock + "\n") != std::string::npos ||
         text.find(" " + sock + "\n") != std::string::npos;
}

struct PerftestCase {
  const char* program;  // in /usr/bin
  std::vector<std::string> args;
  int iters;
  const char* bytes;  // size column of the result row
  bool latency;       // latency table (7 figures) or bandwidth table (3)
  bool server_reports;  // the server prints the table too
};

void PrintTo(const PerftestCase& c, std::ostream* os) {
  *os << c.program;
  for (const std::string& a : c.args) *os << ' ' << a;
  *os << " -n " << c.iters;
}

struct PairRun {
  bool ok = false;
  int client_attempts = 0;
  std::string server, client;
};

PairRun run_pair(const PerftestCase& c) {
  PairRun r;
  TempDir dir;
  const std::string sock = dir.path() + "/memif.sock";
  const std::string tag =
      std::to_string(getpid()) + "-" +
      std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 100000);
  const std::string prefix_s = "droce-pt-s-" + tag, prefix_c = "droce-pt-c-" + tag;
  const int port = free_tcp_port();
  EXPECT_GT(port, 0);
  auto eal = [&](const std::string& prefix, const char* role) {
    return "--no-huge --no-pci -m 256 --no-telemetry --log-level=*:warning --file-prefix " +
           prefix + " --vdev=net_memif0,role=" + role + ",socket=" + sock;
  };
  std::vector<std::string> args = {std::string("/usr/bin/") + c.program, "-d", "droce0", "-x", "0",
                                   "-p", std::to_string(port), "-n", std::to_string(c.iters)};
  args.insert(args.end(), c.args.begin(), c.args.end());
  Process server, client;
  EXPECT_TRUE(start(args,
                    {{"LD_LIBRARY_PATH", dropin_lib_dir()},
                     {"DROCE_EAL_ARGS", eal(prefix_s, "server")},
                     {"DROCE_IPV4", "10.0.0.1"},
                     {"DROCE_LINK_WAIT_MS", "30000"}},
                    dir.path() + "/server.txt", &server));
  EXPECT_TRUE(wait_until([&] { return unix_listening(sock); }, 20000))
      << read_file(dir.path() + "/server.txt");
  args.push_back("127.0.0.1");
  bool client_done = false;
  for (int attempt = 1; attempt <= kClientAttempts; ++attempt) {
    r.client_attempts = attempt;
    client = Process();
    EXPECT_TRUE(start(args,
                      {{"LD_LIBRARY_PATH", dropin_lib_dir()},
                       {"DROCE_EAL_ARGS", eal(prefix_c, "client")},
                       {"DROCE_IPV4", "10.0.0.2"},
                       {"DROCE_LINK_WAIT_MS", "30000"}},
                      dir.path() + "/client.txt", &client));
    client_done = wait_for(&client, kRunTimeoutMs);
    r.client = read_file(dir.path() + "/client.txt");
    if (!client_done || r.client.find("Couldn't connect") == std::string::npos) break;
    // Lost the race to the server's listen (see the top of the file).
    EXPECT_TRUE(wait_until([&] { return tcp_listening(port); }, 20000));
  }
  const bool server_done = wait_for(&server, client_done ? 10000 : 1000);
  r.server = read_file(dir.path() + "/server.txt") + "[exit status " +
             std::to_string(server.exit_code) + (server_done ? "]" : ", killed after the timeout]");
  r.client += "[exit status " + std::to_string(client.exit_code) +
              (client_done ? "]" : ", killed after the timeout]") + " after " +
              std::to_string(r.client_attempts) + " attempt(s)";
  r.ok = client_done && server_done && client.exit_code == 0 && server.exit_code == 0;
  remove_dpdk_runtime_dir(prefix_s);
  remove_dpdk_runtime_dir(prefix_c);
  return r;
}

class Perftest : public ::testing::TestWithParam<PerftestCase> {};

TEST_P(Perftest, OverMemif) {
  const PerftestCase& c = GetParam();
  const std::string path = std::string("/usr/bin/") + c.program;
  if (sanitized_build()) {
    GTEST_SKIP() << "sanitizer build: the ASan drop-in cannot be loaded by " << path;
  }
  if (!have(path)) GTEST_SKIP() << path << " is not installed (package perftest)";
  ASSERT_FALSE(dropin_lib_dir().empty()) << "DROCE_BUILD_DIR is not set";
  const PairRun r = run_pair(c);
  EXPECT_TRUE(r.ok) << "server:\n" << r.server << "\nclient:\n" << r.client;
  const size_t figures = c.latency ? 7 : 3;
  const char* header = c.latency ? "t_min[usec]" : "BW average[MB/sec]";
  EXPECT_NE(r.client.find(header), std::string::npos) << r.client;
  EXPECT_TRUE(has_result_row(r.client, c.bytes, c.iters, figures)) << r.client;
  if (c.server_reports) {
    EXPECT_NE(r.server.find(header), std::string::npos) << r.server;
    EXPECT_TRUE(has_result_row(r.server, c.bytes, c.iters, figures)) << r.server;
  }
  EXPECT_NE(r.client.find("Device         : droce0"), std::string::npos) << r.client;
  EXPECT_NE(r.client.find("Link type       : Ethernet"), std::string::npos) << r.client;
  std::printf("server:\n%s\nclient:\n%s\n", r.server.c_str(), r.client.c_str());
}

std::string case_name(const ::testing::TestParamInfo<PerftestCase>& info) {
  std::string name = info.param.program + 3;  // without "ib_"
  for (const std::string& a : info.param.args) {
    name += '_';
    for (char ch : a) {
      if (std::isalnum(static_cast<unsigned char>(ch))) name += ch;
    }
  }
  return name;
}

// The default message sizes: 2 B for send/write/read latency, 8 B for
// atomics, 64 KiB for bandwidth (UD bandwidth: the path MTU).
INSTANTIATE_TEST_SUITE_P(
    Debian, Perftest,
    ::testing::Values(PerftestCase{"ib_send_lat", {}, 200, "2", true, true},
                      PerftestCase{"ib_send_lat", {"-c", "UD"}, 200, "2", true, true},
                      PerftestCase{"ib_send_lat", {"-s", "4096", "-e"}, 200, "4096", true, true},
                      PerftestCase{"ib_write_lat", {}, 200, "2", true, true},
                      PerftestCase{"ib_read_lat", {}, 200, "2", true, false},
                      PerftestCase{"ib_atomic_lat", {}, 200, "8", true, false},
                      PerftestCase{"ib_write_bw", {}, 200, "65536", false, true},
                      PerftestCase{"ib_write_bw", {"-c", "UC"}, 200, "65536", false, true},
                      PerftestCase{"ib_send_bw", {}, 200, "65536", false, true},
                      PerftestCase{"ib_send_bw", {"-c", "UD"}, 200, "1024", false, true},
                      PerftestCase{"ib_read_bw", {}, 200, "65536", false, true},
                      PerftestCase{"ib_atomic_bw", {}, 200, "8", false, true}),
    case_name);

}  // namespace
}  // namespace droce::test
