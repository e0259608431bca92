// Devices (IBTA vol. 1, 11.2.1 and 11.3): the device list (one DPDK ethdev
// port = one device, droce0, droce1 ...), open/close with the engine thread's
// life, device/port/GID/P_Key queries as rxe reports them for RoCEv2
// (annex A17), and async events.
#include <fcntl.h>
#include <rte_ethdev.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "nic/base/clock.h"
#include "nic/base/log.h"
#include "nic/config.h"
#include "nic/eal.h"
#include "nic/fault.h"
#include "verbs/internal.h"

#ifndef DROCE_VERSION
#define DROCE_VERSION "0"
#endif

namespace droce::verbs {
namespace {

// The device list, created once per process by the first ibv_get_device_list.
// Slots are never freed (programs may keep ibv_device pointers); engines and
// ports are stopped at exit.
struct Provider {
  std::mutex mu;  // guards everything below
  bool attempted = false;
  nic::FaultConfig faults;  // DROCE_FAULTS, applied to every device's transmit
  int init_errno = 0;       // nonzero: initialisation failed, ibv_get_device_list returns NULL
  Nanos link_wait_ns = 0;   // DROCE_LINK_WAIT_MS: see wait_for_link
  int engine_cpu = -1;      // DROCE_ENGINE_CPU: every device's engine thread pinned there
  std::vector<DeviceSlot*> slots;
};

Provider& provider() {
  static Provider* p = new Provider;  // never destroyed: used from atexit
  return *p;
}

// How long ports stay open at exit after the last activity (see shutdown_at_exit).
constexpr Nanos kExitLingerNs = 20 * kNanosPerMs;

// How long ibv_open_device waits for a link that is down (DROCE_LINK_WAIT_MS).
constexpr long kDefaultLinkWaitMs = 3000;
constexpr long kMaxLinkWaitMs = 600000;
constexpr Nanos kLinkPollNs = 1 * kNanosPerMs;
// A link that comes up this soon after our own port started: the peer was
// there first (see wait_for_link), and gets kPeerHeadStartNs.
constexpr Nanos kNewcomerWindowNs = 50 * kNanosPerMs;
constexpr Nanos kPeerHeadStartNs = 100 * kNanosPerMs;

// The completion-timestamp clock (ibv_query_device_ex): nanoseconds of
// CLOCK_MONOTONIC, the engine's clock; hca_core_clock is in kHz.
constexpr uint64_t kCompletionTimestampMask = ~uint64_t{0};
constexpr uint64_t kHcaCoreClockKhz = 1000000;

// IB_UVERBS_DEVICE_ATOMIC_WRITE (kernel uapi ib_user_ioctl_verbs.h since 6.2;
// Debian 12's headers predate it): IBTA A19 ATOMIC_WRITE, as rxe advertises.
constexpr uint64_t kDeviceAtomicWrite = 1ULL << 40;

// ibv_query_rt_values_ex: the clock completion timestamps are taken from,
// in device units (nanoseconds), all in tv_nsec as mlx5 reports its cycles
// (tv_sec 0), so both that reading and tv_sec * 1e9 + tv_nsec give it.
int op_query_rt_values(ibv_context*, ibv_values_ex* values) noexcept {
  if (values->comp_mask & ~uint32_t(IBV_VALUES_MASK_RAW_CLOCK)) return EINVAL;
  uint32_t filled = 0;
  if (values->comp_mask & IBV_VALUES_MASK_RAW_CLOCK) {
    values->raw_clock.tv_sec = 0;
    values->raw_clock.tv_nsec = long(monotonic_now());
    filled |= IBV_VALUES_MASK_RAW_CLOCK;
  }
  values->comp_mask = filled;
  return 0;
}

// Set while this thread initialises the provider: a DPDK driver that calls
// ibv_get_device_list from inside rte_eal_init (mlx5 probing) gets no device
// instead of a deadlock.
thread_local bool t_initialising = false;

void shutdown_at_exit() {
  Provider& p = provider();
  std::lock_guard<std::mutex> lock(p.mu);
  // Linger: the last frames (typically the ACK of the peer's final SEND) sit
  // in the port's transmit ring; a hardware NIC outlives its process, droce's
  // does not, and memif drops what the peer has not read when the process exits.
  Nanos last_activity = 0;
  for (DeviceSlot* s : p.slots) {
    std::lock_guard<std::mutex> slock(s->mu);
    last_activity = std::max(last_activity, s->device ? monotonic_now() : s->closed_at);
  }
  const Nanos linger_end = last_activity + kExitLingerNs;
  if (last_activity != 0 && linger_end > monotonic_now()) {
    std::this_thread::sleep_for(std::chrono::nanoseconds(linger_end - monotonic_now()));
  }
  // Engines stop (their threads must not run into the process's teardown);
  // ports stay open: closing a memif port races DPDK's interrupt thread when
  // the peer disconnects at the same moment (a SIGSEGV in librte_net_memif
  // seen with ibv_*_pingpong), and the kernel closes the port's sockets and
  // files at exit anyway, which a memif peer sees as link down.
  for (DeviceSlot* s : p.slots) {
    std::lock_guard<std::mutex> slock(s->mu);
    s->device.reset();  // joins the engine thread
    s->open_count = 0;
    s->exited = true;
  }
}

// EUI-64 from a MAC address, as rxe derives its node GUID (addrconf_addr_eui48).
uint64_t eui64(const wire::MacAddr& m) {
  const uint8_t b[8] = {uint8_t(m[0] ^ 0x02), m[1], m[2], 0xFF, 0xFE, m[3], m[4], m[5]};
  uint64_t v = 0;
  for (uint8_t x : b) v = v << 8 | x;
  return v;
}

std::string capture_path_for(const std::string& path, int index) {
  if (path.empty() || index == 0) return path;
  const size_t dot = path.rfind('.');
  const size_t slash = path.rfind('/');
  const std::string suffix = "-" + std::to_string(index);
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return path + suffix;
  return path.substr(0, dot) + suffix + path.substr(dot);
}

// DROCE_LINK_WAIT_MS: milliseconds, 0 .. kMaxLinkWaitMs (0: do not wait).
Result<Nanos> link_wait_from_env() {
  const char* text = std::getenv("DROCE_LINK_WAIT_MS");
  if (text == nullptr || *text == '\0') return Nanos(kDefaultLinkWaitMs * kNanosPerMs);
  errno = 0;
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v < 0 || v > kMaxLinkWaitMs) {
    return Status(Errc::kBadConfig, std::string("DROCE_LINK_WAIT_MS: '") + text +
                                        "' is not a number of milliseconds in [0, " +
                                        std::to_string(kMaxLinkWaitMs) + "]");
  }
  return Nanos(v * kNanosPerMs);
}

// Opens every ethdev as a device. Returns 0 or an errno (message printed).
int init_devices(Provider& p) {
  auto cfg = nic::port_config_from_env();
  if (!cfg) {
    DROCE_ERROR("%s", cfg.status().message().c_str());
    return to_errno(cfg.status().code());
  }
  auto faults = nic::FaultConfig::from_env();
  if (!faults) {
    DROCE_ERROR("%s", faults.status().message().c_str());
    return to_errno(faults.status().code());
  }
  p.faults = faults.value();
  auto link_wait = link_wait_from_env();
  if (!link_wait) {
    DROCE_ERROR("%s", link_wait.status().message().c_str());
    return to_errno(link_wait.status().code());
  }
  p.link_wait_ns = link_wait.value();
  auto engine_cpu = nic::engine_cpu_from_env();  // before EAL pins this thread
  if (!engine_cpu) {
    DROCE_ERROR("%s", engine_cpu.status().message().c_str());
    return to_errno(engine_cpu.status().code());
  }
  p.engine_cpu = engine_cpu.value();
  Status st = nic::eal_init();
  if (!st) {
    DROCE_ERROR("%s", st.message().c_str());
    return to_errno(st.code());
  }
  int index = 0;
  int last_err = 0;
  uint16_t port_id;
  RTE_ETH_FOREACH_DEV(port_id) {
    nic::PortConfig pc = cfg.value();
    pc.ipv4 = cfg->ipv4 + uint32_t(index);  // one address per port: DROCE_IPV4, +1, +2 ...
    pc.capture_path = capture_path_for(cfg->capture_path, index);
    auto port = nic::Port::open(port_id, pc);
    if (!port) {
      DROCE_ERROR("ethdev port %u not usable as an RDMA device: %s", unsigned(port_id),
                  port.status().message().c_str());
      last_err = to_errno(port.status().code());
      continue;
    }
    auto* s = new DeviceSlot;
    s->index = index;
    s->port = std::move(port.value());
    s->started_at = monotonic_now();
    s->node_guid = eui64(s->port->mac());
    ibv_device& d = s->ibdev;
    std::memset(&d, 0, sizeof(d));
    d.node_type = IBV_NODE_CA;  // RoCE devices report an InfiniBand CA, as rxe
    d.transport_type = IBV_TRANSPORT_IB;
    std::snprintf(d.name, sizeof(d.name), "droce%d", index);
    std::snprintf(d.dev_name, sizeof(d.dev_name), "uverbs-droce%d", index);
    std::snprintf(d.dev_path, sizeof(d.dev_path), "/sys/class/infiniband_verbs/uverbs-droce%d",
                  index);
    std::snprintf(d.ibdev_path, sizeof(d.ibdev_path), "/sys/class/infiniband/droce%d", index);
    p.slots.push_back(s);
    ++index;
  }
  if (p.slots.empty() && last_err != 0) return last_err;
  if (p.slots.empty()) {
    DROCE_DEBUG("no DPDK ethdev port: DROCE_EAL_ARGS names no --vdev and no PCI device");
  }
  std::atexit(shutdown_at_exit);
  return 0;
}

ibv_device** get_device_list(int* num) {
  if (num != nullptr) *num = 0;
  Provider& p = provider();
  if (t_initialising) return static_cast<ibv_device**>(calloc(1, sizeof(ibv_device*)));
  std::lock_guard<std::mutex> lock(p.mu);
  if (!p.attempted) {
    p.attempted = true;
    t_initialising = true;
    p.init_errno = init_devices(p);
    t_initialising = false;
  }
  if (p.init_errno != 0) {
    errno = p.init_errno;
    return nullptr;
  }
  auto** list = static_cast<ibv_device**>(calloc(p.slots.size() + 1, sizeof(ibv_device*)));
  if (list == nullptr) {
    errno = ENOMEM;
    return nullptr;
  }
  for (size_t i = 0; i < p.slots.size(); ++i) list[i] = &p.slots[i]->ibdev;
  if (num != nullptr) *num = int(p.slots.size());
  return list;
}

// ---- context ----

int op_dealloc_mw(ibv_mw*) noexcept { return EOPNOTSUPP; }
int op_bind_mw(ibv_qp*, ibv_mw*, ibv_mw_bind*) noexcept { return EOPNOTSUPP; }
int op_close_xrcd(ibv_xrcd*) noexcept { return EOPNOTSUPP; }

// What an old program built against a pre-extension verbs.h calls through ops.
int op_compat_query_device(ibv_context* ctx, ibv_device_attr* attr) noexcept {
  return ibv_query_device(ctx, attr);
}
int op_compat_query_port(ibv_context* ctx, uint8_t port, _compat_ibv_port_attr* attr) noexcept {
  return ibv_query_port(ctx, port, attr);
}

// A link that is down when a device is opened is often about to come up: a
// net_memif link is up only while the peer process is connected, so a server
// started just before its client sees it down for a moment; likewise a tap
// being attached or a cable being plugged in. Programs such as perftest check
// for PORT_ACTIVE once, right after ibv_open_device, and give up. So wait a
// bounded time (DROCE_LINK_WAIT_MS) for it; a link that stays down is then
// reported as it is (PORT_DOWN), and PORT_ACTIVE is raised when it comes up.
// A link that is up (the embedded net_ring default) costs one link query.
//
// The two programs of a pair then meet over TCP, and neither retries its
// connect: the server listens only once its open returns, so a client whose
// link came up at the same moment could reach connect() first. When the link
// comes up within kNewcomerWindowNs of our own port's start (a memif client
// joining: its link was down at open only while the handshake was in flight),
// the peer was there first, probably waiting for this very link in its own
// open; it gets a head start of kPeerHeadStartNs.
// Called without the slot's lock: other threads keep using the device.
void wait_for_link(DeviceSlot* s) {
  if (s->port->link_up()) return;
  const Nanos wait = provider().link_wait_ns;
  const Nanos start = monotonic_now();
  DROCE_DEBUG("%s: link of %s is down; waiting up to %lld ms for it (DROCE_LINK_WAIT_MS)",
              s->ibdev.name, s->port->name().c_str(), static_cast<long long>(wait / kNanosPerMs));
  while (monotonic_now() - start < wait) {
    std::this_thread::sleep_for(std::chrono::nanoseconds(kLinkPollNs));
    if (s->port->link_up()) {
      const Nanos now = monotonic_now();
      DROCE_DEBUG("%s: link up after %lld ms", s->ibdev.name,
                  static_cast<long long>((now - start) / kNanosPerMs));
      if (now - s->started_at < kNewcomerWindowNs) {
        DROCE_DEBUG("%s: the peer was there first: %lld ms head start", s->ibdev.name,
                    static_cast<long long>(kPeerHeadStartNs / kNanosPerMs));
        std::this_thread::sleep_for(std::chrono::nanoseconds(kPeerHeadStartNs));
      }
      return;
    }
  }
  DROCE_DEBUG("%s: link of %s still down after %lld ms (DROCE_LINK_WAIT_MS): the port is "
              "PORT_DOWN until it comes up (net_memif: is the peer process running?)",
              s->ibdev.name, s->port->name().c_str(), static_cast<long long>(wait / kNanosPerMs));
}

ibv_context* open_device(ibv_device* ibdev) {
  DeviceSlot* s = slot_of(ibdev);
  {
    std::lock_guard<std::mutex> lock(s->mu);
    if (s->exited) return fail_errno(ENODEV);  // after exit-time shutdown
  }
  wait_for_link(s);
  std::lock_guard<std::mutex> lock(s->mu);
  if (s->exited) return fail_errno(ENODEV);  // after exit-time shutdown
  auto c = std::make_unique<Context>();
  std::memset(&c->vctx, 0, sizeof(c->vctx));
  const int epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) return nullptr;  // errno from epoll_create1
  if (!s->device) {
    nic::Device::Options opts;
    opts.engine_thread = true;
    opts.engine_cpu = provider().engine_cpu;
    opts.name = s->ibdev.name;
    auto dev = nic::Device::create(s->port.get(), opts);
    if (!dev) {
      close(epfd);
      return fail_null<ibv_context>("ibv_open_device", dev.status());
    }
    s->device = std::move(dev.value());
    const nic::FaultConfig& fc = provider().faults;
    if (fc.enabled()) {
      nic::FaultConfig mine = fc;
      mine.seed += uint64_t(s->index);  // each port its own sequence
      s->device->set_faults(std::make_unique<nic::FaultShim>(mine, s->port->mempool()));
      DROCE_DEBUG("%s: DROCE_FAULTS active on transmit", s->ibdev.name);
    }
  }
  // async_fd is readable when the device has undistributed events or this
  // context has its own (get_async_event).
  c->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE);
  epoll_event ev{};
  ev.events = EPOLLIN;
  epoll_event own{};
  own.events = EPOLLIN;
  if (c->event_fd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, s->device->async_event_fd(), &ev) != 0 ||
      epoll_ctl(epfd, EPOLL_CTL_ADD, c->event_fd, &own) != 0) {
    const int err = errno;
    if (c->event_fd >= 0) close(c->event_fd);
    close(epfd);
    if (s->open_count == 0) s->device.reset();
    return fail_errno(err);
  }
  ++s->open_count;
  s->contexts.push_back(c.get());
  c->slot = s;
  c->dev = s->device.get();
  verbs_context& v = c->vctx;
  v.sz = sizeof(verbs_context);
  v.query_port = op_query_port;
  v.query_device_ex = op_query_device_ex;
  v.query_rt_values = op_query_rt_values;
  v.create_cq_ex = op_create_cq_ex;
  v.create_qp_ex = op_create_qp_ex;
  v.close_xrcd = op_close_xrcd;
  ibv_context& ctx = v.context;
  ctx.device = ibdev;
  ctx.cmd_fd = -1;  // no kernel device behind droce
  ctx.async_fd = epfd;
  ctx.num_comp_vectors = 1;
  ctx.abi_compat = __VERBS_ABI_IS_EXTENDED;
  pthread_mutex_init(&ctx.mutex, nullptr);
  ibv_context_ops& ops = ctx.ops;
  ops._compat_query_device = op_compat_query_device;
  ops._compat_query_port = op_compat_query_port;
  ops.bind_mw = op_bind_mw;
  ops.dealloc_mw = op_dealloc_mw;
  ops.poll_cq = op_poll_cq;
  ops.req_notify_cq = op_req_notify_cq;
  ops.post_srq_recv = op_post_srq_recv;
  ops.post_send = op_post_send;
  ops.post_recv = op_post_recv;
  return &c.release()->vctx.context;
}

int close_device(ibv_context* ibctx) {
  Context* c = ctx_of(ibctx);
  DeviceSlot* s = c->slot;
  std::lock_guard<std::mutex> lock(s->mu);
  close(ibctx->async_fd);
  close(c->event_fd);
  pthread_mutex_destroy(&ibctx->mutex);
  std::erase(s->contexts, c);
  delete c;
  if (s->open_count > 0 && --s->open_count == 0) {
    // The last context: the engine stops and every object left open goes with it.
    s->device.reset();
    s->closed_at = monotonic_now();
    s->qps.clear();
    s->cqs.clear();
    s->srqs.clear();
  }
  return 0;
}

// ---- queries ----

uint64_t be64(uint64_t v) { return __builtin_bswap64(v); }

void fill_device_attr(Context* c, ibv_device_attr* a) {
  const nic::DeviceAttr& d = c->dev->attr();
  std::memset(a, 0, sizeof(*a));
  std::snprintf(a->fw_ver, sizeof(a->fw_ver), "%s", DROCE_VERSION);
  a->node_guid = be64(c->slot->node_guid);
  a->sys_image_guid = a->node_guid;
  a->max_mr_size = d.max_mr_size;
  a->page_size_cap = 0xfffff000;  // as rxe: any page size from 4 KiB
  a->vendor_id = kVendorId;
  a->vendor_part_id = 0;
  a->hw_ver = 0;
  a->max_qp = int(d.max_qp);
  a->max_qp_wr = int(d.max_qp_wr);
  a->device_cap_flags = IBV_DEVICE_CURR_QP_STATE_MOD | IBV_DEVICE_SYS_IMAGE_GUID |
                        IBV_DEVICE_RC_RNR_NAK_GEN | IBV_DEVICE_UD_AV_PORT_ENFORCE |
                        IBV_DEVICE_SRQ_RESIZE;
  a->max_sge = int(d.max_sge);
  a->max_sge_rd = int(d.max_sge);
  a->max_cq = int(d.max_cq);
  a->max_cqe = int(d.max_cqe);
  a->max_mr = int(d.max_mr);
  a->max_pd = int(d.max_pd);
  a->max_qp_rd_atom = int(d.max_qp_rd_atom);
  a->max_res_rd_atom = int(d.max_qp_rd_atom * d.max_qp);
  a->max_qp_init_rd_atom = int(d.max_qp_init_rd_atom);
  a->atomic_cap = IBV_ATOMIC_HCA;
  a->max_ah = int(d.max_ah);
  a->max_srq = int(d.max_srq);
  a->max_srq_wr = int(d.max_srq_wr);
  a->max_srq_sge = int(d.max_srq_sge);
  a->max_pkeys = kPkeyTableLen;
  a->local_ca_ack_delay = 15;  // as rxe
  a->phys_port_cnt = 1;
}

// IB width/speed for an Ethernet link speed, as the kernel's ib_get_eth_speed.
void eth_speed(uint32_t mbps, uint8_t* width, uint8_t* speed) {
  constexpr uint8_t k1x = 1, k4x = 2;
  constexpr uint8_t kSdr = 1, kDdr = 2, kFdr10 = 8, kEdr = 32;
  if (mbps <= 1000) {
    *width = k1x, *speed = kSdr;
  } else if (mbps <= 10000) {
    *width = k1x, *speed = kFdr10;
  } else if (mbps <= 20000) {
    *width = k4x, *speed = kDdr;
  } else if (mbps <= 25000) {
    *width = k1x, *speed = kEdr;
  } else if (mbps <= 40000) {
    *width = k4x, *speed = kFdr10;
  } else {
    *width = k4x, *speed = kEdr;
  }
}

void fill_port_attr(Context* c, ibv_port_attr* a) {
  nic::Port& port = *c->slot->port;
  std::memset(a, 0, sizeof(*a));
  const nic::Device::PortState ps = c->dev->query_port();
  const bool up = ps.up;
  a->state = up ? IBV_PORT_ACTIVE : IBV_PORT_DOWN;
  a->max_mtu = mtu_enum(port.path_mtu());
  a->active_mtu = mtu_enum(port.path_mtu());
  a->gid_tbl_len = kGidTableLen;
  a->port_cap_flags = IBV_PORT_CM_SUP;  // as rxe
  a->max_msg_sz = c->dev->attr().max_msg_size;
  a->pkey_tbl_len = kPkeyTableLen;
  a->max_vl_num = 1;
  eth_speed(up ? ps.speed_mbps : 0, &a->active_width, &a->active_speed);
  a->phys_state = up ? 5 : 3;  // LinkUp / Disabled
  a->link_layer = IBV_LINK_LAYER_ETHERNET;
}

void gid_entry(Context* c, ibv_gid_entry* e) {
  std::memset(e, 0, sizeof(*e));
  std::memcpy(e->gid.raw, c->slot->port->gid().data(), 16);
  e->gid_index = 0;
  e->port_num = 1;
  e->gid_type = IBV_GID_TYPE_ROCE_V2;
}

// ---- async events ----

// Events a context holds for a reader that never comes are bounded: the
// oldest go first (a program that ignores async events loses nothing else).
constexpr size_t kMaxContextEvents = 4096;

void deliver(Context* c, const nic::AsyncEvent& ev) {
  uint64_t v;
  if (c->events.size() >= kMaxContextEvents) {
    c->events.pop_front();
    [[maybe_unused]] ssize_t n = read(c->event_fd, &v, sizeof(v));
  }
  c->events.push_back(ev);
  v = 1;
  [[maybe_unused]] ssize_t n = write(c->event_fd, &v, sizeof(v));
}

// The context that created the object an event names; nullptr for port
// and device events (every context gets those) or an object already gone.
Context* owner_of(DeviceSlot* s, const nic::AsyncEvent& ev, bool* everyone) {
  *everyone = false;
  switch (ev.type) {
    case nic::AsyncEventType::kCqErr: {
      auto it = s->cqs.find(ev.cq);
      return it == s->cqs.end() ? nullptr : ctx_of(it->second->cq.context);
    }
    case nic::AsyncEventType::kSrqErr:
    case nic::AsyncEventType::kSrqLimitReached: {
      auto it = s->srqs.find(ev.srq);
      return it == s->srqs.end() ? nullptr : ctx_of(it->second->srq.context);
    }
    case nic::AsyncEventType::kPortActive:
    case nic::AsyncEventType::kPortErr:
    case nic::AsyncEventType::kDeviceFatal:
      *everyone = true;
      return nullptr;
    default: {
      auto it = s->qps.find(ev.qpn);
      return it == s->qps.end() ? nullptr : ctx_of(it->second->qpx.qp_base.context);
    }
  }
}

// Moves the device's queued events to the contexts they belong to (caller
// holds s->mu).
void distribute_events(DeviceSlot* s) {
  nic::AsyncEvent ev;
  while (s->device && s->device->get_async_event(&ev)) {
    bool everyone = false;
    Context* owner = owner_of(s, ev, &everyone);
    if (everyone) {
      for (Context* c : s->contexts) deliver(c, ev);
    } else if (owner != nullptr) {
      deliver(owner, ev);
    }
  }
}

// Fills *out from ev; false when the object it names was destroyed since.
bool resolve_event(DeviceSlot* s, const nic::AsyncEvent& ev, ibv_async_event* out) {
  std::memset(out, 0, sizeof(*out));
  out->event_type = static_cast<ibv_event_type>(ev.type);
  switch (ev.type) {
    case nic::AsyncEventType::kCqErr: {
      auto it = s->cqs.find(ev.cq);
      if (it == s->cqs.end()) return false;
      out->element.cq = ibv_cq_ex_to_cq(&it->second->cq);
      return true;
    }
    case nic::AsyncEventType::kSrqErr:
    case nic::AsyncEventType::kSrqLimitReached: {
      auto it = s->srqs.find(ev.srq);
      if (it == s->srqs.end()) return false;
      out->element.srq = &it->second->srq;
      return true;
    }
    case nic::AsyncEventType::kPortActive:
    case nic::AsyncEventType::kPortErr:
      out->element.port_num = ev.port_num;
      return true;
    case nic::AsyncEventType::kDeviceFatal:
      return true;
    default: {
      auto it = s->qps.find(ev.qpn);
      if (it == s->qps.end()) return false;
      out->element.qp = &it->second->qpx.qp_base;
      return true;
    }
  }
}

int get_async_event(ibv_context* ibctx, ibv_async_event* out) {
  Context* c = ctx_of(ibctx);
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(c->slot->mu);
      distribute_events(c->slot);
      while (!c->events.empty()) {
        const nic::AsyncEvent ev = c->events.front();
        c->events.pop_front();
        uint64_t v;
        [[maybe_unused]] ssize_t n = read(c->event_fd, &v, sizeof(v));
        if (resolve_event(c->slot, ev, out)) return 0;
      }
    }
    if (fd_nonblocking(ibctx->async_fd)) {
      errno = EAGAIN;
      return -1;
    }
    if (wait_readable(ibctx->async_fd) < 0) return -1;
  }
}

void count_ack(pthread_mutex_t* mu, pthread_cond_t* cond, uint32_t* counter) {
  pthread_mutex_lock(mu);
  ++*counter;
  pthread_cond_signal(cond);
  pthread_mutex_unlock(mu);
}

}  // namespace

DeviceSlot* slot_of(ibv_device* dev) { return reinterpret_cast<DeviceSlot*>(dev); }

int fail(const char* what, const Status& st) {
  DROCE_DEBUG("%s: %s", what, st.message().c_str());
  return to_errno(st.code());
}

int refuse(const char* what, int err, const char* why) {
  DROCE_DEBUG("%s: %s", what, why);
  return err;
}

bool fd_nonblocking(int fd) {
  const int fl = fcntl(fd, F_GETFL);
  return fl >= 0 && (fl & O_NONBLOCK) != 0;
}

uint32_t mtu_bytes(int mtu) { return mtu >= IBV_MTU_256 && mtu <= IBV_MTU_4096 ? 128u << mtu : 0; }

ibv_mtu mtu_enum(uint32_t bytes) {
  if (bytes >= 4096) return IBV_MTU_4096;
  if (bytes >= 2048) return IBV_MTU_2048;
  if (bytes >= 1024) return IBV_MTU_1024;
  if (bytes >= 512) return IBV_MTU_512;
  return IBV_MTU_256;
}

int op_query_port(ibv_context* ctx, uint8_t port, ibv_port_attr* attr, size_t len) noexcept {
  if (port != 1) return EINVAL;
  ibv_port_attr a;
  fill_port_attr(ctx_of(ctx), &a);
  std::memcpy(attr, &a, len < sizeof(a) ? len : sizeof(a));
  return 0;
}

int op_query_device_ex(ibv_context* ctx, const ibv_query_device_ex_input* in,
                       ibv_device_attr_ex* attr, size_t len) noexcept {
  if (in != nullptr && in->comp_mask != 0) return EINVAL;
  if (len < sizeof(ibv_device_attr)) return EINVAL;
  ibv_device_attr_ex a;
  std::memset(&a, 0, sizeof(a));
  fill_device_attr(ctx_of(ctx), &a.orig_attr);
  a.device_cap_flags_ex = a.orig_attr.device_cap_flags | kDeviceAtomicWrite;
  a.phys_port_cnt_ex = 1;
  // Completion timestamps (ibv_create_cq_ex): the engine's clock,
  // CLOCK_MONOTONIC nanoseconds, i.e. a 1 GHz clock using all 64 bits.
  a.completion_timestamp_mask = kCompletionTimestampMask;
  a.hca_core_clock = kHcaCoreClockKhz;
  std::memcpy(attr, &a, len < sizeof(a) ? len : sizeof(a));
  return 0;
}

}  // namespace droce::verbs

using namespace droce::verbs;  // NOLINT: the C entry points below

// _compat_ibv_port_attr: ibv_port_attr without port_cap_flags2 (rdma-core verbs.c).
static constexpr size_t kCompatPortAttrSize = offsetof(ibv_port_attr, port_cap_flags2);

extern "C" {

ibv_device** ibv_get_device_list(int* num_devices) {
  return guard([&] { return get_device_list(num_devices); }, static_cast<ibv_device**>(nullptr));
}

void ibv_free_device_list(ibv_device** list) { free(list); }

const char* ibv_get_device_name(ibv_device* device) { return device->name; }

int ibv_get_device_index(ibv_device* device) { return slot_of(device)->index; }

__be64 ibv_get_device_guid(ibv_device* device) { return __be64(be64(slot_of(device)->node_guid)); }

ibv_context* ibv_open_device(ibv_device* device) {
  return guard([&] { return open_device(device); }, static_cast<ibv_context*>(nullptr));
}

int ibv_close_device(ibv_context* context) {
  return guard([&] { return close_device(context); }, -1);
}

int ibv_query_device(ibv_context* context, ibv_device_attr* device_attr) {
  fill_device_attr(ctx_of(context), device_attr);
  return 0;
}

int ibv_query_port(ibv_context* context, uint8_t port_num, _compat_ibv_port_attr* port_attr) {
  return op_query_port(context, port_num, reinterpret_cast<ibv_port_attr*>(port_attr),
                       kCompatPortAttrSize);
}

int ibv_query_gid(ibv_context* context, uint8_t port_num, int index, ibv_gid* gid) {
  if (port_num != 1 || index < 0 || index >= kGidTableLen) {
    errno = EINVAL;
    return -1;
  }
  if (index == 0) {
    std::memcpy(gid->raw, ctx_of(context)->slot->port->gid().data(), 16);
  } else {
    std::memset(gid->raw, 0, 16);  // empty entry: zeros, as libibverbs reports them
  }
  return 0;
}

int _ibv_query_gid_ex(ibv_context* context, uint32_t port_num, uint32_t gid_index,
                      ibv_gid_entry* entry, uint32_t flags, size_t entry_size) {
  if (flags != 0 || port_num != 1 || gid_index >= uint32_t(kGidTableLen)) return EINVAL;
  if (gid_index != 0) return ENODATA;
  ibv_gid_entry e;
  gid_entry(ctx_of(context), &e);
  std::memcpy(entry, &e, entry_size < sizeof(e) ? entry_size : sizeof(e));
  return 0;
}

ssize_t _ibv_query_gid_table(ibv_context* context, ibv_gid_entry* entries, size_t max_entries,
                             uint32_t flags, size_t entry_size) {
  if (flags != 0 || entry_size < sizeof(ibv_gid_entry)) return -EINVAL;
  if (max_entries < 1) return -EINVAL;
  gid_entry(ctx_of(context), entries);
  return 1;
}

int ibv_query_gid_type(ibv_context* context, uint8_t port_num, unsigned int index,
                       ibv_gid_type_sysfs* type) {
  (void)context;
  if (port_num != 1 || index >= unsigned(kGidTableLen)) {
    errno = EINVAL;
    return -1;
  }
  // Empty entries report RoCE v1, as libibverbs does for them.
  *type = index == 0 ? IBV_GID_TYPE_SYSFS_ROCE_V2 : IBV_GID_TYPE_SYSFS_IB_ROCE_V1;
  return 0;
}

int ibv_query_pkey(ibv_context* context, uint8_t port_num, int index, __be16* pkey) {
  (void)context;
  if (port_num != 1 || index != 0) {
    errno = EINVAL;
    return -1;
  }
  *pkey = __be16(__builtin_bswap16(kDefaultPkey));
  return 0;
}

int ibv_get_pkey_index(ibv_context* context, uint8_t port_num, __be16 pkey) {
  __be16 p;
  if (ibv_query_pkey(context, port_num, 0, &p) != 0) return -1;
  return p == pkey ? 0 : -1;
}

int ibv_get_async_event(ibv_context* context, ibv_async_event* event) {
  return guard([&] { return get_async_event(context, event); }, -1);
}

void ibv_ack_async_event(ibv_async_event* event) {
  switch (event->event_type) {
    case IBV_EVENT_CQ_ERR: {
      ibv_cq* cq = event->element.cq;
      count_ack(&cq->mutex, &cq->cond, &cq->async_events_completed);
      break;
    }
    case IBV_EVENT_SRQ_ERR:
    case IBV_EVENT_SRQ_LIMIT_REACHED: {
      ibv_srq* srq = event->element.srq;
      count_ack(&srq->mutex, &srq->cond, &srq->events_completed);
      break;
    }
    case IBV_EVENT_QP_FATAL:
    case IBV_EVENT_QP_REQ_ERR:
    case IBV_EVENT_QP_ACCESS_ERR:
    case IBV_EVENT_COMM_EST:
    case IBV_EVENT_SQ_DRAINED:
    case IBV_EVENT_PATH_MIG:
    case IBV_EVENT_PATH_MIG_ERR:
    case IBV_EVENT_QP_LAST_WQE_REACHED: {
      ibv_qp* qp = event->element.qp;
      count_ack(&qp->mutex, &qp->cond, &qp->events_completed);
      break;
    }
    default:
      break;
  }
}

}  // extern "C"
