// Memory regions (IBTA vol. 1, 10.6): registration, lkey/rkey with a rotating
// 8-bit tag, and the access check done before the engine touches one byte.
// Threading: every method, the engine's check() included, runs under the
// device's engine lock (control commands take it; the engine holds it while it
// polls), so no entry changes while a packet is being handled, and after
// dereg() returns the engine never touches that memory again.
#pragma once

#include <cstdint>
#include <memory>

#include "nic/base/status.h"

namespace droce::nic {

// ibv_access_flags values.
enum Access : uint32_t {
  kAccessLocalWrite = 1u << 0,
  kAccessRemoteWrite = 1u << 1,
  kAccessRemoteRead = 1u << 2,
  kAccessRemoteAtomic = 1u << 3,
  kAccessMwBind = 1u << 4,
  kAccessZeroBased = 1u << 5,
  kAccessOnDemand = 1u << 6,
  kAccessHugetlb = 1u << 7,
  kAccessFlushGlobal = 1u << 8,      // remote FLUSH, global visibility (IBTA A19)
  kAccessFlushPersistent = 1u << 9,  // remote FLUSH, persistence: needs pmem, never granted
  kAccessRelaxedOrdering = 1u << 20,
};
inline constexpr uint32_t kAccessSupported = kAccessLocalWrite | kAccessRemoteWrite |
                                             kAccessRemoteRead | kAccessRemoteAtomic |
                                             kAccessMwBind | kAccessZeroBased |
                                             kAccessFlushGlobal | kAccessRelaxedOrdering;

// Why an access was refused; maps to a NAK / work-completion status.
enum class MrCheck : uint8_t {
  kOk,
  kBadKey,       // no such key, or a stale key (tag mismatch)
  kWrongPd,      // MR belongs to another protection domain
  kNoAccess,     // access right not granted
  kOutOfBounds,  // [va, va+len) not inside the region, or wraps
};
const char* mr_check_name(MrCheck c);

struct MrEntry {
  uint8_t* host = nullptr;  // host address of iova
  uint64_t iova = 0;        // first virtual address the peer / WQE uses
  uint64_t length = 0;
  uint32_t access = 0;
  uint32_t pd = 0;
  uint32_t key = 0;         // index << 8 | tag; 0 when the slot is free
  uint32_t users = 0;       // things that pin the MR (bound memory windows)
  uint8_t tag = 0;          // rotates on every registration of this slot
  // Zero-copy transmit: the count of frames whose payload segment points
  // into this region (a DPDK rte_mbuf_ext_shared_info the Device owns;
  // nullptr when the port copies every payload). Opaque here, so that the
  // table needs no DPDK.
  void* tx_frames = nullptr;
  bool draining = false;    // dereg waits for tx_frames: attach no more frames
};

class MrTable {
 public:
  explicit MrTable(uint32_t capacity);  // at most 2^24 - 1 entries

  // Registers host[0..length) seen at address iova. access is validated
  // (remote write/atomic need local write, as IBTA 10.6.3.1 requires).
  Result<uint32_t> reg(uint32_t pd, void* host, uint64_t iova, uint64_t length, uint32_t access);
  // Deregisters; kBusy while a memory window (users > 0) is bound to it.
  Status dereg(uint32_t key);
  // Re-registration in place is not offered; callers dereg + reg.

  // The check every local SGE and remote RETH/AtomicETH goes through. A
  // zero-length access is valid with any key (IBTA C9-88.1.1) and yields
  // host == nullptr. On kOk, *host points at va.
  MrCheck check(uint32_t key, uint32_t pd, uint64_t va, uint64_t len, uint32_t need,
                uint8_t** host) const;

  const MrEntry* find(uint32_t key) const;
  MrEntry* find(uint32_t key);
  // The entry of slot idx (1 .. capacity()), registered or not.
  MrEntry& slot(uint32_t idx) { return entries_[idx]; }
  uint32_t count() const { return count_; }
  uint32_t capacity() const { return capacity_; }

 private:
  std::unique_ptr<MrEntry[]> entries_;  // slot 0 unused, so no valid key is 0
  uint32_t capacity_;
  uint32_t count_ = 0;
  uint32_t next_free_hint_ = 1;
};

}  // namespace droce::nic
