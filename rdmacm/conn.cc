// Connections: rdma_listen / connect / accept / reject / establish /
// disconnect / get_request over the CM agent, the QP transitions librdmacm
// makes around them (ucma_modify_qp_rtr / rts), and the agent's reports
// turned into rdma_cm events as the kernel's cma.c reports them
// (reference/rdma-cm.md 2.3, 2.4, 3.4, 4).
#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "nic/cm/ip_hdr.h"
#include "rdmacm/cm.h"

namespace droce::rdmacm {

namespace {

constexpr int kMaxBacklog = 1024;  // the kernel's ucma max_backlog default
// Event private-data lengths are the messages' full sizes (cma.c).
constexpr uint8_t kReqUserLen = cm::kReqUserPrivateLen;         // 56
constexpr uint8_t kSidrReqUserLen = cm::kSidrReqUserPrivateLen;  // 180
constexpr uint8_t kRepLen = cm::kRepPrivateLen;                 // 196
constexpr uint8_t kRejLen = cm::kRejPrivateLen;                 // 148
constexpr uint8_t kSidrRepLen = cm::kSidrRepPrivateLen;         // 136

uint32_t random_psn() {
  uint32_t v = 0;
  const int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    if (read(fd, &v, sizeof(v)) != sizeof(v)) v = uint32_t(CmService::now());
    close(fd);
  } else {
    v = uint32_t(CmService::now());
  }
  return v & 0xFFFFFF;
}

// Linux cm_ack_timeout: the QP's ACK timeout from the peer's CA ACK delay
// and the path's packet life time (2 * PLT, rounded as IBTA 12.7.34 asks).
uint8_t cm_ack_timeout(uint8_t ca_ack_delay, uint8_t packet_life_time) {
  int t = packet_life_time + 1;
  if (t >= ca_ack_delay) {
    t += ca_ack_delay >= t - 1 ? 1 : 0;
  } else {
    t = ca_ack_delay + (t >= ca_ack_delay - 1 ? 1 : 0);
  }
  return uint8_t(std::min(t, 31));
}

// An id's state as its own calls set it (IdPriv::mu).
IdState state_of(IdPriv* p) {
  std::lock_guard<std::mutex> lock(p->mu);
  return p->state;
}

bool is_ud(const IdPriv* p) { return p->id.qp_type == IBV_QPT_UD || p->id.ps == RDMA_PS_UDP; }

uint16_t port_of(const sockaddr* sa) {
  uint32_t ip;
  uint16_t port = 0;
  sockaddr_ipv4(sa, &ip, &port);
  return port;
}
uint32_t ip_of(const sockaddr* sa) {
  uint32_t ip = 0;
  uint16_t port;
  sockaddr_ipv4(sa, &ip, &port);
  return ip;
}

// librdmacm's ucma_modify_qp_rtr: INIT again (the access flags the
// connection allows), then RTR; and ucma_modify_qp_rts.
int modify_qp_to(IdPriv* p, ibv_qp_state state) {
  ibv_qp_attr a{};
  int mask = 0;
  a.qp_state = state;
  if (rdma_init_qp_attr(&p->id, &a, &mask) != 0) return errno;
  return ibv_modify_qp(p->id.qp, &a, mask);
}

int qp_rtr_rts(IdPriv* p) {
  if (p->id.qp == nullptr) return 0;
  if (int e = modify_qp_to(p, IBV_QPS_INIT)) return e;
  if (int e = modify_qp_to(p, IBV_QPS_RTR)) return e;
  return modify_qp_to(p, IBV_QPS_RTS);
}

void qp_to_err(IdPriv* p) {
  if (p->id.qp == nullptr || p->id.qp_type == IBV_QPT_UD) return;
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_ERR;
  ibv_modify_qp(p->id.qp, &a, IBV_QP_STATE);
}

void set_addr(sockaddr_storage* ss, uint32_t ip, uint16_t port) {
  std::memset(ss, 0, sizeof(*ss));
  auto* s = reinterpret_cast<sockaddr_in*>(ss);
  s->sin_family = AF_INET;
  s->sin_addr.s_addr = htonl(ip);
  s->sin_port = htons(port);
}

// A new id for a request that reached listener l: the listener's channel and
// context (a sync listener's children get channels of their own), the
// addresses from the rdma_cm IP header (cma_save_ip4_info).
IdPriv* new_child(IdPriv* l, CmService* svc, uint32_t conn, uint32_t peer_ip, const cm::IpHdr& hdr,
                  uint16_t service_port) {
  IdPriv* c = new IdPriv;
  if (l->sync) {
    c->own_channel = new_channel();
    if (c->own_channel == nullptr) {
      delete c;
      return nullptr;
    }
    c->sync = true;
    c->id.channel = &c->own_channel->ch;
  } else {
    c->id.channel = l->id.channel;
  }
  c->id.context = l->id.context;
  c->id.ps = l->id.ps;
  c->id.qp_type = l->id.qp_type;
  DeviceEntry* d = svc->device();
  Library* lib;
  Library::get(&lib);
  c->id.verbs = d->ctx;
  c->id.pd = lib->shared_pd(d);
  c->id.port_num = 1;
  const uint32_t local_ip = hdr.dst_ipv4() != 0 ? hdr.dst_ipv4() : d->ipv4;
  set_addr(&c->id.route.addr.src_storage, local_ip, service_port);
  set_addr(&c->id.route.addr.dst_storage, hdr.src_ipv4() != 0 ? hdr.src_ipv4() : peer_ip, hdr.port);
  ipv4_gid(local_ip, &c->id.route.addr.addr.ibaddr.sgid);
  ipv4_gid(peer_ip, &c->id.route.addr.addr.ibaddr.dgid);
  c->id.route.addr.addr.ibaddr.pkey = htons(0xFFFF);
  c->state = IdState::kConnect;
  c->cm = svc;
  c->cm_conn = conn;
  c->listener = l;
  c->opt = l->opt;
  ++l->pending_requests;
  l->requests.push_back(c);
  return c;
}

void request_done(IdPriv* c) {
  IdPriv* l = c->listener;
  if (l == nullptr) return;
  --l->pending_requests;
  l->requests.erase(std::remove(l->requests.begin(), l->requests.end(), c), l->requests.end());
  c->listener = nullptr;
}

}  // namespace

// ---- the agent's reports ----

void CmService::handle(const cm::AgentEvent& ev, const cm::CmMsg& msg) {
  const cm::AgentNanos t = now();
  switch (ev.type) {
    case cm::AgentEventType::kReqReceived: {
      IdPriv* l = static_cast<IdPriv*>(ev.cookie);
      const cm::Req& req = std::get<cm::Req>(msg);
      cm::IpHdr hdr;
      // What cma.c checks before a listener hears of a request: the IP header,
      // the transport, a listener on the address; failures are REJ 28 without data.
      if (state_of(l) != IdState::kListen || l->pending_requests >= l->backlog) {
        agent_.drop_request(ev.conn);  // backlog full: dropped, no REJ (the peer retries)
        return;
      }
      if (cm::decode_ip_hdr(req.private_data, &hdr) != cm::IpHdrError::kOk || hdr.ip_version != 4 ||
          is_ud(l) || req.transport_type != cm::kTransportRc || hdr.src_ipv4() != ev.peer_ip ||
          hdr.dst_ipv4() != dev_->ipv4 || (l->listen_ip != 0 && hdr.dst_ipv4() != l->listen_ip)) {
        agent_.reject(ev.conn, uint16_t(cm::RejReason::kConsumerDefined), nullptr, 0, t);
        return;
      }
      if (req.path_mtu == 0 || req.path_mtu > uint8_t(dev_->active_mtu)) {
        agent_.reject(ev.conn, uint16_t(cm::RejReason::kInvalidMtu), nullptr, 0, t);
        return;
      }
      IdPriv* c = new_child(l, this, ev.conn, ev.peer_ip, hdr, uint16_t(req.service_id & 0xFFFF));
      if (c == nullptr) {
        agent_.reject(ev.conn, uint16_t(cm::RejReason::kNoResources), nullptr, 0, t);
        return;
      }
      agent_.set_cookie(ev.conn, c);
      ConnParams& k = c->conn;
      k.valid = true;
      k.remote_qpn = req.local_qpn;
      k.remote_psn = req.starting_psn;
      k.local_psn = random_psn();
      k.path_mtu = ibv_mtu(req.path_mtu);
      // The REQ's resources, crossed (cm_format_req_event), within the device's.
      k.responder_resources = uint8_t(std::min<int>(req.initiator_depth, dev_->attr.max_qp_rd_atom));
      k.initiator_depth = uint8_t(std::min<int>(req.responder_resources, dev_->attr.max_qp_init_rd_atom));
      k.retry_count = req.retry_count;
      k.rnr_retry_count = req.rnr_retry_count;
      k.ack_timeout = req.primary.local_ack_timeout;
      k.remote_ipv4 = ev.peer_ip;
      k.flow_label = req.primary.flow_label;
      k.hop_limit = req.primary.hop_limit != 0 ? req.primary.hop_limit : 64;
      k.traffic_class = req.primary.traffic_class;
      // The route the child reports: the path the REQ describes.
      c->path.sgid = c->id.route.addr.addr.ibaddr.sgid;
      c->path.dgid = c->id.route.addr.addr.ibaddr.dgid;
      c->path.hop_limit = k.hop_limit;
      c->path.traffic_class = k.traffic_class;
      c->path.flow_label = htonl(k.flow_label);
      c->path.pkey = htons(0xFFFF);
      c->path.mtu = req.path_mtu;
      c->path.packet_life_time = req.primary.local_ack_timeout > 0 ? uint8_t(req.primary.local_ack_timeout - 1) : 0;
      c->path.numb_path = 1;
      c->path.reversible = 1;
      c->id.route.path_rec = &c->path;
      c->id.route.num_paths = 1;
      // The event's conn parameters: the REQ's, resources crossed (cm_format_req_event).
      EventParam param{};
      param.conn.responder_resources = req.initiator_depth;
      param.conn.initiator_depth = req.responder_resources;
      param.conn.flow_control = req.e2e_flow_control;
      param.conn.retry_count = req.retry_count;
      param.conn.rnr_retry_count = req.rnr_retry_count;
      param.conn.srq = req.srq;
      param.conn.qp_num = req.local_qpn;
      // On the listener's channel; a sync listener's child has its own already (cma.c migrates it).
      post_event(c, RDMA_CM_EVENT_CONNECT_REQUEST, 0, req.private_data.data() + cm::kIpHdrLen, kReqUserLen,
                 kReqUserLen, &l->id, &param, chan(l->id.channel));
      break;
    }
    case cm::AgentEventType::kSidrReqReceived: {
      IdPriv* l = static_cast<IdPriv*>(ev.cookie);
      const cm::SidrReq& req = std::get<cm::SidrReq>(msg);
      cm::IpHdr hdr;
      if (state_of(l) != IdState::kListen || !is_ud(l) ||
          cm::decode_ip_hdr(req.private_data, &hdr) != cm::IpHdrError::kOk || hdr.ip_version != 4) {
        agent_.sidr_reply(ev.conn, cm::kSidrReject, 0, 0, nullptr, 0);
        return;
      }
      IdPriv* c = new_child(l, this, ev.conn, ev.peer_ip, hdr, uint16_t(req.service_id & 0xFFFF));
      if (c == nullptr) {
        agent_.sidr_reply(ev.conn, cm::kSidrNoQp, 0, 0, nullptr, 0);
        return;
      }
      agent_.set_cookie(ev.conn, c);
      c->conn.remote_ipv4 = ev.peer_ip;
      post_event(c, RDMA_CM_EVENT_CONNECT_REQUEST, 0, req.private_data.data() + cm::kIpHdrLen, kSidrReqUserLen,
                 kSidrReqUserLen, &l->id, nullptr, chan(l->id.channel));
      break;
    }
    case cm::AgentEventType::kRepReceived: {
      IdPriv* p = static_cast<IdPriv*>(ev.cookie);
      const cm::Rep& rep = std::get<cm::Rep>(msg);
      {
        std::lock_guard<std::mutex> lock(p->mu);
        ConnParams& k = p->conn;
        k.valid = true;
        k.remote_qpn = rep.local_qpn;
        k.remote_psn = rep.starting_psn;
        // cm_rep_handler: our initiator depth is the REP's responder resources, and back.
        k.initiator_depth = std::min(rep.responder_resources, p->want_init_depth);
        k.responder_resources = std::min(rep.initiator_depth, p->want_resp_res);
        k.rnr_retry_count = rep.rnr_retry_count;
        k.ack_timeout = cm_ack_timeout(rep.target_ack_delay, p->path.packet_life_time);
      }
      EventParam param{};
      param.conn.responder_resources = rep.initiator_depth;
      param.conn.initiator_depth = rep.responder_resources;
      param.conn.flow_control = rep.e2e_flow_control;
      param.conn.rnr_retry_count = rep.rnr_retry_count;
      param.conn.srq = rep.srq;
      param.conn.qp_num = rep.local_qpn;
      if (p->id.qp == nullptr) {
        post_event(p, RDMA_CM_EVENT_CONNECT_RESPONSE, 0, rep.private_data.data(), kRepLen, kRepLen, nullptr,
                   &param);
        break;
      }
      if (qp_rtr_rts(p) != 0) {
        agent_.reject(ev.conn, uint16_t(cm::RejReason::kConsumerDefined), nullptr, 0, t);
        qp_to_err(p);
        post_event(p, RDMA_CM_EVENT_CONNECT_ERROR, -EINVAL, nullptr, 0, 0);
        break;
      }
      agent_.send_rtu(ev.conn, t);
      p->connected = true;
      post_event(p, RDMA_CM_EVENT_ESTABLISHED, 0, rep.private_data.data(), kRepLen, kRepLen, nullptr, &param);
      break;
    }
    case cm::AgentEventType::kEstablished: {
      IdPriv* p = static_cast<IdPriv*>(ev.cookie);
      p->connected = true;
      post_event(p, RDMA_CM_EVENT_ESTABLISHED, 0, nullptr, 0, 0);
      break;
    }
    case cm::AgentEventType::kRejected: {
      IdPriv* p = static_cast<IdPriv*>(ev.cookie);
      const cm::Rej& rej = std::get<cm::Rej>(msg);
      qp_to_err(p);
      post_event(p, RDMA_CM_EVENT_REJECTED, rej.reason, rej.private_data.data(), kRejLen, kRejLen);
      break;
    }
    case cm::AgentEventType::kUnreachable: {
      IdPriv* p = static_cast<IdPriv*>(ev.cookie);
      qp_to_err(p);
      post_event(p, RDMA_CM_EVENT_UNREACHABLE, -ETIMEDOUT, nullptr, 0, 0);
      break;
    }
    case cm::AgentEventType::kDreqReceived:
    case cm::AgentEventType::kDisconnected: {
      IdPriv* p = static_cast<IdPriv*>(ev.cookie);
      qp_to_err(p);
      p->connected = false;
      post_event(p, RDMA_CM_EVENT_DISCONNECTED, 0, nullptr, 0, 0);
      break;
    }
    case cm::AgentEventType::kSidrRepReceived: {
      IdPriv* p = static_cast<IdPriv*>(ev.cookie);
      const cm::SidrRep& rep = std::get<cm::SidrRep>(msg);
      p->cm_conn = 0;
      if (rep.status != cm::kSidrSuccess) {
        post_event(p, RDMA_CM_EVENT_UNREACHABLE, rep.status, rep.private_data.data(), kSidrRepLen, kSidrRepLen);
        break;
      }
      // The UD parameters: an AH towards the peer, its QPN and Q_Key.
      EventParam param{};
      rdma_ud_param& ud = param.ud;
      ud.ah_attr.is_global = 1;
      ipv4_gid(ev.peer_ip, &ud.ah_attr.grh.dgid);
      ud.ah_attr.grh.sgid_index = 0;
      ud.ah_attr.grh.hop_limit = p->path.hop_limit;
      ud.ah_attr.grh.traffic_class = p->path.traffic_class;
      ud.ah_attr.grh.flow_label = ntohl(p->path.flow_label);
      ud.ah_attr.port_num = 1;
      ud.qp_num = rep.qpn;
      ud.qkey = rep.qkey;
      post_event(p, RDMA_CM_EVENT_ESTABLISHED, 0, rep.private_data.data(), kSidrRepLen, kSidrRepLen, nullptr,
                 &param);
      break;
    }
  }
}

void cm_release(IdPriv* p) {
  CmService* svc = p->cm;
  if (svc == nullptr) return;
  std::lock_guard<std::mutex> lock(svc->mu);
  if (p->cm_listening) {
    svc->agent().unlisten(p->listen_sid, p->listen_ip);
    p->cm_listening = false;
  }
  if (p->cm_conn != 0) {
    svc->agent().destroy(p->cm_conn, CmService::now());
    p->cm_conn = 0;
  }
  request_done(p);
  for (IdPriv* c : p->requests) c->listener = nullptr;  // a listener going before its children
  p->requests.clear();
  svc->handle_events();
}

}  // namespace droce::rdmacm

using namespace droce::rdmacm;  // NOLINT: the C entry points below
namespace cm = droce::cm;

extern "C" {

int rdma_listen(rdma_cm_id* id, int backlog) {
  if (id == nullptr) return fail(EINVAL);
  IdPriv* p = priv(id);
  Library* lib;
  if (Library::get(&lib) != 0) return -1;
  {
    std::lock_guard<std::mutex> lock(p->mu);
    if (p->state != IdState::kAddrBound) return fail(EINVAL);
    if (lib->port_listening(uint16_t(id->ps), p->bound_port)) return fail(EADDRINUSE);
  }
  DeviceEntry* d = id->verbs != nullptr ? lib->device_for_ctx(id->verbs) : &lib->devices().front();
  CmService* svc = cm_service(d);
  std::lock_guard<std::mutex> cm_lock(svc->mu);
  std::lock_guard<std::mutex> lock(p->mu);
  const uint64_t sid = cm::service_id(uint16_t(id->ps), p->bound_port);
  const uint32_t ip = ip_of(&id->route.addr.src_addr);
  if (!svc->agent().listen(sid, ip, p)) return fail(EADDRINUSE);
  lib->set_listening(uint16_t(id->ps), p->bound_port, true);
  p->cm = svc;
  p->cm_listening = true;
  p->listen_sid = sid;
  p->listen_ip = ip;
  // The kernel clamps backlog <= 0 or above max_backlog to max_backlog (ucma.c).
  p->backlog = backlog <= 0 || backlog > kMaxBacklog ? kMaxBacklog : backlog;
  p->state = IdState::kListen;
  return 0;
}

int rdma_connect(rdma_cm_id* id, rdma_conn_param* conn_param) {
  if (id == nullptr) return fail(EINVAL);
  IdPriv* p = priv(id);
  Library* lib;
  if (Library::get(&lib) != 0) return -1;
  DeviceEntry* d = lib->device_for_ctx(id->verbs);
  if (d == nullptr) return fail(EINVAL);
  const bool ud = is_ud(p);
  const size_t max_user = ud ? cm::kSidrReqUserPrivateLen : cm::kReqUserPrivateLen;
  if (conn_param != nullptr && conn_param->private_data_len > max_user) return fail(EINVAL);
  if (!ud && id->qp == nullptr && conn_param == nullptr) return fail(EINVAL);  // no QP to connect
  CmService* svc = cm_service(d);
  {
    std::lock_guard<std::mutex> cm_lock(svc->mu);
    std::lock_guard<std::mutex> lock(p->mu);
    if (p->state != IdState::kRouteResolved) return fail(EINVAL);
    // The rdma_cm IP header, then the program's data (cma_format_hdr).
    cm::IpHdr hdr;
    hdr.port = port_of(&id->route.addr.src_addr);
    hdr.set_ipv4(d->ipv4, ip_of(&id->route.addr.dst_addr));
    std::array<uint8_t, cm::kSidrReqPrivateLen> pd{};
    cm::encode_ip_hdr(hdr, std::span<uint8_t, cm::kIpHdrLen>(pd.data(), cm::kIpHdrLen));
    if (conn_param != nullptr && conn_param->private_data != nullptr && conn_param->private_data_len > 0)
      std::memcpy(pd.data() + cm::kIpHdrLen, conn_param->private_data, conn_param->private_data_len);
    const uint64_t sid = cm::service_id(uint16_t(id->ps), port_of(&id->route.addr.dst_addr));
    const uint32_t peer = ip_of(&id->route.addr.dst_addr);
    p->cm = svc;
    p->state = IdState::kConnect;
    if (ud) {
      p->cm_conn = svc->agent().sidr_query(peer, sid, pd.data(), cm::kIpHdrLen + max_user, p, CmService::now());
    } else {
      const uint8_t max_resp = uint8_t(std::min(d->attr.max_qp_rd_atom, 255));
      const uint8_t max_init = uint8_t(std::min(d->attr.max_qp_init_rd_atom, 255));
      cm::ConnectParams cp;
      cp.peer_ip = peer;
      cp.service_id = sid;
      cp.qpn = id->qp != nullptr ? id->qp->qp_num : conn_param->qp_num;
      p->conn = ConnParams{};
      p->conn.local_psn = random_psn();
      p->conn.path_mtu = ibv_mtu(p->path.mtu);
      p->conn.remote_ipv4 = peer;
      p->conn.flow_label = ntohl(p->path.flow_label);
      p->conn.hop_limit = p->path.hop_limit;
      p->conn.traffic_class = p->path.traffic_class;
      cp.starting_psn = p->conn.local_psn;
      // NULL or 0xFF: the device's maxima; NULL also means retry and RNR retry 7 (cma.c).
      const uint8_t rr = conn_param != nullptr ? conn_param->responder_resources : uint8_t(RDMA_MAX_RESP_RES);
      const uint8_t id_ = conn_param != nullptr ? conn_param->initiator_depth : uint8_t(RDMA_MAX_INIT_DEPTH);
      p->want_resp_res = rr == RDMA_MAX_RESP_RES ? max_resp : std::min(rr, max_resp);
      p->want_init_depth = id_ == RDMA_MAX_INIT_DEPTH ? max_init : std::min(id_, max_init);
      cp.responder_resources = p->want_resp_res;
      cp.initiator_depth = p->want_init_depth;
      cp.retry_count = conn_param != nullptr ? std::min<uint8_t>(conn_param->retry_count, 7) : 7;
      cp.rnr_retry_count = conn_param != nullptr ? std::min<uint8_t>(conn_param->rnr_retry_count, 7) : 7;
      p->conn.retry_count = cp.retry_count;
      cp.flow_control = conn_param != nullptr && conn_param->flow_control != 0;
      cp.srq = id->srq != nullptr || (conn_param != nullptr && conn_param->srq != 0);
      cp.packet_life_time = p->path.packet_life_time;
      cp.local_ack_timeout = cm_ack_timeout(d->attr.local_ca_ack_delay, p->path.packet_life_time);
      cp.traffic_class = p->path.traffic_class;
      cp.hop_limit = p->path.hop_limit;
      cp.flow_label = ntohl(p->path.flow_label);
      std::memcpy(cp.private_data.data(), pd.data(), cm::kReqPrivateLen);
      cp.cookie = p;
      p->cm_conn = svc->agent().connect(cp, CmService::now());
    }
  }
  {
    std::lock_guard<std::mutex> cm_lock(svc->mu);
    svc->handle_events();
  }
  return p->sync ? complete(p) : 0;
}

int rdma_accept(rdma_cm_id* id, rdma_conn_param* conn_param) {
  if (id == nullptr) return fail(EINVAL);
  IdPriv* p = priv(id);
  CmService* svc = p->cm;
  if (svc == nullptr || p->cm_conn == 0 || state_of(p) != IdState::kConnect) return fail(EINVAL);
  const bool ud = is_ud(p);
  const size_t max_pd = ud ? cm::kSidrRepPrivateLen : cm::kRepPrivateLen;
  if (conn_param != nullptr && conn_param->private_data_len > max_pd) return fail(EINVAL);
  std::unique_lock<std::mutex> cm_lock(svc->mu);
  DeviceEntry* d = svc->device();
  const uint8_t* data = conn_param != nullptr ? static_cast<const uint8_t*>(conn_param->private_data) : nullptr;
  const size_t len = conn_param != nullptr && data != nullptr ? conn_param->private_data_len : 0;
  if (ud) {
    const uint32_t qpn = id->qp != nullptr ? id->qp->qp_num : (conn_param != nullptr ? conn_param->qp_num : 0);
    const bool ok = svc->agent().sidr_reply(p->cm_conn, cm::kSidrSuccess, qpn, RDMA_UDP_QKEY, data, len);
    p->cm_conn = 0;
    request_done(p);
    return ok ? 0 : fail(EINVAL);
  }
  if (id->qp == nullptr && conn_param == nullptr) return fail(EINVAL);
  {
    // The program's values win, within the device's; else the request's (already bounded).
    std::lock_guard<std::mutex> lock(p->mu);
    if (conn_param != nullptr) {
      if (conn_param->responder_resources != RDMA_MAX_RESP_RES)
        p->conn.responder_resources =
            uint8_t(std::min<int>(conn_param->responder_resources, d->attr.max_qp_rd_atom));
      if (conn_param->initiator_depth != RDMA_MAX_INIT_DEPTH)
        p->conn.initiator_depth = uint8_t(std::min<int>(conn_param->initiator_depth, d->attr.max_qp_init_rd_atom));
    }
  }
  // librdmacm moves the QP to RTR and RTS before the REP goes out.
  if (int e = qp_rtr_rts(p)) {
    svc->agent().reject(p->cm_conn, uint16_t(cm::RejReason::kConsumerDefined), nullptr, 0, CmService::now());
    svc->handle_events();
    return fail(e);
  }
  cm::AcceptParams ap;
  ap.qpn = id->qp != nullptr ? id->qp->qp_num : conn_param->qp_num;
  ap.starting_psn = p->conn.local_psn;
  ap.responder_resources = p->conn.responder_resources;
  ap.initiator_depth = p->conn.initiator_depth;
  ap.rnr_retry_count = conn_param != nullptr ? std::min<uint8_t>(conn_param->rnr_retry_count, 7) : 7;
  ap.srq = id->srq != nullptr || (conn_param != nullptr && conn_param->srq != 0);
  ap.flow_control = conn_param != nullptr && conn_param->flow_control != 0;
  if (len > 0) std::memcpy(ap.private_data.data(), data, len);
  if (!svc->agent().accept(p->cm_conn, ap, CmService::now())) return fail(EINVAL);
  request_done(p);
  svc->handle_events();
  cm_lock.unlock();
  return p->sync ? complete(p) : 0;
}

int rdma_reject(rdma_cm_id* id, const void* private_data, uint8_t private_data_len) {
  if (id == nullptr) return fail(EINVAL);
  IdPriv* p = priv(id);
  CmService* svc = p->cm;
  if (svc == nullptr || p->cm_conn == 0) return fail(EINVAL);
  std::lock_guard<std::mutex> cm_lock(svc->mu);
  const uint8_t* data = static_cast<const uint8_t*>(private_data);
  bool ok;
  if (is_ud(p)) {
    ok = svc->agent().sidr_reply(p->cm_conn, cm::kSidrReject, 0, 0, data, private_data_len);
    p->cm_conn = 0;
  } else {
    if (private_data_len > cm::kRejPrivateLen) return fail(EINVAL);
    // rdma_reject sends reason 28, consumer defined (ucma_reject).
    ok = svc->agent().reject(p->cm_conn, uint16_t(cm::RejReason::kConsumerDefined), data, private_data_len,
                             CmService::now());
  }
  request_done(p);
  svc->handle_events();
  return ok ? 0 : fail(EINVAL);
}

int rdma_reject_ece(rdma_cm_id* id, const void* private_data, uint8_t private_data_len) {
  return rdma_reject(id, private_data, private_data_len);
}

int rdma_establish(rdma_cm_id* id) {
  if (id == nullptr) return fail(EINVAL);
  IdPriv* p = priv(id);
  CmService* svc = p->cm;
  if (svc == nullptr || p->cm_conn == 0) return fail(EINVAL);
  std::lock_guard<std::mutex> cm_lock(svc->mu);
  if (int e = qp_rtr_rts(p)) return fail(e);
  if (!svc->agent().send_rtu(p->cm_conn, CmService::now())) return fail(EINVAL);
  p->connected = true;
  svc->handle_events();
  return 0;
}

int rdma_disconnect(rdma_cm_id* id) {
  if (id == nullptr) return fail(EINVAL);
  IdPriv* p = priv(id);
  CmService* svc = p->cm;
  if (svc == nullptr || p->cm_conn == 0) return fail(EINVAL);
  std::lock_guard<std::mutex> cm_lock(svc->mu);
  // The QP goes to ERR first, then the DREQ (or nothing, if the peer's came first).
  qp_to_err(p);
  if (!svc->agent().disconnect(p->cm_conn, CmService::now())) return fail(EINVAL);
  svc->handle_events();
  return 0;
}

int rdma_notify(rdma_cm_id* id, ibv_event_type event) {
  (void)event;
  if (id == nullptr) return fail(EINVAL);
  IdPriv* p = priv(id);
  if (p->cm == nullptr || p->cm_conn == 0) return fail(EINVAL);
  return 0;  // a lost RTU is covered by the agent's REP retransmission
}

int rdma_get_request(rdma_cm_id* listen, rdma_cm_id** id) {
  if (listen == nullptr || id == nullptr) return fail(EINVAL);
  IdPriv* l = priv(listen);
  if (!l->sync || l->state != IdState::kListen) return fail(EINVAL);
  if (listen->event != nullptr) {
    rdma_ack_cm_event(listen->event);
    listen->event = nullptr;
  }
  rdma_cm_event* ev = nullptr;
  if (rdma_get_cm_event(listen->channel, &ev) != 0) return -1;
  if (ev->event != RDMA_CM_EVENT_CONNECT_REQUEST) {
    const int st = ev->status;
    rdma_ack_cm_event(ev);
    return fail(st < 0 ? -st : EINVAL);
  }
  rdma_cm_id* child = ev->id;
  if (l->ep_has_qp_attr) {
    ibv_qp_init_attr attr = l->ep_qp_attr;
    if (rdma_create_qp(child, l->ep_pd, &attr) != 0) {
      const int e = errno;
      rdma_reject(child, nullptr, 0);
      rdma_destroy_id(child);
      return fail(e);
    }
  }
  *id = child;
  return 0;
}

}  // extern "C"
