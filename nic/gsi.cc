// QP1 receive checks and transmit (IBTA vol. 1 13.5.1; rxe_recv.c for what
// a GSI packet must carry: UD transport, Q_Key GSI_QKEY, a valid P_Key).
#include "nic/gsi.h"

#include <rte_mbuf.h>

#include <cstring>

#include "nic/base/psn.h"
#include "nic/device.h"
#include "nic/wire/builder.h"
#include "nic/wire/deth.h"
#include "nic/wire/udp.h"

namespace droce::nic {

void Gsi::receive(const wire::PacketView& v) {
  if (v.bth().opcode != (wire::op::kUd | wire::op::kSendOnly)) {
    ++counters_.rx_bad_opcode;
    return;
  }
  if ((v.bth().pkey.get() & 0x7FFF) != 0x7FFF) {
    ++counters_.rx_bad_pkey;
    return;
  }
  if (v.deth().qkey.get() != wire::kGsiQkey) {
    ++counters_.rx_bad_qkey;
    return;
  }
  if (v.payload_len != kGsiMadLen || v.ipv6) {
    ++counters_.rx_bad_len;
    return;
  }
  if (fn_ == nullptr) {
    ++counters_.rx_no_agent;
    return;
  }
  ++counters_.rx_mads;
  fn_(arg_, v.ipv4().src.get(), v.payload(), v.payload_len);
}

bool Gsi::queue(uint32_t dst_ip, const uint8_t* mad, size_t len, uint8_t tos) {
  if (len != kGsiMadLen || tx_count_ == kTxSlots) {
    ++counters_.tx_queue_full;
    return false;
  }
  Slot& s = tx_[(tx_head_ + tx_count_) % kTxSlots];
  s.dst_ip = dst_ip;
  s.tos = tos;
  std::memcpy(s.mad, mad, kGsiMadLen);
  ++tx_count_;
  return true;
}

void Gsi::transmit(Device& dev, Nanos now) {
  // In order; a destination still resolving holds the ones behind it, so
  // MADs to one peer never overtake each other.
  while (tx_count_ > 0) {
    Slot& s = tx_[tx_head_];
    wire::MacAddr mac;
    const ArpResult r = dev.port().resolve(s.dst_ip, &mac, now);
    if (r == ArpResult::kPending) return;
    if (r == ArpResult::kResolved) {
      rte_mbuf* m = dev.tx_alloc();
      if (m == nullptr) return;  // counted by tx_alloc; sent at a later poll
      wire::PacketSpec p;
      p.src_mac = dev.port().mac();
      p.dst_mac = mac;
      p.src_ip = dev.port().ipv4();
      p.dst_ip = s.dst_ip;
      p.tos = s.tos;
      p.ttl = 64;
      p.ip_id = dev.next_ip_id();
      p.udp_src_port = wire::roce_udp_src_port(kGsiQpn, kGsiQpn);
      p.opcode = wire::op::kUd | wire::op::kSendOnly;
      p.pkey = wire::kDefaultPkey;
      p.dest_qp = kGsiQpn;
      p.psn = psn_;
      psn_ = psn_add(psn_, 1);
      p.deth_qkey = wire::kGsiQkey;
      p.deth_src_qp = kGsiQpn;
      p.payload_len = kGsiMadLen;
      uint8_t* buf = rte_pktmbuf_mtod(m, uint8_t*);
      const size_t off = wire::write_headers(buf, rte_pktmbuf_tailroom(m), p);
      std::memcpy(buf + off, s.mad, kGsiMadLen);
      wire::zero_pad(buf, p);
      m->data_len = uint16_t(wire::frame_len(p));
      m->pkt_len = m->data_len;
      dev.tx_enqueue(m);
      ++counters_.tx_mads;
    } else {
      ++counters_.tx_no_neighbor;
    }
    tx_head_ = (tx_head_ + 1) % kTxSlots;
    --tx_count_;
  }
}

void Device::set_gsi_handler(Gsi::Handler fn, void* arg) {
  auto lock = lock_engine();
  gsi_.set_handler(fn, arg);
}

bool Device::gsi_send(uint32_t dst_ip, const uint8_t* mad, size_t len, uint8_t tos) {
  {
    auto lock = lock_engine();
    if (removed_ || !gsi_.queue(dst_ip, mad, len, tos)) return false;
  }
  ring_doorbell();
  return true;
}

GsiCounters Device::gsi_counters() {
  auto lock = lock_engine();
  return gsi_.counters();
}

}  // namespace droce::nic
