// Test fixture on top of EngineTest: drives both engines with a fake clock
// (so retransmit and RNR timers fire in microseconds of real time), injects
// crafted frames into a port, and collects completions and async events.
#pragma once

#include <rte_mbuf.h>

#include <functional>
#include <vector>

#include "nic/wire/builder.h"
#include "nic/wire/ipv4.h"
#include "nic/wire/udp.h"
#include "tests/nic/engine/engine_fixture.h"

namespace droce::nic::test {

inline constexpr uint32_t kAllAccess =
    kAccessLocalWrite | kAccessRemoteWrite | kAccessRemoteRead | kAccessRemoteAtomic;

inline void fill_pattern(std::vector<uint8_t>& v, uint32_t seed) {
  for (size_t i = 0; i < v.size(); ++i) v[i] = uint8_t((i * 131 + seed) ^ (i >> 9) ^ (seed >> 3));
}

class FakeClockTest : public EngineTest {
 protected:
  void SetUp() override {
    EngineTest::SetUp();
    now_ = monotonic_now();  // the ports' ARP state was stamped with real time
  }

  // One poll of each engine that is pumped, then the clock moves by dt.
  void step(Nanos dt) {
    if (pump_a_) {
      auto l = a_.dev->lock_engine();
      a_.dev->poll(now_);
    }
    if (pump_b_) {
      auto l = b_.dev->lock_engine();
      b_.dev->poll(now_);
    }
    now_ += dt;
  }

  // Steps until pred() holds or max_steps were taken.
  bool run_until(const std::function<bool()>& pred, Nanos dt = 10 * kNanosPerUs,
                 uint64_t max_steps = 2'000'000) {
    for (uint64_t i = 0; i < max_steps; ++i) {
      if (pred()) return true;
      step(dt);
    }
    return pred();
  }
  // Steps for a fixed stretch of fake time.
  void run_for(Nanos span, Nanos dt = 10 * kNanosPerUs) {
    const Nanos end = now_ + span;
    while (now_ < end) step(dt);
  }

  std::vector<Cqe> collect(CompletionQueue* cq, size_t n, Nanos dt = 10 * kNanosPerUs,
                           uint64_t max_steps = 2'000'000) {
    std::vector<Cqe> out;
    run_until(
        [&] {
          Cqe c[16];
          const int got = cq->poll(c, 16);
          for (int i = 0; i < got; ++i) out.push_back(c[i]);
          return out.size() >= n;
        },
        dt, max_steps);
    return out;
  }
  static std::vector<Cqe> drain(CompletionQueue* cq) {
    std::vector<Cqe> out;
    Cqe c[16];
    int got;
    while ((got = cq->poll(c, 16)) > 0) out.insert(out.end(), c, c + got);
    return out;
  }

  static std::vector<AsyncEvent> events(Side& s) {
    std::vector<AsyncEvent> out;
    AsyncEvent ev;
    while (s.dev->get_async_event(&ev)) out.push_back(ev);
    return out;
  }
  static bool has_event(const std::vector<AsyncEvent>& evs, AsyncEventType t, uint32_t qpn) {
    for (const AsyncEvent& e : evs) {
      if (e.type == t && e.qpn == qpn) return true;
    }
    return false;
  }

  // A PacketSpec addressed from one side's port to the other's.
  static wire::PacketSpec spec(Side& from, Side& to, uint8_t opcode, uint32_t dest_qp,
                               uint32_t psn) {
    wire::PacketSpec s;
    s.src_mac = from.dev->port().mac();
    s.dst_mac = to.dev->port().mac();
    s.src_ip = from.dev->port().ipv4();
    s.dst_ip = to.dev->port().ipv4();
    s.udp_src_port = 0xC123;
    s.opcode = opcode;
    s.dest_qp = dest_qp;
    s.psn = psn;
    return s;
  }
  // Sends a crafted frame out of from's port (it arrives at the other port).
  void inject(Side& from, const wire::PacketSpec& s, const void* payload = nullptr) {
    auto l = from.dev->lock_engine();
    rte_mbuf* m = from.dev->port().alloc_mbuf();
    ASSERT_NE(m, nullptr);
    const size_t len =
        wire::build_frame(rte_pktmbuf_mtod(m, uint8_t*), rte_pktmbuf_tailroom(m), s, payload);
    ASSERT_GT(len, 0u);
    m->data_len = uint16_t(len);
    m->pkt_len = uint32_t(len);
    ASSERT_EQ(from.dev->port().transmit(&m, 1), 1);
  }

  // Builds the frame of s (untagged IPv4), lets edit change its bytes and
  // length, then makes the IPv4 checksum and the ICRC right again and sends
  // it out of from's port: a frame only a hostile or broken sender makes.
  void inject_edited(Side& from, const wire::PacketSpec& s, const void* payload,
                     const std::function<void(uint8_t* frame, size_t* len)>& edit) {
    auto l = from.dev->lock_engine();
    rte_mbuf* m = from.dev->port().alloc_mbuf();
    ASSERT_NE(m, nullptr);
    uint8_t* f = rte_pktmbuf_mtod(m, uint8_t*);
    size_t len = wire::build_frame(f, rte_pktmbuf_tailroom(m), s, payload);
    ASSERT_GT(len, 0u);
    edit(f, &len);
    auto* ip = reinterpret_cast<wire::Ipv4Hdr*>(f + sizeof(wire::EthHdr));
    ip->checksum = Be16(uint16_t(0));
    ip->checksum = Be16(wire::ipv4_checksum(*ip));
    wire::write_frame_icrc(f, len);
    m->data_len = uint16_t(len);
    m->pkt_len = uint32_t(len);
    ASSERT_EQ(from.dev->port().transmit(&m, 1), 1);
  }
  // Shortens the IPv4 packet (and the UDP datagram) of an untagged frame by n
  // bytes from its end: the ICRC moves n bytes earlier.
  static void shorten(uint8_t* f, size_t* len, uint16_t n) {
    auto* ip = reinterpret_cast<wire::Ipv4Hdr*>(f + sizeof(wire::EthHdr));
    auto* udp = reinterpret_cast<wire::UdpHdr*>(f + sizeof(wire::EthHdr) + sizeof(wire::Ipv4Hdr));
    ip->total_length = Be16(uint16_t(ip->total_length.get() - n));
    udp->length = Be16(uint16_t(udp->length.get() - n));
    *len -= n;
  }

  // Posts helpers.
  int post(Qp* qp, WrOpcode op, uint64_t wr_id, const Buffer* local, uint32_t len,
           const Buffer* remote = nullptr, uint64_t remote_off = 0, uint8_t flags = kSendSignaled,
           uint32_t local_off = 0) {
    SendWqe w = wqe(op, wr_id, flags);
    Sge s{local ? local->addr() + local_off : 0, len, local ? local->key : 0};
    w.num_sge = local ? 1 : 0;
    if (remote != nullptr) {
      w.remote_addr = remote->addr() + remote_off;
      w.rkey = remote->key;
    }
    return qp->post_send(w, &s, nullptr);
  }
  int post_recv(Qp* qp, uint64_t wr_id, const Buffer& b, uint32_t len, uint32_t off = 0) {
    Sge s{b.addr() + off, len, b.key};
    return qp->post_recv(wr_id, &s, 1);
  }

  // A connected RC pair with the fixture's defaults, plus knobs.
  struct RcPair {
    Qp* a;
    Qp* b;
  };
  RcPair rc_pair(uint32_t b_access = kAccessRemoteWrite | kAccessRemoteRead | kAccessRemoteAtomic,
                 uint32_t mtu = 1024, uint8_t timeout = 14, uint8_t retry = 7,
                 uint8_t rnr_retry = 7) {
    RcPair p{make_qp(a_, QpType::kRc), make_qp(b_, QpType::kRc)};
    connect(a_, p.a, b_, p.b, kAccessRemoteWrite | kAccessRemoteRead | kAccessRemoteAtomic, mtu,
            timeout, retry, rnr_retry);
    connect(b_, p.b, a_, p.a, b_access, mtu, timeout, retry, rnr_retry);
    return p;
  }

  Nanos now_ = 0;
  bool pump_a_ = true;
  bool pump_b_ = true;
};

}  // namespace droce::nic::test
