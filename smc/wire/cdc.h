// CDC (connection data control) messages: the 44-byte RC SEND that announces
// data written into the peer's RMBE and carries both cursors and the
// connection-state flags (RFC 7609 section 3.7; Linux 6.1 smc_cdc.h
// struct smc_cdc_msg; reference/smc-wire.md 2.7, smc-v2-linux61.md B9).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "smc/wire/cursor.h"

namespace droce::smc::wire {

inline constexpr uint8_t kCdcType = 0xFE;
inline constexpr size_t kCdcMsgLen = 44;      // SMC_WR_TX_SIZE
inline constexpr size_t kCdcMinRecvLen = 26;  // shorter receives are dropped (offsetof reserved)

// Producer flags (byte 24).
inline constexpr uint8_t kCdcWriteBlocked = 0x80;
inline constexpr uint8_t kCdcUrgDataPending = 0x40;
inline constexpr uint8_t kCdcUrgDataPresent = 0x20;
inline constexpr uint8_t kCdcConsCursUpdReq = 0x10;
inline constexpr uint8_t kCdcFailoverValidation = 0x08;
// Connection-state flags (byte 25).
inline constexpr uint8_t kCdcPeerDoneWriting = 0x80;
inline constexpr uint8_t kCdcPeerConnClosed = 0x40;
inline constexpr uint8_t kCdcPeerConnAbort = 0x20;

struct CdcMsg {
  uint16_t seqno = 0;        // per connection; the first CDC carries 1
  uint32_t token = 0;        // the receiver's RMBE alert token
  Cursor prod{};             // how far the sender has written into the receiver's RMBE
  Cursor cons{};             // how far the sender has consumed its own RMBE
  uint8_t prod_flags = 0;    // kCdcWriteBlocked ...
  uint8_t conn_state_flags = 0;  // kCdcPeerDoneWriting ...
  friend bool operator==(const CdcMsg&, const CdcMsg&) = default;
};

enum class CdcError : uint8_t {
  kOk = 0,
  kTruncated,  // fewer than kCdcMinRecvLen bytes
  kType,       // byte 0 is not 0xFE
  kLength,     // length byte is not 44
};
const char* cdc_error_name(CdcError e);

// Writes exactly kCdcMsgLen bytes (reserved bytes zero).
void encode_cdc(const CdcMsg& m, std::span<uint8_t, kCdcMsgLen> out);
// `msg` is what the receive completion delivered (byte_len bytes).
CdcError decode_cdc(std::span<const uint8_t> msg, CdcMsg* out);

}  // namespace droce::smc::wire
