// Separate processes (tests/nic/port/port_peer): EAL argument errors reported
// without an abort; two processes exchanging frames over net_memif; two
// processes on net_tap devices joined by a Linux bridge inside a network
// namespace the test creates (and always removes), resolving each other by ARP.
#include <gtest/gtest.h>

#include <glob.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "tests/common/netns.h"
#include "tests/common/process.h"

namespace droce::nic {
namespace {

using droce::test::Process;
using droce::test::read_file;
using droce::test::shell;
using droce::test::start;
using droce::test::TempDir;
using droce::test::tests_dir;

constexpr int kPeerTimeoutMs = 15000;  // each peer gives up by itself after this
constexpr int kWaitMs = kPeerTimeoutMs + 5000;

std::string peer_path() { return tests_dir() + "/port_peer"; }

std::string eal_args(const std::string& prefix, const std::string& vdev) {
  return "--no-huge --no-pci -m 128 --file-prefix " + prefix +
         " --no-telemetry --log-level=*:warning --vdev " + vdev;
}

// Value of ` key=` in the peer's result line, or -1.
long field(const std::string& out, const std::string& key) {
  const size_t line = out.find("port_peer: result=");
  if (line == std::string::npos) return -1;
  const size_t eol = out.find('\n', line);
  const size_t at = out.find(" " + key + "=", line);
  if (at == std::string::npos || at > eol) return -1;
  const char* p = out.c_str() + at + key.size() + 2;
  if (*p < '0' || *p > '9') return -1;
  return std::strtol(p, nullptr, 10);
}

bool runtime_dirs_left(pid_t pid) {
  glob_t g{};
  const std::string pat = "/var/run/dpdk/droce-" + std::to_string(pid) + "-*";
  const bool left = glob(pat.c_str(), 0, nullptr, &g) == 0 && g.gl_pathc > 0;
  globfree(&g);
  return left;
}

bool wait_for(const std::function<bool()>& cond, int timeout_ms) {
  for (int waited = 0; waited < timeout_ms; waited += 20) {
    if (cond()) return true;
    usleep(20 * 1000);
  }
  return cond();
}

// Kills the children still running when a test ends early.
class Reaper {
 public:
  ~Reaper() {
    for (Process* c : children_) droce::test::kill_and_reap(c);
  }
  void track(Process* c) { children_.push_back(c); }

 private:
  std::vector<Process*> children_;
};

// The MAC the peer printed when its port started, or "".
std::string peer_mac(const std::string& out) {
  const size_t at = out.find(" mac=");
  if (at == std::string::npos || out.size() < at + 5 + 17) return "";
  return out.substr(at + 5, 17);
}

// ---------------------------------------------------------------------------
// EAL

Process run_check_eal(const TempDir& dir, const std::string& args, const std::string& name) {
  Process c;
  EXPECT_TRUE(start({peer_path(), "--check-eal"}, {{"DROCE_EAL_ARGS", args}},
                    dir.path() + "/" + name + ".out", &c));
  EXPECT_TRUE(droce::test::wait_for(&c, 20000)) << "EAL init must not hang";
  return c;
}

TEST(PortEalTest, UnknownOptionIsAClearErrorNotAnAbort) {
  TempDir dir;
  Process c = run_check_eal(dir, "--no-huge --no-pci --definitely-not-an-eal-option", "bad");
  const std::string out = read_file(c.output_path);
  EXPECT_EQ(c.exit_code, 3) << out;  // returned an error: no abort (134), no crash
  EXPECT_NE(out.find("eal: error: DPDK EAL initialisation failed"), std::string::npos) << out;
  EXPECT_NE(out.find("DROCE_EAL_ARGS=\"--no-huge --no-pci --definitely-not-an-eal-option\""),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("Invalid argument"), std::string::npos) << out;
  EXPECT_NE(out.find("eal again: same"), std::string::npos) << "second call, same status\n"
                                                           << out;
  EXPECT_NE(out.find("open: DPDK EAL initialisation failed"), std::string::npos) << out;
}

TEST(PortEalTest, UnknownDeviceIsAClearErrorNotAnAbort) {
  TempDir dir;
  const std::string prefix = "droce-t" + std::to_string(getpid()) + "-nodev";
  Process c = run_check_eal(dir, eal_args(prefix, "net_no_such_pmd0"), "nodev");
  droce::test::remove_dpdk_runtime_dir(prefix);
  const std::string out = read_file(c.output_path);
  EXPECT_EQ(c.exit_code, 3) << out;
  EXPECT_NE(out.find("DROCE_EAL_ARGS="), std::string::npos) << out;
  EXPECT_NE(out.find("net_no_such_pmd0"), std::string::npos) << out;
}

TEST(PortEalTest, DefaultArgumentsWorkAndLeaveNoRuntimeDirectory) {
  TempDir dir;
  Process c;
  ASSERT_TRUE(start({peer_path(), "--check-eal"}, {{"DROCE_EAL_ARGS", ""}},
                    dir.path() + "/default.out", &c));
  const pid_t pid = c.pid;
  ASSERT_TRUE(droce::test::wait_for(&c, 20000));
  const std::string out = read_file(c.output_path);
  EXPECT_EQ(c.exit_code, 0) << out;
  EXPECT_NE(out.find("eal: ok"), std::string::npos) << out;
  EXPECT_FALSE(runtime_dirs_left(pid)) << "droce-" << pid << "-* left in /var/run/dpdk";
  // EAL pins its main thread to one CPU; eal_init() gives the caller its CPUs back.
  const long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  EXPECT_NE(out.find("affinity: before=" + std::to_string(ncpu) + " after=" + std::to_string(ncpu)),
            std::string::npos)
      << out;
}

// As user nobody: no root, no capabilities. The build may sit where nobody
// cannot read it (a checkout under /root), so nobody runs a copy of port_peer
// made in a directory of the test's own.
TEST(PortEalTest, DefaultArgumentsWorkUnprivileged) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to switch to user nobody";
  if (access("/usr/bin/setpriv", X_OK) != 0) {
    GTEST_SKIP() << "/usr/bin/setpriv is not installed (package util-linux)";
  }
  TempDir dir;
  const std::string bin = dir.path() + "/bin";
  const std::string copied = droce::test::copy_for_nobody({peer_path()}, bin);
  ASSERT_EQ(copied, "");
  std::map<std::string, std::string> env = {
      {"DROCE_EAL_ARGS", ""}, {"XDG_RUNTIME_DIR", ""}, {"HOME", "/tmp"}};
  ASSERT_EQ(droce::test::sanitizer_env_for_nobody(bin, &env), "");
  ASSERT_EQ(chmod(dir.path().c_str(), 0755), 0);
  std::vector<std::string> argv = droce::test::as_nobody_argv();
  argv.insert(argv.end(), {bin + "/port_peer", "--check-eal"});
  Process c;
  // nobody cannot write dir (0755, root's): the output file is opened before setpriv drops root.
  ASSERT_TRUE(start(argv, env, dir.path() + "/nobody.out", &c));
  ASSERT_TRUE(droce::test::wait_for(&c, 20000));
  const std::string out = read_file(c.output_path);
  EXPECT_EQ(c.exit_code, 0) << out;
  EXPECT_NE(out.find("eal: ok"), std::string::npos) << out;
}

// ---------------------------------------------------------------------------
// memif: two processes, no kernel in the path

// Two port_peer processes over net_memif, each sending `count` frames of
// `payload` bytes to the other on ports of MTU `mtu`; both outputs.
struct MemifRun {
  bool done = false;
  Process server, client;
  std::string server_out, client_out;
};

void run_memif_pair(const std::string& mtu, const std::string& payload, const std::string& count,
                    MemifRun* r, const std::string& vdev_extra = "") {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string sock = dir.path() + "/memif.sock";
  const std::string tag = "droce-t" + std::to_string(getpid());
  const std::string vdev =
      "net_memif0" + vdev_extra + ",socket=" + sock + ",socket-abstract=no,role=";
  Reaper reaper;
  reaper.track(&r->server);
  reaper.track(&r->client);
  ASSERT_TRUE(start({peer_path(), "--port", "net_memif0", "--peer", "10.77.1.2", "--count",
                     count, "--payload", payload, "--timeout-ms", std::to_string(kPeerTimeoutMs)},
                    {{"DROCE_EAL_ARGS", eal_args(tag + "-srv", vdev + "server")},
                     {"DROCE_IPV4", "10.77.1.1"},
                     {"DROCE_MTU", mtu}},
                    dir.path() + "/server.out", &r->server));
  // A memif client's start fails while no server listens: the server's socket
  // exists once its port has started (it prints its MAC).
  ASSERT_TRUE(wait_for([&] { return !peer_mac(read_file(r->server.output_path)).empty(); }, 10000))
      << read_file(r->server.output_path);
  ASSERT_TRUE(start({peer_path(), "--port", "net_memif0", "--peer", "10.77.1.1", "--count",
                     count, "--payload", payload, "--timeout-ms", std::to_string(kPeerTimeoutMs)},
                    {{"DROCE_EAL_ARGS", eal_args(tag + "-cli", vdev + "client")},
                     {"DROCE_IPV4", "10.77.1.2"},
                     {"DROCE_MTU", mtu}},
                    dir.path() + "/client.out", &r->client));
  const bool server_done = droce::test::wait_for(&r->server, kWaitMs);
  const bool client_done = droce::test::wait_for(&r->client, kWaitMs);
  droce::test::remove_dpdk_runtime_dir(tag + "-srv");
  droce::test::remove_dpdk_runtime_dir(tag + "-cli");
  r->server_out = read_file(r->server.output_path);
  r->client_out = read_file(r->client.output_path);
  r->done = server_done && client_done;
}

// Every frame arrived in order with its payload (length and bytes) intact.
void expect_exchanged(const MemifRun& r, long count) {
  ASSERT_TRUE(r.done) << "server:\n" << r.server_out << "client:\n" << r.client_out;
  EXPECT_EQ(r.server.exit_code, 0) << r.server_out;
  EXPECT_EQ(r.client.exit_code, 0) << r.client_out;
  for (const std::string* out : {&r.server_out, &r.client_out}) {
    EXPECT_EQ(field(*out, "resolved"), 1) << *out;
    EXPECT_EQ(field(*out, "sent"), count) << *out;
    EXPECT_EQ(field(*out, "received"), count) << *out;
    EXPECT_EQ(field(*out, "in_order"), 1) << *out;
    EXPECT_EQ(field(*out, "bad_payload"), 0) << *out;
  }
}

TEST(PortMemifTest, TwoProcessesResolveByArpAndExchangeFramesBothWays) {
  MemifRun r;
  run_memif_pair("1500", "256", "300", &r);
  expect_exchanged(r, 300);
}

// DROCE_MTU=9000 on net_memif with 9216-byte buffers (memif reports 1518-byte
// frames, yet carries longer ones): 8000-byte payloads, about 8070-byte
// frames, both ways, each arriving whole.
TEST(PortMemifTest, JumboFramesBothWaysAtMtu9000) {
  MemifRun r;
  run_memif_pair("9000", "8000", "200", &r, ",bsize=9216");
  expect_exchanged(r, 200);
}

// The same with memif's default 2048-byte buffers: refused at start with the
// bsize to use, since memif would corrupt frames spread over several buffers.
TEST(PortMemifTest, JumboMtuWithDefaultBuffersIsAClearError) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string tag = "droce-t" + std::to_string(getpid()) + "-bsize";
  Process server;
  Reaper reaper;
  reaper.track(&server);
  ASSERT_TRUE(start({peer_path(), "--port", "net_memif0", "--peer", "10.77.1.2", "--count", "1",
                     "--timeout-ms", "2000"},
                    {{"DROCE_EAL_ARGS",
                      eal_args(tag, "net_memif0,socket=" + dir.path() +
                                        "/m.sock,socket-abstract=no,role=server")},
                     {"DROCE_IPV4", "10.77.1.1"},
                     {"DROCE_MTU", "9000"}},
                    dir.path() + "/server.out", &server));
  const bool done = droce::test::wait_for(&server, kWaitMs);
  droce::test::remove_dpdk_runtime_dir(tag);
  const std::string so = read_file(server.output_path);
  ASSERT_TRUE(done) << so;
  EXPECT_EQ(server.exit_code, 3) << so;
  EXPECT_NE(so.find("open: DROCE_MTU 9000: device net_memif0 needs memif buffers of at least "
                    "9018 bytes: add bsize=9216"),
            std::string::npos)
      << so;
}

// ---------------------------------------------------------------------------
// net_tap: two processes through a kernel bridge in a namespace of our own

TEST(PortTapTest, TwoProcessesResolveByArpAndExchangeFramesThroughAKernelBridge) {
  const std::string pid = std::to_string(getpid());
  const std::string ns = "droce-" + pid;
  droce::test::Netns guard(ns);
  if (!guard.created()) {
    GTEST_SKIP() << "cannot create network namespace " << ns << " (needs root and netns support): "
                 << guard.error() << "; net_tap test not run";
  }
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  ASSERT_EQ(guard.ip("link set lo up"), 0);
  ASSERT_EQ(guard.ip("link add br0 type bridge"), 0);
  ASSERT_EQ(guard.ip("addr add 10.77.2.254/24 dev br0"), 0);
  ASSERT_EQ(guard.ip("link set br0 up"), 0);

  const std::string suffix = pid.substr(pid.size() > 6 ? pid.size() - 6 : 0);
  const std::string tap[2] = {"dta" + suffix, "dtb" + suffix};
  const std::string ip[2] = {"10.77.2.1", "10.77.2.2"};
  const std::string tag = "droce-t" + pid;
  Process peers[2];
  for (int i = 0; i < 2; ++i) {
    guard.at_exit([c = &peers[i]] { droce::test::kill_and_reap(c); });
    ASSERT_TRUE(start({"/usr/bin/ip", "netns", "exec", ns, peer_path(), "--port", "net_tap0",
                       "--peer", ip[1 - i], "--count", "200", "--min-junk", "1", "--timeout-ms",
                       std::to_string(kPeerTimeoutMs)},
                      {{"DROCE_EAL_ARGS", eal_args(tag + "-tap" + std::to_string(i),
                                                   "net_tap0,iface=" + tap[i])},
                       {"DROCE_IPV4", ip[i]}},
                      dir.path() + "/peer" + std::to_string(i) + ".out", &peers[i]));
  }
  // Once a peer's port has started (it prints its MAC), join its tap to the
  // bridge. The tap PMD gives the kernel side of the tap the DPDK port's own
  // MAC (again when the port starts); a bridge treats its ports' addresses as
  // local and would deliver frames for droce to the host instead of
  // forwarding them, so the kernel side gets an address of its own first.
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(wait_for([&] { return !peer_mac(read_file(peers[i].output_path)).empty(); },
                         10000))
        << "peer " << i << " did not start\n" << read_file(peers[i].output_path);
    ASSERT_EQ(guard.ip("link show " + tap[i]), 0) << tap[i];
    ASSERT_EQ(guard.ip("link set " + tap[i] + " address 02:00:00:00:99:0" + std::to_string(i)), 0);
    ASSERT_EQ(guard.ip("link set " + tap[i] + " master br0"), 0);
    ASSERT_EQ(guard.ip("link set " + tap[i] + " up"), 0);
  }
  // The kernel talks to peer 0 too: it resolves 10.77.2.1 by ARP (droce
  // answers) and sends it a UDP datagram to port 9 (droce counts it as not
  // RoCEv2 and drops it).
  const std::string mac0 = peer_mac(read_file(peers[0].output_path));
  EXPECT_EQ(shell("ip netns exec " + ns + " bash -c 'echo junk > /dev/udp/10.77.2.1/9'"), 0);
  std::string neigh;
  wait_for(
      [&] {
        neigh = droce::test::command_output("ip -n " + ns + " neigh show 10.77.2.1 2>&1");
        return neigh.find(mac0) != std::string::npos;
      },
      3000);
  EXPECT_NE(neigh.find(mac0), std::string::npos)
      << "the kernel learned droce's MAC " << mac0 << " by ARP: " << neigh;

  bool done[2];
  for (int i = 0; i < 2; ++i) done[i] = droce::test::wait_for(&peers[i], kWaitMs);
  droce::test::remove_dpdk_runtime_dir(tag + "-tap0");
  droce::test::remove_dpdk_runtime_dir(tag + "-tap1");
  const std::string out[2] = {read_file(peers[0].output_path), read_file(peers[1].output_path)};
  ASSERT_TRUE(done[0] && done[1]) << "peer0:\n" << out[0] << "peer1:\n" << out[1];
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(peers[i].exit_code, 0) << out[i];
    EXPECT_EQ(field(out[i], "resolved"), 1) << out[i];
    EXPECT_EQ(field(out[i], "sent"), 200) << out[i];
    EXPECT_EQ(field(out[i], "received"), 200) << out[i];
    EXPECT_EQ(field(out[i], "in_order"), 1) << out[i];
    EXPECT_GE(field(out[i], "junk"), 1) << "kernel traffic counted and dropped\n" << out[i];
  }
  EXPECT_NE(out[0].find("parse[not UDP port 4791]=1"), std::string::npos)
      << "the kernel's datagram to port 9 was counted and dropped\n" << out[0];
}

// A PMD that cannot take the MTU asked for: DPDK 22.11's net_tap reports
// 1522-byte frames, so DROCE_MTU=9000 on it fails with a message naming the
// variable, the device and the largest MTU it takes, not an opaque EINVAL from
// rte_eth_dev_configure, and without an abort.
TEST(PortTapTest, JumboMtuOnATapIsAClearError) {
  const std::string pid = std::to_string(getpid());
  const std::string ns = "droce-mtu-" + pid;
  droce::test::Netns guard(ns);
  if (!guard.created()) {
    GTEST_SKIP() << "cannot create network namespace " << ns << " (needs root and netns support): "
                 << guard.error() << "; net_tap test not run";
  }
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string tag = "droce-t" + pid + "-mtu";
  const std::string tap = "dtm" + pid.substr(pid.size() > 6 ? pid.size() - 6 : 0);
  Process peer;
  guard.at_exit([c = &peer] { droce::test::kill_and_reap(c); });
  ASSERT_TRUE(start({"/usr/bin/ip", "netns", "exec", ns, peer_path(), "--port", "net_tap0",
                     "--peer", "10.77.3.2", "--count", "1", "--timeout-ms", "2000"},
                    {{"DROCE_EAL_ARGS", eal_args(tag, "net_tap0,iface=" + tap)},
                     {"DROCE_IPV4", "10.77.3.1"},
                     {"DROCE_MTU", "9000"}},
                    dir.path() + "/peer.out", &peer));
  const bool done = droce::test::wait_for(&peer, kWaitMs);
  droce::test::remove_dpdk_runtime_dir(tag);
  const std::string out = read_file(peer.output_path);
  ASSERT_TRUE(done) << out;
  EXPECT_EQ(peer.exit_code, 3) << "a port error, reported\n" << out;
  EXPECT_NE(out.find("open: DROCE_MTU 9000: device net_tap0 (driver net_tap) takes an MTU of at "
                     "most 1504"),
            std::string::npos)
      << out;
}

}  // namespace
}  // namespace droce::nic
