// Helpers for the nic/wire tests: reading the rxe captures with libpcap
// and building a typical frame with the builder.
#pragma once

#include <isa-l/crc.h>
#include <pcap/pcap.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "nic/wire/builder.h"
#include "nic/wire/icrc.h"
#include "tests/common/test_data.h"

namespace droce::wire::test {

using Frame = std::vector<uint8_t>;

// The rxe captures of the checkout (tests/data/rxe-captures, or
// $DROCE_TEST_DATA/rxe-captures); they are part of the repository, so a test
// that reads them fails (never skips) when they are not there.
inline std::filesystem::path captures_dir() { return ::droce::test::rxe_captures_dir(); }

// Every frame of a pcap file (Ethernet link type). Sets *error on failure.
inline std::vector<Frame> read_pcap(const std::filesystem::path& file, std::string* error) {
  std::vector<Frame> frames;
  char errbuf[PCAP_ERRBUF_SIZE] = {};
  pcap_t* p = pcap_open_offline(file.c_str(), errbuf);
  if (p == nullptr) {
    *error = errbuf;
    return frames;
  }
  if (pcap_datalink(p) != DLT_EN10MB) {
    *error = "link type is not Ethernet";
    pcap_close(p);
    return frames;
  }
  pcap_pkthdr* hdr = nullptr;
  const u_char* data = nullptr;
  int rc;
  while ((rc = pcap_next_ex(p, &hdr, &data)) == 1) frames.emplace_back(data, data + hdr->caplen);
  if (rc == PCAP_ERROR) *error = pcap_geterr(p);
  pcap_close(p);
  return frames;
}

// The sorted *.pcap files of the captures folder.
inline std::vector<std::filesystem::path> capture_files(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() == ".pcap" || e.path().extension() == ".pcapng")
      files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

// A spec with every field set to a distinctive value, for `opcode`.
inline PacketSpec sample_spec(uint8_t opcode, uint32_t payload_len, bool vlan) {
  PacketSpec s;
  s.src_mac = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
  s.dst_mac = {0x02, 0x66, 0x77, 0x88, 0x99, 0xAA};
  s.vlan = vlan;
  s.vlan_tci = 0x6123;
  s.src_ip = 0x0A010203;
  s.dst_ip = 0x0A040506;
  s.tos = 0x02;
  s.ttl = 63;
  s.ip_id = 0xBEEF;
  s.udp_src_port = 0xC123;
  s.opcode = opcode;
  s.se = true;
  s.migreq = true;
  s.ackreq = true;
  s.becn_fecn = 0x40;
  s.pkey = 0x8001;
  s.dest_qp = 0xABCDEF;
  s.psn = 0xFEDCBA;
  s.reth_va = 0x0123456789ABCDEFull;
  s.reth_rkey = 0x11223344;
  s.reth_len = 0x00010000;
  s.aeth_syndrome = 0x1F;
  s.aeth_msn = 0x00C0FFEE;
  s.atomic_va = 0x00007F0012345678ull;
  s.atomic_rkey = 0x55667788;
  s.atomic_swap_add = 0x1111222233334444ull;
  s.atomic_compare = 0x5555666677778888ull;
  s.atomic_ack_orig = 0x99990000AAAABBBBull;
  s.imm_raw = 0xDDCCBBAA;
  s.ieth_rkey = 0x0BADF00D;
  s.deth_qkey = 0x11111111;
  s.deth_src_qp = 0x000123;
  s.feth_placement = 3;    // global | persistent
  s.feth_selectivity = 1;  // whole MR
  s.payload_len = payload_len;
  return s;
}

// Builds the frame for `s` with payload bytes i * 7 + 1.
inline Frame build(const PacketSpec& s) {
  Frame payload(s.payload_len);
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = uint8_t(i * 7 + 1);
  Frame f(frame_len(s));
  const size_t n = build_frame(f.data(), f.size(), s, payload.data());
  f.resize(n);
  return f;
}

}  // namespace droce::wire::test

namespace droce::wire::test {

// The same packet as the IPv4 frame `f` (no VLAN), carried over IPv6 with
// ::ffff:a.b.c.d addresses, a traffic class and a flow label; ICRC rewritten.
inline Frame to_ipv6(const Frame& f) {
  constexpr size_t kL3 = 14, kV4 = 20, kV6 = 40;
  const size_t ip_total = size_t(f[kL3 + 2] << 8 | f[kL3 + 3]);
  const size_t l4_len = ip_total - kV4;
  Frame out(kL3 + kV6 + l4_len);
  std::copy(f.begin(), f.begin() + 12, out.begin());
  out[12] = 0x86;
  out[13] = 0xDD;
  uint8_t* ip = out.data() + kL3;
  ip[0] = 0x6A;  // version 6, traffic class 0xA5, flow label 0x12345
  ip[1] = 0x51;
  ip[2] = 0x23;
  ip[3] = 0x45;
  ip[4] = uint8_t(l4_len >> 8);
  ip[5] = uint8_t(l4_len);
  ip[6] = 17;
  ip[7] = 64;
  for (int a = 0; a < 2; ++a) {
    uint8_t* addr = ip + 8 + 16 * a;
    addr[10] = addr[11] = 0xFF;
    std::copy(f.begin() + kL3 + 12 + 4 * a, f.begin() + kL3 + 16 + 4 * a, addr + 12);
  }
  std::copy(f.begin() + kL3 + kV4, f.begin() + kL3 + ip_total, out.begin() + kL3 + kV6);
  icrc_write(out.data() + kL3, out.size() - kL3 - 4, /*ipv6=*/true);
  return out;
}

// ICRC computed without icrc.cc: a masked copy, three separate ISA-L calls
// (8 x 0xFF, then the IP header, then the rest), as annex A17.3.3 describes.
inline uint32_t reference_icrc(const uint8_t* l3, size_t len, bool ipv6) {
  Frame m(l3, l3 + len);
  const size_t ip_len = ipv6 ? 40 : 20;
  if (ipv6) {
    m[0] |= 0x0F;
    m[1] = m[2] = m[3] = 0xFF;
    m[7] = 0xFF;
  } else {
    m[1] = 0xFF;
    m[8] = 0xFF;
    m[10] = m[11] = 0xFF;
  }
  m[ip_len + 6] = m[ip_len + 7] = 0xFF;  // UDP checksum
  m[ip_len + 8 + 4] = 0xFF;              // BTH byte 4
  const uint8_t ones[8] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
  uint32_t crc = crc32_gzip_refl(0, ones, sizeof(ones));
  crc = crc32_gzip_refl(crc, m.data(), ip_len);
  return crc32_gzip_refl(crc, m.data() + ip_len, len - ip_len);
}

// The 4 ICRC bytes at p as a number (least-significant byte first).
inline uint32_t load_icrc(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

}  // namespace droce::wire::test
