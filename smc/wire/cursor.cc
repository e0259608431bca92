// SMC-R cursor arithmetic and the consumer-cursor window rule (RFC 7609
// section 3.7.2 and p.63; Linux 6.1 smc_cdc.h, smc_tx.c, smc_core.c).
#include "smc/wire/cursor.h"

#include <algorithm>

namespace droce::smc::wire {

Cursor curs_add(Cursor c, uint32_t size, uint32_t n) {
  if (size == 0) return c;  // no ring: nothing to advance in
  // smc_curs_add subtracts size once; for valid input (count < size, n <= size)
  // that is the same as this division, which also keeps hostile input bounded.
  const uint64_t sum = uint64_t(c.count) + n;
  c.wrap = uint16_t(c.wrap + sum / size);
  c.count = uint32_t(sum % size);
  return c;
}

uint32_t curs_diff(uint32_t size, Cursor older, Cursor newer) {
  // smc_curs_diff: different wraps mean newer is one lap ahead; computed in
  // 64 bits and clamped at 0 (Linux: max_t(int, 0, ...)).
  int64_t d;
  if (older.wrap != newer.wrap)
    d = int64_t(size) - int64_t(older.count) + int64_t(newer.count);
  else
    d = int64_t(newer.count) - int64_t(older.count);
  return d <= 0 ? 0 : uint32_t(std::min<int64_t>(d, UINT32_MAX));
}

int curs_comp(uint32_t /*size*/, Cursor a, Cursor b) {
  const int16_t dw = int16_t(uint16_t(a.wrap - b.wrap));
  if (dw != 0) return dw < 0 ? -1 : 1;
  if (a.count == b.count) return 0;
  return a.count < b.count ? -1 : 1;
}

bool curs_update_ok(Cursor current, Cursor received) {
  // smc_cdc_cursor_to_host, comparisons exactly as Linux makes them (plain,
  // not serial: only a wrap of 0 may follow a larger one).
  if (current.wrap > received.wrap && received.wrap != 0) return false;
  if (current.wrap == received.wrap && current.count > received.count) return false;
  return true;
}

uint32_t rmbe_update_limit(uint32_t rmbe_size) {
  return std::max(rmbe_size / 10, kSockMinSndbuf / 2);
}

bool should_update_consumer(const WindowState& s) {
  if (s.peer_requested || s.force) return true;
  if (s.unannounced <= rmbe_update_limit(s.rmbe_size)) return false;
  return s.peer_sees_free <= s.rmbe_size / 2 || s.peer_write_blocked;
}

}  // namespace droce::smc::wire
