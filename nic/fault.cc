// Fault shim: seeded drop / duplicate / reorder / delay / bit flip of transmitted
// frames, and the DROCE_FAULTS parser (README: DROCE_FAULTS).
#include "nic/fault.h"

#include <rte_mbuf.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "nic/port.h"

namespace droce::nic {
namespace {

constexpr const char* kKnownKeys = "drop, dup, reorder, delay, bitflip, delay_ns, delay_us, seed";

uint64_t splitmix64(uint64_t* x) {
  uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

// probability -> threshold for a uniform 64-bit draw (0 never fires).
uint64_t threshold(double p) {
  if (!(p > 0)) return 0;
  if (p >= 1) return UINT64_MAX;
  return uint64_t(std::ldexp(p, 64));
}

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t')) --e;
  return s.substr(b, e - b);
}

Status bad_value(const std::string& key, const std::string& value, const char* want) {
  return Status(Errc::kBadConfig, "DROCE_FAULTS: bad value '" + value + "' for key '" + key +
                                      "' (expected " + want + ")");
}

bool parse_probability(const std::string& v, double* out) {
  if (v.empty()) return false;
  errno = 0;
  char* end = nullptr;
  const double d = std::strtod(v.c_str(), &end);
  if (errno != 0 || end != v.c_str() + v.size() || !std::isfinite(d) || d < 0 || d > 1)
    return false;
  *out = d;
  return true;
}

bool parse_u64(const std::string& v, uint64_t* out) {
  if (v.empty() || v[0] == '-' || v[0] == '+') return false;
  errno = 0;
  char* end = nullptr;
  const unsigned long long x = std::strtoull(v.c_str(), &end, 0);
  if (errno != 0 || end != v.c_str() + v.size()) return false;
  *out = x;
  return true;
}

}  // namespace

// ---- configuration ----

Result<FaultConfig> FaultConfig::parse(const std::string& text) {
  FaultConfig c;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string::npos) comma = text.size();
    const std::string item = trim(text.substr(pos, comma - pos));
    pos = comma + 1;
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    if (eq == std::string::npos) {
      return Status(Errc::kBadConfig,
                    "DROCE_FAULTS: '" + item + "' is not key=value (keys: " + kKnownKeys + ")");
    }
    const std::string key = trim(item.substr(0, eq));
    const std::string value = trim(item.substr(eq + 1));
    double* prob = key == "drop"      ? &c.drop
                   : key == "dup"     ? &c.dup
                   : key == "reorder" ? &c.reorder
                   : key == "delay"   ? &c.delay
                   : key == "bitflip" ? &c.bitflip
                                      : nullptr;
    if (prob != nullptr) {
      if (!parse_probability(value, prob)) return bad_value(key, value, "a probability in [0, 1]");
    } else if (key == "delay_ns" || key == "delay_us") {
      uint64_t v;
      const uint64_t unit = key == "delay_us" ? kNanosPerUs : 1;
      if (!parse_u64(value, &v) || v > UINT64_MAX / unit) {
        return bad_value(key, value, "a non-negative integer");
      }
      c.delay_ns = v * unit;
    } else if (key == "seed") {
      if (!parse_u64(value, &c.seed)) return bad_value(key, value, "an unsigned integer");
    } else {
      return Status(Errc::kBadConfig,
                    "DROCE_FAULTS: unknown key '" + key + "' (keys: " + kKnownKeys + ")");
    }
  }
  return c;
}

Result<FaultConfig> FaultConfig::from_env() {
  const char* v = std::getenv("DROCE_FAULTS");
  return parse(v == nullptr ? std::string() : std::string(v));
}

// ---- shim ----

FaultShim::FaultShim(const FaultConfig& cfg, rte_mempool* pool)
    : cfg_(cfg),
      pool_(pool),
      t_drop_(threshold(cfg.drop)),
      t_dup_(threshold(cfg.dup)),
      t_reorder_(threshold(cfg.reorder)),
      t_delay_(threshold(cfg.delay)),
      t_bitflip_(threshold(cfg.bitflip)) {
  uint64_t x = cfg.seed;
  for (uint64_t& s : s_) s = splitmix64(&x);
}

FaultShim::~FaultShim() {
  discard_held();
  for (uint16_t i = 0; i < n_out_; ++i) rte_pktmbuf_free(out_[i]);
  n_out_ = 0;
}

uint64_t FaultShim::next_random() {
  // xoshiro256** (Blackman and Vigna).
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

bool FaultShim::flip_bit(rte_mbuf* m) {
  uint8_t* p = rte_pktmbuf_mtod(m, uint8_t*);
  const uint32_t len = m->data_len;
  uint32_t l3 = 14;
  if (len < l3) return false;
  uint16_t type = uint16_t(p[12] << 8 | p[13]);
  if (type == 0x8100) {
    l3 += 4;
    if (len < l3) return false;
    type = uint16_t(p[16] << 8 | p[17]);
  }
  if (type != 0x0800 || len < l3 + 20) return false;
  const uint32_t ihl = uint32_t(p[l3] & 0x0F) * 4;
  const uint32_t total = uint32_t(p[l3 + 2] << 8 | p[l3 + 3]);
  if (ihl < 20 || p[l3 + 9] != 17 || total > len - l3 || total < ihl + 8 + 12 + 4) return false;
  const uint32_t l4 = l3 + ihl;
  if (uint16_t(p[l4 + 2] << 8 | p[l4 + 3]) != 4791) return false;
  const uint32_t bth = l4 + 8;
  const uint32_t end = l3 + total;  // Ethernet padding is not covered by the ICRC
  // Bytes [bth, end) without bth + 4.
  const uint64_t bits = uint64_t(end - bth - 1) * 8;
  const uint64_t r = next_random() % bits;
  uint32_t byte = uint32_t(r / 8);
  if (byte >= 4) ++byte;
  p[bth + byte] ^= uint8_t(1u << (r % 8));
  return true;
}

void FaultShim::emit(Port& port, rte_mbuf* m) {
  out_[n_out_++] = m;
  if (n_out_ == kOutBurst) flush(port);
}

void FaultShim::flush(Port& port) {
  if (n_out_ == 0) return;
  port.transmit(out_, n_out_);  // frames the device refuses are freed and counted there
  n_out_ = 0;
}

bool FaultShim::hold(rte_mbuf* m, Nanos due, bool after_next) {
  if (n_held_ == kMaxHeld) {
    ++counters_.hold_full;
    return false;
  }
  held_[n_held_++] = Held{m, due, after_next};
  if (after_next) ++n_after_next_;
  return true;
}

void FaultShim::release_after_next(Port& port) {
  if (n_after_next_ == 0) return;
  uint32_t keep = 0;
  for (uint32_t i = 0; i < n_held_; ++i) {
    if (held_[i].after_next) {
      emit(port, held_[i].m);
      ++counters_.released;
    } else {
      held_[keep++] = held_[i];
    }
  }
  n_held_ = keep;
  n_after_next_ = 0;
}

void FaultShim::release_due(Port& port, Nanos now) {
  uint32_t keep = 0;
  for (uint32_t i = 0; i < n_held_; ++i) {
    if (held_[i].due <= now) {
      if (held_[i].after_next) --n_after_next_;
      emit(port, held_[i].m);
      ++counters_.released;
    } else {
      held_[keep++] = held_[i];
    }
  }
  n_held_ = keep;
}

void FaultShim::transmit(Port& port, rte_mbuf** frames, uint16_t n, Nanos now) {
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = frames[i];
    ++counters_.frames;
    if (roll(t_drop_)) {
      ++counters_.dropped;
      rte_pktmbuf_free(m);
      continue;
    }
    if (roll(t_bitflip_)) {
      // A chained frame carries its payload in the sender's registered pages
      // (zero-copy transmit): the bit flips in a contiguous copy, never there.
      if (m->nb_segs > 1) {
        rte_mbuf* flat = rte_pktmbuf_copy(m, pool_, 0, UINT32_MAX);
        if (flat != nullptr && flat->nb_segs == 1) {
          rte_pktmbuf_free(m);
          m = flat;
        } else {
          rte_pktmbuf_free(flat);  // accepts nullptr
        }
      }
      if (flip_bit(m)) ++counters_.bitflipped;
    }
    rte_mbuf* copy = nullptr;
    if (roll(t_dup_)) {
      copy = rte_pktmbuf_copy(m, pool_, 0, UINT32_MAX);
      if (copy != nullptr) {
        ++counters_.duplicated;
      } else {
        ++counters_.dup_no_mbuf;
      }
    }
    // A reordered frame waits for the next one, but never longer than delay_ns.
    const Nanos due = now + cfg_.delay_ns;
    if (roll(t_reorder_) && hold(m, due, /*after_next=*/true)) {
      ++counters_.reordered;
    } else if (roll(t_delay_) && hold(m, due, /*after_next=*/false)) {
      ++counters_.delayed;
    } else {
      emit(port, m);
      release_after_next(port);
    }
    if (copy != nullptr) {
      emit(port, copy);
      release_after_next(port);
    }
  }
  release_due(port, now);
  flush(port);
}

void FaultShim::poll(Port& port, Nanos now) {
  if (n_held_ == 0) return;
  release_due(port, now);
  flush(port);
}

void FaultShim::discard_held() {
  for (uint32_t i = 0; i < n_held_; ++i) rte_pktmbuf_free(held_[i].m);
  n_held_ = 0;
  n_after_next_ = 0;
}

}  // namespace droce::nic
