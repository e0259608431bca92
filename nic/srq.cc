// Shared receive queue: posting and the engine's take (IBTA vol. 1, 10.2.9).
#include "nic/srq.h"

#include <algorithm>
#include <cstring>
#include <mutex>

#include "nic/device.h"

namespace droce::nic {

int Srq::post_recv(uint64_t wr_id, const Sge* sges, uint32_t num_sge) {
  if (num_sge > max_sge_) return EINVAL;
  if (int err = post_recv_wqe(q_->wq(), wr_id, sges, num_sge); err != 0) return err;
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
