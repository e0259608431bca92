// Cursor arithmetic with wrap-around (RFC 7609 section 3.7.2; Linux 6.1
// smc_cdc.h), CDC sequence numbers (smc_cdc_before), the rule for accepting a
// received cursor (smc-v2-linux61.md B9) and the consumer-cursor window rule
// (RFC 7609 p.63; smc-wire.md 2.8; smc_tx_consumer_update).
#include "smc/wire/cursor.h"

#include <gtest/gtest.h>

namespace droce::smc::wire {
namespace {

constexpr uint32_t k64K = 65536;

TEST(Cursor, AddWithinAndAcrossTheRingEnd) {
  EXPECT_EQ(curs_add({3, 100}, k64K, 1000), (Cursor{3, 1100}));
  EXPECT_EQ(curs_add({3, 65530}, k64K, 5), (Cursor{3, 65535}));
  EXPECT_EQ(curs_add({3, 65530}, k64K, 6), (Cursor{4, 0}));   // exactly to the end
  EXPECT_EQ(curs_add({3, 65530}, k64K, 10), (Cursor{4, 4}));  // across it
  EXPECT_EQ(curs_add({3, 0}, k64K, k64K), (Cursor{4, 0}));    // one whole lap
  EXPECT_EQ(curs_add({3, 1}, k64K, 0), (Cursor{3, 1}));
}

TEST(Cursor, AddAcrossThe16BitWrap) {
  EXPECT_EQ(curs_add({0xFFFF, 65535}, k64K, 1), (Cursor{0, 0}));
  EXPECT_EQ(curs_add({0xFFFF, 65000}, k64K, 1000), (Cursor{0, 464}));
}

TEST(Cursor, AddOutsideTheContractStaysInTheRing) {
  EXPECT_EQ(curs_add({0, 10}, 16, 100), (Cursor{6, 14}));  // 110 = 6 laps + 14
  EXPECT_EQ(curs_add({0, 0xFFFFFFFF}, 1u << 31, 0xFFFFFFFF), (Cursor{3, 0x7FFFFFFE}));
  EXPECT_EQ(curs_add({7, 5}, 0, 9), (Cursor{7, 5}));
}

TEST(Cursor, Diff) {
  EXPECT_EQ(curs_diff(k64K, {2, 100}, {2, 300}), 200u);
  EXPECT_EQ(curs_diff(k64K, {2, 300}, {2, 300}), 0u);
  EXPECT_EQ(curs_diff(k64K, {2, 300}, {2, 100}), 0u);         // newer behind: 0
  EXPECT_EQ(curs_diff(k64K, {2, 65000}, {3, 500}), 1036u);    // across the ring end
  EXPECT_EQ(curs_diff(k64K, {2, 100}, {3, 100}), k64K);       // a full lap
  EXPECT_EQ(curs_diff(k64K, {0xFFFF, 65500}, {0, 36}), 72u);  // across the 16-bit wrap
  EXPECT_EQ(curs_diff(16, {1, 20}, {2, 0}), 0u);              // count beyond the ring: clamped at 0
}

TEST(Cursor, Comp) {
  EXPECT_EQ(curs_comp(k64K, {2, 100}, {2, 100}), 0);
  EXPECT_EQ(curs_comp(k64K, {2, 100}, {2, 101}), -1);
  EXPECT_EQ(curs_comp(k64K, {2, 101}, {2, 100}), 1);
  EXPECT_EQ(curs_comp(k64K, {2, 65000}, {3, 0}), -1);
  EXPECT_EQ(curs_comp(k64K, {3, 0}, {2, 65000}), 1);
  EXPECT_EQ(curs_comp(k64K, {0xFFFF, 65000}, {0, 10}), -1);  // serial across the 16-bit wrap
  EXPECT_EQ(curs_comp(k64K, {0, 10}, {0xFFFF, 65000}), 1);
}

TEST(Cursor, UpdateOkAsSmcCdcCursorToHost) {
  EXPECT_TRUE(curs_update_ok({5, 100}, {5, 100}));  // equal: taken
  EXPECT_TRUE(curs_update_ok({5, 100}, {5, 101}));
  EXPECT_FALSE(curs_update_ok({5, 100}, {5, 99}));  // count backwards in the same wrap
  EXPECT_TRUE(curs_update_ok({5, 100}, {6, 0}));    // next wrap, any count
  EXPECT_TRUE(curs_update_ok({5, 100}, {6, 99}));
  EXPECT_FALSE(curs_update_ok({5, 100}, {4, 65535}));  // wrap backwards
  EXPECT_FALSE(curs_update_ok({0xFFFF, 10}, {1, 10}));
  EXPECT_TRUE(curs_update_ok({0xFFFF, 60000}, {0, 5}));  // the 16-bit wrap-around
  EXPECT_TRUE(curs_update_ok({5, 100}, {0, 0}));         // wrap 0 always passes (Linux)
  EXPECT_TRUE(curs_update_ok({0, 100}, {0xFFFF, 0}));    // plain compare: a larger wrap passes
}

TEST(Cursor, SeqBefore) {
  EXPECT_TRUE(seq_before(1, 2));
  EXPECT_FALSE(seq_before(2, 1));
  EXPECT_FALSE(seq_before(7, 7));      // equal is processed (B9)
  EXPECT_TRUE(seq_before(0xFFFF, 0));  // across 0xFFFF -> 0
  EXPECT_FALSE(seq_before(0, 0xFFFF));
  EXPECT_TRUE(seq_before(0xFFF0, 0x0010));
  EXPECT_FALSE(seq_before(0x0010, 0xFFF0));
  // Half a sequence space apart, (s16)(a - b) is -32768 both ways: each is "before".
  EXPECT_TRUE(seq_before(0x8000, 0));
  EXPECT_TRUE(seq_before(0, 0x8000));
}

TEST(Window, UpdateLimitIsMaxOfTenthAndHalfMinSndbuf) {
  EXPECT_EQ(rmbe_update_limit(16384), 2304u);  // 1638 < 4608 / 2
  EXPECT_EQ(rmbe_update_limit(23040), 2304u);
  EXPECT_EQ(rmbe_update_limit(65536), 6553u);
  EXPECT_EQ(rmbe_update_limit(512 * 1024), 52428u);
}

// RFC 7609 p.63: update when the window the peer sees is less than half the
// buffer and the update grows it by at least 10% (Linux: > update limit).
TEST(Window, RfcRuleCases) {
  WindowState s;
  s.rmbe_size = k64K;  // limit 6553
  s.unannounced = 6554;
  s.peer_sees_free = 32768;  // exactly half
  EXPECT_TRUE(should_update_consumer(s));
  s.peer_sees_free = 32769;  // more than half: wait
  EXPECT_FALSE(should_update_consumer(s));
  s.peer_write_blocked = true;  // unless the peer is blocked
  EXPECT_TRUE(should_update_consumer(s));
  s.peer_write_blocked = false;
  s.peer_sees_free = 0;
  s.unannounced = 6553;  // not more than the limit: wait, even with no window
  EXPECT_FALSE(should_update_consumer(s));
  s.peer_write_blocked = true;
  EXPECT_FALSE(should_update_consumer(s));
  s.peer_requested = true;  // cons_curs_upd_req always answers
  EXPECT_TRUE(should_update_consumer(s));
  s.peer_requested = false;
  s.peer_write_blocked = false;
  s.unannounced = 0;
  s.force = true;
  EXPECT_TRUE(should_update_consumer(s));
}

TEST(Window, SmallBufferUsesTheSndbufFloor) {
  WindowState s;
  s.rmbe_size = 16384;  // 10% would be 1638; the floor is 2304
  s.peer_sees_free = 0;
  s.unannounced = 2000;
  EXPECT_FALSE(should_update_consumer(s));
  s.unannounced = 2305;
  EXPECT_TRUE(should_update_consumer(s));
}

}  // namespace
}  // namespace droce::smc::wire
