// QP1 (nic/gsi.h) between two devices on a net_ring pair with a fake clock:
// MADs a device queues arrive at the peer's handler from the right source,
// after ARP; what is not a GSI MAD (opcode, Q_Key, length, P_Key) is dropped
// and counted; without a handler MADs are counted, not delivered.
#include <vector>

#include "nic/wire/deth.h"
#include "tests/nic/engine/fake_clock.h"

namespace droce::nic::test {
namespace {

namespace op = wire::op;

struct Received {
  uint32_t src_ip;
  std::vector<uint8_t> mad;
};

void collect_mad(void* arg, uint32_t src_ip, const uint8_t* mad, size_t len) {
  static_cast<std::vector<Received>*>(arg)->push_back({src_ip, std::vector<uint8_t>(mad, mad + len)});
}

class GsiPath : public FakeClockTest {
 protected:
  std::vector<Received> got_;
  wire::PacketSpec gsi_spec() {
    wire::PacketSpec s = spec(b_, a_, op::kUd | op::kSendOnly, kGsiQpn, 0);
    s.deth_qkey = wire::kGsiQkey;
    s.deth_src_qp = kGsiQpn;
    s.payload_len = kGsiMadLen;
    return s;
  }
};

TEST_F(GsiPath, MadsReachThePeersHandler) {
  a_.dev->set_gsi_handler(collect_mad, &got_);
  uint8_t mad[kGsiMadLen];
  for (size_t i = 0; i < kGsiMadLen; ++i) mad[i] = uint8_t(i);
  for (int n = 0; n < 3; ++n) {
    mad[0] = uint8_t(n);
    ASSERT_TRUE(b_.dev->gsi_send(a_.dev->port().ipv4(), mad, sizeof(mad), 0));
  }
  run_for(20 * kNanosPerMs, 100 * kNanosPerUs);  // ARP, then the three MADs in order
  ASSERT_EQ(got_.size(), 3u);
  for (int n = 0; n < 3; ++n) {
    EXPECT_EQ(got_[n].src_ip, b_.dev->port().ipv4());
    ASSERT_EQ(got_[n].mad.size(), kGsiMadLen);
    EXPECT_EQ(got_[n].mad[0], n);
    EXPECT_EQ(got_[n].mad[255], 255);
  }
  EXPECT_EQ(b_.dev->gsi_counters().tx_mads, 3u);
  EXPECT_EQ(a_.dev->gsi_counters().rx_mads, 3u);
  EXPECT_EQ(a_.dev->counters().rx_no_qp, 0u);  // QP1 is not a missing QP
}

TEST_F(GsiPath, WrongLengthAndFullQueueAreRefused) {
  uint8_t mad[kGsiMadLen + 1] = {};
  EXPECT_FALSE(b_.dev->gsi_send(a_.dev->port().ipv4(), mad, kGsiMadLen + 1, 0));
  pump_b_ = false;  // nothing leaves: the queue fills
  size_t queued = 0;
  while (b_.dev->gsi_send(0x0A090063, mad, kGsiMadLen, 0)) ++queued;
  EXPECT_EQ(queued, nic::Gsi::kTxSlots);
  EXPECT_EQ(b_.dev->gsi_counters().tx_queue_full, 2u);
}

TEST_F(GsiPath, UnresolvableDestinationIsDroppedAndCounted) {
  uint8_t mad[kGsiMadLen] = {};
  ASSERT_TRUE(b_.dev->gsi_send(0x0A090063, mad, kGsiMadLen, 0));  // 10.9.0.99: nobody
  run_for(100 * kNanosPerMs, 100 * kNanosPerUs);
  EXPECT_EQ(b_.dev->gsi_counters().tx_no_neighbor, 1u);
  EXPECT_EQ(b_.dev->gsi_counters().tx_mads, 0u);
}

TEST_F(GsiPath, WhatIsNotAGsiMadIsDroppedAndCounted) {
  a_.dev->set_gsi_handler(collect_mad, &got_);
  uint8_t mad[kGsiMadLen] = {};
  wire::PacketSpec s = gsi_spec();
  s.deth_qkey = 0x80010001;
  inject(b_, s, mad);
  s = gsi_spec();
  s.payload_len = 128;
  inject(b_, s, mad);
  s = gsi_spec();
  s.pkey = 0x1234;
  inject(b_, s, mad);
  s = spec(b_, a_, op::kRc | op::kSendOnly, kGsiQpn, 0);
  s.payload_len = kGsiMadLen;
  inject(b_, s, mad);
  run_for(1 * kNanosPerMs, 100 * kNanosPerUs);
  EXPECT_TRUE(got_.empty());
  const GsiCounters c = a_.dev->gsi_counters();
  EXPECT_EQ(c.rx_bad_qkey, 1u);
  EXPECT_EQ(c.rx_bad_len, 1u);
  EXPECT_EQ(c.rx_bad_pkey, 1u);
  EXPECT_EQ(c.rx_bad_opcode, 1u);
  EXPECT_EQ(c.rx_mads, 0u);
  // A good one still gets through, and none without a handler.
  inject(b_, gsi_spec(), mad);
  run_for(1 * kNanosPerMs, 100 * kNanosPerUs);
  EXPECT_EQ(got_.size(), 1u);
  a_.dev->set_gsi_handler(nullptr, nullptr);
  inject(b_, gsi_spec(), mad);
  run_for(1 * kNanosPerMs, 100 * kNanosPerUs);
  EXPECT_EQ(got_.size(), 1u);
  EXPECT_EQ(a_.dev->gsi_counters().rx_no_agent, 1u);
}

}  // namespace
}  // namespace droce::nic::test
