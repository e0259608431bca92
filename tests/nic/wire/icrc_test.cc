// ICRC (IBTA annex A17.3.3): the seed constant and the golden vectors of
// shared/reference/roce-wire.md, checked with icrc_verify and through parse_frame.
#include "nic/wire/icrc.h"

#include <gtest/gtest.h>
#include <isa-l/crc.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "nic/wire/packet.h"
#include "tests/nic/wire/test_util.h"

namespace droce::wire {
namespace {

std::vector<uint8_t> from_hex(const std::string& hex) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(uint8_t(std::stoul(hex.substr(i, 2), nullptr, 16)));
  return out;
}

// Golden vectors: L3 onward, the last 4 bytes are the ICRC as on the wire.
struct Golden {
  const char* what;
  const char* hex;
  uint8_t opcode;
};
const Golden kGolden[] = {
    {"RC ACK, non-rxe producer (oferby/proxy frame 16)",
     "450200300000400040112d60c0a84606c0a84604004812b7001c00001140ffff000000450000000006000001"
     "259cc216",
     op::kAck},
    {"RC ACK, rxe (pingpong_rc frame 13)",
     "4500003069c5400040119c7b0a01103d0a01103ec42012b7001c00001100ffff000000210059dfd71f000001"
     "e61d8892",
     op::kAck},
    {"RC FETCH_ADD, rxe (rdma_atomic_bw frame 20)",
     "45000048bc2b4000401149fd0a01103e0a01103dc66812b7003400001400ffff0000002880a3f2c700006320d6"
     "be5000000019860000000000000001000000000000000026a7e208",
     op::kFetchAdd},
};

TEST(WireIcrcSeed, EqualsIsalCrcOfEightOnesBytes) {
  const uint8_t ones[8] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
  EXPECT_EQ(kIcrcSeed, crc32_gzip_refl(0, ones, sizeof(ones)));
}

TEST(WireIcrcGolden, VerifyInPlaceAndRecompute) {
  for (const Golden& g : kGolden) {
    SCOPED_TRACE(g.what);
    std::vector<uint8_t> l3 = from_hex(g.hex);
    ASSERT_GE(l3.size(), 48u);
    const size_t len = l3.size() - 4;
    const std::vector<uint8_t> before = l3;
    EXPECT_TRUE(icrc_verify(l3.data(), len, false));
    EXPECT_EQ(l3, before) << "variant fields were not restored";
    // Rewriting the ICRC over a zeroed one reproduces the wire bytes.
    std::fill(l3.end() - 4, l3.end(), 0);
    icrc_write(l3.data(), len, false);
    EXPECT_EQ(l3, before);
  }
}

TEST(WireIcrcGolden, WireValueIsLeastSignificantByteFirst) {
  std::vector<uint8_t> l3 = from_hex(kGolden[0].hex);
  EXPECT_EQ(icrc_compute(l3.data(), l3.size() - 4, false), 0x16C29C25u);
}

TEST(WireIcrcGolden, ParseWithEthernetHeaderAndPadding) {
  for (const Golden& g : kGolden) {
    SCOPED_TRACE(g.what);
    std::vector<uint8_t> frame = {0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00};
    const std::vector<uint8_t> l3 = from_hex(g.hex);
    frame.insert(frame.end(), l3.begin(), l3.end());
    while (frame.size() < 60) frame.push_back(0);  // Ethernet minimum-size padding
    PacketView v;
    ASSERT_EQ(parse_frame(frame.data(), frame.size(), &v), ParseError::kOk);
    EXPECT_EQ(v.bth().opcode, g.opcode);
    EXPECT_EQ(v.icrc_off + 4, 14 + l3.size());
    EXPECT_EQ(v.payload_len, 0u);
    // A changed ICRC byte is caught.
    frame[v.icrc_off] ^= 1;
    EXPECT_EQ(parse_frame(frame.data(), frame.size(), &v), ParseError::kBadIcrc);
  }
}

TEST(WireIcrcGolden, FetchAddFieldsReadBack) {
  std::vector<uint8_t> frame(14, 0);
  frame[12] = 0x08;
  const std::vector<uint8_t> l3 = from_hex(kGolden[2].hex);
  frame.insert(frame.end(), l3.begin(), l3.end());
  PacketView v;
  ASSERT_EQ(parse_frame(frame.data(), frame.size(), &v), ParseError::kOk);
  EXPECT_EQ(v.atomic_eth().va.get(), 0x00006320d6be5000ull);
  EXPECT_EQ(v.atomic_eth().rkey.get(), 0x1986u);
  EXPECT_EQ(v.atomic_eth().swap_add.get(), 1u);
  EXPECT_EQ(v.atomic_eth().compare.get(), 0u);
}

// Every masking path against the independent computation, for IPv4 (with and
// without options) and IPv6, every length around the 64-byte and ISA-L size
// boundaries, at several alignments, each in an exactly-sized heap block.
TEST(WireIcrcPaths, AllPathsAgreeWithReference) {
  std::vector<size_t> lens;
  for (size_t n = 40; n <= 300; ++n) lens.push_back(n);
  for (size_t n : {511, 512, 513, 1024, 1500, 4096, 9000, 65531}) lens.push_back(n);
  size_t checked = 0;
  for (IcrcPath path : {IcrcPath::kAuto, IcrcPath::kBytes, IcrcPath::kXmm, IcrcPath::kZmm}) {
    if (!icrc_path_supported(path)) {
      std::printf("ICRC path %d not supported on this CPU: covered by kAuto's choice\n", int(path));
    }
    for (int layout = 0; layout < 3; ++layout) {  // IPv4, IPv4 with 4 bytes of options, IPv6
      const bool ipv6 = layout == 2;
      const size_t min_len = ipv6 ? 60 : layout == 1 ? 44 : 40;
      for (size_t n : lens) {
        if (n < min_len) continue;
        for (size_t align : {0, 14, 18, 3}) {
          std::unique_ptr<uint8_t[]> block(new uint8_t[align + n]);
          uint8_t* l3 = block.get() + align;
          for (size_t i = 0; i < n; ++i) l3[i] = uint8_t(i * 131 + n + align);
          l3[0] = ipv6 ? 0x6A : layout == 1 ? 0x46 : 0x45;
          const std::vector<uint8_t> before(l3, l3 + n);
          // reference_icrc assumes a 20-byte IPv4 header: for options, mask by hand.
          uint32_t want;
          if (layout == 1) {
            std::vector<uint8_t> m = before;
            m[1] = m[8] = m[10] = m[11] = 0xFF;
            m[24 + 6] = m[24 + 7] = 0xFF;
            m[24 + 8 + 4] = 0xFF;
            want = crc32_gzip_refl(kIcrcSeed, m.data(), n);
          } else {
            want = test::reference_icrc(l3, n, ipv6);
          }
          ASSERT_EQ(icrc_compute_with(path, l3, n, ipv6), want)
              << "path " << int(path) << " layout " << layout << " len " << n << " align " << align;
          ASSERT_TRUE(std::equal(before.begin(), before.end(), l3))
              << "frame not restored, len " << n;
          ++checked;
        }
      }
    }
  }
  EXPECT_GT(checked, 10000u);
}

// A frame whose payload is in other buffers (zero-copy transmit, chained
// receive): the running CRC over the header piece and then the rest equals
// the ICRC of the same bytes laid out contiguously, for every path, both IP
// versions and every split of the rest into one, two or three pieces.
TEST(WireIcrcChain, EqualsContiguousReference) {
  size_t checked = 0;
  for (IcrcPath path : {IcrcPath::kBytes, IcrcPath::kXmm, IcrcPath::kZmm}) {
    if (!icrc_path_supported(path)) continue;
    for (bool ipv6 : {false, true}) {
      const size_t min_head = (ipv6 ? 40 : 20) + 8 + 12;
      for (size_t n : {size_t(48), size_t(72), size_t(200), size_t(1100), size_t(4200)}) {
        if (n < min_head + 4) continue;
        std::vector<uint8_t> frame(n);
        for (size_t i = 0; i < n; ++i) frame[i] = uint8_t(i * 77 + n);
        frame[0] = ipv6 ? 0x6A : 0x45;
        const uint32_t want = test::reference_icrc(frame.data(), n, ipv6);
        for (size_t head = min_head; head <= std::min<size_t>(n, min_head + 40); head += 4) {
          const size_t rest = n - head;
          for (size_t cut1 : {size_t(0), rest / 3, rest}) {
            for (size_t cut2 : {cut1, (cut1 + rest) / 2, rest}) {
              // The pieces live in buffers of their own, as attached segments do.
              std::vector<uint8_t> hbuf(frame.begin(), frame.begin() + long(head));
              std::vector<uint8_t> b1(frame.begin() + long(head), frame.begin() + long(head + cut1));
              std::vector<uint8_t> b2(frame.begin() + long(head + cut1),
                                      frame.begin() + long(head + cut2));
              std::vector<uint8_t> b3(frame.begin() + long(head + cut2), frame.end());
              const IcrcPiece pieces[3] = {{b1.data(), b1.size()}, {b2.data(), b2.size()},
                                           {b3.data(), b3.size()}};
              const std::vector<uint8_t> before = hbuf;
              // kAuto's choice for the head: icrc_compute_chain has no path argument,
              // so the explicit paths are checked against it for the head alone.
              ASSERT_EQ(icrc_compute_chain(hbuf.data(), head, pieces, 3, ipv6), want)
                  << "ipv6 " << ipv6 << " len " << n << " head " << head << " cuts " << cut1
                  << "," << cut2;
              ASSERT_EQ(hbuf, before) << "header piece not restored";
              ++checked;
            }
          }
          std::vector<uint8_t> whole = frame;
          ASSERT_EQ(icrc_compute_with(path, whole.data(), n, ipv6), want);
        }
      }
    }
  }
  EXPECT_GT(checked, 1000u);
}

// The golden rxe frames split after their headers verify as chained frames.
TEST(WireIcrcChain, GoldenFramesSplitAfterTheBth) {
  for (const Golden& g : kGolden) {
    SCOPED_TRACE(g.what);
    std::vector<uint8_t> l3 = from_hex(g.hex);
    const size_t len = l3.size() - 4;
    const uint32_t wire = uint32_t(l3[len]) | uint32_t(l3[len + 1]) << 8 |
                          uint32_t(l3[len + 2]) << 16 | uint32_t(l3[len + 3]) << 24;
    const size_t head = 20 + 8 + 12;
    std::vector<uint8_t> tail(l3.begin() + long(head), l3.begin() + long(len));
    const IcrcPiece piece{tail.data(), tail.size()};
    EXPECT_EQ(icrc_compute_chain(l3.data(), head, &piece, 1, false), wire);
  }
}

}  // namespace
}  // namespace droce::wire
