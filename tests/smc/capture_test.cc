// droce-smc's traffic as a dissector written by others sees it (issue 10
// section 4): the CLC handshake on TCP (tcpdump on lo inside a network
// namespace this test creates) and the RoCEv2 frames of one droce port
// (DROCE_CAPTURE), decoded by tshark with no malformed packet. What tshark
// 4.0 shows of v2 LLC is in docs/smc.md: it reads the v2 length big-endian,
// so the little-endian v2 LLC that x86 Linux (and droce) send is left as
// plain RRoCE payload; CDC messages (type 0xFE, 44 bytes) are decoded.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <sstream>
#include <string>
#include <thread>

#include "tests/common/netns.h"
#include "tests/common/process.h"

namespace droce::test {
namespace {

// Lines of tshark output, without its note about running as root.
int count_lines(const std::string& s) {
  int n = 0;
  std::istringstream in(s);
  std::string line;
  while (std::getline(in, line)) n += !line.empty() && line.find("Running as user") == std::string::npos;
  return n;
}

TEST(SmcCapture, ClcAndRoceDecodeCleanly) {
  for (const char* tool : {"/usr/bin/tcpdump", "/usr/bin/tshark", "/usr/bin/ip"}) {
    if (access(tool, X_OK) != 0) GTEST_SKIP() << tool << " is missing (scripts/install-deps installs it)";
  }
  if (geteuid() != 0) GTEST_SKIP() << "needs root for a network namespace of its own";
  const char* b = std::getenv("DROCE_BUILD_DIR");
  ASSERT_NE(b, nullptr);
  const std::string smc = std::string(b) + "/bin/droce-smc";
  const std::string tag = std::to_string(getpid());
  Netns ns("droce-smc-cap-" + tag);
  ASSERT_TRUE(ns.created()) << "ip netns add failed";
  ASSERT_EQ(ns.ip("link set lo up"), 0);
  TempDir dir;
  const int port = 23000 + int(getpid() % 1000);
  const std::string clc = dir.path() + "/clc.pcap", roce = dir.path() + "/roce.pcapng";
  Process dump;
  std::vector<std::string> dargs = ns.exec_argv();
  for (const char* a : {"/usr/bin/tcpdump", "-i", "lo", "-U", "--immediate-mode", "-n", "-w"}) dargs.push_back(a);
  dargs.push_back(clc);
  dargs.push_back("tcp port " + std::to_string(port));
  ASSERT_TRUE(start(dargs, {}, dir.path() + "/tcpdump.txt", &dump));
  ns.at_exit([&] { kill_and_reap(&dump); });
  for (int i = 0; i < 200 && read_file(dir.path() + "/tcpdump.txt").find("listening") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const std::string eal = "--no-huge --no-pci -m 256 --no-telemetry --log-level=*:warning --vdev=net_memif0,socket=" +
                          dir.path() + "/memif.sock";
  Process server, client;
  std::vector<std::string> sargs = ns.exec_argv();
  for (const std::string& a : {smc, std::string("server"), std::string("--port"), std::to_string(port)}) {
    sargs.push_back(a);
  }
  ASSERT_TRUE(start(sargs,
                    {{"DROCE_IPV4", "10.0.0.1"},
                     {"DROCE_LINK_WAIT_MS", "0"},
                     {"DROCE_CAPTURE", roce},
                     {"SMC_STAT_DIR", dir.path()},
                     {"DROCE_EAL_ARGS", eal + ",role=server --file-prefix smc-cap-s-" + tag}},
                    dir.path() + "/server.txt", &server));
  ns.at_exit([&] { kill_and_reap(&server); });
  for (int i = 0; i < 2000 && read_file(dir.path() + "/server.txt").find("listening") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::vector<std::string> cargs = ns.exec_argv();
  for (const std::string& a : {smc, std::string("client"), std::string("--connect"),
                               "127.0.0.1:" + std::to_string(port), std::string("--mode"), std::string("echo"),
                               std::string("--bytes"), std::string("1M"), std::string("--size"), std::string("8K")}) {
    cargs.push_back(a);
  }
  ASSERT_TRUE(start(cargs,
                    {{"DROCE_IPV4", "10.0.0.2"},
                     {"DROCE_LINK_WAIT_MS", "20000"},
                     {"SMC_STAT_DIR", dir.path()},
                     {"DROCE_EAL_ARGS", eal + ",role=client --file-prefix smc-cap-c-" + tag}},
                    dir.path() + "/client.txt", &client));
  ASSERT_TRUE(wait_for(&client, 120000)) << read_file(dir.path() + "/client.txt");
  EXPECT_EQ(client.exit_code, 0) << read_file(dir.path() + "/client.txt");
  EXPECT_NE(read_file(dir.path() + "/client.txt").find("smc echo"), std::string::npos)
      << read_file(dir.path() + "/client.txt");
  kill(server.pid, SIGTERM);
  ASSERT_TRUE(wait_for(&server, 20000)) << "server did not end";
  kill(dump.pid, SIGINT);
  wait_for(&dump, 5000);
  remove_dpdk_runtime_dir("smc-cap-s-" + tag);
  remove_dpdk_runtime_dir("smc-cap-c-" + tag);

  // The CLC handshake: Proposal, Accept, Confirm, each decoded as SMC.
  const std::string clc_types = command_output(
      "tshark -r " + clc + " -Y smc -T fields -e smc.clc_msg 2>&1");
  const std::string clc_all = command_output("tshark -r " + clc + " 2>&1");
  EXPECT_NE(clc_types.find("1"), std::string::npos) << "no Proposal decoded:\n" << clc_all
                                                   << read_file(dir.path() + "/tcpdump.txt");
  EXPECT_NE(clc_types.find("2"), std::string::npos) << "no Accept decoded:\n" << clc_types;
  EXPECT_NE(clc_types.find("3"), std::string::npos) << "no Confirm decoded:\n" << clc_types;
  const std::string bad_clc = command_output(
      "tshark -r " + clc + " -Y '_ws.malformed || _ws.expert.severity == error' -T fields -e frame.number 2>&1");
  EXPECT_EQ(count_lines(bad_clc), 0) << "malformed CLC frames:\n" << bad_clc;

  // The RoCEv2 frames of the server's port: all InfiniBand, none malformed;
  // the CDC messages decoded as SMC (RPC-over-RDMA's payload guess off, as
  // in the verbs capture tests).
  const std::string opts = " --disable-protocol rpcordma ";
  const std::string roce_frames =
      command_output("tshark -r " + roce + opts + "-Y 'udp.dstport == 4791' -T fields -e frame.number 2>&1");
  const std::string ib_frames =
      command_output("tshark -r " + roce + opts + "-Y 'udp.dstport == 4791 && infiniband' -T fields -e frame.number 2>&1");
  EXPECT_GT(count_lines(roce_frames), 100);
  EXPECT_EQ(count_lines(roce_frames), count_lines(ib_frames)) << "frames tshark did not decode as InfiniBand";
  const std::string bad_roce = command_output(
      "tshark -r " + roce + opts + "-Y '_ws.malformed || _ws.expert.severity == error' -T fields -e frame.number 2>&1");
  EXPECT_EQ(count_lines(bad_roce), 0) << "malformed RoCEv2 frames:\n" << bad_roce;
  const std::string cdcs = command_output("tshark -r " + roce + opts +
                                          "-Y 'smc.rmbe.ctrl.seqno' -T fields -e smc.rmbe.ctrl.seqno 2>&1");
  EXPECT_GT(count_lines(cdcs), 10) << "CDC messages not decoded as SMC";
  std::printf("SMC capture: %d CLC-decoded TCP frames, %d RoCEv2 frames, %d CDCs decoded\n", count_lines(clc_types),
              count_lines(roce_frames), count_lines(cdcs));
}

}  // namespace
}  // namespace droce::test
