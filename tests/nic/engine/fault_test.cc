// Fault shim (nic/fault.h): DROCE_FAULTS parsing, fault rates over 100k frames
// between two real ports, determinism from the seed, hold-back semantics, and
// that every bit-flipped frame is dropped (and counted) by the receiver.
#include "nic/fault.h"

#include <gtest/gtest.h>
#include <rte_mbuf.h>

#include <cmath>
#include <map>
#include <memory>
#include <vector>

#include "nic/port.h"
#include "nic/wire/builder.h"
#include "nic/wire/packet.h"
#include "tests/nic/port/eal_env.h"

namespace droce::nic::test {
namespace {

// ---- parsing ----

TEST(FaultConfigParse, AcceptsTheDocumentedSyntax) {
  auto c = FaultConfig::parse("drop=0.05,dup=0.01,reorder=0.01,seed=7");
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  EXPECT_DOUBLE_EQ(c->drop, 0.05);
  EXPECT_DOUBLE_EQ(c->dup, 0.01);
  EXPECT_DOUBLE_EQ(c->reorder, 0.01);
  EXPECT_DOUBLE_EQ(c->delay, 0);
  EXPECT_DOUBLE_EQ(c->bitflip, 0);
  EXPECT_EQ(c->seed, 7u);
  EXPECT_TRUE(c->enabled());

  c = FaultConfig::parse(" delay = 0.5 , delay_us=250, bitflip=0.001, seed=0x10 ,");
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  EXPECT_DOUBLE_EQ(c->delay, 0.5);
  EXPECT_EQ(c->delay_ns, 250 * kNanosPerUs);
  EXPECT_DOUBLE_EQ(c->bitflip, 0.001);
  EXPECT_EQ(c->seed, 16u);

  c = FaultConfig::parse("delay_ns=1234,drop=1,dup=0");
  ASSERT_TRUE(c.is_ok());
  EXPECT_EQ(c->delay_ns, 1234u);
  EXPECT_DOUBLE_EQ(c->drop, 1.0);

  c = FaultConfig::parse("");
  ASSERT_TRUE(c.is_ok());
  EXPECT_FALSE(c->enabled());
}

TEST(FaultConfigParse, ErrorsNameTheKey) {
  struct Case {
    const char* text;
    const char* must_mention;
  };
  const Case cases[] = {
      {"dorp=0.1", "dorp"},          // unknown key
      {"drop=abc", "drop"},          // not a number
      {"drop=1.5", "drop"},          // above 1
      {"dup=-0.1", "dup"},           // negative
      {"reorder=nan", "reorder"},    // not finite
      {"bitflip=0.1x", "bitflip"},   // trailing junk
      {"delay=", "delay"},           // empty value
      {"seed=-1", "seed"},           // negative integer
      {"seed=12ab", "seed"},         // junk
      {"delay_ns=1e3", "delay_ns"},  // not an integer
      {"drop=0.1,verbose=1", "verbose"},
      {"drop", "drop"},  // not key=value
  };
  for (const Case& k : cases) {
    auto c = FaultConfig::parse(k.text);
    ASSERT_FALSE(c.is_ok()) << k.text;
    EXPECT_EQ(c.status().code(), Errc::kBadConfig) << k.text;
    EXPECT_NE(c.status().message().find(k.must_mention), std::string::npos)
        << k.text << " -> " << c.status().message();
  }
}

TEST(FaultConfigParse, FromEnvironment) {
  setenv("DROCE_FAULTS", "drop=0.25,seed=3", 1);
  auto c = FaultConfig::from_env();
  ASSERT_TRUE(c.is_ok());
  EXPECT_DOUBLE_EQ(c->drop, 0.25);
  EXPECT_EQ(c->seed, 3u);
  setenv("DROCE_FAULTS", "drop=2", 1);
  EXPECT_FALSE(FaultConfig::from_env().is_ok());
  unsetenv("DROCE_FAULTS");
  c = FaultConfig::from_env();
  ASSERT_TRUE(c.is_ok());
  EXPECT_FALSE(c->enabled());
}

// ---- on real ports ----

class FaultShimTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pair = make_port_pair(test_config("10.9.1.1"), test_config("10.9.1.2"));
    ASSERT_TRUE(pair.is_ok()) << pair.status().message();
    pair_ = std::make_unique<PortPair>(std::move(pair.value()));
  }
  void TearDown() override {
    shim_.reset();
    pair_.reset();
  }

  Port& a() { return pair_->a(); }
  Port& b() { return pair_->b(); }

  void make_shim(const FaultConfig& c) { shim_ = std::make_unique<FaultShim>(c, a().mempool()); }

  // A valid RC SEND_ONLY frame from a to b whose PSN and first payload word are seq.
  rte_mbuf* frame(uint32_t seq, uint32_t payload_len = 64) {
    wire::PacketSpec s;
    s.src_mac = a().mac();
    s.dst_mac = b().mac();
    s.src_ip = a().ipv4();
    s.dst_ip = b().ipv4();
    s.opcode = wire::op::kSendOnly;
    s.dest_qp = 0x11;
    s.psn = seq & 0xFFFFFF;
    s.payload_len = payload_len;
    uint8_t payload[256] = {};
    std::memcpy(payload, &seq, 4);
    rte_mbuf* m = rte_pktmbuf_alloc(a().mempool());
    EXPECT_NE(m, nullptr);
    if (m == nullptr) return nullptr;
    const size_t len =
        wire::build_frame(rte_pktmbuf_mtod(m, uint8_t*), rte_pktmbuf_tailroom(m), s, payload);
    EXPECT_GT(len, 0u);
    m->data_len = uint16_t(len);
    m->pkt_len = uint32_t(len);
    return m;
  }

  // Receives everything b has, appending the sequence numbers in arrival order.
  void drain(std::vector<uint32_t>* got, Nanos now) {
    rte_mbuf* mbufs[64];
    wire::PacketView views[64];
    for (;;) {
      const uint16_t n = b().receive(mbufs, views, 64, now);
      if (n == 0) break;
      for (uint16_t i = 0; i < n; ++i) {
        uint32_t seq;
        std::memcpy(&seq, views[i].payload(), 4);
        got->push_back(seq);
      }
      rte_pktmbuf_free_bulk(mbufs, n);
    }
  }

  // Sends `count` frames through the shim in bursts, `step` ns apart, then
  // lets every held frame out. Returns the sequence numbers b received.
  std::vector<uint32_t> run(uint32_t count, uint16_t burst = 32, Nanos step = 1000) {
    std::vector<uint32_t> got;
    got.reserve(count + count / 10);
    Nanos now = 1;
    uint32_t seq = 0;
    while (seq < count) {
      rte_mbuf* batch[64];
      uint16_t n = 0;
      while (n < burst && seq < count) batch[n++] = frame(seq++);
      shim_->transmit(a(), batch, n, now);
      drain(&got, now);
      now += step;
      shim_->poll(a(), now);
      drain(&got, now);
    }
    now += 1000 * kNanosPerSec;
    shim_->poll(a(), now);
    drain(&got, now);
    EXPECT_EQ(shim_->held(), 0u);
    return got;
  }

  std::unique_ptr<PortPair> pair_;
  std::unique_ptr<FaultShim> shim_;
};

// |observed - p| within 5 standard deviations of a binomial(n, p) proportion.
void expect_rate(uint64_t hits, uint64_t n, double p, const char* what) {
  ASSERT_GT(n, 0u);
  const double obs = double(hits) / double(n);
  const double sigma = std::sqrt(p * (1 - p) / double(n));
  EXPECT_NEAR(obs, p, 5 * sigma + 1e-9) << what << ": " << hits << " of " << n;
}

TEST_F(FaultShimTest, RatesOver100kFramesAndEveryFrameAccountedFor) {
  FaultConfig c;
  c.drop = 0.05;
  c.dup = 0.01;
  c.reorder = 0.01;
  c.delay = 0.01;
  c.delay_ns = 5000;
  c.seed = 42;
  make_shim(c);
  constexpr uint32_t kFrames = 100000;
  const std::vector<uint32_t> got = run(kFrames);
  const FaultCounters& k = shim_->counters();
  EXPECT_EQ(k.frames, kFrames);
  expect_rate(k.dropped, k.frames, c.drop, "drop");
  const uint64_t kept = k.frames - k.dropped;
  expect_rate(k.duplicated, kept, c.dup, "dup");
  expect_rate(k.reordered, kept, c.reorder, "reorder");
  expect_rate(k.delayed, kept - k.reordered, c.delay, "delay");
  EXPECT_EQ(k.dup_no_mbuf, 0u);
  EXPECT_EQ(k.hold_full, 0u);
  EXPECT_EQ(k.released, k.reordered + k.delayed);

  // What arrived: every kept frame once, every duplicated one twice, nothing else.
  EXPECT_EQ(got.size(), kept + k.duplicated);
  std::vector<uint8_t> seen(kFrames, 0);
  for (uint32_t s : got) {
    ASSERT_LT(s, kFrames);
    ++seen[s];
  }
  uint64_t once = 0, twice = 0;
  for (uint8_t n : seen) {
    EXPECT_LE(n, 2);
    once += n == 1;
    twice += n == 2;
  }
  EXPECT_EQ(twice, k.duplicated);
  EXPECT_EQ(once + twice, kept);
  // Some frames overtook others.
  uint64_t inversions = 0;
  for (size_t i = 1; i < got.size(); ++i) inversions += got[i] < got[i - 1];
  EXPECT_GT(inversions, 0u);
  EXPECT_EQ(b().counters().rx_dropped(), 0u);
  EXPECT_EQ(a().counters().tx_dropped(), 0u);
}

TEST_F(FaultShimTest, SameSeedSameFaultsOtherSeedOthers) {
  FaultConfig c;
  c.drop = 0.05;
  c.dup = 0.02;
  c.reorder = 0.02;
  c.delay = 0.02;
  c.delay_ns = 3000;
  c.seed = 7;
  make_shim(c);
  const std::vector<uint32_t> first = run(20000);
  const FaultCounters k1 = shim_->counters();
  make_shim(c);
  const std::vector<uint32_t> second = run(20000);
  const FaultCounters k2 = shim_->counters();
  EXPECT_EQ(first, second);
  EXPECT_EQ(k1.dropped, k2.dropped);
  EXPECT_EQ(k1.duplicated, k2.duplicated);
  EXPECT_EQ(k1.reordered, k2.reordered);
  EXPECT_EQ(k1.delayed, k2.delayed);
  c.seed = 8;
  make_shim(c);
  const std::vector<uint32_t> third = run(20000);
  EXPECT_NE(first, third);
}

TEST_F(FaultShimTest, EveryBitFlipIsDroppedAndCountedByTheReceiver) {
  FaultConfig c;
  c.bitflip = 0.01;
  c.seed = 99;
  make_shim(c);
  constexpr uint32_t kFrames = 100000;
  const std::vector<uint32_t> got = run(kFrames);
  const FaultCounters& k = shim_->counters();
  expect_rate(k.bitflipped, kFrames, c.bitflip, "bitflip");
  const PortCounters& rx = b().counters();
  EXPECT_EQ(rx.rx_dropped(), k.bitflipped) << format_counters(rx);
  EXPECT_EQ(rx.rx_roce, kFrames - k.bitflipped);
  EXPECT_EQ(got.size(), kFrames - k.bitflipped);
  // Nearly all are caught by the ICRC itself; the rest by header checks
  // (opcode, TVer, pad) that run before it.
  EXPECT_GE(rx.parse_drop(wire::ParseError::kBadIcrc), k.bitflipped * 9 / 10);
}

TEST_F(FaultShimTest, FlipBitOnlyTouchesProtectedRoceBytes) {
  make_shim(FaultConfig{});
  for (int i = 0; i < 2000; ++i) {
    rte_mbuf* m = frame(uint32_t(i), uint32_t(i % 200));
    std::vector<uint8_t> before(rte_pktmbuf_mtod(m, uint8_t*),
                                rte_pktmbuf_mtod(m, uint8_t*) + m->data_len);
    ASSERT_TRUE(shim_->flip_bit(m));
    const uint8_t* after = rte_pktmbuf_mtod(m, uint8_t*);
    int changed_bits = 0;
    size_t where = 0;
    for (size_t j = 0; j < before.size(); ++j) {
      if (before[j] != after[j]) {
        changed_bits += __builtin_popcount(before[j] ^ after[j]);
        where = j;
      }
    }
    EXPECT_EQ(changed_bits, 1);
    constexpr size_t kBth = 14 + 20 + 8;
    EXPECT_GE(where, kBth);
    EXPECT_NE(where, kBth + 4);  // FECN/BECN byte is not covered by the ICRC
    rte_pktmbuf_free(m);
  }
  // Not RoCEv2: untouched.
  rte_mbuf* m = frame(1);
  rte_pktmbuf_mtod(m, uint8_t*)[12] = 0x08;
  rte_pktmbuf_mtod(m, uint8_t*)[13] = 0x06;  // ARP EtherType
  EXPECT_FALSE(shim_->flip_bit(m));
  rte_pktmbuf_free(m);
}

TEST_F(FaultShimTest, DelayedFramesLeaveAtTheirTimeInOrder) {
  FaultConfig c;
  c.delay = 1.0;
  c.delay_ns = 1000;
  make_shim(c);
  rte_mbuf* batch[10];
  for (uint32_t i = 0; i < 10; ++i) batch[i] = frame(i);
  shim_->transmit(a(), batch, 10, 5000);
  std::vector<uint32_t> got;
  drain(&got, 5000);
  EXPECT_TRUE(got.empty());
  EXPECT_EQ(shim_->held(), 10u);
  shim_->poll(a(), 5999);
  drain(&got, 5999);
  EXPECT_TRUE(got.empty());
  shim_->poll(a(), 6000);
  drain(&got, 6000);
  EXPECT_EQ(got, (std::vector<uint32_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(shim_->held(), 0u);
  EXPECT_EQ(shim_->counters().delayed, 10u);
}

TEST_F(FaultShimTest, ReorderedFrameFollowsTheNextOne) {
  FaultConfig c;
  c.reorder = 0.05;
  c.delay_ns = kNanosPerSec;  // only the next frame releases it
  c.seed = 5;
  make_shim(c);
  const std::vector<uint32_t> got = run(20000, 32, 10);
  ASSERT_EQ(got.size(), 20000u);  // nothing lost
  EXPECT_GT(shim_->counters().reordered, 0u);
  // A held frame is overtaken only by the frame(s) right behind it.
  std::map<uint32_t, size_t> pos;
  for (size_t i = 0; i < got.size(); ++i) pos[got[i]] = i;
  size_t late = 0;
  for (uint32_t s = 0; s < 20000; ++s) {
    const long d = long(pos[s]) - long(s);
    EXPECT_LE(std::labs(d), 4) << s;
    late += d > 0;
  }
  EXPECT_GT(late, 0u);
}

TEST_F(FaultShimTest, FullHoldArraySendsAtOnceAndCounts) {
  FaultConfig c;
  c.delay = 1.0;
  c.delay_ns = kNanosPerSec;
  make_shim(c);
  std::vector<uint32_t> got;
  uint32_t seq = 0;
  for (int burst = 0; burst < 10; ++burst) {
    rte_mbuf* batch[32];
    for (auto& m : batch) m = frame(seq++);
    shim_->transmit(a(), batch, 32, 1);
    drain(&got, 1);
  }
  EXPECT_EQ(shim_->held(), FaultShim::kMaxHeld);
  EXPECT_EQ(shim_->counters().hold_full, 320u - FaultShim::kMaxHeld);
  EXPECT_EQ(got.size(), 320u - FaultShim::kMaxHeld);
  shim_.reset();  // frees the held frames (the port's pool must get them back)
  shim_ = nullptr;
}

TEST_F(FaultShimTest, DropAllSendsNothing) {
  FaultConfig c;
  c.drop = 1.0;
  make_shim(c);
  const std::vector<uint32_t> got = run(1000);
  EXPECT_TRUE(got.empty());
  EXPECT_EQ(shim_->counters().dropped, 1000u);
  EXPECT_EQ(a().counters().tx_packets, 0u);
}

}  // namespace
}  // namespace droce::nic::test
