// rdma_cm ids: creation and destruction (waiting for acked events), binding,
// address resolution (ARP through the droce port) and route resolution
// (a path synthesised as the kernel's cma_resolve_iboe_route: no SA),
// options, migration (reference/rdma-cm.md 1.3, 2.1, 2.5).
#include <arpa/inet.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <chrono>
#include <string>
#include <thread>
#include <unistd.h>

#include "rdmacm/internal.h"

namespace droce::rdmacm {

namespace {

constexpr uint8_t kIboePacketLifetime = 18;  // CMA_IBOE_PACKET_LIFETIME
constexpr uint8_t kDefaultHopLimit = 64;     // ip4_dst_hoplimit on a default route
constexpr int kDefaultResolveMs = 2000;      // a timeout of 0: what rping and cmatose pass
constexpr int kMaxResolveMs = 10000;

bool valid_ps(rdma_port_space ps) {
  return ps == RDMA_PS_TCP || ps == RDMA_PS_UDP || ps == RDMA_PS_IB || ps == RDMA_PS_IPOIB;
}

std::string ip_str(uint32_t ip) {
  char b[INET_ADDRSTRLEN];
  const in_addr a{htonl(ip)};
  inet_ntop(AF_INET, &a, b, sizeof(b));
  return b;
}

// Says which address the process has when a program names another one: the
// address rule of the drop-in (a droce port's address is its DROCE_IPV4).
void say_not_ours(const char* what, uint32_t ip, Library* lib) {
  std::string ours;
  for (const DeviceEntry& d : lib->devices()) ours += (ours.empty() ? "" : ", ") + ip_str(d.ipv4);
  std::fprintf(stderr, "librdmacm (droce): %s %s is not this process's droce address (DROCE_IPV4=%s)\n",
               what, ip_str(ip).c_str(), ours.c_str());
}

void set_src(IdPriv* p, uint32_t ip, uint16_t port) {
  sockaddr_in* s = &p->id.route.addr.src_sin;
  if (p->id.route.addr.src_addr.sa_family == AF_INET6) {
    // Keep the family the program chose; the address is v4-mapped.
    sockaddr_in6* s6 = &p->id.route.addr.src_sin6;
    s6->sin6_port = htons(port);
    std::memset(&s6->sin6_addr, 0, sizeof(s6->sin6_addr));
    if (ip != 0) {
      s6->sin6_addr.s6_addr[10] = s6->sin6_addr.s6_addr[11] = 0xFF;
      const uint32_t n = htonl(ip);
      std::memcpy(&s6->sin6_addr.s6_addr[12], &n, 4);
    }
    return;
  }
  std::memset(s, 0, sizeof(*s));
  s->sin_family = AF_INET;
  s->sin_port = htons(port);
  s->sin_addr.s_addr = htonl(ip);
}

// Attaches the id to the device (verbs, pd, port 1, source GID).
void attach_device(IdPriv* p, DeviceEntry* d, Library* lib) {
  p->id.verbs = d->ctx;
  p->id.pd = lib->shared_pd(d);
  p->id.port_num = 1;
  ipv4_gid(d->ipv4, &p->id.route.addr.addr.ibaddr.sgid);
  p->id.route.addr.addr.ibaddr.pkey = htons(0xFFFF);
}

// Binds to (ip, port) in host order; ip 0 is INADDR_ANY (no device yet).
int bind_locked(IdPriv* p, uint32_t ip, uint16_t port, sa_family_t family) {
  Library* lib;
  if (Library::get(&lib) != 0) return -1;
  DeviceEntry* d = nullptr;
  if (ip != 0) {
    d = lib->device_for_ip(ip);
    if (d == nullptr) {
      say_not_ours("bind address", ip, lib);
      return fail(EADDRNOTAVAIL);
    }
  }
  const int err = lib->take_port(uint16_t(p->id.ps), &port, p->opt.reuseaddr);
  if (err != 0) return fail(err);
  p->bound_port = port;
  p->holds_port = true;
  p->id.route.addr.src_addr.sa_family = family;
  set_src(p, ip, port);
  if (d != nullptr) attach_device(p, d, lib);
  p->state = IdState::kAddrBound;
  return 0;
}

void resolve_addr_async(IdPriv* p, uint32_t dst_ip, int timeout_ms) {
  Library* lib;
  Library::get(&lib);
  DeviceEntry* d = lib->device_for_ctx(p->id.verbs);
  int status = 0;
  if (dst_ip != d->ipv4) {
    ibv_ah_attr ah{};
    ah.is_global = 1;
    ah.port_num = 1;
    ah.grh.sgid_index = 0;
    ipv4_gid(dst_ip, &ah.grh.dgid);
    uint8_t mac[6];
    uint16_t vid;
    // The port's ARP gives up after its requests; like the kernel's
    // neighbour probes, ask again until the program's timeout has passed
    // (a peer whose port is coming up answers the next round).
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      if (ibv_resolve_eth_l2_from_gid(d->ctx, &ah, mac, &vid) == 0) break;
      if (std::chrono::steady_clock::now() >= end) {
        status = -ETIMEDOUT;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  {
    std::lock_guard<std::mutex> lock(p->mu);
    p->state = status == 0 ? IdState::kAddrResolved : IdState::kAddrBound;
  }
  post_event(p, status == 0 ? RDMA_CM_EVENT_ADDR_RESOLVED : RDMA_CM_EVENT_ADDR_ERROR, status, nullptr, 0,
             0);
  std::lock_guard<std::mutex> lock(p->mu);
  --p->async_busy;
  p->cv.notify_all();
}

}  // namespace

bool sockaddr_ipv4(const sockaddr* sa, uint32_t* ip, uint16_t* port) {
  if (sa == nullptr) return false;
  if (sa->sa_family == AF_INET) {
    const sockaddr_in* s = reinterpret_cast<const sockaddr_in*>(sa);
    *ip = ntohl(s->sin_addr.s_addr);
    *port = ntohs(s->sin_port);
    return true;
  }
  if (sa->sa_family == AF_INET6) {
    const sockaddr_in6* s = reinterpret_cast<const sockaddr_in6*>(sa);
    const uint8_t* a = s->sin6_addr.s6_addr;
    static const uint8_t zero[16] = {};
    if (std::memcmp(a, zero, 16) == 0) {
      *ip = 0;
    } else if (IN6_IS_ADDR_V4MAPPED(&s->sin6_addr)) {
      *ip = uint32_t(a[12]) << 24 | uint32_t(a[13]) << 16 | uint32_t(a[14]) << 8 | a[15];
    } else {
      return false;  // droce ports have IPv4 addresses only
    }
    *port = ntohs(s->sin6_port);
    return true;
  }
  return false;
}

socklen_t sockaddr_len(const sockaddr* sa) {
  if (sa == nullptr) return 0;
  switch (sa->sa_family) {
    case AF_INET: return sizeof(sockaddr_in);
    case AF_INET6: return sizeof(sockaddr_in6);
    default: return 0;
  }
}

void ipv4_gid(uint32_t ip, ibv_gid* gid) {
  std::memset(gid, 0, sizeof(*gid));
  gid->raw[10] = gid->raw[11] = 0xFF;
  gid->raw[12] = uint8_t(ip >> 24);
  gid->raw[13] = uint8_t(ip >> 16);
  gid->raw[14] = uint8_t(ip >> 8);
  gid->raw[15] = uint8_t(ip);
}

}  // namespace droce::rdmacm

using namespace droce::rdmacm;  // NOLINT: the C entry points below

extern "C" {

int rdma_create_id(rdma_event_channel* channel, rdma_cm_id** id, void* context, rdma_port_space ps) {
  if (id == nullptr || !valid_ps(ps)) return fail(EINVAL);
  Library* lib;
  if (Library::get(&lib) != 0) return -1;
  IdPriv* p = new IdPriv;
  if (channel == nullptr) {
    p->own_channel = new_channel();
    if (p->own_channel == nullptr) {
      delete p;
      return -1;
    }
    p->sync = true;
    channel = &p->own_channel->ch;
  }
  p->id.channel = channel;
  p->id.context = context;
  p->id.ps = ps;
  p->id.qp_type = (ps == RDMA_PS_UDP || ps == RDMA_PS_IPOIB) ? IBV_QPT_UD : IBV_QPT_RC;
  p->local_ece.vendor_id = 0;
  *id = &p->id;
  return 0;
}

int rdma_destroy_id(rdma_cm_id* id) {
  if (id == nullptr) return fail(EINVAL);
  IdPriv* p = priv(id);
  if (p->sync && id->event != nullptr) {
    rdma_ack_cm_event(id->event);
    id->event = nullptr;
  }
  bool was_listening;
  {
    std::unique_lock<std::mutex> lock(p->mu);
    was_listening = p->state == IdState::kListen;
    p->state = IdState::kDestroying;
    // Address resolutions finish first (they post to this id).
    p->cv.wait(lock, [p] { return p->async_busy == 0; });
  }
  // A request not yet taken may sit on its listener's channel (sync listeners).
  Channel* listener_ch = p->listener != nullptr ? chan(p->listener->id.channel) : nullptr;
  cm_release(p);  // no event for this id after this
  kill_events(chan(id->channel), p);
  if (listener_ch != nullptr) kill_events(listener_ch, p);
  {
    // Every event already delivered must be acked (rdma-core ucma_destroy_kern_id).
    std::unique_lock<std::mutex> lock(p->mu);
    p->cv.wait(lock, [p] { return p->events_completed >= p->events_reported; });
  }
  Library* lib;
  if (p->holds_port && Library::get(&lib) == 0) {
    if (was_listening) lib->set_listening(uint16_t(id->ps), p->bound_port, false);
    lib->release_port(uint16_t(id->ps), p->bound_port);
  }
  if (p->own_channel != nullptr) free_channel(p->own_channel);
  delete p;
  return 0;
}

int rdma_bind_addr(rdma_cm_id* id, sockaddr* addr) {
  if (id == nullptr || addr == nullptr) return fail(EINVAL);
  IdPriv* p = priv(id);
  uint32_t ip;
  uint16_t port;
  if (!sockaddr_ipv4(addr, &ip, &port)) return fail(addr->sa_family == AF_IB ? EAFNOSUPPORT : EADDRNOTAVAIL);
  std::lock_guard<std::mutex> lock(p->mu);
  if (p->state != IdState::kIdle) return fail(EINVAL);
  return bind_locked(p, ip, port, addr->sa_family);
}

int rdma_resolve_addr(rdma_cm_id* id, sockaddr* src_addr, sockaddr* dst_addr, int timeout_ms) {
  if (id == nullptr || dst_addr == nullptr) return fail(EINVAL);
  IdPriv* p = priv(id);
  Library* lib;
  if (Library::get(&lib) != 0) return -1;
  uint32_t dst_ip;
  uint16_t dst_port;
  if (!sockaddr_ipv4(dst_addr, &dst_ip, &dst_port)) return fail(EAFNOSUPPORT);
  {
    std::lock_guard<std::mutex> lock(p->mu);
    if (p->state == IdState::kIdle) {
      uint32_t ip = 0;
      uint16_t port = 0;
      sa_family_t family = dst_addr->sa_family;
      if (src_addr != nullptr) {
        if (!sockaddr_ipv4(src_addr, &ip, &port)) return fail(EAFNOSUPPORT);
        family = src_addr->sa_family;
      }
      if (bind_locked(p, ip, port, family) != 0) return -1;
    } else if (p->state != IdState::kAddrBound) {
      return fail(EINVAL);
    }
    // The source is the droce port's address (one port, no routing table).
    if (id->verbs == nullptr) attach_device(p, &lib->devices().front(), lib);
    DeviceEntry* d = lib->device_for_ctx(id->verbs);
    set_src(p, d->ipv4, p->bound_port);
    std::memset(&id->route.addr.dst_storage, 0, sizeof(id->route.addr.dst_storage));
    std::memcpy(&id->route.addr.dst_storage, dst_addr, sockaddr_len(dst_addr));
    ipv4_gid(dst_ip, &id->route.addr.addr.ibaddr.dgid);
    p->state = IdState::kAddrQuery;
    ++p->async_busy;
  }
  const int t = timeout_ms <= 0 ? kDefaultResolveMs : timeout_ms > kMaxResolveMs ? kMaxResolveMs : timeout_ms;
  std::thread(resolve_addr_async, p, dst_ip, t).detach();
  return p->sync ? complete(p) : 0;
}

int rdma_resolve_route(rdma_cm_id* id, int timeout_ms) {
  (void)timeout_ms;  // no SA query: the route is made from the address (RoCE)
  if (id == nullptr) return fail(EINVAL);
  IdPriv* p = priv(id);
  {
    std::lock_guard<std::mutex> lock(p->mu);
    if (p->state != IdState::kAddrResolved) return fail(EINVAL);
    Library* lib;
    Library::get(&lib);
    DeviceEntry* d = lib->device_for_ctx(id->verbs);
    ibv_sa_path_rec& r = p->path;
    r = ibv_sa_path_rec{};
    r.sgid = id->route.addr.addr.ibaddr.sgid;
    r.dgid = id->route.addr.addr.ibaddr.dgid;
    r.hop_limit = kDefaultHopLimit;
    r.traffic_class = p->opt.tos;
    r.reversible = 1;
    r.numb_path = 1;
    r.pkey = htons(0xFFFF);
    r.sl = 0;
    r.mtu_selector = 2;  // exactly
    r.mtu = uint8_t(d->active_mtu);
    r.rate_selector = 2;
    r.rate = 0;
    r.packet_life_time_selector = 2;
    r.packet_life_time =
        p->opt.ack_timeout_set && p->opt.ack_timeout > 0 ? uint8_t(p->opt.ack_timeout - 1) : kIboePacketLifetime;
    // (sport * 31 + dport) & 0xFFFFF, the flow label rdma_cm gives RoCE paths.
    uint32_t sip, dip;
    uint16_t sport, dport;
    sockaddr_ipv4(&id->route.addr.src_addr, &sip, &sport);
    sockaddr_ipv4(&id->route.addr.dst_addr, &dip, &dport);
    r.flow_label = htonl((uint32_t(sport) * 31 + dport) & 0xFFFFF);
    id->route.path_rec = &p->path;
    id->route.num_paths = 1;
    p->state = IdState::kRouteResolved;
  }
  post_event(p, RDMA_CM_EVENT_ROUTE_RESOLVED, 0, nullptr, 0, 0);
  return p->sync ? complete(p) : 0;
}

int rdma_set_option(rdma_cm_id* id, int level, int optname, void* optval, size_t optlen) {
  if (id == nullptr || optval == nullptr) return fail(EINVAL);
  IdPriv* p = priv(id);
  std::lock_guard<std::mutex> lock(p->mu);
  if (level == RDMA_OPTION_IB) return fail(optname == RDMA_OPTION_IB_PATH ? ENOSYS : EINVAL);
  if (level != RDMA_OPTION_ID) return fail(EINVAL);
  switch (optname) {
    case RDMA_OPTION_ID_TOS:
      if (optlen != sizeof(uint8_t)) return fail(EINVAL);
      p->opt.tos = *static_cast<uint8_t*>(optval);
      p->opt.tos_set = true;
      return 0;
    case RDMA_OPTION_ID_REUSEADDR:
      if (optlen != sizeof(int)) return fail(EINVAL);
      // As the kernel: only before the id holds an address.
      if (p->state != IdState::kIdle) return fail(EINVAL);
      p->opt.reuseaddr = *static_cast<int*>(optval) != 0;
      return 0;
    case RDMA_OPTION_ID_AFONLY:
      if (optlen != sizeof(int)) return fail(EINVAL);
      if (p->state != IdState::kIdle) return fail(EINVAL);
      p->opt.afonly = *static_cast<int*>(optval) != 0;
      return 0;
    case RDMA_OPTION_ID_ACK_TIMEOUT:
      if (optlen != sizeof(uint8_t)) return fail(EINVAL);
      p->opt.ack_timeout = *static_cast<uint8_t*>(optval);
      p->opt.ack_timeout_set = true;
      return 0;
  }
  return fail(ENOSYS);
}

int rdma_migrate_id(rdma_cm_id* id, rdma_event_channel* channel) {
  if (id == nullptr) return fail(EINVAL);
  IdPriv* p = priv(id);
  Channel* fresh = nullptr;
  if (channel == nullptr) {
    fresh = new_channel();
    if (fresh == nullptr) return -1;
    channel = &fresh->ch;
  }
  Channel* old = chan(id->channel);
  {
    // Events already delivered on the old channel are acked first (rdma-core waits the same way).
    std::unique_lock<std::mutex> lock(p->mu);
    p->cv.wait(lock, [p] { return p->events_completed >= p->events_reported; });
  }
  if (old != chan(channel)) {
    // Undelivered events move with the id, in order.
    std::vector<Event*> moved;
    {
      std::lock_guard<std::mutex> lock(old->mu);
      for (Event* e : old->queue) {
        if (e->owner == p && !e->dead) {
          Event* copy = new Event(*e);
          if (copy->event.param.conn.private_data != nullptr) copy->event.param.conn.private_data = copy->private_data;
          moved.push_back(copy);
          e->dead = true;
        }
      }
    }
    Channel* c = chan(channel);
    std::lock_guard<std::mutex> lock(c->mu);
    for (Event* e : moved) {
      c->queue.push_back(e);
      const uint64_t one = 1;
      (void)!write(c->ch.fd, &one, sizeof(one));
    }
  }
  Channel* old_own = p->own_channel;
  p->own_channel = fresh;
  p->sync = fresh != nullptr;
  id->channel = channel;
  if (old_own != nullptr && old_own != fresh) free_channel(old_own);
  return 0;
}

uint16_t rdma_get_src_port(rdma_cm_id* id) {
  if (id == nullptr) return 0;
  const sockaddr* sa = &id->route.addr.src_addr;
  if (sa->sa_family == AF_INET) return reinterpret_cast<const sockaddr_in*>(sa)->sin_port;
  if (sa->sa_family == AF_INET6) return reinterpret_cast<const sockaddr_in6*>(sa)->sin6_port;
  return 0;
}

uint16_t rdma_get_dst_port(rdma_cm_id* id) {
  if (id == nullptr) return 0;
  const sockaddr* sa = &id->route.addr.dst_addr;
  if (sa->sa_family == AF_INET) return reinterpret_cast<const sockaddr_in*>(sa)->sin_port;
  if (sa->sa_family == AF_INET6) return reinterpret_cast<const sockaddr_in6*>(sa)->sin6_port;
  return 0;
}

}  // extern "C"
