// Listening and the connection calls. The wire side (the CM agent on QP1)
// is not there yet: listen takes the port and the connection calls fail
// with ENOSYS, so programs end with a clean error, never a hang.
#include <cerrno>

#include "rdmacm/internal.h"

using namespace droce::rdmacm;  // NOLINT: the C entry points below

namespace {

constexpr int kMaxBacklog = 1024;  // the kernel's ucma max_backlog default

}  // namespace

extern "C" {

int rdma_listen(rdma_cm_id* id, int backlog) {
  if (id == nullptr) return fail(EINVAL);
  IdPriv* p = priv(id);
  std::lock_guard<std::mutex> lock(p->mu);
  if (p->state != IdState::kAddrBound) return fail(EINVAL);
  Library* lib;
  if (Library::get(&lib) != 0) return -1;
  if (lib->port_listening(uint16_t(id->ps), p->bound_port)) return fail(EADDRINUSE);
  lib->set_listening(uint16_t(id->ps), p->bound_port, true);
  // The kernel clamps backlog <= 0 or above max_backlog to max_backlog (ucma.c).
  p->backlog = backlog <= 0 || backlog > kMaxBacklog ? kMaxBacklog : backlog;
  p->state = IdState::kListen;
  return 0;
}

int rdma_connect(rdma_cm_id* id, rdma_conn_param* conn_param) {
  (void)conn_param;
  if (id == nullptr) return fail(EINVAL);
  return fail(ENOSYS);
}

int rdma_accept(rdma_cm_id* id, rdma_conn_param* conn_param) {
  (void)conn_param;
  if (id == nullptr) return fail(EINVAL);
  return fail(ENOSYS);
}

int rdma_reject(rdma_cm_id* id, const void* private_data, uint8_t private_data_len) {
  (void)private_data;
  (void)private_data_len;
  if (id == nullptr) return fail(EINVAL);
  return fail(ENOSYS);
}

int rdma_reject_ece(rdma_cm_id* id, const void* private_data, uint8_t private_data_len) {
  return rdma_reject(id, private_data, private_data_len);
}

int rdma_establish(rdma_cm_id* id) {
  if (id == nullptr) return fail(EINVAL);
  return fail(ENOSYS);
}

int rdma_disconnect(rdma_cm_id* id) {
  if (id == nullptr) return fail(EINVAL);
  return fail(ENOSYS);
}

int rdma_notify(rdma_cm_id* id, ibv_event_type event) {
  (void)event;
  if (id == nullptr) return fail(EINVAL);
  return fail(ENOSYS);
}

int rdma_get_request(rdma_cm_id* listen, rdma_cm_id** id) {
  if (listen == nullptr || id == nullptr) return fail(EINVAL);
  IdPriv* p = priv(listen);
  if (!p->sync || p->state != IdState::kListen) return fail(EINVAL);
  return fail(ENOSYS);
}

}  // extern "C"
