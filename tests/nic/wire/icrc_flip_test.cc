// ICRC coverage (IBTA annex A17.3.3) on real rxe capture frames and builder
// frames: single-bit flips outside the variant fields are caught, the variant
// fields are not covered, and every truncation is rejected without reading
// past the frame (each truncated copy sits in an exactly-sized heap buffer).
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>

#include "nic/wire/packet.h"
#include "tests/nic/wire/test_util.h"

namespace droce::wire {
namespace {

struct Sample {
  std::string what;
  test::Frame frame;
};

// Builder frames for a spread of opcodes and pads, VLAN and IPv6 variants, and
// the first frame of every opcode in the rxe captures (tests/data).
std::vector<Sample> samples() {
  std::vector<Sample> out;
  const struct {
    uint8_t opcode;
    uint32_t payload;
    bool vlan;
  } kBuilt[] = {
      {op::kSendOnly, 0, false},
      {op::kSendOnly, 5, false},
      {op::kWriteOnlyImm, 3, true},
      {op::kReadRequest, 0, false},
      {op::kAck, 0, false},
      {op::kAtomicAck, 0, true},
      {op::kCmpSwap, 0, false},
      {op::kSendOnlyInv, 64, false},
      {op::kUd | op::kSendOnlyImm, 2, false},
      {op::kCnp, 0, false},
      {op::kUc | op::kWriteFirst, 256, false},
  };
  for (const auto& b : kBuilt) {
    test::Frame f = test::build(test::sample_spec(b.opcode, b.payload, b.vlan));
    out.push_back({std::string("built ") + opcode_name(b.opcode) + " payload " +
                       std::to_string(b.payload) + (b.vlan ? " vlan" : ""),
                   f});
  }
  out.push_back({"built IPv6 RC_SEND_ONLY payload 7",
                 test::to_ipv6(test::build(test::sample_spec(op::kSendOnly, 7, false)))});
  out.push_back({"built IPv6 RC_ACKNOWLEDGE",
                 test::to_ipv6(test::build(test::sample_spec(op::kAck, 0, false)))});

  // One frame per opcode of the rxe captures (part of the repository).
  std::map<uint8_t, bool> seen;
  for (const auto& file : test::capture_files(test::captures_dir())) {
    std::string err;
    for (auto& f : test::read_pcap(file, &err)) {
      PacketView v;
      if (parse_frame(f.data(), f.size(), &v) != ParseError::kOk) continue;
      if (seen[v.bth().opcode]) continue;
      seen[v.bth().opcode] = true;
      out.push_back({file.filename().string() + " " + v.op->name, f});
    }
  }
  return out;
}

enum class Region {
  kL2Data,     // MACs, VLAN TCI: outside the ICRC, no effect
  kL2Type,     // EtherTypes: the frame stops being IP
  kStructure,  // length / version / protocol / port / opcode / flags: any rejection
  kVariant,    // masked: IPv6 TC/flow/hop, UDP checksum, BTH byte 4
  kIpVariant,  // masked too, IPv4 TOS, TTL, checksum: the header checksum catches a flip
  kCovered,    // everything else up to the ICRC and the ICRC itself: must be kBadIcrc
  kTrailer,    // Ethernet padding after the IP packet: ignored
};

// What byte i of the parsed frame `v` is.
Region region(const PacketView& v, size_t i) {
  const size_t l3 = v.l3_off;
  if (i < l3) {
    const bool type = (i == 12 || i == 13) || (v.has_vlan && (i == 16 || i == 17));
    return type ? Region::kL2Type : Region::kL2Data;
  }
  if (i >= v.icrc_off + 4u) return Region::kTrailer;
  const size_t udp = size_t(v.bth_off) - sizeof(UdpHdr);
  const size_t bth = v.bth_off;
  const size_t r = i - l3;
  if (v.ipv6) {
    if (r == 0) return Region::kStructure;         // version; the caller treats the TC nibble
    if (r < 4 || r == 7) return Region::kVariant;  // TC + flow label, hop limit
    if (r < 7) return Region::kStructure;          // payload length, next header
  } else {
    if (r == 1 || r == 8 || r == 10 || r == 11) return Region::kIpVariant;
    if (r == 0 || r == 2 || r == 3 || r == 6 || r == 7 || r == 9) return Region::kStructure;
  }
  if (i == udp + 6 || i == udp + 7) return Region::kVariant;
  if (i >= udp + 2 && i < udp + 6) return Region::kStructure;  // dst port, length
  if (i == bth + 4) return Region::kVariant;
  if (i == bth || i == bth + 1) return Region::kStructure;  // opcode, SE/M/pad/TVer
  return Region::kCovered;
}

TEST(WireIcrcFlip, EverySingleBitFlip) {
  const auto all = samples();
  // 13 built frames, plus one per opcode seen in the captures (20 opcodes).
  ASSERT_GE(all.size(), 33u) << "the rxe captures in " << test::captures_dir() << " gave too few";
  size_t covered_flips = 0;
  for (const Sample& s : all) {
    SCOPED_TRACE(s.what);
    test::Frame f = s.frame;
    PacketView v;
    ASSERT_EQ(parse_frame(f.data(), f.size(), &v), ParseError::kOk);
    for (size_t i = 0; i < f.size(); ++i) {
      Region reg = region(v, i);
      for (int bit = 0; bit < 8; ++bit) {
        const uint8_t mask = uint8_t(1u << bit);
        // IPv6 byte 0: version in the high nibble, traffic class (masked) in the low.
        Region rb = reg;
        if (v.ipv6 && i == v.l3_off && bit < 4) rb = Region::kVariant;
        f[i] ^= mask;
        PacketView w;
        const ParseError r = parse_frame(f.data(), f.size(), &w);
        f[i] ^= mask;
        const std::string where = "byte " + std::to_string(i) + " bit " + std::to_string(bit);
        switch (rb) {
          case Region::kL2Data:
          case Region::kVariant:
          case Region::kTrailer:
            EXPECT_EQ(r, ParseError::kOk) << where << ": " << parse_error_name(r);
            break;
          case Region::kIpVariant:
            EXPECT_EQ(r, ParseError::kBadIpChecksum) << where << ": " << parse_error_name(r);
            break;
          case Region::kL2Type:
          case Region::kStructure:
            EXPECT_NE(r, ParseError::kOk) << where;
            break;
          case Region::kCovered:
            EXPECT_EQ(r, ParseError::kBadIcrc) << where << ": " << parse_error_name(r);
            ++covered_flips;
            break;
        }
      }
    }
    EXPECT_EQ(f, s.frame);
  }
  EXPECT_GT(covered_flips, 1000u);
}

TEST(WireIcrcFlip, BthFlagsBitsGiveTheirOwnErrors) {
  test::Frame f = test::build(test::sample_spec(op::kSendOnly, 0, false));
  PacketView v;
  ASSERT_EQ(parse_frame(f.data(), f.size(), &v), ParseError::kOk);
  uint8_t& flags = f[v.bth_off + 1];
  const uint8_t orig = flags;
  for (uint8_t m : {Bth::kSe, Bth::kMigReq}) {
    flags = orig ^ m;
    EXPECT_EQ(parse_frame(f.data(), f.size(), &v), ParseError::kBadIcrc);
  }
  for (uint8_t m : {0x10, 0x20}) {  // pad count > 0 with no payload
    flags = uint8_t(orig ^ m);
    EXPECT_EQ(parse_frame(f.data(), f.size(), &v), ParseError::kPadBeyondPayload);
  }
  for (uint8_t m : {0x01, 0x02, 0x04, 0x08}) {
    flags = uint8_t(orig ^ m);
    EXPECT_EQ(parse_frame(f.data(), f.size(), &v), ParseError::kBadTver);
  }
}

TEST(WireIcrcFlip, VariantFieldsAnyValueKeepIcrcValid) {
  for (const Sample& s : samples()) {
    SCOPED_TRACE(s.what);
    test::Frame f = s.frame;
    PacketView v;
    ASSERT_EQ(parse_frame(f.data(), f.size(), &v), ParseError::kOk);
    std::vector<size_t> variant;
    const size_t l3 = v.l3_off, udp = v.bth_off - sizeof(UdpHdr);
    if (v.ipv6) {
      variant = {l3 + 1, l3 + 2, l3 + 3, l3 + 7};
    } else {
      variant = {l3 + 1, l3 + 8, l3 + 10, l3 + 11};  // TOS, TTL, checksum
    }
    variant.push_back(udp + 6);
    variant.push_back(udp + 7);
    variant.push_back(size_t(v.bth_off) + 4);
    // Every variant byte at once, to several values.
    for (uint8_t val : {0x00, 0xFF, 0x5A, 0xC3}) {
      test::Frame g = f;
      for (size_t i : variant) g[i] = val;
      if (v.ipv6) g[l3] = uint8_t((g[l3] & 0xF0) | (val & 0x0F));
      if (!v.ipv6) {
        // A sender that rewrites TOS or TTL writes the header checksum again
        // (ipv4_checksum sums the field as stored: zero it first).
        g[l3 + 10] = g[l3 + 11] = 0;
        const uint16_t sum = ipv4_checksum(*reinterpret_cast<const Ipv4Hdr*>(g.data() + l3));
        g[l3 + 10] = uint8_t(sum >> 8);
        g[l3 + 11] = uint8_t(sum);
      }
      const test::Frame mutated = g;
      EXPECT_EQ(parse_frame(g.data(), g.size(), &v), ParseError::kOk) << int(val);
      EXPECT_EQ(g, mutated) << "variant fields not restored";
    }
  }
}

TEST(WireIcrcFlip, MatchesIndependentComputation) {
  for (const Sample& s : samples()) {
    SCOPED_TRACE(s.what);
    test::Frame f = s.frame;
    PacketView v;
    ASSERT_EQ(parse_frame(f.data(), f.size(), &v), ParseError::kOk);
    const size_t len = v.icrc_off - v.l3_off;
    EXPECT_EQ(test::reference_icrc(f.data() + v.l3_off, len, v.ipv6),
              test::load_icrc(f.data() + v.icrc_off));
    EXPECT_EQ(icrc_compute(f.data() + v.l3_off, len, v.ipv6),
              test::load_icrc(f.data() + v.icrc_off));
  }
}

// Copies frame[0..n) into a heap block of exactly n bytes and parses it.
ParseError parse_exact(const test::Frame& f, size_t n, PacketView* v) {
  std::unique_ptr<uint8_t[]> buf(new uint8_t[n]);
  std::copy(f.begin(), f.begin() + ptrdiff_t(n), buf.get());
  return parse_frame(buf.get(), n, v);
}

TEST(WireIcrcTruncation, EveryLengthIsRejectedWithItsReason) {
  for (const Sample& s : samples()) {
    SCOPED_TRACE(s.what);
    test::Frame f = s.frame;
    PacketView v;
    ASSERT_EQ(parse_exact(f, f.size(), &v), ParseError::kOk);
    const size_t l3 = v.l3_off;
    const size_t ip_end = v.icrc_off + 4u;  // bytes after this are Ethernet padding
    const size_t ip_min = v.ipv6 ? 40 : 20;
    for (size_t n = 0; n < ip_end; ++n) {
      const ParseError r = parse_exact(f, n, &v);
      const ParseError want = n < l3            ? ParseError::kTooShortEth
                              : n < l3 + ip_min ? ParseError::kTooShortIp
                                                : ParseError::kBadIpLength;
      ASSERT_EQ(r, want) << "length " << n << ": " << parse_error_name(r);
    }
    // Cutting Ethernet padding only is fine.
    for (size_t n = ip_end; n <= f.size(); ++n) EXPECT_EQ(parse_exact(f, n, &v), ParseError::kOk);
  }
}

// Truncations with the IP and UDP lengths rewritten to match, so the checks
// deeper in the packet (BTH, extension headers, pad, ICRC) see them too.
TEST(WireIcrcTruncation, ConsistentLengthsReachDeeperChecks) {
  for (const Sample& s : samples()) {
    SCOPED_TRACE(s.what);
    PacketView v;
    test::Frame f = s.frame;
    ASSERT_EQ(parse_frame(f.data(), f.size(), &v), ParseError::kOk);
    const size_t l3 = v.l3_off, l4 = v.bth_off - sizeof(UdpHdr), bth = v.bth_off;
    const size_t hdrs = sizeof(Bth) + v.op->ext_len;
    for (size_t n = l4; n < v.icrc_off + 4u; ++n) {
      test::Frame g(f.begin(), f.begin() + ptrdiff_t(n));
      const size_t ip_len = v.ipv6 ? n - l3 - 40 : n - l3;
      g[l3 + (v.ipv6 ? 4 : 2)] = uint8_t(ip_len >> 8);
      g[l3 + (v.ipv6 ? 5 : 3)] = uint8_t(ip_len);
      if (n >= l4 + 6) {
        g[l4 + 4] = uint8_t((n - l4) >> 8);
        g[l4 + 5] = uint8_t(n - l4);
      }
      const ParseError r = parse_exact(g, g.size(), &v);
      const std::string where = "length " + std::to_string(n) + ": " + parse_error_name(r);
      if (n < l4 + sizeof(UdpHdr)) {
        EXPECT_EQ(r, ParseError::kTooShortUdp) << where;
      } else if (n < bth + sizeof(Bth) + 4) {
        EXPECT_EQ(r, ParseError::kTooShortBth) << where;
      } else if (n < bth + hdrs + 4) {
        EXPECT_EQ(r, ParseError::kHeaderLength) << where;
      } else {
        EXPECT_TRUE(r == ParseError::kBadIcrc || r == ParseError::kPadBeyondPayload ||
                    r == ParseError::kPayloadNotAllowed)
            << where;
      }
    }
  }
}

}  // namespace
}  // namespace droce::wire
