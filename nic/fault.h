// Fault shim: a seeded lossy link on a port's transmit side that
// drops, duplicates, reorders, delays and bit-flips frames, for tests and
// for users who want to see the transport (IBTA vol. 1 9.7 reliability) cope.
#pragma once

#include <cstdint>
#include <string>

#include "nic/base/clock.h"
#include "nic/base/status.h"

struct rte_mbuf;
struct rte_mempool;

namespace droce::nic {

class Port;

// What the shim does, each probability per frame in [0, 1].
struct FaultConfig {
  double drop = 0;     // frame freed, never sent
  double dup = 0;      // frame sent twice (a copy from the port's pool right behind it)
  double reorder = 0;  // frame held back and sent right after the next one
  double delay = 0;    // frame held back for delay_ns
  double bitflip = 0;  // one random bit flipped in the ICRC-protected part (RoCEv2 only)
  Nanos delay_ns = 100 * kNanosPerUs;
  uint64_t seed = 1;

  bool enabled() const { return drop > 0 || dup > 0 || reorder > 0 || delay > 0 || bitflip > 0; }

  // DROCE_FAULTS syntax: comma-separated key=value, e.g.
  // "drop=0.05,dup=0.01,reorder=0.01,delay=0.001,delay_us=200,bitflip=0.001,seed=7".
  // Keys: drop dup reorder delay bitflip (probabilities), delay_ns / delay_us
  // (integers), seed (decimal or 0x hex). Empty text: no faults. An unknown
  // key or a bad value is an error naming the key.
  static Result<FaultConfig> parse(const std::string& text);
  // parse(getenv("DROCE_FAULTS")); no faults when unset.
  static Result<FaultConfig> from_env();
};

// One counter per thing the shim did (frames = every frame offered).
struct FaultCounters {
  uint64_t frames = 0;
  uint64_t dropped = 0;
  uint64_t duplicated = 0;
  uint64_t dup_no_mbuf = 0;  // a duplicate could not be copied (pool empty)
  uint64_t reordered = 0;
  uint64_t delayed = 0;
  uint64_t bitflipped = 0;
  uint64_t hold_full = 0;  // reorder/delay wanted but every hold slot busy: sent at once
  uint64_t released = 0;   // held frames sent later
};

// The shim sits between the engine's transmit batch and Port::transmit.
// Deterministic: the same seed and the same sequence of frames and `now`
// values give the same faults (splitmix64-seeded xoshiro256**). Nothing is
// allocated per frame: held frames live in a fixed array.
//
// Threading: one thread (the engine, under the engine lock), like the Port.
class FaultShim {
 public:
  static constexpr uint32_t kMaxHeld = 256;

  FaultShim(const FaultConfig& cfg, rte_mempool* pool);
  ~FaultShim();  // frees held frames: destroy the shim before its port's pool
  FaultShim(const FaultShim&) = delete;
  FaultShim& operator=(const FaultShim&) = delete;

  // Applies the faults to frames[0..n) (the shim owns them afterwards) and
  // hands what goes out now to port.transmit, including held frames that
  // became due.
  void transmit(Port& port, rte_mbuf** frames, uint16_t n, Nanos now);
  // Sends held frames whose time has come (call every poll).
  void poll(Port& port, Nanos now);
  // Frees every held frame without sending it.
  void discard_held();

  uint32_t held() const { return n_held_; }
  const FaultConfig& config() const { return cfg_; }
  const FaultCounters& counters() const { return counters_; }

  // Exposed for tests: the shim's random stream and bit flipper.
  uint64_t next_random();
  // Flips one random bit of a RoCEv2 frame (IPv4/UDP 4791) in the bytes the
  // ICRC protects from the BTH on, never BTH byte 4 (FECN/BECN/Resv6a, masked
  // out of the ICRC). False (nothing changed) for other frames.
  bool flip_bit(rte_mbuf* m);

 private:
  struct Held {
    rte_mbuf* m = nullptr;
    Nanos due = 0;
    bool after_next = false;  // reorder: leaves right after the next frame sent
  };
  static constexpr uint16_t kOutBurst = 64;

  bool roll(uint64_t threshold) { return threshold != 0 && next_random() < threshold; }
  void emit(Port& port, rte_mbuf* m);
  void flush(Port& port);
  bool hold(rte_mbuf* m, Nanos due, bool after_next);
  void release_after_next(Port& port);
  void release_due(Port& port, Nanos now);

  const FaultConfig cfg_;
  rte_mempool* const pool_;
  uint64_t t_drop_, t_dup_, t_reorder_, t_delay_, t_bitflip_;  // probability * 2^64
  uint64_t s_[4];                                              // xoshiro256** state
  Held held_[kMaxHeld];
  uint32_t n_held_ = 0;
  uint32_t n_after_next_ = 0;
  rte_mbuf* out_[kOutBurst];
  uint16_t n_out_ = 0;
  FaultCounters counters_;
};

}  // namespace droce::nic
