// MR table: keys with rotating tags, access rights, PD and bounds checks.
#include "nic/mr.h"

#include <gtest/gtest.h>

#include <vector>

namespace droce::nic {
namespace {

TEST(MrTableTest, RegisterAndCheckInBounds) {
  MrTable t(16);
  std::vector<uint8_t> buf(4096);
  auto key = t.reg(1, buf.data(), 0x10000, buf.size(), kAccessLocalWrite | kAccessRemoteRead);
  ASSERT_TRUE(key.is_ok()) << key.status().message();
  EXPECT_NE(*key, 0u);
  uint8_t* host = nullptr;
  EXPECT_EQ(t.check(*key, 1, 0x10000, 4096, kAccessRemoteRead, &host), MrCheck::kOk);
  EXPECT_EQ(host, buf.data());
  EXPECT_EQ(t.check(*key, 1, 0x10010, 16, kAccessLocalWrite, &host), MrCheck::kOk);
  EXPECT_EQ(host, buf.data() + 0x10);
}

TEST(MrTableTest, RefusesOutOfBoundsWrongPdWrongAccessBadKey) {
  MrTable t(16);
  std::vector<uint8_t> buf(4096);
  uint32_t key = t.reg(1, buf.data(), 0x10000, buf.size(), kAccessLocalWrite | kAccessRemoteRead).value();
  uint8_t* host = nullptr;
  EXPECT_EQ(t.check(key, 1, 0x10000 + 4096, 1, kAccessRemoteRead, &host), MrCheck::kOutOfBounds);
  EXPECT_EQ(t.check(key, 1, 0x10000 - 1, 2, kAccessRemoteRead, &host), MrCheck::kOutOfBounds);
  EXPECT_EQ(t.check(key, 1, 0x10000 + 4095, 2, kAccessRemoteRead, &host), MrCheck::kOutOfBounds);
  EXPECT_EQ(t.check(key, 1, ~0ull - 3, 16, kAccessRemoteRead, &host), MrCheck::kOutOfBounds);
  EXPECT_EQ(t.check(key, 2, 0x10000, 16, kAccessRemoteRead, &host), MrCheck::kWrongPd);
  EXPECT_EQ(t.check(key, 1, 0x10000, 16, kAccessRemoteWrite, &host), MrCheck::kNoAccess);
  EXPECT_EQ(t.check(key, 1, 0x10000, 16, kAccessRemoteAtomic, &host), MrCheck::kNoAccess);
  EXPECT_EQ(t.check(key ^ 0x100, 1, 0x10000, 16, kAccessRemoteRead, &host), MrCheck::kBadKey);
  EXPECT_EQ(t.check(0, 1, 0x10000, 16, kAccessRemoteRead, &host), MrCheck::kBadKey);
  EXPECT_EQ(t.check(0xFFFFFFFF, 1, 0x10000, 16, kAccessRemoteRead, &host), MrCheck::kBadKey);
}

TEST(MrTableTest, ZeroLengthAccessNeedsNoValidKey) {
  MrTable t(4);
  uint8_t* host = reinterpret_cast<uint8_t*>(1);
  EXPECT_EQ(t.check(0xDEADBEEF, 1, 0, 0, kAccessRemoteWrite, &host), MrCheck::kOk);
  EXPECT_EQ(host, nullptr);
}

TEST(MrTableTest, StaleKeyNeverMatchesTheNextRegistrationOfTheSlot) {
  MrTable t(1);  // one slot: every registration reuses it
  std::vector<uint8_t> a(64), b(64);
  uint32_t k1 = t.reg(1, a.data(), 0, 64, kAccessLocalWrite | kAccessRemoteWrite).value();
  ASSERT_TRUE(t.dereg(k1).is_ok());
  uint8_t* host = nullptr;
  EXPECT_EQ(t.check(k1, 1, 0, 8, kAccessRemoteWrite, &host), MrCheck::kBadKey);
  uint32_t k2 = t.reg(1, b.data(), 0, 64, kAccessLocalWrite | kAccessRemoteWrite).value();
  EXPECT_EQ(k1 >> 8, k2 >> 8);  // same slot
  EXPECT_NE(k1, k2);
  EXPECT_EQ(t.check(k1, 1, 0, 8, kAccessRemoteWrite, &host), MrCheck::kBadKey);
  EXPECT_EQ(t.check(k2, 1, 0, 8, kAccessRemoteWrite, &host), MrCheck::kOk);
  EXPECT_EQ(host, b.data());
  // 255 more registrations of the slot never reproduce k2 while it is live,
  // and the tag only comes back after a full turn of 256.
  ASSERT_TRUE(t.dereg(k2).is_ok());
  std::vector<uint32_t> keys;
  for (int i = 0; i < 255; ++i) {
    uint32_t k = t.reg(1, b.data(), 0, 64, kAccessLocalWrite).value();
    EXPECT_NE(k, k2) << i;
    keys.push_back(k);
    ASSERT_TRUE(t.dereg(k).is_ok());
  }
}

TEST(MrTableTest, InvalidRegistrationsAreRefused) {
  MrTable t(2);
  std::vector<uint8_t> buf(64);
  EXPECT_EQ(t.reg(1, buf.data(), 0, 64, kAccessRemoteWrite).status().code(), Errc::kInvalidArgument);
  EXPECT_EQ(t.reg(1, buf.data(), 0, 64, kAccessRemoteAtomic).status().code(), Errc::kInvalidArgument);
  EXPECT_EQ(t.reg(1, buf.data(), 0, 64, 1u << 30).status().code(), Errc::kInvalidArgument);
  EXPECT_EQ(t.reg(1, nullptr, 0, 64, kAccessLocalWrite).status().code(), Errc::kInvalidArgument);
  EXPECT_EQ(t.reg(1, buf.data(), ~0ull - 8, 64, kAccessLocalWrite).status().code(), Errc::kInvalidArgument);
  ASSERT_TRUE(t.reg(1, buf.data(), 0, 64, kAccessLocalWrite).is_ok());
  ASSERT_TRUE(t.reg(1, buf.data(), 0, 64, kAccessLocalWrite).is_ok());
  EXPECT_EQ(t.reg(1, buf.data(), 0, 64, kAccessLocalWrite).status().code(), Errc::kNoMemory);
  EXPECT_EQ(t.count(), 2u);
}

TEST(MrTableTest, DeregRefusedWhileAWindowIsBound) {
  MrTable t(4);
  std::vector<uint8_t> buf(64);
  uint32_t k = t.reg(1, buf.data(), 0, 64, kAccessLocalWrite | kAccessMwBind).value();
  t.find(k)->users = 1;
  EXPECT_EQ(t.dereg(k).code(), Errc::kBusy);
  uint8_t* host = nullptr;
  EXPECT_EQ(t.check(k, 1, 0, 8, kAccessLocalWrite, &host), MrCheck::kOk);  // still usable
  t.find(k)->users = 0;
  EXPECT_TRUE(t.dereg(k).is_ok());
  EXPECT_EQ(t.dereg(k).code(), Errc::kInvalidArgument);  // second dereg: no such key
}

}  // namespace
}  // namespace droce::nic
