// RC transport end to end across a port pair: SEND, WRITE (+IMM), READ and
// atomics at the sizes around the path MTU and large, byte-exact.
#include <numeric>

#include "tests/nic/engine/engine_fixture.h"

namespace droce::nic::test {
namespace {

constexpr uint32_t kAll = kAccessLocalWrite | kAccessRemoteWrite | kAccessRemoteRead | kAccessRemoteAtomic;

void fill_pattern(std::vector<uint8_t>& v, uint32_t seed) {
  for (size_t i = 0; i < v.size(); ++i) v[i] = uint8_t((i * 131 + seed) ^ (i >> 9));
}

class RcSizes : public EngineTest, public ::testing::WithParamInterface<uint32_t> {};

TEST_P(RcSizes, SendArrivesByteExact) {
  const uint32_t size = GetParam();
  Qp* qa = make_qp(a_, QpType::kRc);
  Qp* qb = make_qp(b_, QpType::kRc);
  connect(a_, qa, b_, qb);
  connect(b_, qb, a_, qa);
  Buffer src = make_buffer(a_, size, kAll);
  Buffer dst = make_buffer(b_, size + 16, kAll, 0xEE);
  fill_pattern(src.bytes, size);
  Sge rs{dst.addr(), uint32_t(dst.bytes.size()), dst.key};
  ASSERT_EQ(qb->post_recv(77, &rs, 1), 0);
  SendWqe w = wqe(WrOpcode::kSend, 5);
  Sge ss{src.addr(), size, src.key};
  w.num_sge = 1;
  ASSERT_EQ(qa->post_send(w, &ss, nullptr), 0);
  auto sc = wait_cqes(a_.scq, 1);
  auto rc = wait_cqes(b_.rcq, 1);
  ASSERT_EQ(sc.size(), 1u);
  ASSERT_EQ(rc.size(), 1u);
  EXPECT_EQ(sc[0].status, WcStatus::kSuccess);
  EXPECT_EQ(sc[0].wr_id, 5u);
  EXPECT_EQ(sc[0].opcode, WcOpcode::kSend);
  EXPECT_EQ(rc[0].status, WcStatus::kSuccess);
  EXPECT_EQ(rc[0].wr_id, 77u);
  EXPECT_EQ(rc[0].opcode, WcOpcode::kRecv);
  EXPECT_EQ(rc[0].byte_len, size);
  EXPECT_EQ(rc[0].qp_num, qb->qpn());
  EXPECT_TRUE(std::equal(src.bytes.begin(), src.bytes.begin() + size, dst.bytes.begin()));
  EXPECT_EQ(dst.bytes[size], 0xEE);  // nothing past the message
}

TEST_P(RcSizes, WriteArrivesByteExact) {
  const uint32_t size = GetParam();
  Qp* qa = make_qp(a_, QpType::kRc);
  Qp* qb = make_qp(b_, QpType::kRc);
  connect(a_, qa, b_, qb);
  connect(b_, qb, a_, qa);
  Buffer src = make_buffer(a_, size, kAll);
  Buffer dst = make_buffer(b_, size + 16, kAll, 0xEE);
  fill_pattern(src.bytes, size + 1);
  SendWqe w = wqe(WrOpcode::kRdmaWrite, 6);
  Sge ss{src.addr(), size, src.key};
  w.num_sge = 1;
  w.remote_addr = dst.addr();
  w.rkey = dst.key;
  ASSERT_EQ(qa->post_send(w, &ss, nullptr), 0);
  auto sc = wait_cqes(a_.scq, 1);
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].status, WcStatus::kSuccess);
  EXPECT_EQ(sc[0].opcode, WcOpcode::kRdmaWrite);
  EXPECT_TRUE(std::equal(src.bytes.begin(), src.bytes.begin() + size, dst.bytes.begin()));
  EXPECT_EQ(dst.bytes[size], 0xEE);
}

TEST_P(RcSizes, ReadArrivesByteExact) {
  const uint32_t size = GetParam();
  Qp* qa = make_qp(a_, QpType::kRc);
  Qp* qb = make_qp(b_, QpType::kRc);
  connect(a_, qa, b_, qb);
  connect(b_, qb, a_, qa);
  Buffer remote = make_buffer(b_, size, kAll);
  Buffer local = make_buffer(a_, size + 16, kAll, 0xEE);
  fill_pattern(remote.bytes, size + 2);
  SendWqe w = wqe(WrOpcode::kRdmaRead, 7);
  Sge ls{local.addr(), size, local.key};
  w.num_sge = 1;
  w.remote_addr = remote.addr();
  w.rkey = remote.key;
  ASSERT_EQ(qa->post_send(w, &ls, nullptr), 0);
  auto sc = wait_cqes(a_.scq, 1);
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].status, WcStatus::kSuccess);
  EXPECT_EQ(sc[0].opcode, WcOpcode::kRdmaRead);
  EXPECT_EQ(sc[0].byte_len, size);
  EXPECT_TRUE(std::equal(remote.bytes.begin(), remote.bytes.begin() + size, local.bytes.begin()));
  EXPECT_EQ(local.bytes[size], 0xEE);
}

INSTANTIATE_TEST_SUITE_P(Sizes, RcSizes,
                         ::testing::Values(0u, 1u, 1023u, 1024u, 1025u, 1u << 20, 8u << 20));

TEST_F(EngineTest, FetchAddAndCompareSwap) {
  Qp* qa = make_qp(a_, QpType::kRc);
  Qp* qb = make_qp(b_, QpType::kRc);
  connect(a_, qa, b_, qb);
  connect(b_, qb, a_, qa);
  Buffer remote = make_buffer(b_, 64, kAll);
  Buffer local = make_buffer(a_, 64, kAll);
  uint64_t v = 100;
  std::memcpy(remote.bytes.data(), &v, 8);
  SendWqe w = wqe(WrOpcode::kFetchAdd, 1);
  Sge ls{local.addr(), 8, local.key};
  w.num_sge = 1;
  w.remote_addr = remote.addr();
  w.rkey = remote.key;
  w.compare_add = 5;
  ASSERT_EQ(qa->post_send(w, &ls, nullptr), 0);
  auto sc = wait_cqes(a_.scq, 1);
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].status, WcStatus::kSuccess);
  EXPECT_EQ(sc[0].opcode, WcOpcode::kFetchAdd);
  uint64_t orig, now;
  std::memcpy(&orig, local.bytes.data(), 8);
  std::memcpy(&now, remote.bytes.data(), 8);
  EXPECT_EQ(orig, 100u);
  EXPECT_EQ(now, 105u);

  w = wqe(WrOpcode::kCmpSwap, 2);
  w.num_sge = 1;
  w.remote_addr = remote.addr();
  w.rkey = remote.key;
  w.compare_add = 105;
  w.swap = 7;
  ASSERT_EQ(qa->post_send(w, &ls, nullptr), 0);
  sc = wait_cqes(a_.scq, 1);
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].status, WcStatus::kSuccess);
  std::memcpy(&orig, local.bytes.data(), 8);
  std::memcpy(&now, remote.bytes.data(), 8);
  EXPECT_EQ(orig, 105u);
  EXPECT_EQ(now, 7u);
}

TEST_F(EngineTest, ManySignaledAndUnsignaledWritesCompleteInOrder) {
  Qp* qa = make_qp(a_, QpType::kRc, 1024);
  Qp* qb = make_qp(b_, QpType::kRc, 1024);
  connect(a_, qa, b_, qb);
  connect(b_, qb, a_, qa);
  Buffer src = make_buffer(a_, 4096, kAll);
  Buffer dst = make_buffer(b_, 4096, kAll);
  fill_pattern(src.bytes, 9);
  int signaled = 0;
  for (int i = 0; i < 1000; ++i) {
    SendWqe w = wqe(WrOpcode::kRdmaWrite, uint64_t(i), i % 10 == 9 ? kSendSignaled : 0);
    signaled += i % 10 == 9;
    Sge ss{src.addr() + uint64_t(i % 4), 2000, src.key};
    w.num_sge = 1;
    w.remote_addr = dst.addr() + uint64_t(i % 4);
    w.rkey = dst.key;
    int rc;
    while ((rc = qa->post_send(w, &ss, nullptr)) == ENOMEM) pump([] { return true; });
    ASSERT_EQ(rc, 0);
    if (i % 100 == 0) pump([] { return true; });
  }
  auto sc = wait_cqes(a_.scq, size_t(signaled));
  ASSERT_EQ(sc.size(), size_t(signaled));
  for (int k = 0; k < signaled; ++k) {
    EXPECT_EQ(sc[k].status, WcStatus::kSuccess);
    EXPECT_EQ(sc[k].wr_id, uint64_t(k * 10 + 9));
  }
  EXPECT_EQ(qa->counters().retransmits, 0u);
  // Every request (copied and attached payloads) and every ACK came from
  // the QPs' header templates, each made once for its one peer.
  EXPECT_EQ(qa->header_template_rebuilds(), 1u);
  EXPECT_EQ(qb->header_template_rebuilds(), 1u);
  EXPECT_GE(qa->counters().tx_packets, 2000u);
}

}  // namespace
}  // namespace droce::nic::test
