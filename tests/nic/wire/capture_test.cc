// Real rdma_rxe captures (tests/data/rxe-captures): every frame parses,
// every RoCEv2 frame verifies its ICRC, and per-opcode counts equal tshark's.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "nic/wire/packet.h"
#include "tests/nic/wire/test_util.h"

namespace droce::wire {
namespace {

struct Expected {
  const char* file;
  size_t frames;                      // all frames in the file
  std::map<uint8_t, size_t> opcodes;  // BTH opcode -> frames with UDP dst 4791
};

// Obtained independently with TShark 4.0.17 (Debian 12), per file:
//   tshark -r F | wc -l
//   tshark -r F -Y udp.dstport==4791 -T fields -e infiniband.bth.opcode | sort | uniq -c
const Expected kExpected[] = {
    {"nccl_write_imm.pcap", 110, {{6, 2}, {7, 44}, {9, 2}, {10, 4}, {11, 2}, {17, 8}}},
    {"pingpong_rc.pcap", 31, {{4, 10}, {17, 10}}},
    {"pingpong_uc.pcap", 21, {{36, 10}}},
    {"pingpong_ud.pcap", 21, {{100, 10}}},
    {"rdma_atomic_bw.pcap", 48, {{18, 5}, {20, 5}}},
    {"rdma_cm.pcap", 96, {{4, 32}, {6, 5}, {7, 5}, {8, 5}, {17, 37}, {100, 12}}},
    {"rdma_read_bw.pcap", 60, {{12, 5}, {13, 5}, {14, 5}, {15, 5}}},
    {"rdma_read_lat.pcap", 38, {{12, 5}, {16, 5}}},
    {"rdma_send_bw.pcap", 50, {{0, 5}, {1, 5}, {2, 5}, {17, 5}}},
    {"rdma_write_bw.pcap", 60, {{6, 5}, {7, 5}, {8, 5}, {17, 5}}},
    {"rdma_write_lat.pcap", 45, {{10, 10}, {17, 10}}},
    {"rping.pcap", 65, {{4, 20}, {10, 5}, {12, 5}, {16, 5}, {17, 25}, {100, 5}}},
};

// The captures are part of the repository (tests/data/rxe-captures): a test
// that cannot find them fails.
#define REQUIRE_CAPTURES(dir)                     \
  const std::filesystem::path dir = test::captures_dir(); \
  ASSERT_TRUE(std::filesystem::is_directory(dir)) << dir << " is missing (tests/data/README.md)"

// True when the frame is UDP to port 4791, decided without the parser.
bool is_udp_4791(const test::Frame& f) {
  size_t l3 = 14;
  if (f.size() < 14) return false;
  uint16_t et = uint16_t(f[12] << 8 | f[13]);
  if (et == kEtherTypeVlan && f.size() >= 18) {
    et = uint16_t(f[16] << 8 | f[17]);
    l3 = 18;
  }
  size_t l4;
  if (et == kEtherTypeIpv4 && f.size() >= l3 + 20 && f[l3 + 9] == kIpProtoUdp) {
    l4 = l3 + (f[l3] & 0x0F) * 4;
  } else if (et == kEtherTypeIpv6 && f.size() >= l3 + 40 && f[l3 + 6] == kIpProtoUdp) {
    l4 = l3 + 40;
  } else {
    return false;
  }
  return f.size() >= l4 + 4 && uint16_t(f[l4 + 2] << 8 | f[l4 + 3]) == kRoceV2Port;
}

TEST(WireCaptures, OpcodeCountsMatchTshark) {
  REQUIRE_CAPTURES(dir);
  for (const Expected& e : kExpected) {
    SCOPED_TRACE(e.file);
    std::string err;
    auto frames = test::read_pcap(dir / e.file, &err);
    ASSERT_TRUE(err.empty()) << err;
    EXPECT_EQ(frames.size(), e.frames);
    std::map<uint8_t, size_t> counts;
    size_t icrc_ok = 0, roce = 0;
    for (size_t i = 0; i < frames.size(); ++i) {
      PacketView v;
      const ParseError r = parse_frame(frames[i].data(), frames[i].size(), &v);
      if (is_udp_4791(frames[i])) {
        ++roce;
        EXPECT_EQ(r, ParseError::kOk) << "frame " << i + 1 << ": " << parse_error_name(r);
        if (r == ParseError::kOk) {
          ++icrc_ok;
          ++counts[v.bth().opcode];
        }
      }
    }
    EXPECT_EQ(counts, e.opcodes);
    EXPECT_EQ(icrc_ok, roce);
    EXPECT_GT(roce, 0u);
  }
}

TEST(WireCaptures, EveryFrameOfEveryFileParsesCleanly) {
  REQUIRE_CAPTURES(dir);
  const auto files = test::capture_files(dir);
  ASSERT_FALSE(files.empty()) << "no .pcap files in " << dir;
  size_t total_roce = 0;
  for (const auto& file : files) {
    SCOPED_TRACE(file.string());
    std::string err;
    auto frames = test::read_pcap(file, &err);
    ASSERT_TRUE(err.empty()) << err;
    for (size_t i = 0; i < frames.size(); ++i) {
      test::Frame& f = frames[i];
      const test::Frame before = f;
      PacketView v;
      const ParseError r = parse_frame(f.data(), f.size(), &v);
      EXPECT_EQ(f, before) << "frame " << i + 1 << " not restored after ICRC check";
      if (is_udp_4791(f)) {
        // RoCEv2: parses, ICRC good, and the view is consistent with the frame.
        ASSERT_EQ(r, ParseError::kOk) << "frame " << i + 1 << ": " << parse_error_name(r);
        ++total_roce;
        EXPECT_LE(v.icrc_off + 4u, f.size());
        EXPECT_EQ(v.payload_off + v.payload_len + v.pad + 4u, v.icrc_off + 4u);
        EXPECT_EQ(v.icrc_off + 4u, v.l3_off + (v.ipv6 ? 40u + v.ipv6_hdr().payload_length.get()
                                                      : v.ipv4().total_length.get()));
        EXPECT_EQ(v.bth().tver(), 0);
        EXPECT_EQ(v.op, &opcode_info(v.bth().opcode));
        if (!v.op->has(kOpPayload)) {
          EXPECT_EQ(v.payload_len, 0u);
        }
      } else {
        // Other traffic (ARP, TCP, other UDP) is "not RoCEv2", never "malformed".
        EXPECT_TRUE(is_not_roce(r)) << "frame " << i + 1 << ": " << parse_error_name(r);
      }
    }
  }
  EXPECT_GT(total_roce, 0u);
}

TEST(WireCaptures, RxeFieldsLookLikeRxe) {
  REQUIRE_CAPTURES(dir);
  std::string err;
  auto frames = test::read_pcap(dir / "pingpong_rc.pcap", &err);
  ASSERT_TRUE(err.empty()) << err;
  size_t seen = 0;
  for (auto& f : frames) {
    PacketView v;
    if (parse_frame(f.data(), f.size(), &v) != ParseError::kOk) continue;
    ++seen;
    EXPECT_EQ(v.ipv4().frag.get() & kIpv4FlagDf, kIpv4FlagDf);
    EXPECT_EQ(v.ipv4().ttl, 64);
    EXPECT_EQ(v.udp().checksum.get(), 0);
    EXPECT_GE(v.udp().src_port.get(), 0xC000);
    EXPECT_EQ(v.bth().pkey.get(), kDefaultPkey);
    EXPECT_FALSE(v.bth().migreq());
    if (v.bth().opcode == op::kAck) {
      EXPECT_EQ(v.aeth().value(), kAethCreditInvalid);
    }
    // ICRC covers: IP through pad.
    EXPECT_EQ(ipv4_checksum(v.ipv4()), 0) << "IPv4 header checksum does not verify";
  }
  EXPECT_EQ(seen, 20u);
}

}  // namespace
}  // namespace droce::wire
