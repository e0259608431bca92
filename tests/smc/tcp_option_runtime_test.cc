// SMC-R gated on TCP option 254 between two runtimes of one process (as
// root, cgroup v2): both ends with the option use SMC-R; a client whose
// SYN-ACK lacked it sends no Proposal, and a server whose client's SYN
// lacked it reads none, each falling back with 0x03010000 at once, the
// application's bytes intact, as Linux 6.1 (smc-v2-linux61.md B10).
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "smc/tcp_option.h"
#include "tests/smc/smc_fixture.h"

namespace droce::smc::test {
namespace {

std::string skip_reason() {
  if (geteuid() != 0) return "needs root to load a BPF program and make a cgroup";
  std::ifstream in("/proc/self/mountinfo");
  std::stringstream ss;
  ss << in.rdbuf();
  if (tcp_option_detail::cgroup2_mount(ss.str()).empty())
    return "no cgroup v2 hierarchy is mounted";
  return "";
}

class SmcTcpOption : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const std::string why = skip_reason(); !why.empty()) GTEST_SKIP() << why;
    Config c = test_config();
    c.capability_tcp_option = true;
    client_ = make_runtime(c);
    server_ = make_runtime(c);
    ASSERT_NE(client_, nullptr);
    ASSERT_NE(server_, nullptr);
    ASSERT_NE(client_->tcp_option(), nullptr);
    EXPECT_STREQ(client_->capability_mode(), "tcp-option");
    EXPECT_EQ(client_->tcp_option(), server_->tcp_option()) << "one cgroup per process";
  }
  void TearDown() override {
    client_.reset();
    server_.reset();
  }
  std::unique_ptr<Runtime> client_, server_;
};

TEST_F(SmcTcpOption, BothEndsWithTheOptionUseSmcR) {
  int port = 0;
  auto l = listen_on(server_.get(), &port);
  int err = 0;
  auto c = Socket::create(client_.get(), 0, 0, &err);
  std::shared_ptr<Socket> a;
  std::thread t([&] { a = l->accept(nullptr, nullptr, 0, &err); });
  const sockaddr_in sa = loopback(port);
  ASSERT_EQ(c->connect(reinterpret_cast<const sockaddr*>(&sa), sizeof(sa)), 0);
  t.join();
  ASSERT_NE(a, nullptr) << err;
  EXPECT_TRUE(c->uses_smc()) << std::hex << c->fallback_reason();
  EXPECT_TRUE(a->uses_smc()) << std::hex << a->fallback_reason();
  const char msg[] = "over SMC-R";
  ASSERT_EQ(c->send(msg, sizeof(msg), 0), long(sizeof(msg)));
  char got[sizeof(msg)] = {};
  ASSERT_EQ(a->recv(got, sizeof(got), MSG_WAITALL), long(sizeof(msg)));
  EXPECT_STREQ(got, msg);
  c->close();
  a->close();
  l->close();
}

TEST_F(SmcTcpOption, AServerWithoutTheOptionGetsNoProposal) {
  int port = 0;
  auto plain = listen_on(server_.get(), &port, /*tcp_only=*/true);  // unmarked: a plain TCP server
  int err = 0;
  auto c = Socket::create(client_.get(), 0, 0, &err);
  std::shared_ptr<Socket> a;
  std::thread t([&] { a = plain->accept(nullptr, nullptr, 0, &err); });
  const sockaddr_in sa = loopback(port);
  ASSERT_EQ(c->connect(reinterpret_cast<const sockaddr*>(&sa), sizeof(sa)), 0);
  t.join();
  ASSERT_NE(a, nullptr) << err;
  EXPECT_FALSE(c->uses_smc());
  EXPECT_EQ(c->fallback_reason(), wire::decline::kPeerNoSmc);
  const char hello[] = "PING\r\n";
  ASSERT_EQ(c->send(hello, sizeof(hello) - 1, 0), long(sizeof(hello) - 1));
  char got[16] = {};
  EXPECT_EQ(a->recv(got, sizeof(got), 0), long(sizeof(hello) - 1));
  EXPECT_STREQ(got, hello) << "the server reads the client's bytes, no Proposal before them";
  c->close();
  a->close();
  plain->close();
}

TEST_F(SmcTcpOption, AClientWithoutTheOptionIsNotReadAsProposing) {
  int port = 0;
  auto l = listen_on(server_.get(), &port);
  // A plain kernel socket (no mark, so no option in its SYN) sending bytes
  // that are a CLC Proposal's first bytes: the server must not take them
  // for one (Linux never reads a Proposal after a SYN without the option).
  const int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const sockaddr_in sa = loopback(port);
  ASSERT_EQ(::connect(c, reinterpret_cast<const sockaddr*>(&sa), sizeof(sa)), 0);
  const uint8_t eyecatcher[] = {0xE2, 0xD4, 0xC3, 0xD9, 0x01, 0x00, 0x9C, 0x22};
  ASSERT_EQ(::send(c, eyecatcher, sizeof(eyecatcher), 0), ssize_t(sizeof(eyecatcher)));
  int err = 0;
  auto a = l->accept(nullptr, nullptr, 0, &err);
  ASSERT_NE(a, nullptr) << err;
  EXPECT_FALSE(a->uses_smc());
  EXPECT_EQ(a->fallback_reason(), wire::decline::kPeerNoSmc);
  uint8_t got[sizeof(eyecatcher)] = {};
  EXPECT_EQ(a->recv(got, sizeof(got), MSG_WAITALL), long(sizeof(got)));
  EXPECT_EQ(std::memcmp(got, eyecatcher, sizeof(got)), 0) << "delivered as data";
  ::close(c);
  a->close();
  l->close();
}

}  // namespace
}  // namespace droce::smc::test
