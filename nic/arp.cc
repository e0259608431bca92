// ARP (RFC 826) frames and the neighbor table: bounded retries, then failed.
#include "nic/arp.h"

#include <algorithm>
#include <cstring>

namespace droce::nic {
namespace {

inline uint16_t load_be16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }

}  // namespace

void write_arp_frame(uint8_t* buf, uint16_t oper, const wire::MacAddr& eth_dst,
                     const wire::MacAddr& sha, uint32_t spa, const wire::MacAddr& tha,
                     uint32_t tpa) {
  std::memset(buf, 0, kArpFrameLen);
  auto& eth = *reinterpret_cast<wire::EthHdr*>(buf);
  eth.dst = eth_dst;
  eth.src = sha;
  eth.ether_type = Be16(wire::kEtherTypeArp);
  auto& arp = *reinterpret_cast<ArpHdr*>(buf + sizeof(wire::EthHdr));
  arp.htype = Be16(kArpHtypeEthernet);
  arp.ptype = Be16(wire::kEtherTypeIpv4);
  arp.hlen = 6;
  arp.plen = 4;
  arp.oper = Be16(oper);
  arp.sha = sha;
  arp.spa = Be32(spa);
  arp.tha = tha;
  arp.tpa = Be32(tpa);
}

const ArpHdr* parse_arp_frame(const uint8_t* frame, size_t len) {
  if (len < sizeof(wire::EthHdr) + sizeof(ArpHdr)) return nullptr;
  if (load_be16(frame + 12) != wire::kEtherTypeArp) return nullptr;
  const auto* arp = reinterpret_cast<const ArpHdr*>(frame + sizeof(wire::EthHdr));
  if (arp->htype.get() != kArpHtypeEthernet || arp->ptype.get() != wire::kEtherTypeIpv4 ||
      arp->hlen != 6 || arp->plen != 4) {
    return nullptr;
  }
  const uint16_t op = arp->oper.get();
  if (op != kArpOpRequest && op != kArpOpReply) return nullptr;
  return arp;
}

const char* arp_result_name(ArpResult r) {
  switch (r) {
    case ArpResult::kResolved: return "resolved";
    case ArpResult::kPending: return "pending";
    case ArpResult::kFailed: return "failed";
  }
  return "?";
}

Neighbor* NeighborTable::find_mut(uint32_t ip) {
  for (auto& e : entries_) {
    if (e.state != Neighbor::State::kFree && e.ip == ip) return &e;
  }
  return nullptr;
}

const Neighbor* NeighborTable::find(uint32_t ip) const {
  return const_cast<NeighborTable*>(this)->find_mut(ip);
}

size_t NeighborTable::size() const {
  size_t n = 0;
  for (const auto& e : entries_) n += e.state != Neighbor::State::kFree;
  return n;
}

// A free slot, else the stalest non-pending one, else the stalest pending one.
Neighbor* NeighborTable::claim(uint32_t ip) {
  Neighbor* victim = nullptr;
  for (auto& e : entries_) {
    if (e.state == Neighbor::State::kFree) {
      victim = &e;
      break;
    }
    const bool pending = e.state == Neighbor::State::kPending;
    if (victim == nullptr) {
      victim = &e;
      continue;
    }
    const bool victim_pending = victim->state == Neighbor::State::kPending;
    if ((victim_pending && !pending) ||
        (victim_pending == pending && e.updated_at < victim->updated_at)) {
      victim = &e;
    }
  }
  if (victim->state != Neighbor::State::kFree) ++evictions_;
  *victim = Neighbor{};
  victim->ip = ip;
  return victim;
}

ArpResult NeighborTable::resolve(uint32_t ip, wire::MacAddr* mac, Nanos now,
                                 bool* send_request) {
  *send_request = false;
  Neighbor* e = find_mut(ip);
  if (e != nullptr) {
    switch (e->state) {
      case Neighbor::State::kResolved:
        *mac = e->mac;
        return ArpResult::kResolved;
      case Neighbor::State::kPending:
        return ArpResult::kPending;
      case Neighbor::State::kFailed:
        if (now < e->next_at) return ArpResult::kFailed;
        break;  // hold over: start a new attempt in this slot
      case Neighbor::State::kFree:
        break;
    }
  } else {
    e = claim(ip);
  }
  if (cfg_.max_requests == 0) {
    ++failures_;
    e->state = Neighbor::State::kFailed;
    e->next_at = now + cfg_.failed_hold;
    e->updated_at = now;
    return ArpResult::kFailed;
  }
  e->state = Neighbor::State::kPending;
  e->requests = 1;
  e->next_at = now + cfg_.retry_interval;
  e->updated_at = now;
  next_due_ = std::min(next_due_, e->next_at);
  *send_request = true;
  return ArpResult::kPending;
}

void NeighborTable::learn(uint32_t ip, const wire::MacAddr& mac, Nanos now, bool create) {
  Neighbor* e = find_mut(ip);
  if (e == nullptr) {
    if (!create) return;
    e = claim(ip);
  }
  e->mac = mac;
  e->state = Neighbor::State::kResolved;
  e->requests = 0;
  e->next_at = 0;
  e->updated_at = now;
}

size_t NeighborTable::poll(Nanos now, uint32_t* ips, size_t max) {
  if (now < next_due_) return 0;
  size_t n = 0;
  next_due_ = kNever;
  for (auto& e : entries_) {
    if (e.state != Neighbor::State::kPending) continue;
    if (now < e.next_at) {
      next_due_ = std::min(next_due_, e.next_at);
      continue;
    }
    if (e.requests >= cfg_.max_requests) {
      ++failures_;
      e.state = Neighbor::State::kFailed;
      e.next_at = now + cfg_.failed_hold;
      e.updated_at = now;
      continue;
    }
    if (n == max) {  // due; picked up by the next poll
      next_due_ = now;
      continue;
    }
    ips[n++] = e.ip;
    ++e.requests;
    e.next_at = now + cfg_.retry_interval;
    next_due_ = std::min(next_due_, e.next_at);
  }
  return n;
}

}  // namespace droce::nic
