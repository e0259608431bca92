// DPDK's net_tap raises a signal for every frame its tap receives. It must
// reach the engine thread, not the application: an application's poll,
// select or epoll_wait would otherwise fail with EINTR at every frame
// (nic/tun_signals.h). tap_signal_probe opens a net_tap port inside a network
// namespace the test creates and waits in poll(2) while the kernel side of
// the tap sends UDP datagrams to droce's address (ARP answered by droce, the
// datagrams received and dropped by it): its wait must never be interrupted.
// Skipped (saying why) without root or ip.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <sstream>
#include <string>
#include <thread>

#include "tests/common/netns.h"
#include "tests/common/process.h"

namespace droce::test {
namespace {

bool have(const char* path) { return access(path, X_OK) == 0; }

// The kernel's count of frames it handed to the tap's reader (droce): the
// second number of the line after "TX:" in `ip -s link show` ("TX:  bytes
// packets errors ..." then "    1234  17 ..."); -1 when absent.
long long kernel_tx_packets(const Netns& ns, const std::string& dev) {
  const std::string out = command_output("ip -n " + ns.name() + " -s link show dev " + dev + " 2>&1");
  const size_t tx = out.find("TX:");
  if (tx == std::string::npos) return -1;
  const size_t line = out.find('\n', tx);
  if (line == std::string::npos) return -1;
  std::istringstream in(out.substr(line + 1));
  long long bytes = -1, packets = -1;
  if (!(in >> bytes >> packets)) return -1;
  return packets;
}

TEST(TapSignals, ApplicationWaitIsNotInterruptedByFrames) {
  for (const char* tool : {"/usr/bin/ip", "/bin/bash"}) {
    if (!have(tool)) GTEST_SKIP() << tool << " is not installed (scripts/install-deps)";
  }
  ASSERT_FALSE(tests_dir().empty()) << "DROCE_BUILD_DIR is not set";
  const std::string tag = std::to_string(getpid()) + "-" +
                          std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 100000);
  TempDir dir;
  Process probe;
  Netns ns("droce-ts-" + tag);
  if (!ns.created())
    GTEST_SKIP() << "cannot create network namespace " << ns.name() << " (needs root and netns support): "
                 << ns.error() << "; net_tap not tried";
  ns.at_exit([&] { kill_and_reap(&probe); });
  ASSERT_EQ(ns.ip("link set lo up"), 0);
  const std::string tap = "dts" + tag.substr(tag.size() - 4);
  std::vector<std::string> argv = ns.exec_argv();
  argv.insert(argv.end(), {tests_dir() + "/verbs_tap_signal_probe", "4000"});
  ASSERT_TRUE(start(argv,
                    {{"DROCE_EAL_ARGS", "--no-huge --no-pci -m 256 --no-telemetry --log-level=*:error --file-prefix droce-ts-" +
                                            tag + " --vdev=net_tap0,iface=" + tap},
                     {"DROCE_IPV4", "10.0.0.1"},
                     {"DROCE_ENGINE_CPU", ""},
                     {"DROCE_CAPTURE", ""},
                     {"DROCE_FAULTS", ""}},
                    dir.path() + "/probe.txt", &probe));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (read_file(dir.path() + "/probe.txt").find("ready") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_NE(read_file(dir.path() + "/probe.txt").find("ready"), std::string::npos)
      << read_file(dir.path() + "/probe.txt");
  ASSERT_EQ(ns.ip("addr add 10.0.0.9/24 dev " + tap), 0);
  const long long tx_before = kernel_tx_packets(ns, tap);
  ASSERT_GE(tx_before, 0);
  // 40 datagrams 20 ms apart (bash's /dev/udp), well inside the probe's 4 s wait.
  const std::string ping = command_output(
      "ip netns exec " + ns.name() +
      " bash -c 'for i in $(seq 40); do echo x >/dev/udp/10.0.0.1/9; sleep 0.02; done' 2>&1");
  const long long frames = kernel_tx_packets(ns, tap) - tx_before;
  // Read while the tap is there (it goes with the probe's port).
  const std::string neigh = command_output("ip -n " + ns.name() + " neigh show 10.0.0.1");
  ASSERT_TRUE(wait_for(&probe, 20000));
  const std::string out = read_file(dir.path() + "/probe.txt");
  EXPECT_EQ(probe.exit_code, 0) << out;
  // droce answered the kernel's ARP request (else no datagram would have
  // been sent), and took the 40 datagrams from the tap.
  EXPECT_NE(neigh.find("lladdr"), std::string::npos) << neigh << ping;
  EXPECT_GE(frames, 40) << ping;
  EXPECT_NE(out.find("eintr 0\n"), std::string::npos) << out << "\nframes the tap delivered: " << frames;
  remove_dpdk_runtime_dir("droce-ts-" + tag);
}

}  // namespace
}  // namespace droce::test
