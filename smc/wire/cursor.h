// SMC-R cursors and sequence numbers: serial arithmetic on the RMBE ring
// (RFC 7609 section 3.7.2; Linux 6.1 smc_cdc.h smc_curs_add, smc_curs_diff,
// smc_curs_comp, smc_cdc_before, smc_cdc_cursor_to_host) and the consumer
// cursor window rule (RFC 7609 p.63; smc_tx.c smc_tx_consumer_update).
// Pure functions, no state.
#pragma once

#include <cstdint>

namespace droce::smc::wire {

// A position in a ring of `size` bytes: count in [0, size), wrap counts the
// times count went past the end (16 bits on the wire, modulo 2^16).
struct Cursor {
  uint16_t wrap = 0;
  uint32_t count = 0;
  friend bool operator==(const Cursor&, const Cursor&) = default;
};

// c advanced by n bytes (n <= size) in a ring of `size` bytes. Input outside
// that contract still gives a cursor inside the ring (count % size, one wrap
// per lap); size 0 returns c.
Cursor curs_add(Cursor c, uint32_t size, uint32_t n);
// Bytes from `older` to `newer`, assuming newer is at most one lap ahead
// (smc_curs_diff): with equal wraps newer.count - older.count, else
// size - older.count + newer.count; 0 when that is negative.
uint32_t curs_diff(uint32_t size, Cursor older, Cursor newer);
// -1, 0 or 1 as a is before, equal to or after b (the sign of Linux's
// smc_curs_comp(size, b, a)), comparing wraps as 16-bit serial numbers:
// wrap 0 comes after 0xFFFF (Linux compares them as plain integers).
int curs_comp(uint32_t size, Cursor a, Cursor b);
// Whether a received cursor may replace `current` (smc_cdc_cursor_to_host):
// not when wrap goes backwards (a 16-bit wrap to 0 excepted) nor when count
// goes backwards within the same wrap.
bool curs_update_ok(Cursor current, Cursor received);
// Whether CDC sequence number a is before b ((s16)(a - b) < 0, smc_cdc_before).
inline bool seq_before(uint16_t a, uint16_t b) { return int16_t(uint16_t(a - b)) < 0; }

// The consumer-cursor update rule: after the application consumed data from
// its RMBE, tell the peer (send a CDC with the new consumer cursor) when
// forced or requested (cons_curs_upd_req), or when the bytes not yet
// announced exceed rmbe_update_limit and either the space the peer believes
// free is at most half the RMBE or the peer said it is write_blocked.
// rmbe_update_limit = max(rmbe_size / 10, kSockMinSndbuf / 2) (smc_core.c
// smc_rmb_wnd_update_limit; Linux's min->max fix).
inline constexpr uint32_t kSockMinSndbuf = 4608;  // Linux SOCK_MIN_SNDBUF on x86-64
uint32_t rmbe_update_limit(uint32_t rmbe_size);
struct WindowState {
  uint32_t rmbe_size = 0;
  uint32_t unannounced = 0;        // consumed but not yet sent to the peer
  uint32_t peer_sees_free = 0;     // rmbe_size - (producer - last announced consumer)
  bool peer_write_blocked = false;
  bool peer_requested = false;     // cons_curs_upd_req seen
  bool force = false;
};
bool should_update_consumer(const WindowState& s);

}  // namespace droce::smc::wire
