// Debian's rdma_cm programs (rdmacm-utils), unmodified, on the drop-in
// librdmacm.so.1 and libibverbs.so.1 between two processes joined by
// net_memif: connection set-up and teardown by the CM agent on QP1, in both
// directions (the server on 10.0.0.1 and the client on 10.0.0.2, then the
// other way round; the server's process is always the memif server, which
// must be there before a memif client starts),
// each run printing what it prints on a kernel device; and the failures a
// program must see: REJECTED error 8 for a port nobody listens on,
// ADDR_ERROR for an address nobody has.
// Skipped (visibly) when rdmacm-utils is absent, and in the sanitizer build:
// there the drop-ins are ASan-instrumented and Debian's programs cannot load them.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <ostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/common/process.h"

namespace droce::test {
namespace {

constexpr int kRunTimeoutMs = 150000;
constexpr int kClientAttempts = 3;

bool have(const std::string& path) { return access(path.c_str(), X_OK) == 0; }

bool wait_until(const std::function<bool()>& cond, int timeout_ms) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!cond()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

// True once the memif server listens on sock (DPDK 22.11: an abstract socket).
bool unix_listening(const std::string& sock) {
  const std::string text = read_file("/proc/net/unix");
  return text.find(" @" + sock + "\n") != std::string::npos || text.find(" " + sock + "\n") != std::string::npos;
}

struct ProgramCase {
  const char* name;
  // argv without /usr/bin; "SIP" stands for the server's address.
  std::vector<std::string> server;
  std::vector<std::string> client;
  bool server_exits;  // else it serves on and is stopped once the client is done
  int client_exit;    // expected exit status of the client (rping: 255 on error)
  std::vector<std::string> client_says;
  std::vector<std::string> server_says;
  // perftest checks PORT_ACTIVE right after opening the device: its server
  // waits there for the link (DROCE_LINK_WAIT_MS), which comes up with the client.
  bool server_needs_link = false;
};

void PrintTo(const ProgramCase& c, std::ostream* os) { *os << c.name; }

struct Direction {
  const char* name;
  const char* server_ip;
  const char* client_ip;
};
void PrintTo(const Direction& d, std::ostream* os) { *os << d.name; }

struct PairRun {
  int client_exit = -1, server_exit = -1;
  bool client_done = false, server_done = false;
  int attempts = 0;
  std::string server, client;
};

std::vector<std::string> with_ip(const std::vector<std::string>& argv, const std::string& ip) {
  std::vector<std::string> out = {"/usr/bin/stdbuf", "-oL", "/usr/bin/" + argv[0]};
  for (size_t i = 1; i < argv.size(); ++i) out.push_back(argv[i] == "SIP" ? ip : argv[i]);
  return out;
}

// capture: a pcapng file the client's port writes (DROCE_CAPTURE), or "".
PairRun run_pair(const ProgramCase& c, const Direction& d, const std::string& capture = "") {
  PairRun r;
  TempDir dir;
  const std::string sock = dir.path() + "/memif.sock";
  const std::string tag =
      std::to_string(getpid()) + "-" +
      std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 100000);
  const std::string prefix_s = "droce-cm-s-" + tag, prefix_c = "droce-cm-c-" + tag;
  auto eal = [&](const std::string& prefix, const char* role) {
    return "--no-huge --no-pci -m 256 --no-telemetry --log-level=*:warning --file-prefix " + prefix +
           " --vdev=net_memif0,role=" + role + ",socket=" + sock;
  };
  const std::string server_ip = d.server_ip, client_ip = d.client_ip;
  // The server opens its device at once (its peer comes later); the client
  // waits for the link, so its first ARP request finds the peer there.
  auto env = [&](const std::string& ip, const std::string& prefix, bool memif_server, const char* link_wait_ms) {
    return std::map<std::string, std::string>{{"LD_LIBRARY_PATH", dropin_lib_dir()},
                                              {"DROCE_EAL_ARGS", eal(prefix, memif_server ? "server" : "client")},
                                              {"DROCE_IPV4", ip},
                                              {"DROCE_LINK_WAIT_MS", link_wait_ms}};
  };
  Process server, client;
  std::map<std::string, std::string> client_env = env(client_ip, prefix_c, false, "10000");
  if (!capture.empty()) client_env["DROCE_CAPTURE"] = capture;
  EXPECT_TRUE(start(with_ip(c.server, server_ip), env(server_ip, prefix_s, true, c.server_needs_link ? "30000" : "0"),
                    dir.path() + "/server.txt", &server));
  EXPECT_TRUE(wait_until([&] { return unix_listening(sock); }, 20000)) << read_file(dir.path() + "/server.txt");
  // The server listens once its device is open; a client that comes first is
  // rejected (REJ 8) and, as a user would, starts again.
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  for (int attempt = 1; attempt <= kClientAttempts; ++attempt) {
    r.attempts = attempt;
    client = Process();
    EXPECT_TRUE(start(with_ip(c.client, server_ip), client_env,
                      dir.path() + "/client.txt", &client));
    r.client_done = wait_for(&client, kRunTimeoutMs);
    r.client = read_file(dir.path() + "/client.txt");
    // Each program's way of saying "nobody listens there yet": REJ 8, or for
    // SIDR status 1; rdma_client's sync id turns REJ into ECONNREFUSED.
    const bool early = client.exit_code != 0 &&
                       (r.client.find("REJECTED, error 8") != std::string::npos ||
                        r.client.find("REJECTED, error: 8") != std::string::npos ||
                        r.client.find("UNREACHABLE, error: 1") != std::string::npos ||
                        r.client.find("Connection refused") != std::string::npos);
    if (!r.client_done || !early || c.client_exit != 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  }
  r.client_exit = client.exit_code;
  if (c.server_exits) {
    r.server_done = wait_for(&server, r.client_done ? 20000 : 1000);
  } else {
    kill_and_reap(&server);
    r.server_done = true;
  }
  r.server_exit = server.exit_code;
  r.server = read_file(dir.path() + "/server.txt");
  remove_dpdk_runtime_dir(prefix_s);
  remove_dpdk_runtime_dir(prefix_c);
  return r;
}

class RdmacmPrograms : public ::testing::TestWithParam<std::tuple<ProgramCase, Direction>> {};

TEST_P(RdmacmPrograms, OverMemif) {
  const ProgramCase& c = std::get<0>(GetParam());
  const Direction& d = std::get<1>(GetParam());
  if (sanitized_build()) GTEST_SKIP() << "sanitizer build: the ASan drop-ins cannot be loaded by " << c.server[0];
  if (!have("/usr/bin/" + c.server[0]) || !have("/usr/bin/" + c.client[0]))
    GTEST_SKIP() << c.server[0] << " is not installed (package rdmacm-utils or perftest)";
  ASSERT_FALSE(dropin_lib_dir().empty()) << "DROCE_BUILD_DIR is not set";
  // A client whose REQ reaches the server before its rdma_listen gets REJ 8
  // (for UD, a SIDR_REP with status 1: UNREACHABLE, error 1), on a kernel
  // device too; rping and the like are then started again by run_pair,
  // perftest (whose own retry after it crashes, perftest 4.5: exit 139) as a
  // pair.
  PairRun r;
  for (int pair = 1; pair <= kClientAttempts; ++pair) {
    r = run_pair(c, d);
    const bool not_listening = r.client.find("REJECTED; error: 8.") != std::string::npos ||
                               r.client.find("UNREACHABLE; error: 1.") != std::string::npos;
    if (!not_listening || c.client_exit != 0) break;
  }
  const std::string both = "server (exit " + std::to_string(r.server_exit) + "):\n" + r.server + "\nclient (exit " +
                           std::to_string(r.client_exit) + ", " + std::to_string(r.attempts) +
                           " attempt(s)):\n" + r.client;
  EXPECT_TRUE(r.client_done) << both;
  EXPECT_EQ(r.client_exit, c.client_exit) << both;
  if (c.server_exits) {
    EXPECT_TRUE(r.server_done) << both;
    EXPECT_EQ(r.server_exit, 0) << both;
  }
  for (const std::string& s : c.client_says) EXPECT_NE(r.client.find(s), std::string::npos) << s << "\n" << both;
  for (const std::string& s : c.server_says) EXPECT_NE(r.server.find(s), std::string::npos) << s << "\n" << both;
  std::printf("%s\n", both.c_str());
}

std::vector<std::string> rping_lines(const char* prefix, int n) {
  std::vector<std::string> v;
  for (int i = 0; i < n; ++i) v.push_back(std::string(prefix) + "rdma-ping-" + std::to_string(i) + ": ");
  return v;
}

std::vector<std::string> plus(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

const ProgramCase kCases[] = {
    {"rping",
     {"rping", "-s", "-a", "SIP", "-v", "-C", "10"},
     {"rping", "-c", "-a", "SIP", "-v", "-C", "10"},
     true,
     0,
     rping_lines("ping data: ", 10),
     plus(rping_lines("server ping data: ", 10), {"server DISCONNECT EVENT..."})},
    {"rping_self_created_qp",
     {"rping", "-s", "-a", "SIP", "-q", "-v", "-C", "10"},
     {"rping", "-c", "-a", "SIP", "-q", "-v", "-C", "10"},
     true,
     0,
     rping_lines("ping data: ", 10),
     rping_lines("server ping data: ", 10)},
    {"ucmatose",
     {"ucmatose", "-m", "-c", "10", "-C", "100"},
     {"ucmatose", "-s", "SIP", "-c", "10", "-C", "100"},
     true,
     0,
     {"receiving data transfers", "sending replies", "data transfers complete", "return status 0"},
     {"data transfers complete", "migrating to new event channel", "disconnected", "return status 0"}},
    {"udaddy",
     {"udaddy", "-c", "4"},
     {"udaddy", "-s", "SIP", "-c", "4"},
     true,
     0,
     {"initiating data transfers", "data transfers complete", "return status 0"},
     {"sending replies", "data transfers complete", "return status 0"}},
    {"rdma_server_client", {"rdma_server"}, {"rdma_client", "-s", "SIP"}, true, 0, {"rdma_client: end 0"},
     {"rdma_server: end 0"}},
    {"rdma_xserver_xclient", {"rdma_xserver"}, {"rdma_xclient", "-s", "SIP"}, true, 0, {"rdma_xclient: end 0"},
     {"rdma_xserver: end 0"}},
    {"cmtime",
     {"cmtime"},
     {"cmtime", "-s", "SIP", "-c", "200"},
     false,
     0,
     {"step              total ms     max ms     min us  us / conn", "connect      :", "disconnect   :"},
     {}},
    // perftest -R: the control exchange and the data QPs over rdma_cm.
    {"ib_send_bw_R",
     {"ib_send_bw", "-R", "-d", "droce0", "-n", "200"},
     {"ib_send_bw", "-R", "-d", "droce0", "-n", "200", "SIP"},
     true,
     0,
     {"rdma_cm QPs\t : ON", " 65536      200  "},
     {" 65536      200  "},
     true},
    {"ib_send_bw_R_q4",
     {"ib_send_bw", "-R", "-q", "4", "-d", "droce0", "-n", "200"},
     {"ib_send_bw", "-R", "-q", "4", "-d", "droce0", "-n", "200", "SIP"},
     true,
     0,
     {" 65536      800  "},
     {" 65536      800  "},
     true},
    {"ib_send_bw_R_UD",
     {"ib_send_bw", "-R", "-c", "UD", "-d", "droce0", "-n", "200"},
     {"ib_send_bw", "-R", "-c", "UD", "-d", "droce0", "-n", "200", "SIP"},
     true,
     0,
     {" 1024       200  "},
     {" 1024       200  "},
     true},
    {"ib_write_lat_R",
     {"ib_write_lat", "-R", "-d", "droce0", "-n", "200"},
     {"ib_write_lat", "-R", "-d", "droce0", "-n", "200", "SIP"},
     true,
     0,
     {" 2       200  "},
     {" 2       200  "},
     true},
    {"ib_read_lat_R",
     {"ib_read_lat", "-R", "-d", "droce0", "-n", "200"},
     {"ib_read_lat", "-R", "-d", "droce0", "-n", "200", "SIP"},
     true,
     0,
     {" 2       200  "},
     {},
     true},
    {"rping_nobody_listens",
     {"rping", "-s", "-a", "SIP", "-C", "1"},
     {"rping", "-c", "-a", "SIP", "-p", "9999", "-C", "1"},
     false,
     255,
     {"cma event RDMA_CM_EVENT_REJECTED, error 8"},
     {}},
};

const Direction kDirections[] = {{"Server1Client2", "10.0.0.1", "10.0.0.2"},
                                 {"Server2Client1", "10.0.0.2", "10.0.0.1"}};

std::string case_name(const ::testing::TestParamInfo<std::tuple<ProgramCase, Direction>>& info) {
  return std::string(std::get<0>(info.param).name) + "_" + std::get<1>(info.param).name;
}

INSTANTIATE_TEST_SUITE_P(Debian, RdmacmPrograms,
                         ::testing::Combine(::testing::ValuesIn(kCases), ::testing::ValuesIn(kDirections)),
                         case_name);

// The CM MADs droce sends and receives, as TShark 4.0 decodes them from the
// client's capture: the five messages of an rping, none malformed.
TEST(RdmacmCapture, TsharkDecodesTheCmMads) {
  if (sanitized_build()) GTEST_SKIP() << "sanitizer build: the ASan drop-ins cannot be loaded by rping";
  if (!have("/usr/bin/rping")) GTEST_SKIP() << "rping is not installed (package rdmacm-utils)";
  if (!have("/usr/bin/tshark")) GTEST_SKIP() << "tshark is not installed";
  TempDir dir;
  const std::string pcap = dir.path() + "/client.pcapng";
  const ProgramCase c = kCases[0];
  const PairRun r = run_pair(c, kDirections[0], pcap);
  ASSERT_EQ(r.client_exit, 0) << r.client;
  Process t;
  ASSERT_TRUE(start({"/usr/bin/tshark", "-r", pcap, "-Y", "infiniband.bth.destqp == 1"}, {},
                    dir.path() + "/cm.txt", &t));
  ASSERT_TRUE(wait_for(&t, 60000));
  const std::string cm = read_file(dir.path() + "/cm.txt");
  for (const char* m : {"CM: ConnectRequest", "CM: ConnectReply", "CM: ReadyToUse", "CM: DisconnectRequest",
                        "CM: DisconnectReply"})
    EXPECT_NE(cm.find(m), std::string::npos) << m << "\n" << cm;
  Process bad;
  ASSERT_TRUE(start({"/usr/bin/tshark", "-r", pcap, "-Y", "_ws.malformed || _ws.expert.severity >= error"}, {},
                    dir.path() + "/bad.txt", &bad));
  ASSERT_TRUE(wait_for(&bad, 60000));
  // What tshark lists is a bad frame; its note about running as root is not.
  std::string listed;
  std::istringstream lines(read_file(dir.path() + "/bad.txt"));
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("Running as user", 0) != 0) listed += line + "\n";
  }
  EXPECT_EQ(listed, "") << cm;
}

// A peer whose port is up but whose CM never answers (a droce process with
// no rdma_cm in it, as a server killed after the REQ would be): the client's
// REQ goes 16 times, 6.1 s apart (2 * ms(18) + ms(20), as Linux), then
// UNREACHABLE -110 (-ETIMEDOUT), never a hang.
TEST(RdmacmUnreachable, RpingToAPeerWithoutCm) {
  if (sanitized_build()) GTEST_SKIP() << "sanitizer build: the ASan drop-ins cannot be loaded by rping";
  if (!have("/usr/bin/rping") || !have("/usr/bin/ibv_rc_pingpong"))
    GTEST_SKIP() << "rping or ibv_rc_pingpong is not installed (rdmacm-utils, ibverbs-utils)";
  const ProgramCase c{"unreachable",
                      {"ibv_rc_pingpong", "-g", "0", "-d", "droce0", "-p", "18999"},
                      {"rping", "-c", "-a", "SIP", "-C", "1"},
                      false,
                      255,
                      {"cma event RDMA_CM_EVENT_UNREACHABLE, error -110"},
                      {}};
  const auto t0 = std::chrono::steady_clock::now();
  const PairRun r = run_pair(c, kDirections[0]);
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_TRUE(r.client_done) << r.client;
  EXPECT_EQ(r.client_exit, 255) << r.client;
  EXPECT_NE(r.client.find("cma event RDMA_CM_EVENT_UNREACHABLE, error -110"), std::string::npos) << r.client;
  std::printf("UNREACHABLE after %lld s\n%s\n", static_cast<long long>(secs), r.client.c_str());
}

// An address nobody has: ADDR_ERROR with -ETIMEDOUT, as on a kernel device
// (droce0 on its default port: nobody answers ARP there).
TEST(RdmacmProgramsAlone, RpingToAnAddressNobodyHas) {
  if (sanitized_build()) GTEST_SKIP() << "sanitizer build: the ASan drop-ins cannot be loaded by rping";
  if (!have("/usr/bin/rping")) GTEST_SKIP() << "rping is not installed (package rdmacm-utils)";
  TempDir dir;
  Process p;
  const std::string prefix = "droce-cm-a-" + std::to_string(getpid());
  ASSERT_TRUE(start({"/usr/bin/rping", "-c", "-a", "10.77.0.99", "-C", "1"},
                    {{"LD_LIBRARY_PATH", dropin_lib_dir()},
                     {"DROCE_EAL_ARGS", "--no-huge --no-pci -m 256 --no-telemetry --log-level=*:warning "
                                        "--file-prefix " + prefix + " --vdev=net_ring0"}},
                    dir.path() + "/out.txt", &p));
  EXPECT_TRUE(wait_for(&p, 30000));
  const std::string out = read_file(dir.path() + "/out.txt");
  EXPECT_EQ(p.exit_code, 255) << out;
  EXPECT_NE(out.find("cma event RDMA_CM_EVENT_ADDR_ERROR, error -110"), std::string::npos) << out;
  remove_dpdk_runtime_dir(prefix);
}

}  // namespace
}  // namespace droce::test
