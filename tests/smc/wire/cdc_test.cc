// CDC codec (RFC 7609 section 3.7; smc-wire.md 2.7, smc-v2-linux61.md B9):
// the 44-byte layout, every flag bit position, and what the receiver drops.
#include "smc/wire/cdc.h"

#include <gtest/gtest.h>

#include "tests/smc/wire/golden.h"

namespace droce::smc::wire {
namespace {

using test::Bytes;
using test::Exact;
using test::put;

Bytes encode(const CdcMsg& m) {
  Bytes b(kCdcMsgLen);
  encode_cdc(m, std::span<uint8_t, kCdcMsgLen>(b.data(), kCdcMsgLen));
  return b;
}

CdcMsg sample() {
  CdcMsg m;
  m.seqno = 0x1234;
  m.token = 0xA1B2C3D4;
  m.prod = Cursor{0x0102, 0x00010203};
  m.cons = Cursor{0xFFFF, 0x0007FFFF};
  return m;
}

TEST(CdcGolden, LayoutIsByteForByte) {
  CdcMsg m = sample();
  m.prod_flags = kCdcWriteBlocked | kCdcConsCursUpdReq;
  m.conn_state_flags = kCdcPeerDoneWriting;
  Bytes g(44);
  put(g, 0, {0xFE, 0x2C, 0x12, 0x34, 0xA1, 0xB2, 0xC3, 0xD4});
  put(g, 8, {0x00, 0x00, 0x01, 0x02, 0x00, 0x01, 0x02, 0x03});   // prod: reserved, wrap, count
  put(g, 16, {0x00, 0x00, 0xFF, 0xFF, 0x00, 0x07, 0xFF, 0xFF});  // cons
  put(g, 24, {0x90, 0x80});
  const Bytes b = encode(m);
  EXPECT_EQ(b, g) << test::first_diff(b, g) << "\n" << test::hex(b);
  CdcMsg d;
  ASSERT_EQ(decode_cdc(Exact(g).span(), &d), CdcError::kOk);
  EXPECT_EQ(d, m);
}

TEST(CdcGolden, EveryFlagBitPosition) {
  // Producer flags in byte 24, connection state in byte 25 (smc.h bitfields).
  const struct {
    uint8_t flag;
    int byte;
    uint8_t bit;
  } flags[] = {
      {kCdcWriteBlocked, 24, 0x80},       {kCdcUrgDataPending, 24, 0x40},
      {kCdcUrgDataPresent, 24, 0x20},     {kCdcConsCursUpdReq, 24, 0x10},
      {kCdcFailoverValidation, 24, 0x08}, {kCdcPeerDoneWriting, 25, 0x80},
      {kCdcPeerConnClosed, 25, 0x40},     {kCdcPeerConnAbort, 25, 0x20},
  };
  for (const auto& f : flags) {
    CdcMsg m = sample();
    (f.byte == 24 ? m.prod_flags : m.conn_state_flags) = f.flag;
    const Bytes b = encode(m);
    EXPECT_EQ(b[size_t(f.byte)], f.bit);
    EXPECT_EQ(b[size_t(f.byte == 24 ? 25 : 24)], 0);
    CdcMsg d;
    ASSERT_EQ(decode_cdc(b, &d), CdcError::kOk);
    EXPECT_EQ(d, m);
  }
}

TEST(CdcGolden, ReservedBytesAreZero) {
  CdcMsg m = sample();
  m.prod_flags = 0xFF;
  m.conn_state_flags = 0xFF;
  Bytes b(44, 0xEE);
  encode_cdc(m, std::span<uint8_t, kCdcMsgLen>(b.data(), kCdcMsgLen));
  for (size_t i : {8u, 9u, 16u, 17u}) EXPECT_EQ(b[i], 0) << i;
  for (size_t i = 26; i < 44; ++i) EXPECT_EQ(b[i], 0) << i;
}

TEST(CdcHostile, WhatTheReceiverDrops) {
  const Bytes b = encode(sample());
  CdcMsg d;
  for (size_t n = 0; n < kCdcMinRecvLen; ++n)
    EXPECT_EQ(decode_cdc(Exact(b.data(), n).span(), &d), CdcError::kTruncated) << n;
  // 26 bytes are enough (Linux: byte_len < offsetof(reserved) drops).
  ASSERT_EQ(decode_cdc(Exact(b.data(), kCdcMinRecvLen).span(), &d), CdcError::kOk);
  EXPECT_EQ(d, sample());
  Bytes x = b;
  x[0] = 0xFD;
  EXPECT_EQ(decode_cdc(x, &d), CdcError::kType);
  x[0] = 0x01;  // an LLC type
  EXPECT_EQ(decode_cdc(x, &d), CdcError::kType);
  for (int len : {0, 43, 45, 255}) {
    x = b;
    x[1] = uint8_t(len);
    EXPECT_EQ(decode_cdc(x, &d), CdcError::kLength) << len;
  }
  // Reserved bytes and any length beyond 44 are not looked at.
  x = b;
  x[8] = x[17] = x[43] = 0x55;
  x.resize(100, 0x55);
  ASSERT_EQ(decode_cdc(x, &d), CdcError::kOk);
  EXPECT_EQ(d, sample());
  for (CdcError e : {CdcError::kOk, CdcError::kTruncated, CdcError::kType, CdcError::kLength})
    EXPECT_STRNE(cdc_error_name(e), "unknown");
}

}  // namespace
}  // namespace droce::smc::wire
