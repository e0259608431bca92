// Devices, event names, multicast (refused: droce has no RoCE multicast),
// and ECE (reported as unsupported, vendor ID 0, as librdmacm reads it).
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "rdmacm/internal.h"

using namespace droce::rdmacm;  // NOLINT: the C entry points below

extern "C" {

ibv_context** rdma_get_devices(int* num_devices) {
  Library* lib;
  if (Library::get(&lib) != 0) {
    if (num_devices != nullptr) *num_devices = 0;
    return nullptr;
  }
  const size_t n = lib->devices().size();
  auto** list = static_cast<ibv_context**>(std::calloc(n + 1, sizeof(ibv_context*)));
  if (list == nullptr) {
    errno = ENOMEM;
    return nullptr;
  }
  for (size_t i = 0; i < n; ++i) list[i] = lib->devices()[i].ctx;
  if (num_devices != nullptr) *num_devices = int(n);
  return list;
}

// The contexts stay open while the library is loaded (rdma-core does the same).
void rdma_free_devices(ibv_context** list) { std::free(list); }

const char* rdma_event_str(rdma_cm_event_type event) {
  switch (event) {
    case RDMA_CM_EVENT_ADDR_RESOLVED: return "RDMA_CM_EVENT_ADDR_RESOLVED";
    case RDMA_CM_EVENT_ADDR_ERROR: return "RDMA_CM_EVENT_ADDR_ERROR";
    case RDMA_CM_EVENT_ROUTE_RESOLVED: return "RDMA_CM_EVENT_ROUTE_RESOLVED";
    case RDMA_CM_EVENT_ROUTE_ERROR: return "RDMA_CM_EVENT_ROUTE_ERROR";
    case RDMA_CM_EVENT_CONNECT_REQUEST: return "RDMA_CM_EVENT_CONNECT_REQUEST";
    case RDMA_CM_EVENT_CONNECT_RESPONSE: return "RDMA_CM_EVENT_CONNECT_RESPONSE";
    case RDMA_CM_EVENT_CONNECT_ERROR: return "RDMA_CM_EVENT_CONNECT_ERROR";
    case RDMA_CM_EVENT_UNREACHABLE: return "RDMA_CM_EVENT_UNREACHABLE";
    case RDMA_CM_EVENT_REJECTED: return "RDMA_CM_EVENT_REJECTED";
    case RDMA_CM_EVENT_ESTABLISHED: return "RDMA_CM_EVENT_ESTABLISHED";
    case RDMA_CM_EVENT_DISCONNECTED: return "RDMA_CM_EVENT_DISCONNECTED";
    case RDMA_CM_EVENT_DEVICE_REMOVAL: return "RDMA_CM_EVENT_DEVICE_REMOVAL";
    case RDMA_CM_EVENT_MULTICAST_JOIN: return "RDMA_CM_EVENT_MULTICAST_JOIN";
    case RDMA_CM_EVENT_MULTICAST_ERROR: return "RDMA_CM_EVENT_MULTICAST_ERROR";
    case RDMA_CM_EVENT_ADDR_CHANGE: return "RDMA_CM_EVENT_ADDR_CHANGE";
    case RDMA_CM_EVENT_TIMEWAIT_EXIT: return "RDMA_CM_EVENT_TIMEWAIT_EXIT";
  }
  return "UNKNOWN EVENT";
}

int rdma_join_multicast(rdma_cm_id* id, sockaddr* addr, void* context) {
  (void)addr;
  (void)context;
  if (id == nullptr) return fail(EINVAL);
  return fail(ENOSYS);
}

int rdma_join_multicast_ex(rdma_cm_id* id, rdma_cm_join_mc_attr_ex* mc_join_attr, void* context) {
  (void)mc_join_attr;
  (void)context;
  if (id == nullptr) return fail(EINVAL);
  return fail(ENOSYS);
}

int rdma_leave_multicast(rdma_cm_id* id, sockaddr* addr) {
  (void)addr;
  if (id == nullptr) return fail(EINVAL);
  return fail(EADDRNOTAVAIL);  // never joined
}

int rdma_set_local_ece(rdma_cm_id* id, ibv_ece* ece) {
  if (id == nullptr || ece == nullptr || id->qp != nullptr) return fail(EINVAL);
  priv(id)->local_ece = *ece;
  return 0;
}

int rdma_get_remote_ece(rdma_cm_id* id, ibv_ece* ece) {
  if (id == nullptr || ece == nullptr) return fail(EINVAL);
  std::memset(ece, 0, sizeof(*ece));  // vendor ID 0: the peer offers no ECE
  return 0;
}

}  // extern "C"
