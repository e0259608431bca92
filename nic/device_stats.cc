// Device counters for tools (nic/telemetry.h): copies taken under the engine
// lock, as any control command, so a reader on another thread sees every
// counter as the engine left it after a whole poll.
#include "nic/device.h"

namespace droce::nic {

DeviceStats Device::stats() {
  DeviceStats s;
  s.name = name_;
  s.port_id = port_->port_id();
  s.ethdev = port_->name();
  s.mac = port_->mac();
  s.ipv4 = port_->ipv4();
  auto lock = lock_engine();
  s.link_up = link_up_.load(std::memory_order_relaxed);
  s.removed = removed_;
  s.qps = uint32_t(live_.size());
  s.engine_lcore = engine_lcore_.load(std::memory_order_relaxed);
  s.engine = counters_;
  s.engine.lingers_caught = lingers_caught_.load(std::memory_order_relaxed);
  s.engine.lingers_missed = lingers_missed_.load(std::memory_order_relaxed);
  s.engine.lingers_cut = lingers_cut_.load(std::memory_order_relaxed);
  s.port = port_->counters();
  s.faults = faults_ != nullptr;
  if (faults_) s.fault_counters = faults_->counters();
  s.gsi = gsi_.counters();
  return s;
}

std::vector<uint32_t> Device::qp_numbers() {
  std::vector<uint32_t> out;
  auto lock = lock_engine();
  out.reserve(live_.size());
  for (const Qp* qp : live_) out.push_back(qp->qpn());
  return out;
}

bool Device::qp_stats(uint32_t qpn, QpStats* out) {
  auto lock = lock_engine();
  const Qp* qp = qp_by_num(qpn);
  if (qp == nullptr) return false;
  out->qpn = qpn;
  out->type = qp->type();
  out->state = qp->state();
  out->dest_qpn = qp->query().dest_qpn;
  out->peer_ip = qp->peer_ip();
  out->counters = qp->counters();
  return true;
}

}  // namespace droce::nic
