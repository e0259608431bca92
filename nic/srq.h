// Shared receive queues (IBTA vol. 1, 10.2.9): receive WQEs shared by the QPs
// created with the SRQ, and the SRQ limit event.
// Threading: post_recv on any thread (producer lock of the work queue); take,
// modify_limit and resize under the engine lock.
#pragma once

#include <cstdint>
#include <memory>

#include "nic/base/status.h"
#include "nic/work_queue.h"
#include "nic/wqe.h"

namespace droce::nic {

class Device;

class Srq {
 public:
  Srq(Device* dev, uint32_t pd, uint32_t max_sge, std::unique_ptr<SharedReceiveQueue> q)
      : dev_(dev), pd_(pd), max_sge_(max_sge), q_(std::move(q)) {}

  // Driver side: 0, EINVAL (too many SGEs) or ENOMEM (full).
  int post_recv(uint64_t wr_id, const Sge* sges, uint32_t num_sge);

  // Engine: copies the oldest WQE (header + SGEs, `size` bytes at most) into
  // buf and consumes it; raises IBV_EVENT_SRQ_LIMIT_REACHED when the limit
  // is crossed. nullptr when the SRQ is empty.
  const RecvWqe* take(uint8_t* buf, uint32_t size);

  Status modify_limit(uint32_t limit) { return q_->arm_limit(limit); }
  // ibv_modify_srq IBV_SRQ_MAX_WR: capacity becomes the smallest power of two
  // >= max_wr, the posted WQEs kept in order; kInvalidArgument below the
  // armed limit or the WQEs still posted (SharedReceiveQueue::resize).
  // Engine lock held; posters wait on the producer lock meanwhile.
  Status resize(uint32_t max_wr) { return q_->resize(max_wr); }
  uint32_t limit() const { return q_->limit(); }
  uint32_t pd() const { return pd_; }
  uint32_t max_sge() const { return max_sge_; }
  uint32_t capacity() const { return q_->capacity(); }
  uint32_t stride() { return q_->wq().stride(); }
  uint32_t outstanding() { return q_->wq().outstanding(); }
  uint32_t users = 0;  // QPs created with this SRQ (engine lock)

 private:
  Device* const dev_;
  const uint32_t pd_;
  const uint32_t max_sge_;
  std::unique_ptr<SharedReceiveQueue> q_;
};

}  // namespace droce::nic
