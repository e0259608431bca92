// Neighbor table (RFC 826 resolution with bounded retries) and ARP frame
// codec, on a fake clock. No EAL needed.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "nic/arp.h"

namespace droce::nic {
namespace {

constexpr uint32_t kPeer = 0x0A4D0002;  // 10.77.0.2
const wire::MacAddr kPeerMac = {0x02, 0, 0, 0, 0, 2};

ArpConfig fast_config() {
  ArpConfig c;
  c.max_requests = 3;
  c.retry_interval = 100;
  c.failed_hold = 1000;
  return c;
}

TEST(PortArpTableTest, UnknownPeerSendsOneRequestThenPending) {
  NeighborTable t(fast_config());
  wire::MacAddr mac{};
  bool send = false;
  EXPECT_EQ(t.resolve(kPeer, &mac, 0, &send), ArpResult::kPending);
  EXPECT_TRUE(send);
  EXPECT_EQ(t.resolve(kPeer, &mac, 10, &send), ArpResult::kPending);
  EXPECT_FALSE(send) << "a pending entry must not send again outside poll()";
  EXPECT_EQ(t.size(), 1u);
}

TEST(PortArpTableTest, RetriesAreBoundedThenFailedAndHeld) {
  NeighborTable t(fast_config());
  wire::MacAddr mac{};
  bool send = false;
  t.resolve(kPeer, &mac, 0, &send);
  uint32_t ips[4];
  int requests = 1;  // the one resolve() asked for
  // Step the fake clock well past every deadline; the loop is bounded.
  for (Nanos now = 0; now <= 2000; now += 10) {
    const size_t n = t.poll(now, ips, 4);
    for (size_t i = 0; i < n; ++i) EXPECT_EQ(ips[i], kPeer);
    requests += int(n);
    if (t.find(kPeer)->state == Neighbor::State::kFailed) break;
  }
  EXPECT_EQ(requests, 3) << "max_requests requests in total";
  ASSERT_NE(t.find(kPeer), nullptr);
  EXPECT_EQ(t.find(kPeer)->state, Neighbor::State::kFailed);
  EXPECT_EQ(t.failures(), 1u);
  // Failed at t=300 (third request at 200 + interval); held until 1300.
  EXPECT_EQ(t.resolve(kPeer, &mac, 400, &send), ArpResult::kFailed);
  EXPECT_FALSE(send);
  EXPECT_EQ(t.resolve(kPeer, &mac, 1299, &send), ArpResult::kFailed);
  // After the hold, a new attempt starts.
  EXPECT_EQ(t.resolve(kPeer, &mac, 1300, &send), ArpResult::kPending);
  EXPECT_TRUE(send);
}

TEST(PortArpTableTest, ReplyResolvesPendingEntry) {
  NeighborTable t(fast_config());
  wire::MacAddr mac{};
  bool send = false;
  t.resolve(kPeer, &mac, 0, &send);
  t.learn(kPeer, kPeerMac, 50, /*create=*/false);  // updates the existing entry
  EXPECT_EQ(t.resolve(kPeer, &mac, 60, &send), ArpResult::kResolved);
  EXPECT_EQ(mac, kPeerMac);
  uint32_t ips[4];
  EXPECT_EQ(t.poll(10000, ips, 4), 0u) << "resolved entries send no more requests";
  EXPECT_EQ(t.failures(), 0u);
}

TEST(PortArpTableTest, LearnWithoutCreateIgnoresStrangers) {
  NeighborTable t(fast_config());
  t.learn(kPeer, kPeerMac, 0, /*create=*/false);
  EXPECT_EQ(t.find(kPeer), nullptr);
  t.learn(kPeer, kPeerMac, 0, /*create=*/true);
  ASSERT_NE(t.find(kPeer), nullptr);
  EXPECT_EQ(t.find(kPeer)->state, Neighbor::State::kResolved);
}

TEST(PortArpTableTest, FullTableEvictsStalestResolvedBeforePending) {
  NeighborTable t(fast_config());
  wire::MacAddr mac{};
  bool send = false;
  // One pending entry, created first (stalest of all).
  t.resolve(0x0B000001, &mac, 0, &send);
  for (uint32_t i = 1; i < NeighborTable::kCapacity; ++i) {
    t.learn(0x0A000000 + i, kPeerMac, Nanos(i), true);
  }
  EXPECT_EQ(t.size(), NeighborTable::kCapacity);
  t.learn(0x0C000001, kPeerMac, 5000, true);
  EXPECT_EQ(t.size(), NeighborTable::kCapacity);
  EXPECT_EQ(t.evictions(), 1u);
  EXPECT_EQ(t.find(0x0A000001), nullptr) << "stalest resolved entry replaced";
  EXPECT_NE(t.find(0x0B000001), nullptr) << "pending entry kept";
  EXPECT_NE(t.find(0x0C000001), nullptr);
}

TEST(PortArpTableTest, PollReportsAtMostMaxAndKeepsTheRest) {
  NeighborTable t(fast_config());
  wire::MacAddr mac{};
  bool send = false;
  for (uint32_t i = 0; i < 5; ++i) t.resolve(0x0A000100 + i, &mac, 0, &send);
  uint32_t ips[2];
  EXPECT_EQ(t.poll(100, ips, 2), 2u);
  EXPECT_EQ(t.poll(100, ips, 2), 2u);
  EXPECT_EQ(t.poll(100, ips, 2), 1u);
  EXPECT_EQ(t.poll(100, ips, 2), 0u);
}

// poll() skips its scan until the earliest pending deadline; a request
// started after a poll that found nothing pending is still polled on time,
// and every entry's retries come at their own deadlines.
TEST(PortArpTableTest, PollKeepsEachDeadlineWhenEntriesComeLater) {
  NeighborTable t(fast_config());  // retry every 100
  wire::MacAddr mac{};
  bool send = false;
  uint32_t ips[4];
  EXPECT_EQ(t.poll(0, ips, 4), 0u) << "nothing pending";
  const uint32_t a = 0x0A000101, b = 0x0A000102;
  t.resolve(a, &mac, 10, &send);  // due at 110
  EXPECT_EQ(t.poll(50, ips, 4), 0u);
  t.resolve(b, &mac, 60, &send);  // due at 160
  EXPECT_EQ(t.poll(109, ips, 4), 0u);
  ASSERT_EQ(t.poll(110, ips, 4), 1u);
  EXPECT_EQ(ips[0], a);  // next at 210
  EXPECT_EQ(t.poll(159, ips, 4), 0u);
  ASSERT_EQ(t.poll(160, ips, 4), 1u);
  EXPECT_EQ(ips[0], b);  // next at 260
  ASSERT_EQ(t.poll(210, ips, 4), 1u);
  EXPECT_EQ(ips[0], a);
  // An entry resolved after a poll that left nothing pending.
  NeighborTable u(fast_config());
  EXPECT_EQ(u.poll(1000, ips, 4), 0u);
  u.resolve(a, &mac, 1000, &send);
  EXPECT_EQ(u.poll(1099, ips, 4), 0u);
  EXPECT_EQ(u.poll(1100, ips, 4), 1u);
}

TEST(PortArpTableTest, FrameRoundTrip) {
  uint8_t buf[kArpFrameLen];
  const wire::MacAddr me = {0x02, 0, 0, 0, 0, 1};
  write_arp_frame(buf, kArpOpRequest, kBroadcastMac, me, 0x0A4D0001, wire::MacAddr{}, kPeer);
  const ArpHdr* arp = parse_arp_frame(buf, sizeof(buf));
  ASSERT_NE(arp, nullptr);
  EXPECT_EQ(arp->oper.get(), kArpOpRequest);
  EXPECT_EQ(arp->sha, me);
  EXPECT_EQ(arp->spa.get(), 0x0A4D0001u);
  EXPECT_EQ(arp->tpa.get(), kPeer);
  // Golden bytes: EtherType, then htype 1 / ptype 0x0800 / 6 / 4 / op 1.
  const uint8_t head[] = {0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01};
  EXPECT_EQ(std::memcmp(buf + 12, head, sizeof(head)), 0);
  EXPECT_EQ(buf[0], 0xFF);
  // Every truncation is rejected; so are other hardware/protocol types.
  for (size_t len = 0; len < 42; ++len) EXPECT_EQ(parse_arp_frame(buf, len), nullptr) << len;
  EXPECT_NE(parse_arp_frame(buf, 42), nullptr);
  buf[15] = 6;  // htype 6 (IEEE 802)
  EXPECT_EQ(parse_arp_frame(buf, sizeof(buf)), nullptr);
  buf[15] = 1;
  buf[21] = 3;  // RARP request opcode
  EXPECT_EQ(parse_arp_frame(buf, sizeof(buf)), nullptr);
}

}  // namespace
}  // namespace droce::nic
