// libFuzzer target for the CDC decoder (smc/wire/cdc.h): decode_cdc never
// reads outside the bytes it is given (an exactly sized heap copy), and a
// message that decodes re-encodes to 44 bytes that decode to the same message;
// the cursor functions stay inside the ring for any cursor the message carries.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>

#include "smc/wire/cdc.h"

namespace {

using namespace droce::smc::wire;

volatile uint32_t g_sink;

void check(const uint8_t* data, size_t n) {
  std::unique_ptr<uint8_t[]> copy(new uint8_t[n ? n : 1]);
  if (n) std::memcpy(copy.get(), data, n);
  CdcMsg m;
  const CdcError e = decode_cdc(std::span<const uint8_t>(copy.get(), n), &m);
  if (uint8_t(e) > uint8_t(CdcError::kLength)) __builtin_trap();
  g_sink = uint32_t(cdc_error_name(e)[0]);
  if (e != CdcError::kOk) return;
  std::unique_ptr<uint8_t[]> a(new uint8_t[kCdcMsgLen]);
  encode_cdc(m, std::span<uint8_t, kCdcMsgLen>(a.get(), kCdcMsgLen));
  CdcMsg m2;
  if (decode_cdc(std::span<const uint8_t>(a.get(), kCdcMsgLen), &m2) != CdcError::kOk || !(m2 == m))
    __builtin_trap();
  uint8_t b[kCdcMsgLen];
  encode_cdc(m2, b);
  if (std::memcmp(a.get(), b, kCdcMsgLen) != 0) __builtin_trap();

  // Hostile cursors: the arithmetic stays in the ring and never divides by zero.
  const uint32_t size = m.token;  // any ring size, 0 included
  const Cursor c = curs_add(m.prod, size, m.cons.count);
  if (size != 0 && c.count >= size) __builtin_trap();
  g_sink = curs_diff(size, m.prod, m.cons) + uint32_t(curs_comp(size, m.prod, m.cons)) +
           uint32_t(curs_update_ok(m.prod, m.cons)) + uint32_t(seq_before(m.seqno, m.prod.wrap));
  WindowState w{size,
                m.prod.count,
                m.cons.count,
                (m.prod_flags & kCdcWriteBlocked) != 0,
                (m.prod_flags & kCdcConsCursUpdReq) != 0,
                false};
  g_sink = uint32_t(should_update_consumer(w)) + rmbe_update_limit(size);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  check(data, size);
  return 0;
}
