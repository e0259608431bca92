// Shared receive queue: posting and the engine's take (IBTA vol. 1, 10.2.9).
#include "nic/srq.h"

#include <algorithm>
#include <cstring>
#include <mutex>

#include "nic/device.h"

namespace droce::nic {

int Srq::post_recv(uint64_t wr_id, const Sge* sges, uint32_t num_sge) {
  if (num_sge > max_sge_) return EINVAL;
  WorkQueue& wq = q_->wq();
  {
    std::lock_guard<SpinLock> lock(wq.producer_lock());
    uint8_t* slot = wq.reserve();
    if (slot == nullptr) return ENOMEM;
    auto* w = reinterpret_cast<RecvWqe*>(slot);
    w->wr_id = wr_id;
    w->num_sge = num_sge;
    uint64_t total = 0;
    for (uint32_t i = 0; i < num_sge; ++i) {
      w->sges()[i] = sges[i];
      total += sges[i].length;
    }
    w->length = uint32_t(std::min<uint64_t>(total, UINT32_MAX));
    wq.publish();
  }
  dev_->ring_doorbell();
  return 0;
}

const RecvWqe* Srq::take(uint8_t* buf, uint32_t size) {
  const uint8_t* front = q_->front();
  if (front == nullptr) return nullptr;
  std::memcpy(buf, front, std::min(size, q_->wq().stride()));
  if (q_->consume()) dev_->raise_event({AsyncEventType::kSrqLimitReached, 0, nullptr, this});
  return reinterpret_cast<const RecvWqe*>(buf);
}

}  // namespace droce::nic
