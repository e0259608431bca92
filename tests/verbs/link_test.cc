// Port state through the API (issue 5): ibv_open_device waits a bounded time
// (DROCE_LINK_WAIT_MS) for a link that is down, ibv_query_port reports the
// link as it is, and link changes raise IBV_EVENT_PORT_ERR / PORT_ACTIVE
// through ibv_get_async_event: on the embedded net_ring port taken down and up
// with DPDK, and on net_memif when the peer process starts and is killed.
// Each test initialises DPDK with its own DROCE_* environment, so each must
// run in its own process (ctest does; running the binary whole skips all
// but the first).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <infiniband/verbs.h>
#include <poll.h>
#include <rte_ethdev.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "tests/common/process.h"

namespace droce::test {
namespace {

constexpr int kEventTimeoutMs = 10000;

bool g_initialised = false;  // DPDK can be initialised once per process

#define ONCE_PER_PROCESS()                                                              \
  do {                                                                                  \
    if (g_initialised) GTEST_SKIP() << "DPDK already initialised: run this test alone"; \
    g_initialised = true;                                                               \
  } while (0)

std::string eal_args(const std::string& prefix, const std::string& vdev) {
  return "--no-huge --no-pci -m 256 --no-telemetry --log-level=*:warning --file-prefix " + prefix +
         " --vdev=" + vdev;
}

std::string unique_tag() {
  return std::to_string(getpid()) + "-" +
         std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 100000);
}

// The next async event within timeout_ms, or -1 (event_type of none).
int next_event(ibv_context* ctx, ibv_async_event* ev, int timeout_ms) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    if (ibv_get_async_event(ctx, ev) == 0) return ev->event_type;
    EXPECT_EQ(errno, EAGAIN);
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          end - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) return -1;
    pollfd pfd{ctx->async_fd, POLLIN, 0};
    poll(&pfd, 1, int(left));
  }
}

// Expects the next event to be want for port 1, and acknowledges it.
void expect_port_event(ibv_context* ctx, ibv_event_type want) {
  ibv_async_event ev{};
  const int got = next_event(ctx, &ev, kEventTimeoutMs);
  ASSERT_EQ(got, int(want)) << "expected " << ibv_event_type_str(want) << ", got "
                            << (got < 0 ? "nothing" : ibv_event_type_str(ev.event_type));
  EXPECT_EQ(ev.element.port_num, 1);
  ibv_ack_async_event(&ev);
}

// DPDK's first ethdev port (droce0's), RTE_MAX_ETHPORTS when there is none.
uint16_t first_port_id() {
  uint16_t id;
  RTE_ETH_FOREACH_DEV(id) { return id; }
  return RTE_MAX_ETHPORTS;
}

ibv_port_state port_state(ibv_context* ctx) {
  ibv_port_attr a{};
  EXPECT_EQ(ibv_query_port(ctx, 1, &a), 0);
  return a.state;
}

struct Opened {
  ibv_device** list = nullptr;
  ibv_context* ctx = nullptr;
  ~Opened() {
    if (ctx != nullptr) ibv_close_device(ctx);
    if (list != nullptr) ibv_free_device_list(list);
  }
};

void open_first(Opened* o, bool nonblocking_events) {
  int n = 0;
  o->list = ibv_get_device_list(&n);
  ASSERT_NE(o->list, nullptr) << "errno " << errno;
  ASSERT_GE(n, 1);
  o->ctx = ibv_open_device(o->list[0]);
  ASSERT_NE(o->ctx, nullptr) << "errno " << errno;
  if (nonblocking_events) {
    const int fl = fcntl(o->ctx->async_fd, F_GETFL);
    ASSERT_EQ(fcntl(o->ctx->async_fd, F_SETFL, fl | O_NONBLOCK), 0);
  }
}

std::string peer_path() {
  const char* b = std::getenv("DROCE_BUILD_DIR");
  return b != nullptr ? std::string(b) + "/tests/verbs_link_peer" : std::string();
}

// Waits until the peer has printed "peer up" (its port is ACTIVE).
bool wait_peer_up(const Process& p, int timeout_ms) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < end) {
    if (read_file(p.output_path).find("peer up") != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

// The embedded default (net_ring looped back) taken down and up with DPDK's
// own call, as an administrator or a PMD would: the engine notices within its
// link check interval and raises the events; ibv_query_port follows.
TEST(PortEvents, RingLinkDownAndUp) {
  ONCE_PER_PROCESS();
  unsetenv("DROCE_EAL_ARGS");
  unsetenv("DROCE_LINK_WAIT_MS");
  Opened o;
  ASSERT_NO_FATAL_FAILURE(open_first(&o, true));
  EXPECT_EQ(port_state(o.ctx), IBV_PORT_ACTIVE);
  const uint16_t port_id = first_port_id();
  ASSERT_LT(port_id, RTE_MAX_ETHPORTS);
  ibv_async_event ev{};
  EXPECT_EQ(next_event(o.ctx, &ev, 50), -1) << "no event while the link is steady";

  ASSERT_EQ(rte_eth_dev_set_link_down(port_id), 0);
  expect_port_event(o.ctx, IBV_EVENT_PORT_ERR);
  EXPECT_EQ(port_state(o.ctx), IBV_PORT_DOWN);
  ibv_port_attr a{};
  ASSERT_EQ(ibv_query_port(o.ctx, 1, &a), 0);
  EXPECT_EQ(a.phys_state, 3);  // Disabled

  ASSERT_EQ(rte_eth_dev_set_link_up(port_id), 0);
  expect_port_event(o.ctx, IBV_EVENT_PORT_ACTIVE);
  EXPECT_EQ(port_state(o.ctx), IBV_PORT_ACTIVE);
  EXPECT_EQ(next_event(o.ctx, &ev, 50), -1) << "one event per change";
}

// Two contexts on one device (two libraries of one program, or SMC-R beside
// the program's own verbs use): each gets every port event, as every uverbs
// file of a device does, and only the events of the objects it created.
TEST(PortEvents, EveryContextGetsPortEventsAndOnlyItsOwnObjectEvents) {
  ONCE_PER_PROCESS();
  unsetenv("DROCE_EAL_ARGS");
  unsetenv("DROCE_LINK_WAIT_MS");
  Opened a, b;
  ASSERT_NO_FATAL_FAILURE(open_first(&a, true));
  ASSERT_NO_FATAL_FAILURE(open_first(&b, true));
  const uint16_t port_id = first_port_id();
  ASSERT_LT(port_id, RTE_MAX_ETHPORTS);
  ASSERT_EQ(rte_eth_dev_set_link_down(port_id), 0);
  expect_port_event(a.ctx, IBV_EVENT_PORT_ERR);
  expect_port_event(b.ctx, IBV_EVENT_PORT_ERR);
  ASSERT_EQ(rte_eth_dev_set_link_up(port_id), 0);
  expect_port_event(b.ctx, IBV_EVENT_PORT_ACTIVE);
  expect_port_event(a.ctx, IBV_EVENT_PORT_ACTIVE);

  // A QP of b's on an SRQ, moved to ERR (RESET -> INIT -> ERR): LAST_WQE_REACHED goes to b only.
  ibv_pd* pd = ibv_alloc_pd(b.ctx);
  ASSERT_NE(pd, nullptr);
  ibv_cq* cq = ibv_create_cq(b.ctx, 16, nullptr, nullptr, 0);
  ASSERT_NE(cq, nullptr);
  ibv_srq_init_attr sa{};
  sa.attr.max_wr = 16;
  sa.attr.max_sge = 1;
  ibv_srq* srq = ibv_create_srq(pd, &sa);
  ASSERT_NE(srq, nullptr);
  ibv_qp_init_attr qa{};
  qa.send_cq = cq;
  qa.recv_cq = cq;
  qa.srq = srq;
  qa.qp_type = IBV_QPT_RC;
  qa.cap.max_send_wr = 4;
  qa.cap.max_send_sge = 1;
  ibv_qp* qp = ibv_create_qp(pd, &qa);
  ASSERT_NE(qp, nullptr);
  ibv_qp_attr m{};
  m.qp_state = IBV_QPS_INIT;
  m.port_num = 1;
  ASSERT_EQ(ibv_modify_qp(qp, &m, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS), 0);
  m.qp_state = IBV_QPS_ERR;
  ASSERT_EQ(ibv_modify_qp(qp, &m, IBV_QP_STATE), 0);
  ibv_async_event ev{};
  ASSERT_EQ(next_event(b.ctx, &ev, kEventTimeoutMs), int(IBV_EVENT_QP_LAST_WQE_REACHED));
  EXPECT_EQ(ev.element.qp, qp);
  ibv_ack_async_event(&ev);
  EXPECT_EQ(next_event(a.ctx, &ev, 100), -1) << "a got an event of b's QP: "
                                             << ibv_event_type_str(ev.event_type);
  EXPECT_EQ(ibv_destroy_qp(qp), 0);
  EXPECT_EQ(ibv_destroy_srq(srq), 0);
  EXPECT_EQ(ibv_destroy_cq(cq), 0);
  EXPECT_EQ(ibv_dealloc_pd(pd), 0);
}

// A net_memif server whose peer is not there: ibv_open_device waits
// DROCE_LINK_WAIT_MS, then opens and says PORT_DOWN. The peer starting raises
// PORT_ACTIVE; the peer killed (a process that dies: the kernel closes its
// memif socket) raises PORT_ERR; a new peer brings PORT_ACTIVE back.
TEST(PortEvents, MemifPeerComesAndGoes) {
  ONCE_PER_PROCESS();
  ASSERT_FALSE(peer_path().empty()) << "DROCE_BUILD_DIR is not set";
  TempDir dir;
  const std::string sock = dir.path() + "/memif.sock";
  const std::string tag = unique_tag();
  const std::string prefix_s = "droce-link-s-" + tag, prefix_c = "droce-link-c-" + tag;
  setenv("DROCE_EAL_ARGS", eal_args(prefix_s, "net_memif0,role=server,socket=" + sock).c_str(), 1);
  setenv("DROCE_IPV4", "10.0.0.1", 1);
  setenv("DROCE_LINK_WAIT_MS", "100", 1);
  Opened o;
  ASSERT_NO_FATAL_FAILURE(open_first(&o, true));
  EXPECT_EQ(port_state(o.ctx), IBV_PORT_DOWN) << "no peer yet";

  const std::map<std::string, std::string> peer_env = {
      {"DROCE_EAL_ARGS", eal_args(prefix_c, "net_memif0,role=client,socket=" + sock)},
      {"DROCE_IPV4", "10.0.0.2"},
      {"DROCE_LINK_WAIT_MS", ""}};
  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE("peer " + std::to_string(round));
    Process peer;
    ASSERT_TRUE(start({peer_path()}, peer_env, dir.path() + "/peer.txt", &peer));
    expect_port_event(o.ctx, IBV_EVENT_PORT_ACTIVE);
    EXPECT_EQ(port_state(o.ctx), IBV_PORT_ACTIVE);
    EXPECT_TRUE(wait_peer_up(peer, kEventTimeoutMs)) << read_file(peer.output_path);
    kill_and_reap(&peer);
    expect_port_event(o.ctx, IBV_EVENT_PORT_ERR);
    EXPECT_EQ(port_state(o.ctx), IBV_PORT_DOWN);
  }
  remove_dpdk_runtime_dir(prefix_s);
  remove_dpdk_runtime_dir(prefix_c);
}

// A server opened just before its client starts sees PORT_ACTIVE right after
// ibv_open_device (perftest checks exactly then), because open waits for the
// link (default DROCE_LINK_WAIT_MS).
TEST(PortEvents, OpenWaitsForMemifPeer) {
  ONCE_PER_PROCESS();
  ASSERT_FALSE(peer_path().empty()) << "DROCE_BUILD_DIR is not set";
  TempDir dir;
  const std::string sock = dir.path() + "/memif.sock";
  const std::string tag = unique_tag();
  const std::string prefix_s = "droce-link-s-" + tag, prefix_c = "droce-link-c-" + tag;
  setenv("DROCE_EAL_ARGS", eal_args(prefix_s, "net_memif0,role=server,socket=" + sock).c_str(), 1);
  setenv("DROCE_IPV4", "10.0.0.1", 1);
  unsetenv("DROCE_LINK_WAIT_MS");
  int n = 0;
  ibv_device** list = ibv_get_device_list(&n);  // the memif socket exists from here
  ASSERT_NE(list, nullptr);
  ASSERT_GE(n, 1);
  Process peer;
  ASSERT_TRUE(start({peer_path()},
                    {{"DROCE_EAL_ARGS", eal_args(prefix_c, "net_memif0,role=client,socket=" + sock)},
                     {"DROCE_IPV4", "10.0.0.2"}},
                    dir.path() + "/peer.txt", &peer));
  ibv_context* ctx = ibv_open_device(list[0]);
  ASSERT_NE(ctx, nullptr);
  EXPECT_EQ(port_state(ctx), IBV_PORT_ACTIVE);
  EXPECT_TRUE(wait_peer_up(peer, kEventTimeoutMs)) << read_file(peer.output_path);
  kill_and_reap(&peer);
  ibv_close_device(ctx);
  ibv_free_device_list(list);
  remove_dpdk_runtime_dir(prefix_s);
  remove_dpdk_runtime_dir(prefix_c);
}

// A wrong DROCE_LINK_WAIT_MS: no device, errno set, a message naming it.
TEST(PortEvents, BadLinkWaitIsNamed) {
  ASSERT_FALSE(peer_path().empty()) << "DROCE_BUILD_DIR is not set";
  for (const char* bad : {"abc", "-1", "5s", "600001"}) {
    SCOPED_TRACE(bad);
    TempDir dir;
    Process peer;
    ASSERT_TRUE(start({peer_path()}, {{"DROCE_EAL_ARGS", ""}, {"DROCE_LINK_WAIT_MS", bad}},
                      dir.path() + "/peer.txt", &peer));
    ASSERT_TRUE(wait_for(&peer, kEventTimeoutMs));
    const std::string out = read_file(peer.output_path);
    EXPECT_EQ(peer.exit_code, 2) << out;  // ibv_get_device_list returned NULL
    EXPECT_NE(out.find("DROCE_LINK_WAIT_MS: '" + std::string(bad) + "'"), std::string::npos)
        << out;
  }
}

}  // namespace
}  // namespace droce::test
