// QPs, CQs and SRQs on rdma_cm ids, and the QP attributes each transition
// takes, computed as the kernel's cma_ib_init_qp_attr / ib_cm_init_qp_attr
// and rdma-core's ucma_init_conn_qp / ucma_init_ud_qp (reference/rdma-cm.md 2.2, 2.3).
#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "rdmacm/internal.h"

namespace droce::rdmacm {

namespace {

// Completion channels and CQs of their own, with the id as CQ context:
// rdma_get_send_comp / rdma_get_recv_comp check both.
int create_cqs(IdPriv* p, uint32_t send_size, uint32_t recv_size) {
  rdma_cm_id* id = &p->id;
  if (recv_size != 0) {
    p->own_recv_channel = ibv_create_comp_channel(id->verbs);
    if (p->own_recv_channel == nullptr) return -1;
    p->own_recv_cq = ibv_create_cq(id->verbs, int(std::max(recv_size, 1u)), id, p->own_recv_channel, 0);
    if (p->own_recv_cq == nullptr) return -1;
    id->recv_cq_channel = p->own_recv_channel;
    id->recv_cq = p->own_recv_cq;
  }
  if (send_size != 0) {
    p->own_send_channel = ibv_create_comp_channel(id->verbs);
    if (p->own_send_channel == nullptr) return -1;
    p->own_send_cq = ibv_create_cq(id->verbs, int(std::max(send_size, 1u)), id, p->own_send_channel, 0);
    if (p->own_send_cq == nullptr) return -1;
    id->send_cq_channel = p->own_send_channel;
    id->send_cq = p->own_send_cq;
  }
  return 0;
}

void destroy_cqs(IdPriv* p) {
  rdma_cm_id* id = &p->id;
  if (p->own_send_cq != nullptr) ibv_destroy_cq(p->own_send_cq);
  if (p->own_send_channel != nullptr) ibv_destroy_comp_channel(p->own_send_channel);
  if (p->own_recv_cq != nullptr) ibv_destroy_cq(p->own_recv_cq);
  if (p->own_recv_channel != nullptr) ibv_destroy_comp_channel(p->own_recv_channel);
  if (id->send_cq == p->own_send_cq) id->send_cq = nullptr, id->send_cq_channel = nullptr;
  if (id->recv_cq == p->own_recv_cq) id->recv_cq = nullptr, id->recv_cq_channel = nullptr;
  p->own_send_cq = p->own_recv_cq = nullptr;
  p->own_send_channel = p->own_recv_channel = nullptr;
}

// rdma-core ucma_init_ud_qp: INIT (Q_Key), RTR, RTS with sq_psn 0.
int init_ud_qp(IdPriv* p, ibv_qp* qp) {
  ibv_qp_attr a{};
  int mask = 0;
  a.qp_state = IBV_QPS_INIT;
  if (rdma_init_qp_attr(&p->id, &a, &mask) != 0) return -1;
  if (int e = ibv_modify_qp(qp, &a, mask); e != 0) return fail(e);
  a = ibv_qp_attr{};
  a.qp_state = IBV_QPS_RTR;
  if (int e = ibv_modify_qp(qp, &a, IBV_QP_STATE); e != 0) return fail(e);
  a.qp_state = IBV_QPS_RTS;
  a.sq_psn = 0;
  if (int e = ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_SQ_PSN); e != 0) return fail(e);
  return 0;
}

int init_conn_qp(IdPriv* p, ibv_qp* qp) {
  ibv_qp_attr a{};
  int mask = 0;
  a.qp_state = IBV_QPS_INIT;
  if (rdma_init_qp_attr(&p->id, &a, &mask) != 0) return -1;
  if (int e = ibv_modify_qp(qp, &a, mask); e != 0) return fail(e);
  return 0;
}

}  // namespace

}  // namespace droce::rdmacm

using namespace droce::rdmacm;  // NOLINT: the C entry points below

extern "C" {

int rdma_create_qp_ex(rdma_cm_id* id, ibv_qp_init_attr_ex* attr) {
  if (id == nullptr || attr == nullptr) return fail(EINVAL);
  IdPriv* p = priv(id);
  if (id->verbs == nullptr) return fail(EINVAL);  // no device until bound or resolved
  if (id->qp != nullptr) return fail(EINVAL);
  if ((attr->comp_mask & IBV_QP_INIT_ATTR_PD) && attr->pd != nullptr) {
    if (attr->pd->context != id->verbs) return fail(EINVAL);
  } else {
    attr->pd = id->pd;
    attr->comp_mask |= IBV_QP_INIT_ATTR_PD;
  }
  const bool made_cqs = attr->send_cq == nullptr || (attr->recv_cq == nullptr && attr->srq == nullptr);
  if (made_cqs) {
    if (create_cqs(p, attr->send_cq ? 0 : attr->cap.max_send_wr,
                   attr->recv_cq || attr->srq ? 0 : attr->cap.max_recv_wr) != 0) {
      const int e = errno;
      destroy_cqs(p);
      return fail(e);
    }
    if (attr->send_cq == nullptr) attr->send_cq = id->send_cq;
    if (attr->recv_cq == nullptr && attr->srq == nullptr) attr->recv_cq = id->recv_cq;
  }
  if (attr->srq == nullptr && id->srq != nullptr) attr->srq = id->srq;
  ibv_qp* qp = ibv_create_qp_ex(id->verbs, attr);
  if (qp == nullptr) {
    const int e = errno;
    destroy_cqs(p);
    return fail(e);
  }
  id->qp_type = qp->qp_type;
  const int r = qp->qp_type == IBV_QPT_UD ? init_ud_qp(p, qp) : init_conn_qp(p, qp);
  if (r != 0) {
    const int e = errno;
    ibv_destroy_qp(qp);
    destroy_cqs(p);
    return fail(e);
  }
  id->qp = qp;
  return 0;
}

int rdma_create_qp(rdma_cm_id* id, ibv_pd* pd, ibv_qp_init_attr* qp_init_attr) {
  if (id == nullptr || qp_init_attr == nullptr) return fail(EINVAL);
  if (pd != nullptr && pd->context != id->verbs) return fail(EINVAL);
  ibv_qp_init_attr_ex ex{};
  std::memcpy(&ex, qp_init_attr, sizeof(*qp_init_attr));
  ex.comp_mask = IBV_QP_INIT_ATTR_PD;
  ex.pd = pd != nullptr ? pd : id->pd;
  const int r = rdma_create_qp_ex(id, &ex);
  if (r == 0) {
    // The caller sees the capabilities and CQs the QP got.
    qp_init_attr->cap = ex.cap;
    qp_init_attr->send_cq = ex.send_cq;
    qp_init_attr->recv_cq = ex.recv_cq;
  }
  return r;
}

void rdma_destroy_qp(rdma_cm_id* id) {
  // qperf 0.4.11 calls this on a listening id without a QP.
  if (id == nullptr) return;
  if (id->qp != nullptr) ibv_destroy_qp(id->qp);
  id->qp = nullptr;
  destroy_cqs(priv(id));
}

int rdma_init_qp_attr(rdma_cm_id* id, ibv_qp_attr* qp_attr, int* qp_attr_mask) {
  if (id == nullptr || qp_attr == nullptr || qp_attr_mask == nullptr) return fail(EINVAL);
  IdPriv* p = priv(id);
  std::lock_guard<std::mutex> lock(p->mu);
  const ConnParams& c = p->conn;
  const ibv_qp_state want = qp_attr->qp_state;
  std::memset(qp_attr, 0, sizeof(*qp_attr));
  qp_attr->qp_state = want;
  switch (want) {
    case IBV_QPS_INIT:
      qp_attr->pkey_index = 0;
      qp_attr->port_num = id->port_num != 0 ? id->port_num : 1;
      *qp_attr_mask = IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT;
      if (id->qp_type == IBV_QPT_UD) {
        qp_attr->qkey = RDMA_UDP_QKEY;
        *qp_attr_mask |= IBV_QP_QKEY;
      } else {
        // Once the CM has a connection: REMOTE_WRITE, and READ/ATOMIC only with responder resources.
        if (c.valid) {
          qp_attr->qp_access_flags = IBV_ACCESS_REMOTE_WRITE;
          if (c.responder_resources > 0) qp_attr->qp_access_flags |= IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC;
        }
        *qp_attr_mask |= IBV_QP_ACCESS_FLAGS;
      }
      return 0;
    case IBV_QPS_RTR:
      if (!c.valid || id->qp_type == IBV_QPT_UD) return fail(EINVAL);
      qp_attr->path_mtu = c.path_mtu;
      qp_attr->dest_qp_num = c.remote_qpn;
      qp_attr->rq_psn = c.local_psn;
      qp_attr->max_dest_rd_atomic = c.responder_resources;
      qp_attr->min_rnr_timer = 0;  // 655.36 ms, as ib_cm leaves it
      qp_attr->ah_attr.is_global = 1;
      ipv4_gid(c.remote_ipv4, &qp_attr->ah_attr.grh.dgid);
      qp_attr->ah_attr.grh.sgid_index = 0;
      qp_attr->ah_attr.grh.hop_limit = c.hop_limit;
      qp_attr->ah_attr.grh.traffic_class = c.traffic_class;
      qp_attr->ah_attr.grh.flow_label = c.flow_label;
      qp_attr->ah_attr.port_num = id->port_num != 0 ? id->port_num : 1;
      *qp_attr_mask = IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
                      IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER;
      return 0;
    case IBV_QPS_RTS:
      if (!c.valid || id->qp_type == IBV_QPT_UD) return fail(EINVAL);
      qp_attr->sq_psn = c.remote_psn;
      qp_attr->timeout = p->opt.ack_timeout_set ? p->opt.ack_timeout : c.ack_timeout;
      qp_attr->retry_cnt = c.retry_count;
      qp_attr->rnr_retry = c.rnr_retry_count;
      qp_attr->max_rd_atomic = c.initiator_depth;
      *qp_attr_mask = IBV_QP_STATE | IBV_QP_SQ_PSN | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
                      IBV_QP_MAX_QP_RD_ATOMIC;
      return 0;
    default:
      return fail(EINVAL);
  }
}

int rdma_create_srq_ex(rdma_cm_id* id, ibv_srq_init_attr_ex* attr) {
  if (id == nullptr || attr == nullptr || id->verbs == nullptr) return fail(EINVAL);
  if (id->srq != nullptr) return fail(EINVAL);
  if (!(attr->comp_mask & IBV_SRQ_INIT_ATTR_TYPE)) {
    attr->srq_type = IBV_SRQT_BASIC;
    attr->comp_mask |= IBV_SRQ_INIT_ATTR_TYPE;
  }
  if (attr->srq_type != IBV_SRQT_BASIC) return fail(EOPNOTSUPP);  // droce has no XRC
  ibv_pd* pd = (attr->comp_mask & IBV_SRQ_INIT_ATTR_PD) && attr->pd != nullptr ? attr->pd : id->pd;
  ibv_srq_init_attr basic{};
  basic.srq_context = attr->srq_context;
  basic.attr = attr->attr;
  ibv_srq* srq = ibv_create_srq(pd, &basic);
  if (srq == nullptr) return -1;
  attr->attr = basic.attr;
  id->srq = srq;
  return 0;
}

int rdma_create_srq(rdma_cm_id* id, ibv_pd* pd, ibv_srq_init_attr* attr) {
  if (id == nullptr || attr == nullptr) return fail(EINVAL);
  ibv_srq_init_attr_ex ex{};
  ex.srq_context = attr->srq_context;
  ex.attr = attr->attr;
  ex.comp_mask = IBV_SRQ_INIT_ATTR_TYPE | IBV_SRQ_INIT_ATTR_PD;
  ex.srq_type = IBV_SRQT_BASIC;
  ex.pd = pd != nullptr ? pd : id->pd;
  const int r = rdma_create_srq_ex(id, &ex);
  if (r == 0) attr->attr = ex.attr;
  return r;
}

void rdma_destroy_srq(rdma_cm_id* id) {
  if (id == nullptr || id->srq == nullptr) return;
  ibv_destroy_srq(id->srq);
  id->srq = nullptr;
}

}  // extern "C"
