// TCP option 254 on the wire (smc-v2-linux61.md B10): in a network namespace
// this test creates, droce-smc server and client (each in its own cgroup
// with the sock_ops program) and other programs' connections, captured by
// tcpdump on lo and read by tshark. The option is in the SYN and SYN-ACK of
// the droce-smc connection, in the SYN alone when a droce-smc client meets a
// plain server, and nowhere else; a peer without it gets no CLC and the
// fallback 0x03010000 on both sides; `droce-smc stat` says "tcp-option"; the
// cgroups are gone after the processes end, and a crashed one's is removed
// at the next start.
//
// The programs enter the namespace with nsenter --net: `ip netns exec`
// remounts /sys, which hides the cgroup v2 mount from them.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/apps/mini_json.h"
#include "tests/common/netns.h"
#include "tests/common/process.h"

namespace droce::test {
namespace {

Json parse_json(const std::string& text) {
  Json j;
  JsonParser parser(text);
  EXPECT_TRUE(parser.parse(&j)) << text;
  return j;
}

bool wait_output(const std::string& path, const std::string& needle, int ms) {
  for (int i = 0; i < ms / 10; ++i) {
    if (read_file(path).find(needle) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// The cgroup v2 mount point ("" when none), from /proc/self/mountinfo.
std::string cgroup2_mount() {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    const size_t dash = line.find(" - cgroup2 ");
    if (dash == std::string::npos) continue;
    std::istringstream f(line.substr(0, dash));
    std::string id, parent, dev, root, mnt;
    f >> id >> parent >> dev >> root >> mnt;
    return mnt;
  }
  return "";
}

// Where a droce process started by this test makes its cgroup: next to
// this process's cgroup v2.
std::string droce_cgroup(pid_t pid) {
  std::ifstream in("/proc/self/cgroup");
  std::string line, own;
  while (std::getline(in, line)) {
    if (line.rfind("0::", 0) == 0) own = line.substr(3);
  }
  if (own == "/") own.clear();
  return cgroup2_mount() + own + "/droce-smc-" + std::to_string(pid);
}

class TcpOptionCapture : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* tool : {"/usr/bin/tcpdump", "/usr/bin/tshark", "/usr/bin/ip",
                             "/usr/bin/nsenter", "/usr/bin/python3"}) {
      if (access(tool, X_OK) != 0)
        GTEST_SKIP() << tool << " is missing (scripts/install-deps installs it)";
    }
    if (geteuid() != 0) GTEST_SKIP() << "needs root for a network namespace, BPF and cgroups";
    if (cgroup2_mount().empty()) GTEST_SKIP() << "no cgroup v2 hierarchy is mounted";
    const char* b = std::getenv("DROCE_BUILD_DIR");
    ASSERT_NE(b, nullptr);
    smc_ = std::string(b) + "/bin/droce-smc";
    tag_ = std::to_string(getpid());
    ns_ = std::make_unique<Netns>("droce-tcpopt-" + tag_);
    ASSERT_TRUE(ns_->created()) << ns_->error();
    ASSERT_EQ(ns_->ip("link set lo up"), 0);
  }
  void TearDown() override {
    for (Process* p : {&server_, &plain_server_, &dump_}) {
      if (p->pid > 0 && p->exit_code < 0) kill_and_reap(p);
    }
    ns_.reset();
    for (const char* r : {"s", "c", "f"})
      remove_dpdk_runtime_dir("tcpopt-" + std::string(r) + "-" + tag_);
  }

  std::vector<std::string> in_ns(std::vector<std::string> argv) const {
    std::vector<std::string> v = {"/usr/bin/nsenter", "--net=/run/netns/" + ns_->name()};
    v.insert(v.end(), argv.begin(), argv.end());
    return v;
  }
  // A droce port on its own memif (role server: the peer may never come).
  std::map<std::string, std::string> env(const std::string& role, const std::string& ip,
                                         const std::string& prefix, const std::string& sock) const {
    return {{"DROCE_IPV4", ip},
            {"DROCE_LINK_WAIT_MS", role == "server" ? "0" : "20000"},
            {"SMC_STAT_DIR", dir_.path()},
            {"SMC_LOG", "1"},
            {"SMC_CLC_WAIT_MS", "1500"},
            {"DROCE_EAL_ARGS",
             "--no-huge --no-pci -m 256 --no-telemetry --log-level=*:warning --file-prefix " +
                 prefix + "-" + tag_ + " --vdev=net_memif0,role=" + role +
                 ",socket=" + dir_.path() + "/" + sock}};
  }
  bool start_server(Process* p, const std::string& name, int port,
                    const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {smc_, "server", "--port", std::to_string(port)};
    args.insert(args.end(), extra.begin(), extra.end());
    return start(in_ns(args), env("server", "10.0.0.1", "tcpopt-s", "memif.sock"),
                 dir_.path() + "/" + name, p) &&
           wait_output(dir_.path() + "/" + name, "listening", 20000);
  }
  // Runs a droce-smc client; its JSON line ("" on failure, output in *log).
  std::string client(const std::map<std::string, std::string>& e,
                     const std::vector<std::string>& extra, const std::string& name, pid_t* pid,
                     std::string* log) {
    std::vector<std::string> args = {smc_,   "client", "--mode", "echo",  "--bytes",
                                     "256K", "--size", "4K",     "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    Process c;
    if (!start(in_ns(args), e, dir_.path() + "/" + name, &c)) return "";
    *pid = c.pid;
    const bool ended = wait_for(&c, 60000);
    *log = read_file(dir_.path() + "/" + name);
    if (!ended || c.exit_code != 0) return "";
    const size_t at = log->rfind("{\"");
    return at == std::string::npos ? "" : log->substr(at, log->find('\n', at) - at);
  }
  std::string stat_json() {
    const std::string out = dir_.path() + "/stat.txt";
    Process st;
    if (!start({smc_, "stat", "--json"}, {{"SMC_STAT_DIR", dir_.path()}}, out, &st) ||
        !wait_for(&st, 20000))
      return "";
    return read_file(out);
  }

  std::string smc_, tag_;
  TempDir dir_;
  std::unique_ptr<Netns> ns_;
  Process server_, plain_server_, dump_;
};

// One SYN or SYN-ACK as tshark shows it.
struct Syn {
  int stream = -1;
  int src = 0, dst = 0;
  bool ack = false;
  bool option = false;  // kind 254 with ExID 0xE2D4C3D9
};

std::vector<Syn> syns(const std::string& pcap) {
  const std::string out = command_output("tshark -r " + pcap +
                                         " -Y 'tcp.flags.syn == 1' -T fields -E separator=, -e "
                                         "tcp.stream -e tcp.srcport -e tcp.dstport"
                                         " -e tcp.flags.ack -e tcp.options.experimental.exid -e "
                                         "tcp.options.experimental.data 2>/dev/null");
  std::vector<Syn> v;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::istringstream ls(line);
    std::string x;
    while (std::getline(ls, x, ',')) f.push_back(x);
    if (f.size() < 4) continue;
    Syn s;
    s.stream = std::stoi(f[0]);
    s.src = std::stoi(f[1]);
    s.dst = std::stoi(f[2]);
    s.ack = f[3] == "1" || f[3] == "True";
    s.option = f.size() >= 6 && f[4] == "0xe2d4" && f[5] == "c3d9";
    v.push_back(s);
  }
  return v;
}

TEST_F(TcpOptionCapture, OnlyDroceSmcConnectionsCarryTheOption) {
  const int port = 24000 + int(getpid() % 1000), plain_port = port + 1, other_port = port + 2;
  const std::string pcap = dir_.path() + "/syn.pcap";
  std::vector<std::string> dargs = {"/usr/bin/tcpdump",
                                    "-i",
                                    "lo",
                                    "-U",
                                    "--immediate-mode",
                                    "-n",
                                    "-w",
                                    pcap,
                                    "tcp[tcpflags] & tcp-syn != 0"};
  ASSERT_TRUE(start(in_ns(dargs), {}, dir_.path() + "/tcpdump.txt", &dump_));
  ASSERT_TRUE(wait_output(dir_.path() + "/tcpdump.txt", "listening", 5000))
      << read_file(dir_.path() + "/tcpdump.txt");

  // 1. droce-smc server and client: the option both ways, SMC-R used.
  ASSERT_TRUE(start_server(&server_, "server.txt", port)) << read_file(dir_.path() + "/server.txt");
  const std::string server_cg = droce_cgroup(server_.pid);
  EXPECT_TRUE(exists(server_cg)) << server_cg << "\n" << read_file(dir_.path() + "/server.txt");
  EXPECT_NE(read_file(server_cg + "/cgroup.procs").find(std::to_string(server_.pid)),
            std::string::npos);
  std::string log;
  pid_t client_pid = 0;
  std::string js =
      client(env("client", "10.0.0.2", "tcpopt-c", "memif.sock"),
             {"--connect", "127.0.0.1:" + std::to_string(port)}, "client.txt", &client_pid, &log);
  ASSERT_FALSE(js.empty()) << log;
  EXPECT_EQ(parse_json(js).at("transport").str, "smc") << js;
  EXPECT_FALSE(exists(droce_cgroup(client_pid))) << "the client's cgroup outlived it";

  const std::string st = stat_json();
  const Json s = parse_json(st);
  ASSERT_EQ(s.at("processes").arr.size(), 1u) << st;
  EXPECT_EQ(s.at("processes").arr.at(0).at("capability_mode").str, "tcp-option") << st;

  // 2. A plain TCP client (kernel sockets, no option) to the droce-smc
  // server: no option in the SYN-ACK either, no Proposal read, 0x03010000.
  js = client({}, {"--connect", "127.0.0.1:" + std::to_string(port), "--transport", "tcp"},
              "tcp-client.txt", &client_pid, &log);
  ASSERT_FALSE(js.empty()) << log;
  EXPECT_EQ(parse_json(js).at("transport").str, "tcp") << js;
  EXPECT_EQ(parse_json(js).at("verified").b, true) << js;
  const std::string st2 = stat_json();
  const Json s2 = parse_json(st2);
  ASSERT_EQ(s2.at("processes").arr.size(), 1u) << st2;
  EXPECT_EQ(s2.at("processes").arr.at(0).at("fallbacks").at("03010000").at("count").num, 1) << st2;
  EXPECT_NE(read_file(dir_.path() + "/server.txt").find("the SYN carried no TCP option 254"),
            std::string::npos)
      << read_file(dir_.path() + "/server.txt");

  // 3. A droce-smc client to a plain TCP server: the SYN carries the
  // option, the SYN-ACK does not, so no Proposal is sent (0x03010000).
  ASSERT_TRUE(start_server(&plain_server_, "plain-server.txt", plain_port, {"--transport", "tcp"}))
      << read_file(dir_.path() + "/plain-server.txt");
  js = client(env("server", "10.0.0.3", "tcpopt-f", "memif-f.sock"),
              {"--connect", "127.0.0.1:" + std::to_string(plain_port)}, "fallback-client.txt",
              &client_pid, &log);
  ASSERT_FALSE(js.empty()) << log;
  const Json f = parse_json(js);
  EXPECT_EQ(f.at("transport").str, "tcp") << js;
  EXPECT_EQ(f.at("fallback_reason").str, "03010000") << js;
  EXPECT_EQ(f.at("verified").b, true) << js;
  EXPECT_NE(log.find("the SYN-ACK carried no TCP option 254"), std::string::npos) << log;

  // 4. Another program's connection (python3, both ends).
  const std::string py =
      "import socket\n"
      "l = socket.socket(); l.bind(('127.0.0.1', " +
      std::to_string(other_port) +
      ")); l.listen(1)\n"
      "c = socket.create_connection(('127.0.0.1', " +
      std::to_string(other_port) +
      "))\n"
      "a, _ = l.accept(); c.sendall(b'x'); assert a.recv(1) == b'x'\n";
  Process other;
  ASSERT_TRUE(
      start(in_ns({"/usr/bin/python3", "-c", py}), {}, dir_.path() + "/python.txt", &other));
  ASSERT_TRUE(wait_for(&other, 20000));
  EXPECT_EQ(other.exit_code, 0) << read_file(dir_.path() + "/python.txt");

  kill(server_.pid, SIGTERM);
  ASSERT_TRUE(wait_for(&server_, 20000)) << "server did not end";
  EXPECT_FALSE(exists(server_cg)) << "the server's cgroup outlived it";
  kill(plain_server_.pid, SIGTERM);
  wait_for(&plain_server_, 20000);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  kill(dump_.pid, SIGINT);
  wait_for(&dump_, 5000);

  // Per connection (tshark's stream), in the order they were made.
  std::map<int, std::vector<Syn>> by_stream;
  for (const Syn& x : syns(pcap)) by_stream[x.stream].push_back(x);
  std::vector<std::pair<bool, bool>> seen;  // (SYN has it, SYN-ACK has it) per connection
  std::vector<int> dst;
  for (auto& [id, v] : by_stream) {
    bool syn = false, synack = false, has_syn = false, has_synack = false;
    int to = 0;
    for (const Syn& x : v) {
      if (x.ack) {
        has_synack = true;
        synack = synack || x.option;
      } else {
        has_syn = true;
        syn = syn || x.option;
        to = x.dst;
      }
    }
    EXPECT_TRUE(has_syn && has_synack) << "stream " << id;
    seen.push_back({syn, synack});
    dst.push_back(to);
  }
  const std::string all = command_output("tshark -r " + pcap + " 2>/dev/null");
  for (size_t i = 0; i < seen.size(); ++i) {
    std::printf("connection to port %d: option in SYN %s, in SYN-ACK %s\n", dst[i],
                seen[i].first ? "yes" : "no", seen[i].second ? "yes" : "no");
  }
  ASSERT_EQ(seen.size(), 4u) << all;
  EXPECT_EQ(dst, (std::vector<int>{port, port, plain_port, other_port})) << all;
  EXPECT_EQ(seen[0], std::make_pair(true, true)) << "droce-smc client -> droce-smc server\n" << all;
  EXPECT_EQ(seen[1], std::make_pair(false, false)) << "plain TCP client -> droce-smc server\n"
                                                   << all;
  EXPECT_EQ(seen[2], std::make_pair(true, false)) << "droce-smc client -> plain TCP server\n"
                                                  << all;
  EXPECT_EQ(seen[3], std::make_pair(false, false)) << "python3's own connection\n" << all;
}

TEST_F(TcpOptionCapture, ACrashedServersCgroupIsRemovedAtTheNextStart) {
  const int port = 25000 + int(getpid() % 1000);
  ASSERT_TRUE(start_server(&server_, "server.txt", port)) << read_file(dir_.path() + "/server.txt");
  const std::string stale = droce_cgroup(server_.pid);
  ASSERT_TRUE(exists(stale)) << stale;
  kill(server_.pid, SIGKILL);
  wait_for(&server_, 10000);
  remove_dpdk_runtime_dir("tcpopt-s-" + tag_);
  // A crash leaves the directory (and no program: the BPF link died with
  // the process). Any droce process that starts now removes it: usually
  // the next server here, which says so, but a droce test running in
  // parallel may start first.
  const bool left = exists(stale);
  Process next;
  ASSERT_TRUE(start_server(&next, "server2.txt", port + 1))
      << read_file(dir_.path() + "/server2.txt");
  EXPECT_FALSE(exists(stale)) << "the next start removes it";
  const std::string log2 = read_file(dir_.path() + "/server2.txt");
  if (left && log2.find("removed the cgroup") == std::string::npos) {
    std::printf("the crashed server's cgroup was removed by another droce process\n");
  }
  const std::string mine = droce_cgroup(next.pid);
  EXPECT_TRUE(exists(mine));
  kill(next.pid, SIGTERM);
  ASSERT_TRUE(wait_for(&next, 20000));
  EXPECT_FALSE(exists(mine));
}

}  // namespace
}  // namespace droce::test
