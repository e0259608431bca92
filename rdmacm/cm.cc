// The CM service: QP1's MADs in (on the engine thread, queued), the agent's
// MADs out through the device's GSI queue, and a thread that feeds the agent
// and runs its timers (reference/rdma-cm.md section 4, "Progress").
#include "rdmacm/cm.h"

#include <endian.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>

#include "verbs/droce_gsi.h"

namespace droce::rdmacm {

namespace {

constexpr size_t kMaxRxQueued = 1024;                      // MADs waiting for the thread; more are dropped
constexpr auto kTimerTick = std::chrono::milliseconds(10);  // CM timers are milliseconds to seconds

uint64_t random_seed() {
  uint64_t seed = 0;
  const int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    if (read(fd, &seed, sizeof(seed)) != sizeof(seed)) seed = 0;
    close(fd);
  }
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return seed ^ uint64_t(ts.tv_nsec) ^ uint64_t(getpid()) << 40;
}

cm::AgentConfig config_for(DeviceEntry* d) {
  cm::AgentConfig c;
  c.local_ip = d->ipv4;
  c.ca_guid = be64toh(d->attr.node_guid);
  c.path_mtu = uint8_t(d->active_mtu);
  c.seed = random_seed();
  return c;
}

}  // namespace

CmService::CmService(DeviceEntry* d) : dev_(d), agent_(config_for(d), this) {
  droce_gsi_set_handler(d->ctx, &CmService::on_gsi, this);
  thread_ = std::thread([this] { run(); });
}

CmService::~CmService() { stop(); }

void CmService::stop() {
  droce_gsi_set_handler(dev_->ctx, nullptr, nullptr);
  {
    std::lock_guard<std::mutex> lock(rx_mu);
    stop_ = true;
  }
  rx_cv.notify_all();
  if (thread_.joinable()) thread_.join();
}

cm::AgentNanos CmService::now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return cm::AgentNanos(ts.tv_sec) * 1000000000ull + cm::AgentNanos(ts.tv_nsec);
}

void CmService::on_gsi(void* arg, uint32_t src_ip, const uint8_t* mad, size_t len) {
  auto* self = static_cast<CmService*>(arg);
  if (len != cm::kMadLen) return;
  {
    std::lock_guard<std::mutex> lock(self->rx_mu);
    if (self->rx_.size() >= kMaxRxQueued) return;
    self->rx_.push_back(RxMad{src_ip, {}});
    std::memcpy(self->rx_.back().mad, mad, cm::kMadLen);
  }
  self->rx_cv.notify_one();
}

void CmService::run() {
  for (;;) {
    std::deque<RxMad> batch;
    {
      std::unique_lock<std::mutex> lock(rx_mu);
      rx_cv.wait_for(lock, kTimerTick, [this] { return stop_ || !rx_.empty(); });
      if (stop_) return;
      batch.swap(rx_);
    }
    std::lock_guard<std::mutex> lock(mu);
    for (const RxMad& m : batch) agent_.on_mad(m.src_ip, std::span<const uint8_t>(m.mad, cm::kMadLen), now());
    agent_.on_timer(now());
    handle_events();
  }
}

void CmService::send_mad(uint32_t dst_ip, const uint8_t* mad) {
  // A full queue loses the MAD as a lossy wire would; the CM's retries cover it.
  droce_gsi_send(dev_->ctx, dst_ip, mad, cm::kMadLen, 0);
}

void CmService::on_event(const cm::AgentEvent& ev) {
  pending_.push_back(Pending{ev, *ev.msg});
  pending_.back().ev.msg = nullptr;
}

void CmService::handle_events() {
  // Handling may call the agent again (RTU, REJ), which may report more.
  while (!pending_.empty()) {
    std::vector<Pending> now_pending;
    now_pending.swap(pending_);
    for (Pending& p : now_pending) {
      p.ev.msg = &p.msg;
      handle(p.ev, p.msg);
    }
  }
}

namespace {

std::mutex g_services_mu;
// One per device, kept for the life of the process, as the device is (never
// destroyed, so still reachable while the process ends).
auto* g_services = new std::vector<std::pair<DeviceEntry*, CmService*>>;

// At exit there is no kernel to end the process's connections: a best-effort
// DREQ (established) or REJ (pending) for each, then a moment for the engine
// to send them (registered after libibverbs started, so this runs before its
// devices go).
void end_connections_at_exit() {
  std::lock_guard<std::mutex> lock(g_services_mu);
  bool sent = false;
  for (auto& [dev, svc] : *g_services) {
    std::lock_guard<std::mutex> cm_lock(svc->mu);
    const uint64_t before = svc->agent().counters().tx_mads;
    svc->agent().destroy_all(CmService::now());
    sent = sent || svc->agent().counters().tx_mads != before;
  }
  if (sent) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  // Nothing may reach into the devices while libibverbs tears them down.
  for (auto& [dev, svc] : *g_services) svc->stop();
}

}  // namespace

CmService* cm_service(DeviceEntry* d) {
  std::lock_guard<std::mutex> lock(g_services_mu);
  for (auto& [dev, svc] : *g_services) {
    if (dev == d) return svc;
  }
  if (g_services->empty()) std::atexit(end_connections_at_exit);
  CmService* svc = new CmService(d);
  g_services->emplace_back(d, svc);
  return svc;
}

}  // namespace droce::rdmacm
