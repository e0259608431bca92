// CLC header peek, RMBE size codes, decline code names, UEIDs and GIDs
// (Linux 6.1 smc_clc.c smc_clc_wait_msg, smc_core.c smc_compress_bufsize,
// smc_clc_ueid_valid, smc_ib.h smc_ib_gid_to_ipv4; smc-v2-linux61.md A14, B3).
#include "smc/wire/types.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "smc/wire/clc.h"
#include "tests/smc/wire/golden.h"

namespace droce::smc::wire {
namespace {

using test::Bytes;
using test::put_be;

Bytes accept_bytes() {
  ClcAcceptConfirm m;
  m.first_contact = true;
  m.mtu = 3;
  Bytes b(kClcMaxLen);
  b.resize(encode_accept_confirm(m, b));
  return b;
}

TEST(ClcHeader, PeekChecksWhatLinuxPeeks) {
  const Bytes b = accept_bytes();
  ClcHeader h;
  ASSERT_EQ(peek_header(std::span(b).first(8), &h), ClcError::kOk);
  EXPECT_EQ(h.type, ClcType::kAccept);
  EXPECT_EQ(h.length, 160);
  EXPECT_EQ(h.version, 2);
  EXPECT_TRUE(h.flag);
  EXPECT_EQ(h.typev1, SmcType::kR);
  EXPECT_EQ(h.typev2, SmcType::kNone);  // bit 3 doubles as first contact: 0b10
  EXPECT_FALSE(h.smcd);
  EXPECT_EQ(peek_header(std::span(b).first(7), &h), ClcError::kTruncated);
  Bytes x = b;
  x[1] = 0;
  EXPECT_EQ(peek_header(x, &h), ClcError::kEyecatcher);
  x = b;
  x[7] = 0x08;
  EXPECT_EQ(peek_header(x, &h), ClcError::kVersion);
  for (int t : {0, 5, 255}) {
    x = b;
    x[4] = uint8_t(t);
    EXPECT_EQ(peek_header(x, &h), ClcError::kType) << t;
  }
  x = b;
  put_be(x, 5, 11, 2);
  EXPECT_EQ(peek_header(x, &h), ClcError::kLength);
  x = b;
  x[3] = 0xC4;
  ASSERT_EQ(peek_header(x, &h), ClcError::kOk);
  EXPECT_TRUE(h.smcd);
}

TEST(ClcSizes, RmbeSizeCodes) {
  EXPECT_EQ(rmbe_uncompress(0), 16384u);
  EXPECT_EQ(rmbe_uncompress(5), 512u * 1024);
  EXPECT_EQ(rmbe_compress(0), 0);
  EXPECT_EQ(rmbe_compress(16384), 0);
  EXPECT_EQ(rmbe_compress(16385), 1);
  EXPECT_EQ(rmbe_compress(32768), 1);
  EXPECT_EQ(rmbe_compress(65536), 2);
  EXPECT_EQ(rmbe_compress(65537), 3);
  EXPECT_EQ(rmbe_compress(512 * 1024), 5);
  EXPECT_EQ(rmbe_compress(4u << 20), 5);  // capped at SMC-R's 512 KiB
}

TEST(ClcSizes, DeclineCodeNames) {
  EXPECT_STREQ(decline_reason_name(decline::kNoUeid), "peer sent no UEID");
  EXPECT_STREQ(decline_reason_name(decline::kNoSmcDev), "no SMC device found (R or D)");
  EXPECT_STREQ(decline_reason_name(decline::kTimeoutCl), "timeout waiting for QP confirm link");
  EXPECT_STREQ(decline_reason_name(0x03030009), "unknown");  // v2.1 code, not in 6.1 (A11)
  for (ClcError e : {ClcError::kOk, ClcError::kTruncated, ClcError::kEyecatcher, ClcError::kTrailer,
                     ClcError::kType, ClcError::kVersion, ClcError::kLength, ClcError::kLayout})
    EXPECT_STRNE(clc_error_name(e), "unknown");
}

TEST(SmcTypes, Ueid) {
  Eid e;
  ASSERT_TRUE(make_ueid("droce-lab.1", &e));
  EXPECT_EQ(e, test::eid_of("DROCE-LAB.1"));
  EXPECT_TRUE(ueid_valid(e));
  EXPECT_EQ(eid_text(e), "DROCE-LAB.1");
  ASSERT_TRUE(make_ueid(std::string(32, 'Z'), &e));
  EXPECT_TRUE(ueid_valid(e));
  const Eid before = e;
  for (const char* bad : {"", "-ABC", ".ABC", "AB C", "AB_C", "ABC\t",
                          "\xC0"
                          "BC"})
    EXPECT_FALSE(make_ueid(bad, &e)) << bad;
  EXPECT_FALSE(make_ueid(std::string(33, 'A'), &e));
  EXPECT_EQ(e, before) << "a rejected UEID leaves *out alone";

  Eid nul{};
  std::memcpy(nul.data(), "ABC", 3);  // NUL padding fails (B3)
  EXPECT_FALSE(ueid_valid(nul));
  EXPECT_FALSE(ueid_valid(test::eid_of("")));
  EXPECT_FALSE(ueid_valid(test::eid_of("ab")));
  EXPECT_FALSE(ueid_valid(test::eid_of("A B")));
  EXPECT_FALSE(ueid_valid(test::eid_of("-A")));
  EXPECT_TRUE(ueid_valid(test::eid_of("0.A-")));
  EXPECT_EQ(eid_text(nul), "ABC");
}

TEST(SmcTypes, GidAndIpv4) {
  const Gid g = ipv4_mapped_gid(0xC0A80A02);
  EXPECT_EQ(g, test::gid_of({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 192, 168, 10, 2}));
  uint32_t ip = 0;
  ASSERT_TRUE(gid_to_ipv4(g, &ip));
  EXPECT_EQ(ip, 0xC0A80A02u);
  ASSERT_TRUE(gid_to_ipv4(test::gid_of({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 9}),
                          &ip));  // compatible
  EXPECT_EQ(ip, 0x0A000009u);
  EXPECT_FALSE(
      gid_to_ipv4(test::gid_of({0xFE, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 1, 2, 3, 4}), &ip));
  EXPECT_FALSE(
      gid_to_ipv4(test::gid_of({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFE, 1, 2, 3, 4}), &ip));
}

}  // namespace
}  // namespace droce::smc::wire
