// libFuzzer target for the CLC decoders (smc/wire/clc.h): no decoder reads
// outside its input (each gets an exactly sized heap copy, so ASan sees any
// overread), and a message that decodes re-encodes to bytes that decode to
// the same message and encode to the same bytes. Two modes, by the first byte:
//   even: the rest is a raw message, given to every decoder;
//   odd:  the rest describes a valid message that the encoder writes, then
//         damages (byte edits, 16-bit length/offset overrides, truncation),
//         so the fuzzer reaches the deep checks without a seed corpus.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>

#include "smc/wire/clc.h"

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

// decode, encode, decode again: same message, same bytes.
template <class Msg, class Decode, class Encode>
void check(const uint8_t* data, size_t n, Decode decode, Encode encode) {
  std::unique_ptr<uint8_t[]> copy(new uint8_t[n ? n : 1]);
  if (n) std::memcpy(copy.get(), data, n);
  Msg m;
  const ClcError e = decode(std::span<const uint8_t>(copy.get(), n), &m);
  if (uint8_t(e) > uint8_t(ClcError::kLayout)) __builtin_trap();
  g_sink = uint32_t(clc_error_name(e)[0]);
  if (e != ClcError::kOk) return;
  uint8_t a[kClcMaxLen], b[kClcMaxLen];
  const size_t la = encode(m, std::span<uint8_t>(a));
  if (la == 0) __builtin_trap();  // whatever decodes can be written
  std::unique_ptr<uint8_t[]> exact(new uint8_t[la]);
  std::memcpy(exact.get(), a, la);
  Msg m2;
  if (decode(std::span<const uint8_t>(exact.get(), la), &m2) != ClcError::kOk) __builtin_trap();
  if (!(m2 == m)) __builtin_trap();
  const size_t lb = encode(m2, std::span<uint8_t>(b));
  if (lb != la || std::memcmp(a, b, la) != 0) __builtin_trap();
}

void decode_all(const uint8_t* data, size_t n) {
  ClcHeader h;
  const ClcError e =
      peek_header(std::span<const uint8_t>(data, n < kClcHeaderLen ? n : kClcHeaderLen), &h);
  g_sink = uint32_t(e);
  check<ClcProposal>(data, n, decode_proposal, encode_proposal);
  for (ClcType t : {ClcType::kAccept, ClcType::kConfirm}) {
    check<ClcAcceptConfirm>(
        data, n,
        [t](std::span<const uint8_t> s, ClcAcceptConfirm* m) {
          return decode_accept_confirm(s, t, m);
        },
        encode_accept_confirm);
  }
  check<ClcDecline>(data, n, decode_decline, encode_decline);
}

SmcType smc_type(uint8_t v) { return SmcType(v & 3); }

// A valid message of the kind the input picks, encoded into buf; returns its length.
size_t build(Input& in, uint8_t* buf) {
  switch (in.u8() % 3) {
    case 0: {
      ClcProposal p;
      p.version = uint8_t(1 + in.u8() % 3);
      p.typev1 = smc_type(in.u8());
      p.typev2 = smc_type(in.u8());
      if (p.version == 1 && p.typev1 == SmcType::kNone) p.typev1 = SmcType::kR;
      in.fill(p.peer_id);
      in.fill(p.gid);
      in.fill(p.mac);
      p.ipv4_prefix = in.u32();
      p.ipv4_prefix_len = in.u8();
      p.ipv6_count = in.u8() % (kClcMaxIpv6Prefixes + 1);
      for (uint8_t i = 0; i < p.ipv6_count; ++i) {
        in.fill(p.ipv6[i].prefix);
        p.ipv6[i].len = in.u8();
      }
      p.eid_cnt = in.u8() % (kClcMaxEids + 1);
      for (uint8_t i = 0; i < p.eid_cnt; ++i) in.fill(p.eids[i]);
      p.v2_flag = in.u8();
      in.fill(p.roce_v2_gid);
      p.ism_gid_cnt = in.u8() % 9;
      return encode_proposal(p, std::span<uint8_t>(buf, kClcMaxLen));
    }
    case 1: {
      ClcAcceptConfirm m;
      m.type = in.u8() & 1 ? ClcType::kConfirm : ClcType::kAccept;
      m.version = uint8_t(1 + in.u8() % 3);
      m.first_contact = in.u8() & 1;
      in.fill(m.peer_id);
      in.fill(m.gid);
      in.fill(m.mac);
      m.qpn = in.u32();
      m.rkey = in.u32();
      m.rmbe_idx = in.u8();
      m.rmbe_alert_token = in.u32();
      m.rmbe_size = in.u8() % 6;
      m.mtu = uint8_t(1 + in.u8() % 5);
      m.rmb_vaddr = in.u64();
      m.psn = in.u32();
      in.fill(m.eid);
      m.fce.v2_direct = in.u8() & 1;
      m.fce.os_type = in.u8() & 15;
      m.fce.release = in.u8() & 15;
      in.fill(m.fce.hostname);
      m.gid_cnt = in.u8() % (kClcMaxConfirmGids + 1);
      for (uint8_t i = 0; i < m.gid_cnt; ++i) in.fill(m.gids[i]);
      return encode_accept_confirm(m, std::span<uint8_t>(buf, kClcMaxLen));
    }
    default: {
      ClcDecline d;
      d.version = uint8_t(1 + in.u8() % 3);
      d.out_of_sync = in.u8() & 1;
      in.fill(d.peer_id);
      d.diag = in.u32();
      d.os_type = in.u8() & 15;
      for (auto& x : d.diag_ext) x = in.u32();
      return encode_decline(d, std::span<uint8_t>(buf, kClcMaxLen));
    }
  }
}

void structured(Input& in) {
  uint8_t buf[kClcMaxLen];
  const size_t len = build(in, buf);
  if (len == 0) __builtin_trap();  // every built message is valid
  decode_all(buf, len);            // undamaged: round trips
  for (int i = 0, n = in.u8() % 9; i < n; ++i) {
    const size_t pos = in.u16() % len;
    switch (in.u8() % 3) {
      case 0:
        buf[pos] ^= uint8_t(1u << (in.u8() % 8));
        break;
      case 1:
        buf[pos] = in.u8();
        break;
      default: {  // lengths, offsets and counts are 16-bit or 8-bit fields
        const uint16_t v = in.u16();
        buf[pos] = uint8_t(v >> 8);
        if (pos + 1 < len) buf[pos + 1] = uint8_t(v);
      }
    }
  }
  size_t cut = len;
  if (in.u8() & 1) cut = in.u16() % (len + 1);
  decode_all(buf, cut);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  if (data[0] & 1) {
    Input in(data + 1, size - 1);
    structured(in);
  } else {
    decode_all(data + 1, size - 1);
  }
  return 0;
}
