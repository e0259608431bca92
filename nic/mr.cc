// MR table: keys, registration and the access check (IBTA vol. 1, 10.6).
#include "nic/mr.h"

namespace droce::nic {

const char* mr_check_name(MrCheck c) {
  switch (c) {
    case MrCheck::kOk: return "ok";
    case MrCheck::kBadKey: return "invalid or stale key";
    case MrCheck::kWrongPd: return "key belongs to another protection domain";
    case MrCheck::kNoAccess: return "access right not granted by the memory region";
    case MrCheck::kOutOfBounds: return "address range outside the memory region";
  }
  return "unknown";
}

MrTable::MrTable(uint32_t capacity)
    : entries_(new MrEntry[capacity + 1]), capacity_(capacity) {}

Result<uint32_t> MrTable::reg(uint32_t pd, void* host, uint64_t iova, uint64_t length,
                              uint32_t access) {
  if (access & ~kAccessSupported) {
    return Status(Errc::kInvalidArgument, "unsupported access flags");
  }
  if ((access & (kAccessRemoteWrite | kAccessRemoteAtomic)) && !(access & kAccessLocalWrite)) {
    return Status(Errc::kInvalidArgument,
                  "remote write or atomic access requires local write access (IBTA 10.6.3.1)");
  }
  if (host == nullptr && length != 0) {
    return Status(Errc::kInvalidArgument, "null address");
  }
  if (iova + length < iova) {
    return Status(Errc::kInvalidArgument, "address range wraps around");
  }
  if (count_ == capacity_) {
    return Status(Errc::kNoMemory, "memory region table full");
  }
  uint32_t idx = next_free_hint_;
  for (uint32_t n = 0; n < capacity_; ++n, idx = idx % capacity_ + 1) {
    if (entries_[idx].key == 0) break;
  }
  MrEntry& e = entries_[idx];
  e.host = static_cast<uint8_t*>(host);
  e.iova = iova;
  e.length = length;
  e.access = access;
  e.pd = pd;
  e.users = 0;
  e.tx_frames = nullptr;
  e.draining = false;
  e.tag = uint8_t(e.tag + 1);
  e.key = idx << 8 | e.tag;
  ++count_;
  next_free_hint_ = idx % capacity_ + 1;
  return e.key;
}

Status MrTable::dereg(uint32_t key) {
  MrEntry* e = find(key);
  if (e == nullptr) return Status(Errc::kInvalidArgument, "no memory region with this key");
  if (e->users != 0) return Status(Errc::kBusy, "memory window still bound to the region");
  e->key = 0;  // the tag stays, so the next registration of this slot gets a new key
  e->host = nullptr;
  e->tx_frames = nullptr;  // the Device released it first
  --count_;
  return Status::ok();
}

const MrEntry* MrTable::find(uint32_t key) const {
  uint32_t idx = key >> 8;
  if (idx == 0 || idx > capacity_) return nullptr;
  const MrEntry& e = entries_[idx];
  return e.key == key ? &e : nullptr;
}

MrEntry* MrTable::find(uint32_t key) {
  return const_cast<MrEntry*>(static_cast<const MrTable*>(this)->find(key));
}

MrCheck MrTable::check(uint32_t key, uint32_t pd, uint64_t va, uint64_t len, uint32_t need,
                       uint8_t** host) const {
  if (len == 0) {
    *host = nullptr;
    return MrCheck::kOk;
  }
  const MrEntry* e = find(key);
  if (e == nullptr) return MrCheck::kBadKey;
  if (e->pd != pd) return MrCheck::kWrongPd;
  if ((e->access & need) != need) return MrCheck::kNoAccess;
  if (va < e->iova || va + len < va || va + len > e->iova + e->length) {
    return MrCheck::kOutOfBounds;
  }
  *host = e->host + (va - e->iova);
  return MrCheck::kOk;
}

}  // namespace droce::nic
