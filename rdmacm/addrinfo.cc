// rdma_getaddrinfo on top of getaddrinfo(3) (no ibacm: RoCE needs no path
// query), and the endpoint helpers rdma_create_ep / rdma_destroy_ep
// (rdma-core v44 addrinfo.c and cma.c behaviour; reference/rdma-cm.md 1.4).
#include <netdb.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "rdmacm/internal.h"

using namespace droce::rdmacm;  // NOLINT: the C entry points below

namespace {

constexpr int kEpResolveMs = 2000;  // what rdma-core's rdma_create_ep waits

sockaddr* copy_sockaddr(const sockaddr* sa, socklen_t len) {
  auto* out = static_cast<sockaddr*>(std::malloc(len));
  if (out != nullptr) std::memcpy(out, sa, len);
  return out;
}

}  // namespace

extern "C" {

void rdma_freeaddrinfo(rdma_addrinfo* res) {
  while (res != nullptr) {
    rdma_addrinfo* next = res->ai_next;
    std::free(res->ai_src_addr);
    std::free(res->ai_dst_addr);
    std::free(res->ai_src_canonname);
    std::free(res->ai_dst_canonname);
    std::free(res->ai_route);
    std::free(res->ai_connect);
    std::free(res);
    res = next;
  }
}

int rdma_getaddrinfo(const char* node, const char* service, const rdma_addrinfo* hints, rdma_addrinfo** res) {
  if (res == nullptr || (node == nullptr && service == nullptr)) {
    errno = EINVAL;
    return EAI_NONAME;
  }
  if (hints != nullptr && hints->ai_family == AF_IB) {
    errno = EAFNOSUPPORT;
    return EAI_FAMILY;
  }
  addrinfo ai_hints{};
  const int flags = hints != nullptr ? hints->ai_flags : 0;
  if (flags & RAI_PASSIVE) ai_hints.ai_flags |= AI_PASSIVE;
  if (flags & RAI_NUMERICHOST) ai_hints.ai_flags |= AI_NUMERICHOST;
  ai_hints.ai_family = hints != nullptr && hints->ai_family != 0 ? hints->ai_family : AF_UNSPEC;
  ai_hints.ai_socktype = SOCK_STREAM;  // one result per address
  addrinfo* ai = nullptr;
  const int ret = getaddrinfo(node, service, &ai_hints, &ai);
  if (ret != 0) return ret;
  // droce ports have IPv4 addresses: take the first IPv4 result when there is one.
  const addrinfo* pick = ai;
  for (const addrinfo* a = ai; a != nullptr; a = a->ai_next) {
    if (a->ai_family == AF_INET) {
      pick = a;
      break;
    }
  }
  auto* rai = static_cast<rdma_addrinfo*>(std::calloc(1, sizeof(rdma_addrinfo)));
  if (rai == nullptr) {
    freeaddrinfo(ai);
    return EAI_MEMORY;
  }
  rai->ai_flags = flags;
  rai->ai_family = pick->ai_family;
  rai->ai_qp_type = hints != nullptr && hints->ai_qp_type != 0 ? hints->ai_qp_type : IBV_QPT_RC;
  if (hints != nullptr && hints->ai_port_space != 0) {
    rai->ai_port_space = hints->ai_port_space;
  } else {
    rai->ai_port_space = rai->ai_qp_type == IBV_QPT_UD ? RDMA_PS_UDP : RDMA_PS_TCP;
  }
  sockaddr* addr = copy_sockaddr(pick->ai_addr, pick->ai_addrlen);
  if (flags & RAI_PASSIVE) {
    rai->ai_src_addr = addr;
    rai->ai_src_len = pick->ai_addrlen;
  } else {
    rai->ai_dst_addr = addr;
    rai->ai_dst_len = pick->ai_addrlen;
    if (hints != nullptr && hints->ai_src_addr != nullptr && hints->ai_src_len > 0) {
      rai->ai_src_addr = copy_sockaddr(hints->ai_src_addr, hints->ai_src_len);
      rai->ai_src_len = hints->ai_src_len;
    }
  }
  freeaddrinfo(ai);
  if (addr == nullptr) {
    rdma_freeaddrinfo(rai);
    return EAI_MEMORY;
  }
  *res = rai;
  return 0;
}

int rdma_create_ep(rdma_cm_id** id, rdma_addrinfo* res, ibv_pd* pd, ibv_qp_init_attr* qp_init_attr) {
  if (id == nullptr || res == nullptr) return fail(EINVAL);
  rdma_cm_id* cm_id = nullptr;
  if (rdma_create_id(nullptr, &cm_id, nullptr, static_cast<rdma_port_space>(res->ai_port_space)) != 0) return -1;
  cm_id->qp_type = static_cast<ibv_qp_type>(res->ai_qp_type);
  int r;
  if (res->ai_flags & RAI_PASSIVE) {
    r = rdma_bind_addr(cm_id, res->ai_src_addr);
    if (r == 0 && qp_init_attr != nullptr) {
      // rdma_get_request creates the QP of each accepted id from these.
      priv(cm_id)->ep_qp_attr = *qp_init_attr;
      priv(cm_id)->ep_qp_attr.qp_type = static_cast<ibv_qp_type>(res->ai_qp_type);
      priv(cm_id)->ep_pd = pd;
      priv(cm_id)->ep_has_qp_attr = true;
    }
  } else {
    r = rdma_resolve_addr(cm_id, res->ai_src_addr, res->ai_dst_addr, kEpResolveMs);
    if (r == 0) r = rdma_resolve_route(cm_id, kEpResolveMs);
    if (r == 0 && qp_init_attr != nullptr) {
      // The endpoint's QP type is the address info's (rdma-core does the same).
      qp_init_attr->qp_type = static_cast<ibv_qp_type>(res->ai_qp_type);
      r = rdma_create_qp(cm_id, pd, qp_init_attr);
    }
  }
  if (r != 0) {
    const int e = errno;
    rdma_destroy_ep(cm_id);
    return fail(e);
  }
  *id = cm_id;
  return 0;
}

void rdma_destroy_ep(rdma_cm_id* id) {
  if (id == nullptr) return;
  if (id->qp != nullptr) rdma_destroy_qp(id);
  if (id->srq != nullptr) rdma_destroy_srq(id);
  rdma_destroy_id(id);
}

}  // extern "C"
