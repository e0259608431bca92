// What a Linux 6.1 kernel peer showed droce (scripts/interop,
// docs/interop.md), kept here so that it stays fixed without a VM: each test
// is the droce side of one finding, between two runtimes on the loopback
// port. (The other teardown finding, the link kept up after DELETE LINK
// until the peer is quiet, has no test here: droce's own peer answers
// within the old window on the loopback port, so a test could not fail;
// scripts/interop's captures show it against the kernel.)
#include "tests/smc/smc_fixture.h"

namespace droce::smc::test {
namespace {

class SmcLinuxPeer : public ::testing::Test {
 protected:
  void SetUp() override {
    Config c = test_config();
    client_ = make_runtime(c);
    server_ = make_runtime(c);
    ASSERT_NE(client_, nullptr);
    ASSERT_NE(server_, nullptr);
  }
  void TearDown() override {
    client_.reset();
    server_.reset();
  }
  std::unique_ptr<Runtime> client_, server_;
};

// A program that closes its connection and ends at once (droce-smc client
// after a pingpong) used to send DELETE LINK right after its close CDC: the
// peer's close CDC then met a destroyed QP. A Linux peer retransmits it and
// its close() waits for the completion without a bound
// (smc_cdc_wait_pend_tx_wr), so the kernel program hung. At program end the
// runtime now lets pending closes finish (within SMC_CLOSE_WAIT_MS) before
// DELETE LINK: the peer closes normally, its connection unharmed.
TEST_F(SmcLinuxPeer, ProgramEndLetsAPendingCloseFinishBeforeDeleteLink) {
  int port = 0;
  auto listener = listen_on(server_.get(), &port);
  int err = 0;
  auto c = Socket::create(client_.get(), 0, 0, &err);
  std::shared_ptr<Socket> s;
  std::thread t([&] { s = listener->accept(nullptr, nullptr, 0, &err); });
  const sockaddr_in sa = loopback(port);
  ASSERT_EQ(c->connect(reinterpret_cast<const sockaddr*>(&sa), sizeof(sa)), 0);
  t.join();
  ASSERT_TRUE(c->uses_smc());
  ASSERT_NE(s, nullptr);
  Connection* sc = s->connection();
  sc->hold();
  c->close();  // the client's close waits for the server's
  // The server application closes a little later, as a Linux echo server
  // does once it has read the end of stream.
  std::thread peer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    char b;
    EXPECT_EQ(s->recv(&b, 1, 0), 0) << "the client's close is an end of stream";
    s->close();
  });
  client_->terminate_all(true);  // the program ends (atexit)
  peer.join();
  EXPECT_EQ(sc->error(), 0) << "the server's connection was ended by DELETE LINK before it could close";
  EXPECT_TRUE(eventually([&] { return sc->closed_both_ways(); }, 2000));
  sc->put();
  listener->close();
}

}  // namespace
}  // namespace droce::smc::test
