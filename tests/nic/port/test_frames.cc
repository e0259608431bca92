// Test helper: RoCEv2 and junk frames in mbufs.
#include "tests/nic/port/test_frames.h"

#include <cstring>

#include <rte_mbuf.h>

namespace droce::nic::test {

wire::PacketSpec send_spec(const Port& from, const Port& to, uint32_t psn, uint32_t payload_len) {
  wire::PacketSpec s;
  s.src_mac = from.mac();
  s.dst_mac = to.mac();
  s.src_ip = from.ipv4();
  s.dst_ip = to.ipv4();
  s.udp_src_port = wire::roce_udp_src_port(0x11, 0x22);
  s.opcode = wire::op::kRc | wire::op::kSendOnly;
  s.ackreq = true;
  s.dest_qp = 0x22;
  s.psn = psn & kMask24;
  s.ip_id = uint16_t(psn);
  s.payload_len = payload_len;
  return s;
}

std::vector<uint8_t> frame_bytes(const wire::PacketSpec& spec, const void* payload) {
  std::vector<uint8_t> out(wire::frame_len(spec));
  out.resize(wire::build_frame(out.data(), out.size(), spec, payload));
  return out;
}

rte_mbuf* frame_mbuf(Port& from, const wire::PacketSpec& spec, const void* payload) {
  rte_mbuf* m = from.alloc_mbuf();
  if (m == nullptr) return nullptr;
  const size_t len = wire::frame_len(spec);
  auto* p = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, uint16_t(len)));
  if (p == nullptr || wire::build_frame(p, len, spec, payload) != len) {
    rte_pktmbuf_free(m);
    return nullptr;
  }
  return m;
}

rte_mbuf* raw_mbuf(Port& from, const std::vector<uint8_t>& bytes) {
  rte_mbuf* m = from.alloc_mbuf();
  if (m == nullptr) return nullptr;
  auto* p = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, uint16_t(bytes.size())));
  if (p == nullptr) {
    rte_pktmbuf_free(m);
    return nullptr;
  }
  std::memcpy(p, bytes.data(), bytes.size());
  return m;
}

std::vector<uint8_t> mbuf_bytes(const rte_mbuf* m) {
  std::vector<uint8_t> out;
  for (const rte_mbuf* s = m; s != nullptr; s = s->next) {  // every segment of a chain
    const auto* p = rte_pktmbuf_mtod(s, const uint8_t*);
    out.insert(out.end(), p, p + s->data_len);
  }
  return out;
}

size_t receive_frames(Port& p, size_t want, std::vector<std::vector<uint8_t>>* out,
                      int max_polls) {
  size_t got = 0;
  rte_mbuf* mbufs[32];
  wire::PacketView views[32];
  for (int i = 0; i < max_polls && got < want; ++i) {
    const uint16_t n = p.receive(mbufs, views, 32, monotonic_now());
    for (uint16_t k = 0; k < n; ++k) {
      if (out != nullptr) out->push_back(mbuf_bytes(mbufs[k]));
      rte_pktmbuf_free(mbufs[k]);
    }
    got += n;
  }
  return got;
}

}  // namespace droce::nic::test
