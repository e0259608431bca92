// libFuzzer target for the RoCEv2 parser (nic/wire/packet.h): parse_frame must
// never read outside the frame, and a successful parse must describe bytes that
// lie inside it. Two input modes, chosen by the first byte:
//   even: the rest is a raw frame;
//   odd:  the rest describes a frame that the builder makes (any opcode, payload,
//         VLAN), then damages (bit flips, truncation, length overrides), so the
//         fuzzer reaches the deep checks and the ICRC without a seed corpus.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>

#include "nic/wire/builder.h"
#include "nic/wire/packet.h"

namespace {

using namespace droce::wire;

// Reads input bytes; returns zeros once they run out.
class Input {
 public:
  Input(const uint8_t* p, size_t n) : p_(p), n_(n) {}
  uint8_t u8() { return n_ ? (--n_, *p_++) : 0; }
  uint16_t u16() { return uint16_t(u8() << 8 | u8()); }
  uint32_t u32() { return uint32_t(u16()) << 16 | u16(); }
  uint64_t u64() { return uint64_t(u32()) << 32 | u32(); }
  size_t left() const { return n_; }

 private:
  const uint8_t* p_;
  size_t n_;
};

volatile uint32_t g_sink;

// Touches every byte the view claims and checks its invariants.
void check_view(const uint8_t* frame, size_t len, const PacketView& v) {
  if (v.frame != frame || v.frame_len != len || v.op == nullptr || !v.op->valid()) __builtin_trap();
  const size_t end = size_t(v.icrc_off) + 4;
  if (end > len || v.l3_off >= v.bth_off || v.bth_off >= v.payload_off) __builtin_trap();
  if (size_t(v.payload_off) + v.payload_len + v.pad != v.icrc_off) __builtin_trap();
  if (v.payload_off != v.bth_off + sizeof(Bth) + v.op->ext_len) __builtin_trap();
  if (v.payload_len != 0 && !v.op->has(kOpPayload)) __builtin_trap();
  uint32_t acc = 0;
  for (size_t i = 0; i < end; ++i) acc += v.frame[i];  // headers, payload, pad, ICRC
  const uint8_t* pl = v.payload();
  for (uint32_t i = 0; i < v.payload_len; ++i) acc += pl[i];
  acc += v.eth().ether_type.get() + v.udp().length.get() + v.bth().psn() + v.bth().dest_qp();
  acc += v.ipv6 ? v.ipv6_hdr().payload_length.get() : v.ipv4().total_length.get();
  if (v.op->has(kOpReth)) acc += v.reth().rkey.get();
  if (v.op->has(kOpAeth)) acc += v.aeth().msn();
  if (v.op->has(kOpAtomicEth)) acc += uint32_t(v.atomic_eth().compare.get());
  if (v.op->has(kOpAtomicAck)) acc += uint32_t(v.atomic_ack().orig.get());
  if (v.op->has(kOpImm)) acc += v.immdt().imm.raw();
  if (v.op->has(kOpIeth)) acc += v.ieth().rkey.get();
  if (v.op->has(kOpDeth)) acc += v.deth().src_qp();
  g_sink = acc;
}

// Parses data[0..n) from an exactly-sized heap copy (so ASan sees any overread).
ParseError parse_copy(const uint8_t* data, size_t n, bool verify_icrc) {
  std::unique_ptr<uint8_t[]> buf(new uint8_t[n ? n : 1]);
  if (n) std::memcpy(buf.get(), data, n);
  PacketView v;
  const ParseError r = parse_frame(buf.get(), n, &v, ParseOptions{.verify_icrc = verify_icrc});
  if (r == ParseError::kOk) {
    check_view(buf.get(), n, v);
  } else if (size_t(r) >= kParseErrorCount) {
    __builtin_trap();
  }
  g_sink = uint32_t(parse_error_name(r)[0]);
  return r;
}

void structured(Input& in) {
  PacketSpec s;
  s.opcode = in.u8();
  s.vlan = in.u8() & 1;
  s.vlan_tci = in.u16();
  s.src_ip = in.u32();
  s.dst_ip = in.u32();
  s.tos = in.u8();
  s.ttl = in.u8();
  s.ip_id = in.u16();
  s.udp_src_port = in.u16();
  const uint8_t flags = in.u8();
  s.se = flags & 1;
  s.migreq = flags & 2;
  s.ackreq = flags & 4;
  s.becn_fecn = in.u8();
  s.pkey = in.u16();
  s.dest_qp = in.u32();
  s.psn = in.u32();
  s.reth_va = in.u64();
  s.reth_rkey = in.u32();
  s.aeth_syndrome = in.u8();
  s.aeth_msn = in.u32();
  s.imm_raw = in.u32();
  s.deth_src_qp = in.u32();
  s.payload_len = in.u16() % 2049;
  if (!opcode_info(s.opcode).has(kOpPayload)) s.payload_len = 0;

  const size_t len = frame_len(s);
  std::unique_ptr<uint8_t[]> f(new uint8_t[len]);
  if (build_frame(f.get(), len, s, nullptr) != len) {
    if (opcode_info(s.opcode).valid()) __builtin_trap();  // valid specs must build
    return;
  }
  // An undamaged built frame parses, and reads back what was built.
  {
    PacketView v;
    if (parse_frame(f.get(), len, &v) != ParseError::kOk) __builtin_trap();
    check_view(f.get(), len, v);
    if (v.bth().opcode != s.opcode || v.bth().psn() != (s.psn & 0xFFFFFF) ||
        v.payload_len != s.payload_len || v.has_vlan != s.vlan) {
      __builtin_trap();
    }
  }
  // Damage: up to 8 edits chosen by the input, then an optional truncation.
  for (int i = 0, n = in.u8() % 9; i < n; ++i) {
    const size_t pos = in.u16() % len;
    switch (in.u8() % 3) {
      case 0:
        f[pos] ^= uint8_t(1u << (in.u8() % 8));
        break;
      case 1:
        f[pos] = in.u8();
        break;
      default: {  // a 16-bit length-like field
        const uint16_t v = in.u16();
        f[pos] = uint8_t(v >> 8);
        if (pos + 1 < len) f[pos + 1] = uint8_t(v);
      }
    }
  }
  size_t cut = len;
  if (in.u8() & 1) cut = in.u16() % (len + 1);
  parse_copy(f.get(), cut, true);
  parse_copy(f.get(), cut, false);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  if (data[0] & 1) {
    Input in(data + 1, size - 1);
    structured(in);
  } else {
    parse_copy(data + 1, size - 1, true);
    parse_copy(data + 1, size - 1, false);
  }
  return 0;
}
