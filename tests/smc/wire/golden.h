// Helpers for the smc/wire tests: golden byte images written field by field
// from the offsets of reference/smc-v2-linux61.md, exact-size decode copies
// (so ASan catches any read past the input), and hex dumps for failures.
#pragma once

#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "smc/wire/types.h"

namespace droce::smc::wire::test {

using Bytes = std::vector<uint8_t>;

// Writes `vals` at `off` (each value one byte).
inline void put(Bytes& b, size_t off, std::initializer_list<int> vals) {
  for (int v : vals) b.at(off++) = uint8_t(v);
}
inline void put_text(Bytes& b, size_t off, std::string_view s, size_t width) {
  for (size_t i = 0; i < width; ++i) b.at(off + i) = i < s.size() ? uint8_t(s[i]) : ' ';
}
inline void put_bytes(Bytes& b, size_t off, std::span<const uint8_t> src) {
  for (uint8_t x : src) b.at(off++) = x;
}
inline void put_be(Bytes& b, size_t off, uint64_t v, int width) {
  for (int i = width - 1; i >= 0; --i, v >>= 8) b.at(off + size_t(i)) = uint8_t(v);
}

inline constexpr std::initializer_list<int> kSmcr = {0xE2, 0xD4, 0xC3, 0xD9};

inline std::string hex(std::span<const uint8_t> b) {
  std::string s;
  char buf[4];
  for (size_t i = 0; i < b.size(); ++i) {
    std::snprintf(buf, sizeof(buf), "%02x", b[i]);
    if (i && i % 16 == 0)
      s += '\n';
    else if (i)
      s += ' ';
    s += buf;
  }
  return s;
}

// The first offset where a and b differ (or the shorter size), for messages.
inline std::string first_diff(const Bytes& a, const Bytes& b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  if (i == a.size() && i == b.size()) return "equal";
  char buf[96];
  std::snprintf(buf, sizeof(buf), "first difference at offset %zu (sizes %zu / %zu)", i, a.size(),
                b.size());
  return buf;
}

// An exactly sized heap copy of bytes[0..n), so a decoder reading past n
// trips ASan in the sanitizer build.
class Exact {
 public:
  Exact(const uint8_t* p, size_t n) : buf_(new uint8_t[n ? n : 1]), n_(n) {
    for (size_t i = 0; i < n; ++i) buf_[i] = p[i];
  }
  explicit Exact(const Bytes& b) : Exact(b.data(), b.size()) {}
  std::span<const uint8_t> span() const { return {buf_.get(), n_}; }

 private:
  std::unique_ptr<uint8_t[]> buf_;
  size_t n_;
};

inline Gid gid_of(std::initializer_list<int> tail16) {
  Gid g{};
  size_t i = 0;
  for (int v : tail16) g.at(i++) = uint8_t(v);
  return g;
}
inline Eid eid_of(std::string_view s) {
  Eid e;
  e.fill(' ');
  for (size_t i = 0; i < s.size() && i < e.size(); ++i) e[i] = uint8_t(s[i]);
  return e;
}

}  // namespace droce::smc::wire::test
