// CDC message encode/decode (RFC 7609 section 3.7; Linux 6.1 smc_cdc.h
// struct smc_cdc_msg, smc_cdc.c smc_cdc_rx_handler).
#include "smc/wire/cdc.h"

#include <cstring>

#include "smc/wire/bytes.h"

namespace droce::smc::wire {
namespace {

// Byte offsets of struct smc_cdc_msg.
constexpr size_t kOffType = 0;
constexpr size_t kOffLen = 1;
constexpr size_t kOffSeqno = 2;
constexpr size_t kOffToken = 4;
constexpr size_t kOffProd = 8;   // reserved(2) wrap(2) count(4)
constexpr size_t kOffCons = 16;  // reserved(2) wrap(2) count(4)
constexpr size_t kOffProdFlags = 24;
constexpr size_t kOffConnStateFlags = 25;
static_assert(kOffConnStateFlags + 1 == kCdcMinRecvLen,
              "Linux drops CDCs shorter than offsetof(reserved)");

void put_cursor(uint8_t* p, const Cursor& c) {
  put_be16(p, 0);  // reserved, zero (B9)
  put_be16(p + 2, c.wrap);
  put_be32(p + 4, c.count);
}

Cursor get_cursor(const uint8_t* p) { return Cursor{get_be16(p + 2), get_be32(p + 4)}; }

}  // namespace

const char* cdc_error_name(CdcError e) {
  switch (e) {
    case CdcError::kOk:
      return "ok";
    case CdcError::kTruncated:
      return "truncated";
    case CdcError::kType:
      return "not a CDC message";
    case CdcError::kLength:
      return "length byte is not 44";
  }
  return "unknown";
}

void encode_cdc(const CdcMsg& m, std::span<uint8_t, kCdcMsgLen> out) {
  uint8_t* p = out.data();
  std::memset(p, 0, kCdcMsgLen);
  p[kOffType] = kCdcType;
  p[kOffLen] = uint8_t(kCdcMsgLen);
  put_be16(p + kOffSeqno, m.seqno);
  put_be32(p + kOffToken, m.token);
  put_cursor(p + kOffProd, m.prod);
  put_cursor(p + kOffCons, m.cons);
  p[kOffProdFlags] = m.prod_flags;
  p[kOffConnStateFlags] = m.conn_state_flags;
}

CdcError decode_cdc(std::span<const uint8_t> msg, CdcMsg* out) {
  if (msg.size() < kCdcMinRecvLen) return CdcError::kTruncated;
  const uint8_t* p = msg.data();
  if (p[kOffType] != kCdcType) return CdcError::kType;
  if (p[kOffLen] != kCdcMsgLen) return CdcError::kLength;
  CdcMsg m;
  m.seqno = get_be16(p + kOffSeqno);
  m.token = get_be32(p + kOffToken);
  m.prod = get_cursor(p + kOffProd);
  m.cons = get_cursor(p + kOffCons);
  m.prod_flags = p[kOffProdFlags];
  m.conn_state_flags = p[kOffConnStateFlags];
  *out = m;
  return CdcError::kOk;
}

}  // namespace droce::smc::wire
