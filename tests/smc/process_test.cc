// droce-smc between two processes joined by net_memif, CLC on 127.0.0.1
// (issue 10 sections 3 and 4): 256 MiB verified byte for byte both ways,
// also on a lossy link; pingpong; the fallbacks (server without SMC, UEID
// mismatch) with their Linux reason codes on both sides; `droce-smc stat`
// of a running server.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <string>
#include <thread>

#include "tests/apps/mini_json.h"

#include "tests/common/process.h"

namespace droce::test {
namespace {

Json parse_json(const std::string& text) {
  Json j;
  JsonParser parser(text);
  EXPECT_TRUE(parser.parse(&j)) << text;
  return j;
}

std::string droce_smc() {
  const char* b = std::getenv("DROCE_BUILD_DIR");
  return b != nullptr ? std::string(b) + "/bin/droce-smc" : "";
}

bool wait_output(const std::string& path, const std::string& needle, int ms) {
  for (int i = 0; i < ms / 10; ++i) {
    if (read_file(path).find(needle) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

// A droce-smc server and client over one memif link.
class SmcPair {
 public:
  explicit SmcPair(std::map<std::string, std::string> server_env = {},
                   std::map<std::string, std::string> client_env = {}, std::vector<std::string> server_args = {}) {
    tag_ = std::to_string(getpid()) + "-" + std::to_string(++counter_);
    port_ = free_tcp_port();
    auto env = [&](const char* role, const char* ip, std::map<std::string, std::string> extra) {
      std::map<std::string, std::string> e = {
          {"DROCE_IPV4", ip},
          {"DROCE_LINK_WAIT_MS", std::string(role) == "server" ? "0" : "20000"},
          {"SMC_STAT_DIR", dir_.path()},
          {"SMC_CLC_WAIT_MS", "1500"},
          {"DROCE_EAL_ARGS", std::string("--no-huge --no-pci -m 256 --no-telemetry --log-level=*:warning ") +
                                 "--file-prefix smc-" + role + "-" + tag_ + " --vdev=net_memif0,role=" + role +
                                 ",socket=" + dir_.path() + "/memif.sock"}};
      for (auto& [k, v] : extra) e[k] = v;
      return e;
    };
    client_env_ = env("client", "10.0.0.2", client_env);
    std::vector<std::string> args = {droce_smc(), "server", "--port", std::to_string(port_)};
    args.insert(args.end(), server_args.begin(), server_args.end());
    started_ = start(args, env("server", "10.0.0.1", server_env), dir_.path() + "/server.txt", &server_) &&
               wait_output(dir_.path() + "/server.txt", "listening", 20000);
  }
  ~SmcPair() {
    if (server_.pid > 0) {
      kill(server_.pid, SIGTERM);
      if (!wait_for(&server_, 10000)) ADD_FAILURE() << "server did not end on SIGTERM";
    }
    remove_dpdk_runtime_dir("smc-server-" + tag_);
    remove_dpdk_runtime_dir("smc-client-" + tag_);
  }
  bool started() const { return started_; }
  const std::string& dir() const { return dir_.path(); }
  std::string server_output() { return read_file(dir_.path() + "/server.txt"); }

  // Runs the client; its JSON line, or "" (with the output in *log).
  std::string client(std::vector<std::string> args, int timeout_ms, std::string* log) {
    std::vector<std::string> argv = {droce_smc(), "client", "--connect", "127.0.0.1:" + std::to_string(port_),
                                     "--json"};
    argv.insert(argv.end(), args.begin(), args.end());
    Process c;
    const std::string out = dir_.path() + "/client.txt";
    if (!start(argv, client_env_, out, &c)) return "";
    const bool done = wait_for(&c, timeout_ms);
    *log = read_file(out) + (done ? "" : "[killed after the timeout]") + "\nserver:\n" + server_output();
    if (!done || c.exit_code != 0) return "";
    const size_t b = log->find('{');
    const size_t e = log->find('\n', b);
    return b == std::string::npos ? "" : log->substr(b, e - b);
  }

  std::string stat(bool json) {
    Process s;
    const std::string out = dir_.path() + "/stat.txt";
    std::vector<std::string> argv = {droce_smc(), "stat"};
    if (json) argv.push_back("--json");
    if (!start(argv, {{"SMC_STAT_DIR", dir_.path()}}, out, &s) || !wait_for(&s, 10000)) return "";
    return read_file(out);
  }

 private:
  static inline int counter_ = 0;
  TempDir dir_;
  std::string tag_;
  int port_ = 0;
  bool started_ = false;
  Process server_;
  std::map<std::string, std::string> client_env_;
};

TEST(SmcProcess, Echo256MiBVerified) {
  SmcPair p;
  ASSERT_TRUE(p.started()) << p.server_output();
  std::string log;
  const std::string js = p.client({"--mode", "echo", "--bytes", "256M", "--size", "64K"}, 240000, &log);
  ASSERT_FALSE(js.empty()) << log;
  const auto v = parse_json(js);
  EXPECT_EQ(v.at("transport").str, "smc") << js;
  EXPECT_EQ(v.at("verified").b, true) << js;
  EXPECT_EQ(v.at("bytes").num, double(256 << 20)) << js;
  EXPECT_GT(v.at("MBps").num, 0) << js;
}

TEST(SmcProcess, Echo256MiBVerifiedOnALossyLink) {
  SmcPair p({{"DROCE_FAULTS", "drop=0.01,seed=3"}}, {{"DROCE_FAULTS", "drop=0.01,seed=4"}});
  ASSERT_TRUE(p.started()) << p.server_output();
  std::string log;
  const std::string js = p.client({"--mode", "echo", "--bytes", "256M", "--size", "64K"}, 400000, &log);
  ASSERT_FALSE(js.empty()) << log;
  const auto v = parse_json(js);
  EXPECT_EQ(v.at("transport").str, "smc") << js;
  EXPECT_EQ(v.at("verified").b, true) << js;
}

TEST(SmcProcess, PingpongAndStreamReportTheirFigures) {
  SmcPair p;
  ASSERT_TRUE(p.started()) << p.server_output();
  std::string log;
  std::string js = p.client({"--mode", "pingpong", "--bytes", "2000", "--size", "1"}, 120000, &log);
  ASSERT_FALSE(js.empty()) << log;
  auto v = parse_json(js);
  EXPECT_EQ(v.at("transport").str, "smc");
  EXPECT_EQ(v.at("iterations").num, 2000);
  EXPECT_GT(v.at("p50_us").num, 0);
  EXPECT_GE(v.at("p99_us").num, v.at("p50_us").num);
  js = p.client({"--mode", "stream", "--bytes", "64M", "--size", "64K"}, 120000, &log);
  ASSERT_FALSE(js.empty()) << log;
  v = parse_json(js);
  EXPECT_EQ(v.at("transport").str, "smc");
  EXPECT_GT(v.at("MBps").num, 0);
  EXPECT_EQ(v.at("ok").b, true);
}

// A client that does not propose SMC (plain TCP): the server peeks, finds
// no Proposal, serves plain TCP and counts the fallback.
TEST(SmcProcess, PlainTcpClientIsServedAsTcp) {
  SmcPair p;
  ASSERT_TRUE(p.started()) << p.server_output();
  std::string log;
  const std::string js =
      p.client({"--mode", "echo", "--bytes", "1M", "--size", "4K", "--transport", "tcp"}, 60000, &log);
  ASSERT_FALSE(js.empty()) << log;
  const auto v = parse_json(js);
  EXPECT_EQ(v.at("transport").str, "tcp") << js;
  EXPECT_EQ(v.at("verified").b, true) << js;
  const std::string st = p.stat(true);
  const auto s = parse_json(st);
  ASSERT_EQ(s.at("processes").arr.size(), 1u) << st;
  EXPECT_EQ(s.at("processes").arr.at(0).at("fallbacks").at("03010000").at("count").num, 1) << st;
}

TEST(SmcProcess, UeidMismatchDeclinesWithLinuxCodes) {
  SmcPair p({{"SMC_UEID", "SERVER-SIDE"}}, {{"SMC_UEID", "CLIENT-SIDE"}});
  ASSERT_TRUE(p.started()) << p.server_output();
  std::string log;
  const std::string js = p.client({"--mode", "echo", "--bytes", "1M", "--size", "4K"}, 60000, &log);
  ASSERT_FALSE(js.empty()) << log;
  const auto v = parse_json(js);
  EXPECT_EQ(v.at("transport").str, "tcp") << js;
  EXPECT_EQ(v.at("fallback_reason").str, "05000000") << js;  // peer declined
  EXPECT_EQ(v.at("peer_diagnosis").str, "03030000") << js;   // as Linux 6.1 (B6)
  EXPECT_EQ(v.at("verified").b, true) << "the fallback carries the data";
  // The server's side of it, as `droce-smc stat` shows it.
  const std::string st = p.stat(true);
  const auto s = parse_json(st);
  ASSERT_EQ(s.at("processes").arr.size(), 1u) << st;
  EXPECT_EQ(s.at("processes").arr.at(0).at("fallbacks").at("03030000").at("count").num, 1) << st;
}

TEST(SmcProcess, StatShowsLinkGroupsLinksAndConnections) {
  SmcPair p;
  ASSERT_TRUE(p.started()) << p.server_output();
  // A long pingpong keeps a connection open while stat looks.
  std::string log, js;
  std::thread t([&] { js = p.client({"--mode", "pingpong", "--bytes", "20000", "--size", "1"}, 120000, &log); });
  // Until stat shows the connection on an active link: the connection is
  // listed from the CLC Accept on, and stat renders a group's links before
  // its connections, so one snapshot can catch the link still in INIT.
  std::string st;
  bool seen = false;
  for (int i = 0; i < 100 && !seen; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    st = p.stat(true);
    if (st.find("\"connections\":[{") == std::string::npos) continue;
    const auto g = parse_json(st).at("processes").arr.at(0).at("link_groups").arr.at(0);
    seen = g.at("links").arr.at(0).at("state").str == "active" &&
           g.at("connections").arr.at(0).at("state").str == "ACTIVE";
  }
  const std::string text = p.stat(false);
  t.join();
  ASSERT_TRUE(seen) << st;
  const auto s = parse_json(st);
  const auto& g = s.at("processes").arr.at(0).at("link_groups").arr.at(0);
  EXPECT_EQ(g.at("role").str, "server");
  EXPECT_EQ(g.at("version").num, 2);
  EXPECT_EQ(g.at("links").arr.at(0).at("state").str, "active");
  EXPECT_GT(g.at("links").arr.at(0).at("qpn").num, 0);
  EXPECT_EQ(g.at("connections").arr.at(0).at("state").str, "ACTIVE");
  EXPECT_EQ(g.at("connections").arr.at(0).at("mode").str, "SMCR-v2");
  EXPECT_NE(text.find("link group"), std::string::npos) << text << "\n" << p.stat(true);
  EXPECT_NE(text.find("QP"), std::string::npos) << text;
  // Per connection its mode and link; per process the capability mode.
  EXPECT_NE(text.find("SMC-Rv2  link 1  ACTIVE"), std::string::npos) << text;
  EXPECT_NE(text.find("capability: "), std::string::npos) << text;
  EXPECT_FALSE(s.at("processes").arr.at(0).at("capability_mode").str.empty());
  EXPECT_EQ(g.at("connections").arr.at(0).at("link_id").num, g.at("links").arr.at(0).at("link_id").num);
  EXPECT_FALSE(js.empty()) << log;
}

}  // namespace
}  // namespace droce::test
