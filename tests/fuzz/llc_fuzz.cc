// libFuzzer target for the LLC decoder (smc/wire/llc.h): decode_llc never
// reads outside the message it is given (an exactly sized heap copy), and a
// message that decodes re-encodes to bytes that decode to the same message
// (apart from the header's length, which decode reports as found) and encode
// to the same bytes. The first byte picks the mode: even, the rest is a raw
// message; odd, the rest is turned into a valid v1 or v2 message of any type
// the receive table admits, which is then damaged and truncated.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "smc/wire/llc.h"

namespace {

using namespace droce::smc::wire;

class Input {
 public:
  Input(const uint8_t* p, size_t n) : p_(p), n_(n) {}
  uint8_t u8() { return n_ ? (--n_, *p_++) : 0; }
  uint16_t u16() { return uint16_t(u8() << 8 | u8()); }
  uint32_t u32() { return uint32_t(u16()) << 16 | u16(); }
  uint64_t u64() { return uint64_t(u32()) << 32 | u32(); }
  template <size_t N>
  void fill(std::array<uint8_t, N>& a) {
    for (auto& b : a) b = u8();
  }

 private:
  const uint8_t* p_;
  size_t n_;
};

volatile uint32_t g_sink;

LlcMsg without_length(LlcMsg m) {
  std::visit([](auto& x) { x.hdr.length = 0; }, m);
  return m;
}

LlcError decode_exact(const uint8_t* data, size_t n, LlcMsg* m) {
  std::unique_ptr<uint8_t[]> copy(new uint8_t[n ? n : 1]);
  if (n) std::memcpy(copy.get(), data, n);
  return decode_llc(std::span<const uint8_t>(copy.get(), n), m);
}

void check(const uint8_t* data, size_t n) {
  LlcHeader h;
  if (n >= kLlcMsgLen) g_sink = uint32_t(decode_llc_header(std::span<const uint8_t>(data, n), &h));
  LlcMsg m;
  const LlcError e = decode_exact(data, n, &m);
  if (uint8_t(e) > uint8_t(LlcError::kLayout)) __builtin_trap();
  g_sink = uint32_t(llc_error_name(e)[0]);
  if (e != LlcError::kOk) return;
  static uint8_t a[kLlcV2MaxLen], b[kLlcV2MaxLen];
  const size_t la = encode_llc(m, a);
  if (la < kLlcMsgLen || la != llc_length(m)) __builtin_trap();  // whatever decodes can be written
  LlcMsg m2;
  if (decode_exact(a, la, &m2) != LlcError::kOk) __builtin_trap();
  if (!(without_length(m2) == without_length(m))) __builtin_trap();
  const size_t lb = encode_llc(m2, b);
  if (lb != la || std::memcmp(a, b, la) != 0) __builtin_trap();
}

LlcHeader header(Input& in, bool v2) {
  LlcHeader h;
  h.v2 = v2;
  h.flags = in.u8();
  h.add_link_rej_rsn = in.u8() & 15;
  return h;
}

LlcMsg build(Input& in) {
  const bool v2 = in.u8() & 1;
  switch (in.u8() % 9) {
    case 0: {
      LlcConfirmLink m;
      m.hdr = header(in, v2);
      in.fill(m.sender_mac);
      in.fill(m.sender_gid);
      m.sender_qpn = in.u32() & 0xFFFFFF;
      m.link_num = in.u8();
      in.fill(m.link_uid);
      m.max_links = in.u8();
      return m;
    }
    case 1: {
      LlcAddLink m;
      m.hdr = header(in, v2);
      in.fill(m.sender_mac);
      in.fill(m.sender_gid);
      m.sender_qpn = in.u32() & 0xFFFFFF;
      m.link_num = in.u8();
      m.mtu = in.u8() & 15;
      m.psn = in.u32() & 0xFFFFFF;
      m.has_v2_ext = v2 && (in.u8() & 1);
      if (m.has_v2_ext) {
        m.v2_direct = in.u8() & 1;
        in.fill(m.client_target_gid);
        for (int i = 0, n = in.u8() % 20; i < n; ++i)
          m.rkeys.push_back({in.u32(), in.u32(), in.u64()});
      }
      return m;
    }
    case 2: {
      LlcAddLinkCont m;
      m.hdr = header(in, false);
      m.link_num = in.u8();
      m.num_rkeys = in.u8();
      for (auto& r : m.rkeys) r = {in.u32(), in.u32(), in.u64()};
      return m;
    }
    case 3: {
      LlcReqAddLink m;
      m.hdr = header(in, true);
      m.gids.resize(in.u8() % 10);
      for (auto& g : m.gids) in.fill(g);
      return m;
    }
    case 4: {
      LlcDeleteLink m;
      m.hdr = header(in, v2);
      m.link_num = in.u8();
      m.reason = in.u32();
      return m;
    }
    case 5: {
      LlcConfirmRkey m;
      m.hdr = header(in, v2);
      for (auto& t : m.rtoken) t = {in.u8(), in.u32(), in.u64()};
      return m;
    }
    case 6: {
      LlcTestLink m;
      m.hdr = header(in, v2);
      in.fill(m.user_data);
      return m;
    }
    case 7: {
      LlcDeleteRkey m;
      m.hdr = header(in, v2);
      m.num_rkeys = uint8_t(in.u8() % (v2 ? 40 : 9));
      m.err_mask = in.u8();
      for (int i = 0; i < m.num_rkeys; ++i) m.rkeys.push_back(in.u32());
      return m;
    }
    default: {
      LlcOther m;
      m.hdr = header(in, false);
      m.hdr.type = LlcType::kConfirmRkeyCont;
      return m;
    }
  }
}

void structured(Input& in) {
  static uint8_t buf[kLlcV2MaxLen];
  const LlcMsg m = build(in);
  const size_t len = encode_llc(m, buf);
  if (len == 0) __builtin_trap();  // every built message is valid
  check(buf, len);
  for (int i = 0, n = in.u8() % 9; i < n; ++i) {
    const size_t pos = in.u16() % len;
    switch (in.u8() % 3) {
      case 0:
        buf[pos] ^= uint8_t(1u << (in.u8() % 8));
        break;
      case 1:
        buf[pos] = in.u8();
        break;
      default: {  // the v2 length and ADD LINK num_rkeys are little-endian 16-bit fields
        const uint16_t v = in.u16();
        buf[pos] = uint8_t(v);
        if (pos + 1 < len) buf[pos + 1] = uint8_t(v >> 8);
      }
    }
  }
  size_t cut = len;
  if (in.u8() & 1) cut = in.u16() % (len + 1);
  check(buf, cut);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  if (data[0] & 1) {
    Input in(data + 1, size - 1);
    structured(in);
  } else {
    check(data + 1, size - 1);
  }
  return 0;
}
