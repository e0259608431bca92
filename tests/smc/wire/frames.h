// Frames for the tshark test: a pcap file written by hand (libpcap format
// 2.4, Ethernet), TCP segments with correct checksums for the CLC streams, and
// RoCEv2 RC SEND ONLY frames from droce's nic/wire builder (real ICRC) for LLC
// and CDC payloads.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "nic/wire/builder.h"
#include "tests/smc/wire/golden.h"

namespace droce::smc::wire::test {

inline void put16(Bytes& b, size_t off, uint16_t v) { put_be(b, off, v, 2); }
inline void put32(Bytes& b, size_t off, uint32_t v) { put_be(b, off, v, 4); }

class Pcap {
 public:
  void frame(const Bytes& f) { frames_.push_back(f); }
  size_t count() const { return frames_.size(); }
  bool write(const std::string& path) const {
    FILE* out = std::fopen(path.c_str(), "wb");
    if (out == nullptr) return false;
    const uint32_t global[6] = {0xA1B2C3D4, 0x00040002, 0, 0, 65535, 1};  // LINKTYPE_ETHERNET
    bool ok = std::fwrite(global, sizeof(global), 1, out) == 1;
    uint32_t t = 1700000000;
    for (const Bytes& f : frames_) {
      const uint32_t rec[4] = {t++, 0, uint32_t(f.size()), uint32_t(f.size())};
      ok = ok && std::fwrite(rec, sizeof(rec), 1, out) == 1 &&
           std::fwrite(f.data(), 1, f.size(), out) == f.size();
    }
    return std::fclose(out) == 0 && ok;
  }

 private:
  std::vector<Bytes> frames_;
};

inline uint16_t csum(const Bytes& b, size_t off, size_t len, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < len; i += 2) sum += uint32_t(b[off + i] << 8 | b[off + i + 1]);
  if (len & 1) sum += uint32_t(b[off + len - 1] << 8);
  while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
  return uint16_t(~sum);
}

struct Host {
  uint8_t mac_last;
  uint32_t ip;
  uint16_t port;
};

// Ethernet / IPv4 / TCP with correct checksums.
inline Bytes tcp_frame(const Host& s, const Host& d, uint32_t seq, uint32_t ack, uint8_t flags,
                       const Bytes& payload) {
  Bytes f(14 + 20 + 20 + payload.size());
  put(f, 0, {0x02, 0, 0, 0, 0, d.mac_last, 0x02, 0, 0, 0, 0, s.mac_last, 0x08, 0x00});
  put(f, 14, {0x45, 0});
  put16(f, 16, uint16_t(20 + 20 + payload.size()));
  put(f, 20, {0x40, 0x00, 64, 6});  // DF, TTL 64, TCP
  put32(f, 26, s.ip);
  put32(f, 30, d.ip);
  put16(f, 24, csum(f, 14, 20));
  put16(f, 34, s.port);
  put16(f, 36, d.port);
  put32(f, 38, seq);
  put32(f, 42, ack);
  f[46] = 0x50;  // data offset 5
  f[47] = flags;
  put16(f, 48, 65535);
  for (size_t i = 0; i < payload.size(); ++i) f[54 + i] = payload[i];
  const uint32_t pseudo = (s.ip >> 16) + (s.ip & 0xFFFF) + (d.ip >> 16) + (d.ip & 0xFFFF) + 6 +
                          uint32_t(20 + payload.size());
  put16(f, 50, csum(f, 34, 20 + payload.size(), pseudo));
  return f;
}

// One TCP connection: handshake, then one segment per message.
class TcpConn {
 public:
  TcpConn(Pcap* pcap, uint16_t cport)
      : pcap_(pcap), c_{1, 0x0A000001, cport}, s_{2, 0x0A000002, 34567} {
    constexpr uint8_t kSyn = 0x02, kAck = 0x10;
    pcap_->frame(tcp_frame(c_, s_, cseq_++, 0, kSyn, {}));
    pcap_->frame(tcp_frame(s_, c_, sseq_++, cseq_, kSyn | kAck, {}));
    pcap_->frame(tcp_frame(c_, s_, cseq_, sseq_, kAck, {}));
  }
  // Returns the frame number (1-based) of the segment.
  size_t send(bool from_client, const Bytes& msg) {
    constexpr uint8_t kPshAck = 0x18;
    if (from_client) {
      pcap_->frame(tcp_frame(c_, s_, cseq_, sseq_, kPshAck, msg));
      cseq_ += uint32_t(msg.size());
    } else {
      pcap_->frame(tcp_frame(s_, c_, sseq_, cseq_, kPshAck, msg));
      sseq_ += uint32_t(msg.size());
    }
    return pcap_->count();
  }

 private:
  Pcap* pcap_;
  Host c_, s_;
  uint32_t cseq_ = 1000, sseq_ = 5000;
};

// A RoCEv2 RC SEND_ONLY carrying `payload`, solicited as SMC-R sends are; the ICRC is real.
inline size_t roce_send(Pcap* pcap, const Bytes& payload, uint32_t psn) {
  droce::wire::PacketSpec s;
  s.src_mac = {0x02, 0, 0, 0, 0, 1};
  s.dst_mac = {0x02, 0, 0, 0, 0, 2};
  s.src_ip = 0x0A000001;
  s.dst_ip = 0x0A000002;
  s.opcode = droce::wire::op::kRc | droce::wire::op::kSendOnly;
  s.se = true;
  s.dest_qp = 0x11;
  s.psn = psn;
  s.payload_len = uint32_t(payload.size());
  Bytes f(droce::wire::frame_len(s));
  EXPECT_EQ(droce::wire::build_frame(f.data(), f.size(), s, payload.data()), f.size());
  pcap->frame(f);
  return pcap->count();
}

}  // namespace droce::smc::wire::test
