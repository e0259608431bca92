// CM connection state machine (IBTA vol. 1 12.6, 12.9 state diagrams; the
// choices Linux ib_cm makes on RoCE, reference/rdma-cm.md 3.6 and 4).
#include "nic/cm/agent.h"

#include <cstring>
#include <vector>

namespace droce::cm {

namespace {

constexpr AgentNanos kNanosPerMs = 1000000;
// What Linux answers a slow consumer with: an MRA whose service timeout is
// 24 (CMA_CM_MRA_SETTING), about 68.7 s.
constexpr uint8_t kMraServiceTimeout = 24;

Gid ipv4_gid(uint32_t ip) {
  return Gid{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, uint8_t(ip >> 24), uint8_t(ip >> 16), uint8_t(ip >> 8),
             uint8_t(ip)};
}

}  // namespace

AgentNanos cm_timeout_ns(uint8_t t) {
  const unsigned shift = t > 8 ? t - 8 : 0;
  return (AgentNanos(1) << (shift > 31 ? 31 : shift)) * kNanosPerMs;
}

const char* agent_event_name(AgentEventType t) {
  switch (t) {
    case AgentEventType::kReqReceived: return "req_received";
    case AgentEventType::kRepReceived: return "rep_received";
    case AgentEventType::kEstablished: return "established";
    case AgentEventType::kRejected: return "rejected";
    case AgentEventType::kUnreachable: return "unreachable";
    case AgentEventType::kDreqReceived: return "dreq_received";
    case AgentEventType::kDisconnected: return "disconnected";
    case AgentEventType::kSidrReqReceived: return "sidr_req_received";
    case AgentEventType::kSidrRepReceived: return "sidr_rep_received";
  }
  return "unknown";
}

Agent::Agent(const AgentConfig& cfg, AgentOutput* out)
    : cfg_(cfg), out_(out), rng_(cfg.seed | 1), tid_hi_((cfg.seed >> 32) & 0x7FFFFFFF) {}

// Random and non-zero, not in use (ib_cm XORs a random operand into its IDs,
// so a restarted process does not reuse its predecessor's).
uint32_t Agent::new_id() {
  for (;;) {
    rng_ ^= rng_ << 13;
    rng_ ^= rng_ >> 7;
    rng_ ^= rng_ << 17;
    const uint32_t id = uint32_t(rng_ >> 16);
    if (id != 0 && conns_.count(id) == 0) return id;
  }
}

Agent::Conn* Agent::find(uint32_t local_id) {
  auto it = conns_.find(local_id);
  return it == conns_.end() ? nullptr : &it->second;
}

Agent::Conn* Agent::find_remote(uint32_t peer_ip, uint32_t remote_id) {
  for (auto& [id, c] : conns_) {
    if (c.peer_ip == peer_ip && c.remote_id == remote_id && c.state != State::kSidrReqSent &&
        c.state != State::kSidrReqRcvd)
      return &c;
  }
  return nullptr;
}

void Agent::send_once(uint32_t dst_ip, const CmMad& m) {
  uint8_t buf[kMadLen];
  encode_cm_mad(m, buf);
  ++counters_.tx_mads;
  out_->send_mad(dst_ip, buf);
}

// Sends m to the connection's peer; with keep it is what a duplicate or a
// retransmission gets again, with timeout_ns > 0 it is retransmitted.
void Agent::send(Conn& c, const CmMad& m, bool keep, AgentNanos now, AgentNanos timeout_ns, int retries) {
  uint8_t buf[kMadLen];
  encode_cm_mad(m, buf);
  if (keep) {
    std::memcpy(c.last_mad, buf, kMadLen);
    c.has_last = true;
  }
  c.timeout_ns = timeout_ns;
  c.retries_left = retries;
  c.deadline = timeout_ns > 0 ? now + timeout_ns : 0;
  ++counters_.tx_mads;
  out_->send_mad(c.peer_ip, buf);
}

void Agent::emit(Conn& c, AgentEventType t, void* cookie_override) {
  if (c.destroyed && cookie_override == nullptr) return;
  AgentEvent ev;
  ev.type = t;
  ev.conn = c.local_id;
  ev.cookie = cookie_override != nullptr ? cookie_override : c.cookie;
  ev.peer_ip = c.peer_ip;
  ev.msg = &c.msg;
  out_->on_event(ev);
}

// Timewait (IBTA 12.9.7): the connection's IDs stay known for the QP's ACK
// timeout, so a late DREQ still gets its DREP.
void Agent::enter_timewait(Conn& c, AgentNanos now) {
  c.state = State::kTimewait;
  c.deadline = now + c.timewait_ns;
  c.retries_left = 0;
  c.timeout_ns = 0;
}

bool Agent::listen(uint64_t service_id, uint32_t ip, void* cookie) {
  return listeners_.emplace(std::make_pair(service_id, ip), cookie).second;
}

void Agent::unlisten(uint64_t service_id, uint32_t ip) { listeners_.erase(std::make_pair(service_id, ip)); }

void* Agent::listener_for(uint64_t service_id, uint32_t dst_ip) const {
  auto it = listeners_.find(std::make_pair(service_id, dst_ip));
  if (it != listeners_.end()) return it->second;
  it = listeners_.find(std::make_pair(service_id, uint32_t(0)));
  return it != listeners_.end() ? it->second : nullptr;
}

void Agent::set_cookie(uint32_t conn, void* cookie) {
  if (Conn* c = find(conn)) c->cookie = cookie;
}

// ---- active side ----

uint32_t Agent::connect(const ConnectParams& p, AgentNanos now) {
  const uint32_t id = new_id();
  Conn& c = conns_[id];
  c.state = State::kReqSent;
  c.cookie = p.cookie;
  c.peer_ip = p.peer_ip;
  c.local_id = id;
  c.local_qpn = p.qpn;
  c.tid = tid_for(id);
  c.timewait_ns = cm_timeout_ns(p.local_ack_timeout);
  Req r;
  r.local_comm_id = id;
  r.service_id = p.service_id;
  r.local_ca_guid = cfg_.ca_guid;
  r.local_qpn = p.qpn;
  r.responder_resources = p.responder_resources;
  r.initiator_depth = p.initiator_depth;
  r.remote_cm_response_timeout = cfg_.cm_response_timeout;
  r.transport_type = p.transport;
  r.e2e_flow_control = p.flow_control;
  r.starting_psn = p.starting_psn & 0xFFFFFF;
  r.local_cm_response_timeout = cfg_.cm_response_timeout;
  r.retry_count = p.retry_count > 7 ? 7 : p.retry_count;
  r.pkey = 0xFFFF;
  r.path_mtu = cfg_.path_mtu;
  r.rnr_retry_count = p.rnr_retry_count > 7 ? 7 : p.rnr_retry_count;
  r.max_cm_retries = cfg_.max_cm_retries;
  r.srq = p.srq;
  // RoCE paths: permissive LIDs, not subnet-local (hop limit > 1), GIDs ::ffff:IPv4.
  r.primary.local_lid = 0xFFFF;
  r.primary.remote_lid = 0xFFFF;
  r.primary.local_gid = ipv4_gid(cfg_.local_ip);
  r.primary.remote_gid = ipv4_gid(p.peer_ip);
  r.primary.flow_label = p.flow_label;
  r.primary.traffic_class = p.traffic_class;
  r.primary.hop_limit = p.hop_limit;
  r.primary.local_ack_timeout = p.local_ack_timeout;
  r.private_data = p.private_data;
  CmMad m;
  m.hdr.tid = c.tid;
  m.msg = r;
  // ib_cm: 2 * packet life time + the peer's response time, max CM retries.
  const AgentNanos t = 2 * cm_timeout_ns(p.packet_life_time) + cm_timeout_ns(cfg_.cm_response_timeout);
  c.resp_timeout_ns = t;
  c.max_retries = cfg_.max_cm_retries;
  send(c, m, true, now, t, cfg_.max_cm_retries);
  return id;
}

bool Agent::send_rtu(uint32_t conn, AgentNanos now) {
  Conn* c = find(conn);
  if (c == nullptr || c->state != State::kRepRcvd) return false;
  CmMad m;
  m.hdr.tid = c->tid;
  Rtu r;
  r.local_comm_id = c->local_id;
  r.remote_comm_id = c->remote_id;
  m.msg = r;
  send(*c, m, true, now, 0, 0);
  c->state = State::kEstablished;
  return true;
}

// ---- passive side ----

bool Agent::accept(uint32_t conn, const AcceptParams& p, AgentNanos now) {
  Conn* c = find(conn);
  if (c == nullptr || (c->state != State::kReqRcvd && c->state != State::kMraReqSent)) return false;
  c->local_qpn = p.qpn;
  Rep r;
  r.local_comm_id = c->local_id;
  r.remote_comm_id = c->remote_id;
  r.local_qpn = p.qpn;
  r.starting_psn = p.starting_psn & 0xFFFFFF;
  r.responder_resources = p.responder_resources;
  r.initiator_depth = p.initiator_depth;
  r.target_ack_delay = cfg_.ack_delay;
  r.e2e_flow_control = p.flow_control;
  r.rnr_retry_count = p.rnr_retry_count > 7 ? 7 : p.rnr_retry_count;
  r.srq = p.srq;
  r.local_ca_guid = cfg_.ca_guid;
  r.private_data = p.private_data;
  CmMad m;
  m.hdr.tid = c->tid;
  m.msg = r;
  c->state = State::kRepSent;
  // The REQ's Local CM Response Timeout and Max CM Retries govern our REP.
  send(*c, m, true, now, c->resp_timeout_ns, c->max_retries);
  return true;
}

bool Agent::reject(uint32_t conn, uint16_t reason, const uint8_t* pd, size_t len, AgentNanos now) {
  Conn* c = find(conn);
  if (c == nullptr) return false;
  Rej r;
  if (c->state == State::kReqRcvd || c->state == State::kMraReqSent || c->state == State::kRepSent) {
    r.message_rejected = kMsgReq;
  } else if (c->state == State::kRepRcvd || c->state == State::kReqSent || c->state == State::kMraReqRcvd) {
    r.message_rejected = c->state == State::kRepRcvd ? kMsgRep : kMsgOther;
  } else {
    return false;
  }
  r.local_comm_id = c->local_id;
  r.remote_comm_id = c->remote_id;
  r.reason = reason;
  if (len > kRejPrivateLen) len = kRejPrivateLen;
  if (pd != nullptr && len > 0) std::memcpy(r.private_data.data(), pd, len);
  CmMad m;
  m.hdr.tid = c->tid;
  m.msg = r;
  send(*c, m, true, now, 0, 0);
  c->state = State::kClosed;
  return true;
}

bool Agent::send_mra(uint32_t conn, uint8_t service_timeout, AgentNanos now) {
  Conn* c = find(conn);
  if (c == nullptr || (c->state != State::kReqRcvd && c->state != State::kMraReqSent)) return false;
  Mra r;
  r.local_comm_id = c->local_id;
  r.remote_comm_id = c->remote_id;
  r.message_mraed = kMsgReq;
  r.service_timeout = service_timeout;
  CmMad m;
  m.hdr.tid = c->tid;
  m.msg = r;
  send(*c, m, true, now, 0, 0);
  c->state = State::kMraReqSent;
  return true;
}

bool Agent::disconnect(uint32_t conn, AgentNanos now) {
  Conn* c = find(conn);
  if (c == nullptr) return false;
  if (c->state == State::kTimewait || c->state == State::kDreqSent) return true;  // the peer's DREQ came first
  if (c->state != State::kEstablished && c->state != State::kRepSent) return false;
  Dreq r;
  r.local_comm_id = c->local_id;
  r.remote_comm_id = c->remote_id;
  r.remote_qpn = c->remote_qpn;
  c->tid = tid_for(c->local_id) ^ (uint64_t(1) << 31);  // a new transaction
  CmMad m;
  m.hdr.tid = c->tid;
  m.msg = r;
  c->state = State::kDreqSent;
  send(*c, m, true, now, c->resp_timeout_ns, c->max_retries);
  return true;
}

void Agent::destroy(uint32_t conn, AgentNanos now) {
  Conn* c = find(conn);
  if (c == nullptr) return;
  c->destroyed = true;
  c->cookie = nullptr;
  switch (c->state) {
    case State::kReqSent:
    case State::kMraReqRcvd:
      reject(conn, uint16_t(RejReason::kTimeout), nullptr, 0, now);
      break;
    case State::kReqRcvd:
    case State::kMraReqSent:
    case State::kRepSent:
    case State::kRepRcvd:
      reject(conn, uint16_t(RejReason::kConsumerDefined), nullptr, 0, now);
      break;
    case State::kEstablished:
      disconnect(conn, now);
      return;  // the DREQ runs on; the entry goes after timewait
    case State::kDreqSent:
    case State::kTimewait:
      return;
    default:
      break;
  }
  conns_.erase(conn);
}

void Agent::drop_request(uint32_t conn) {
  Conn* c = find(conn);
  if (c != nullptr && (c->state == State::kReqRcvd || c->state == State::kSidrReqRcvd)) conns_.erase(conn);
}

void Agent::destroy_all(AgentNanos now) {
  std::vector<uint32_t> live;
  for (const auto& [id, c] : conns_) {
    if (!c.destroyed) live.push_back(id);
  }
  for (uint32_t id : live) destroy(id, now);
}

// ---- SIDR ----

uint32_t Agent::sidr_query(uint32_t peer_ip, uint64_t service_id, const uint8_t* pd, size_t len, void* cookie,
                           AgentNanos now) {
  const uint32_t id = new_id();
  Conn& c = conns_[id];
  c.state = State::kSidrReqSent;
  c.cookie = cookie;
  c.peer_ip = peer_ip;
  c.local_id = id;
  c.tid = tid_for(id);
  SidrReq r;
  r.request_id = id;
  r.pkey = 0xFFFF;
  r.service_id = service_id;
  if (len > kSidrReqPrivateLen) len = kSidrReqPrivateLen;
  if (pd != nullptr && len > 0) std::memcpy(r.private_data.data(), pd, len);
  CmMad m;
  m.hdr.tid = c.tid;
  m.msg = r;
  send(c, m, true, now, cm_timeout_ns(cfg_.cm_response_timeout), cfg_.max_cm_retries);
  return id;
}

bool Agent::sidr_reply(uint32_t conn, uint8_t status, uint32_t qpn, uint32_t qkey, const uint8_t* pd, size_t len) {
  Conn* c = find(conn);
  if (c == nullptr || c->state != State::kSidrReqRcvd) return false;
  SidrRep r;
  r.request_id = c->remote_id;
  r.status = status;
  r.qpn = qpn;
  r.qkey = qkey;
  r.service_id = std::get<SidrReq>(c->msg).service_id;
  if (len > kSidrRepPrivateLen) len = kSidrRepPrivateLen;
  if (pd != nullptr && len > 0) std::memcpy(r.private_data.data(), pd, len);
  CmMad m;
  m.hdr.tid = c->tid;
  m.msg = r;
  send_once(c->peer_ip, m);
  conns_.erase(conn);
  return true;
}

// ---- receive ----

void Agent::on_mad(uint32_t src_ip, std::span<const uint8_t> mad, AgentNanos now) {
  ++counters_.rx_mads;
  CmMad m;
  if (decode_cm_mad(mad, &m) != MadError::kOk) {
    ++counters_.rx_malformed;
    return;
  }
  if (const Req* r = std::get_if<Req>(&m.msg)) return on_req(src_ip, m.hdr, *r, now);
  if (const Rep* r = std::get_if<Rep>(&m.msg)) return on_rep(m.hdr, *r, now);
  if (const Rtu* r = std::get_if<Rtu>(&m.msg)) return on_rtu(*r);
  if (const Rej* r = std::get_if<Rej>(&m.msg)) return on_rej(*r);
  if (const Mra* r = std::get_if<Mra>(&m.msg)) return on_mra(*r, now);
  if (const Dreq* r = std::get_if<Dreq>(&m.msg)) return on_dreq(src_ip, m.hdr, *r, now);
  if (const Drep* r = std::get_if<Drep>(&m.msg)) return on_drep(*r, now);
  if (const SidrReq* r = std::get_if<SidrReq>(&m.msg)) return on_sidr_req(src_ip, m.hdr, *r);
  if (const SidrRep* r = std::get_if<SidrRep>(&m.msg)) return on_sidr_rep(*r);
}

void Agent::on_req(uint32_t src, const MadHdr& h, const Req& m, AgentNanos now) {
  if (Conn* c = find_remote(src, m.local_comm_id)) {
    // A duplicate (IBTA 12.9.8.1): the REP again once sent; an MRA while the
    // consumer decides, as Linux does with CMA_CM_MRA_SETTING.
    ++counters_.rx_duplicates;
    if (c->state == State::kRepSent && c->has_last) {
      ++counters_.retransmits;
      ++counters_.tx_mads;
      out_->send_mad(c->peer_ip, c->last_mad);
    } else if (c->state == State::kReqRcvd || c->state == State::kMraReqSent) {
      send_mra(c->local_id, kMraServiceTimeout, now);
    }
    return;
  }
  void* listener = listener_for(m.service_id, cfg_.local_ip);
  if (listener == nullptr) {
    // REJ 8, invalid service ID: local comm ID 0, the REQ's TID echoed (cm_issue_rej).
    ++counters_.rej_no_listener;
    Rej r;
    r.remote_comm_id = m.local_comm_id;
    r.message_rejected = kMsgReq;
    r.reason = uint16_t(RejReason::kInvalidServiceId);
    CmMad out;
    out.hdr.tid = h.tid;
    out.msg = r;
    send_once(src, out);
    return;
  }
  // ib_cm builds the path from the REQ's GIDs (sender's and ours) and
  // resolves it over IP; on RoCE they must be ::ffff: of the packet's source
  // and of our address, else REJ 12, invalid GID, with our GID as ARI.
  if (m.primary.local_gid != ipv4_gid(src) || m.primary.remote_gid != ipv4_gid(cfg_.local_ip)) {
    ++counters_.rej_bad_gid;
    Rej r;
    r.remote_comm_id = m.local_comm_id;
    r.message_rejected = kMsgReq;
    r.reason = uint16_t(RejReason::kInvalidGid);
    const Gid ours = ipv4_gid(cfg_.local_ip);
    std::memcpy(r.ari.data(), ours.data(), ours.size());
    r.reject_info_len = uint8_t(ours.size());
    CmMad out;
    out.hdr.tid = h.tid;
    out.msg = r;
    send_once(src, out);
    return;
  }
  const uint32_t id = new_id();
  Conn& c = conns_[id];
  c.state = State::kReqRcvd;
  c.peer_ip = src;
  c.local_id = id;
  c.remote_id = m.local_comm_id;
  c.remote_qpn = m.local_qpn;
  c.tid = h.tid;
  c.resp_timeout_ns = cm_timeout_ns(m.local_cm_response_timeout);
  c.max_retries = m.max_cm_retries;
  c.timewait_ns = cm_timeout_ns(m.primary.local_ack_timeout);
  c.msg = m;
  emit(c, AgentEventType::kReqReceived, listener);
}

void Agent::on_rep(const MadHdr& h, const Rep& m, AgentNanos now) {
  (void)h;
  Conn* c = find(m.remote_comm_id);
  if (c == nullptr) {
    ++counters_.rx_unknown_conn;
    return;
  }
  if (c->state == State::kEstablished || c->state == State::kRepRcvd) {
    // Our RTU was lost: send it again (the consumer has not yet, in kRepRcvd: wait).
    ++counters_.rx_duplicates;
    if (c->state == State::kEstablished && c->has_last) {
      ++counters_.retransmits;
      ++counters_.tx_mads;
      out_->send_mad(c->peer_ip, c->last_mad);
    }
    return;
  }
  if (c->state != State::kReqSent && c->state != State::kMraReqRcvd) {
    ++counters_.rx_wrong_state;
    return;
  }
  c->remote_id = m.local_comm_id;
  c->remote_qpn = m.local_qpn;
  c->deadline = 0;
  c->state = State::kRepRcvd;
  c->msg = m;
  (void)now;
  emit(*c, AgentEventType::kRepReceived);
}

void Agent::on_rtu(const Rtu& m) {
  Conn* c = find(m.remote_comm_id);
  if (c == nullptr || c->remote_id != m.local_comm_id) {
    ++counters_.rx_unknown_conn;
    return;
  }
  if (c->state != State::kRepSent) {
    ++counters_.rx_duplicates;
    return;
  }
  c->state = State::kEstablished;
  c->deadline = 0;
  c->msg = m;
  emit(*c, AgentEventType::kEstablished);
}

void Agent::on_rej(const Rej& m) {
  Conn* c = find(m.remote_comm_id);
  if (c == nullptr) {
    ++counters_.rx_unknown_conn;
    return;
  }
  if (c->state == State::kSidrReqSent || c->state == State::kSidrReqRcvd || c->state == State::kClosed ||
      c->state == State::kTimewait || c->state == State::kDreqSent) {
    ++counters_.rx_wrong_state;
    return;
  }
  // A REJ for a REQ carries our ID as its remote ID and, when it comes from
  // a listener that never took the REQ (REJ 8), a local ID of 0.
  if (c->remote_id != 0 && m.local_comm_id != 0 && m.local_comm_id != c->remote_id) {
    ++counters_.rx_unknown_conn;
    return;
  }
  c->state = State::kClosed;
  c->deadline = 0;
  c->msg = m;
  const bool destroyed = c->destroyed;
  emit(*c, AgentEventType::kRejected);
  if (destroyed) conns_.erase(m.remote_comm_id);
}

void Agent::on_mra(const Mra& m, AgentNanos now) {
  Conn* c = find(m.remote_comm_id);
  if (c == nullptr) {
    ++counters_.rx_unknown_conn;
    return;
  }
  if (c->state == State::kReqSent && m.message_mraed == kMsgReq) {
    c->state = State::kMraReqRcvd;
  } else if (!(c->state == State::kRepSent && m.message_mraed == kMsgRep) && c->state != State::kMraReqRcvd) {
    ++counters_.rx_wrong_state;
    return;
  }
  // ib_cm cm_mra_handler: wait the service timeout plus the packet's life.
  c->deadline = now + cm_timeout_ns(m.service_timeout) + c->resp_timeout_ns;
}

void Agent::on_dreq(uint32_t src, const MadHdr& h, const Dreq& m, AgentNanos now) {
  Conn* c = find(m.remote_comm_id);
  if (c == nullptr || c->remote_id != m.local_comm_id || c->peer_ip != src) {
    // Unknown connection: a DREP anyway (cm_issue_drep), so the peer ends.
    ++counters_.rx_unknown_conn;
    Drep r;
    r.local_comm_id = m.remote_comm_id;
    r.remote_comm_id = m.local_comm_id;
    CmMad out;
    out.hdr.tid = h.tid;
    out.msg = r;
    send_once(src, out);
    return;
  }
  if (m.remote_qpn != c->local_qpn) {
    ++counters_.rx_bad_qpn;  // Linux cm_dreq_handler drops a DREQ for another QP
    return;
  }
  Drep r;
  r.local_comm_id = c->local_id;
  r.remote_comm_id = c->remote_id;
  CmMad out;
  out.hdr.tid = h.tid;
  out.msg = r;
  switch (c->state) {
    case State::kRepSent:
    case State::kEstablished:
    case State::kDreqSent: {
      const bool was_sent = c->state == State::kDreqSent;
      c->tid = h.tid;
      send(*c, out, true, now, 0, 0);
      enter_timewait(*c, now);
      c->msg = m;
      emit(*c, was_sent ? AgentEventType::kDisconnected : AgentEventType::kDreqReceived);
      return;
    }
    case State::kTimewait:
      ++counters_.rx_duplicates;
      send_once(src, out);  // our DREP was lost
      return;
    default:
      ++counters_.rx_wrong_state;
      return;
  }
}

void Agent::on_drep(const Drep& m, AgentNanos now) {
  Conn* c = find(m.remote_comm_id);
  if (c == nullptr || c->remote_id != m.local_comm_id) {
    ++counters_.rx_unknown_conn;
    return;
  }
  if (c->state != State::kDreqSent) {
    ++counters_.rx_duplicates;
    return;
  }
  enter_timewait(*c, now);
  c->msg = m;
  emit(*c, AgentEventType::kDisconnected);
}

void Agent::on_sidr_req(uint32_t src, const MadHdr& h, const SidrReq& m) {
  for (auto& [id, c] : conns_) {
    if (c.state == State::kSidrReqRcvd && c.peer_ip == src && c.remote_id == m.request_id) {
      ++counters_.rx_duplicates;  // the consumer is still deciding
      return;
    }
  }
  void* listener = listener_for(m.service_id, cfg_.local_ip);
  if (listener == nullptr) {
    ++counters_.rej_no_listener;
    SidrRep r;
    r.request_id = m.request_id;
    r.status = kSidrUnsupported;
    r.service_id = m.service_id;
    CmMad out;
    out.hdr.tid = h.tid;
    out.msg = r;
    send_once(src, out);
    return;
  }
  const uint32_t id = new_id();
  Conn& c = conns_[id];
  c.state = State::kSidrReqRcvd;
  c.peer_ip = src;
  c.local_id = id;
  c.remote_id = m.request_id;
  c.tid = h.tid;
  c.msg = m;
  emit(c, AgentEventType::kSidrReqReceived, listener);
}

void Agent::on_sidr_rep(const SidrRep& m) {
  Conn* c = find(m.request_id);
  if (c == nullptr || c->state != State::kSidrReqSent) {
    ++counters_.rx_unknown_conn;
    return;
  }
  c->msg = m;
  c->state = State::kClosed;
  c->deadline = 0;
  emit(*c, AgentEventType::kSidrRepReceived);
  if (c->destroyed) conns_.erase(m.request_id);
}

// ---- timers ----

void Agent::on_timer(AgentNanos now) {
  for (auto it = conns_.begin(); it != conns_.end();) {
    Conn& c = it->second;
    if (c.deadline == 0 || now < c.deadline) {
      ++it;
      continue;
    }
    if (c.state == State::kTimewait) {
      it = conns_.erase(it);
      continue;
    }
    if (c.retries_left > 0 && c.has_last && c.timeout_ns > 0) {
      // The same MAD, same TID, as the MAD layer retransmits.
      --c.retries_left;
      c.deadline = now + c.timeout_ns;
      ++counters_.retransmits;
      ++counters_.tx_mads;
      out_->send_mad(c.peer_ip, c.last_mad);
      ++it;
      continue;
    }
    c.deadline = 0;
    switch (c.state) {
      case State::kDreqSent:
        // ib_cm: a DREQ without answer still ends in DISCONNECTED.
        enter_timewait(c, now);
        emit(c, AgentEventType::kDisconnected);
        ++it;
        continue;
      case State::kReqSent:
      case State::kMraReqRcvd:
      case State::kRepSent:
      case State::kSidrReqSent: {
        c.state = State::kClosed;
        const bool destroyed = c.destroyed;
        emit(c, AgentEventType::kUnreachable);
        if (destroyed) {
          it = conns_.erase(it);
          continue;
        }
        ++it;
        continue;
      }
      default:
        ++it;
        continue;
    }
  }
}

}  // namespace droce::cm
