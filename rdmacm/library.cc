// The process's devices (opened once, kept open, as rdma-core's ucma_init)
// and the port table ids bind in (reference/rdma-cm.md 2.1 and pitfall 16).
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "rdmacm/internal.h"

namespace droce::rdmacm {

namespace {

constexpr uint16_t kEphemeralLow = 32768;   // Linux ip_local_port_range default
constexpr uint16_t kEphemeralHigh = 60999;

bool gid_ipv4(const ibv_gid& g, uint32_t* ip) {
  static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
  if (std::memcmp(g.raw, prefix, 12) != 0) return false;
  *ip = uint32_t(g.raw[12]) << 24 | uint32_t(g.raw[13]) << 16 | uint32_t(g.raw[14]) << 8 | g.raw[15];
  return true;
}

std::mutex g_init_mu;
Library* g_lib = nullptr;  // the process's one instance, kept to exit as rdma-core keeps its devices
int g_init_err = 0;

}  // namespace

int Library::get(Library** out) {
  std::lock_guard<std::mutex> lock(g_init_mu);
  if (g_lib != nullptr) {
    *out = g_lib;
    return 0;
  }
  if (g_init_err != 0) return fail(g_init_err);
  Library* lib = new Library;
  int n = 0;
  ibv_device** list = ibv_get_device_list(&n);
  for (int i = 0; list != nullptr && i < n; ++i) {
    ibv_context* ctx = ibv_open_device(list[i]);
    if (ctx == nullptr) continue;
    DeviceEntry d;
    d.ctx = ctx;
    ibv_gid gid;
    ibv_port_attr pattr;
    if (ibv_query_gid(ctx, 1, 0, &gid) != 0 || !gid_ipv4(gid, &d.ipv4) ||
        ibv_query_device(ctx, &d.attr) != 0) {
      ibv_close_device(ctx);
      continue;
    }
    if (ibv_query_port(ctx, 1, &pattr) == 0) d.active_mtu = pattr.active_mtu;
    lib->devices_.push_back(d);
  }
  if (list != nullptr) ibv_free_device_list(list);
  if (lib->devices_.empty()) {
    delete lib;
    // rdma-core reports ENODEV when no device is found (ucma_init).
    g_init_err = ENODEV;
    return fail(ENODEV);
  }
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lib->rng_ = uint64_t(ts.tv_nsec) ^ uint64_t(getpid()) << 32 ^ uint64_t(ts.tv_sec);
  g_lib = lib;
  *out = lib;
  return 0;
}

DeviceEntry* Library::device_for_ip(uint32_t ipv4) {
  for (DeviceEntry& d : devices_) {
    if (d.ipv4 == ipv4) return &d;
  }
  return nullptr;
}

DeviceEntry* Library::device_for_ctx(ibv_context* ctx) {
  for (DeviceEntry& d : devices_) {
    if (d.ctx == ctx) return &d;
  }
  return nullptr;
}

ibv_pd* Library::shared_pd(DeviceEntry* d) {
  std::lock_guard<std::mutex> lock(mu_);
  if (d->pd == nullptr) d->pd = ibv_alloc_pd(d->ctx);
  return d->pd;
}

int Library::take_port(uint16_t ps, uint16_t* port, bool reuseaddr) {
  std::lock_guard<std::mutex> lock(mu_);
  if (*port == 0) {
    // Random start, then the next free one, as the kernel's inet_csk_get_port.
    rng_ = rng_ * 6364136223846793005ull + 1442695040888963407ull;
    const uint32_t span = kEphemeralHigh - kEphemeralLow + 1;
    const uint32_t start = uint32_t(rng_ >> 33) % span;
    for (uint32_t i = 0; i < span; ++i) {
      const uint16_t p = uint16_t(kEphemeralLow + (start + i) % span);
      if (ports_.count(uint32_t(ps) << 16 | p) == 0) {
        ports_[uint32_t(ps) << 16 | p] = PortUse{1, reuseaddr, false};
        *port = p;
        return 0;
      }
    }
    return EADDRNOTAVAIL;
  }
  auto it = ports_.find(uint32_t(ps) << 16 | *port);
  if (it == ports_.end()) {
    ports_[uint32_t(ps) << 16 | *port] = PortUse{1, reuseaddr, false};
    return 0;
  }
  if (!it->second.reuseaddr || !reuseaddr || it->second.listening) return EADDRINUSE;
  ++it->second.holders;
  return 0;
}

void Library::release_port(uint16_t ps, uint16_t port) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = ports_.find(uint32_t(ps) << 16 | port);
  if (it == ports_.end()) return;
  if (--it->second.holders <= 0) ports_.erase(it);
}

bool Library::port_listening(uint16_t ps, uint16_t port) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = ports_.find(uint32_t(ps) << 16 | port);
  return it != ports_.end() && it->second.listening;
}

void Library::set_listening(uint16_t ps, uint16_t port, bool on) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = ports_.find(uint32_t(ps) << 16 | port);
  if (it != ports_.end()) it->second.listening = on;
}

}  // namespace droce::rdmacm
