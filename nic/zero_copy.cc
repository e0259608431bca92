// Zero-copy transmit (docs/engine.md): a request or READ response whose
// payload lies in one registered region goes out as a chain of three small
// mbufs: the headers, the payload as an external buffer attached
// to the region's pages (DPDK's extbuf), and the pad and ICRC in a small
// segment. Each region counts the frames that point into it (the refcnt of
// one rte_mbuf_ext_shared_info per region, which DPDK decrements as frames
// are freed, on whatever thread frees them), so dereg_mr can wait until no
// frame does before it returns.
#include <rte_mbuf.h>
#include <time.h>

#include <cstring>

#include "nic/device.h"
#include "nic/wire/builder.h"
#include "nic/wire/eth.h"
#include "nic/wire/icrc.h"

namespace droce::nic {

namespace {

constexpr uint32_t kIcrcBytes = 4;

// The count's hold by the region is 1; frames add theirs. DPDK calls this
// when the last holder goes: the region was deregistered (or its device
// destroyed) while frames still pointed into it, and the last of them has
// now been freed.
void free_frame_count(void* /*addr*/, void* opaque) {
  delete static_cast<rte_mbuf_ext_shared_info*>(opaque);
}

// The refcnt is 16 bits; the shells pool is smaller than this, so frames
// cannot push it there, but a region at the limit copies rather than wrap.
constexpr uint16_t kMaxRegionFrames = 65000;

// How long dereg_mr waits for frames still queued in the PMD (or held by a
// peer port in this process, net_ring) to be freed before it gives up with
// EBUSY: a peer that is never polled would otherwise hang it.
constexpr Nanos kDrainNs = 200 * kNanosPerMs;

rte_mbuf_ext_shared_info* count_of(const MrEntry& e) {
  return static_cast<rte_mbuf_ext_shared_info*>(e.tx_frames);
}

}  // namespace

void Device::open_frame_count(MrEntry& e) {
  if (!port_->tx_chains()) return;
  auto* sh = new rte_mbuf_ext_shared_info{};
  sh->free_cb = free_frame_count;
  sh->fcb_opaque = sh;
  rte_mbuf_ext_refcnt_set(sh, 1);  // the region's own hold
  e.tx_frames = sh;
}

void Device::close_frame_count(MrEntry& e) {
  rte_mbuf_ext_shared_info* sh = count_of(e);
  e.tx_frames = nullptr;
  if (sh == nullptr) return;
  // Drop the region's hold; a frame still out frees the count with the last
  // of them (free_frame_count), else it goes now.
  if (rte_mbuf_ext_refcnt_update(sh, -1) == 0) delete sh;
}

uint32_t Device::frames_in(const MrEntry& e) {
  const rte_mbuf_ext_shared_info* sh = count_of(e);
  // Acquire, pairing with the release of DPDK's decrement (acq_rel) when a
  // frame is freed: what the freeing thread read of the pages happened
  // before the application may reuse them.
  return sh == nullptr ? 0 : uint32_t(__atomic_load_n(&sh->refcnt, __ATOMIC_ACQUIRE)) - 1;
}

rte_mbuf* Device::build_chain(const wire::PacketSpec& s, const MrEntry& mr, uint8_t* host,
                              wire::HeaderTemplate* t) {
  rte_mbuf_ext_shared_info* sh = count_of(mr);
  rte_mbuf* seg[3];
  if (sh == nullptr || mr.draining || rte_mbuf_ext_refcnt_read(sh) >= kMaxRegionFrames ||
      !port_->alloc_shells(seg, 3)) {
    ++counters_.tx_zero_copy_fallback;
    return nullptr;
  }
  rte_mbuf* hdr = seg[0];
  rte_mbuf* payload = seg[1];
  rte_mbuf* trailer = seg[2];
  hdr->data_off = 0;
  const size_t off = wire::write_headers_only(rte_pktmbuf_mtod(hdr, uint8_t*), hdr->buf_len, s, t);
  if (off == 0) {
    rte_pktmbuf_free_bulk(seg, 3);
    ++counters_.tx_zero_copy_fallback;
    return nullptr;
  }
  hdr->data_len = uint16_t(off);
  rte_mbuf_ext_refcnt_update(sh, 1);
  // The registered pages are not DPDK memory: no IOVA. Only ports that read
  // frames with the CPU attach them (Port::tx_chains).
  rte_pktmbuf_attach_extbuf(payload, host, RTE_BAD_IOVA, uint16_t(s.payload_len), sh);
  payload->data_len = uint16_t(s.payload_len);
  const uint8_t pad = wire::pad_for(s.payload_len);
  trailer->data_off = 0;
  std::memset(rte_pktmbuf_mtod(trailer, uint8_t*), 0, pad);  // the ICRC follows in tx_enqueue
  trailer->data_len = uint16_t(pad + kIcrcBytes);
  hdr->next = payload;
  payload->next = trailer;
  hdr->nb_segs = 3;
  hdr->pkt_len = uint32_t(off) + s.payload_len + pad + kIcrcBytes;
  ++counters_.tx_zero_copy;
  return hdr;
}

// The ICRC of a chained frame (RoCEv2 annex A17.3.3) in one pass: ISA-L's
// running CRC over the header segment (variant fields masked there), the
// payload in the registered pages, then the pad; written into the trailer.
void Device::chain_icrc(rte_mbuf* m) {
  uint8_t* f = rte_pktmbuf_mtod(m, uint8_t*);
  const bool tagged =
      f[12] == (wire::kEtherTypeVlan >> 8) && f[13] == (wire::kEtherTypeVlan & 0xFF);
  const size_t l2 = sizeof(wire::EthHdr) + (tagged ? sizeof(wire::VlanTag) : 0);
  rte_mbuf* payload = m->next;
  rte_mbuf* trailer = payload->next;
  uint8_t* t = rte_pktmbuf_mtod(trailer, uint8_t*);
  const size_t pad = trailer->data_len - kIcrcBytes;
  const wire::IcrcPiece rest[2] = {{rte_pktmbuf_mtod(payload, const uint8_t*), payload->data_len},
                                   {t, pad}};
  const uint32_t crc = wire::icrc_compute_chain(f + l2, m->data_len - l2, rest, 2, false);
  t[pad] = uint8_t(crc);
  t[pad + 1] = uint8_t(crc >> 8);
  t[pad + 2] = uint8_t(crc >> 16);
  t[pad + 3] = uint8_t(crc >> 24);
}

// dereg_mr: no frame may point into the region once it returns (the
// application may unmap the pages). Frames the engine built are queued in
// the PMD, held by the fault shim, or, on net_ring, in the peer port's hands
// until it polls; they are freed by whoever holds them, so wait, with the
// engine lock released so the engine (and a peer in this process) can run.
// New frames of the region are copied meanwhile (draining).
Status Device::drain_frames(std::unique_lock<std::mutex>& lock, uint32_t key) {
  MrEntry* e = mrs_.find(key);
  if (e == nullptr || frames_in(*e) == 0) return Status::ok();
  e->draining = true;
  const Nanos deadline = monotonic_now() + kDrainNs;
  for (;;) {
    lock.unlock();
    timespec ts{0, 20 * long(kNanosPerUs)};
    nanosleep(&ts, nullptr);
    lock = lock_engine();
    e = mrs_.find(key);
    if (e == nullptr) return Status::ok();  // deregistered by another thread meanwhile
    if (frames_in(*e) == 0) {
      e->draining = false;
      return Status::ok();
    }
    if (monotonic_now() >= deadline) {
      e->draining = false;
      return Status(Errc::kBusy, std::to_string(frames_in(*e)) +
                                     " frames pointing into the memory region are still queued");
    }
  }
}

}  // namespace droce::nic
