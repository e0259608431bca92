// The Communication Manager agent of one port: the connection state machine
// of IBTA vol. 1 chapter 12 as Linux's ib_cm runs it on RoCE (REQ, REP, RTU,
// REJ, MRA, DREQ, DREP, SIDR; comm IDs, TIDs, retransmission, timewait),
// without a device: MADs come in through on_mad, go out through
// AgentOutput::send_mad, and the consumer (rdma_cm) hears AgentEvents
// (reference/rdma-cm.md sections 3 and 4).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>

#include "nic/cm/mad.h"

namespace droce::cm {

using AgentNanos = uint64_t;

// 4.096 us * 2^t, approximated as Linux's cm_convert_to_ms: 2^(t-8) ms, at least 1 ms.
AgentNanos cm_timeout_ns(uint8_t t);

struct AgentConfig {
  uint32_t local_ip = 0;     // host order
  uint64_t ca_guid = 0;
  uint8_t path_mtu = 3;      // IBTA MTU code (1 = 256 ... 5 = 4096)
  uint8_t ack_delay = 15;    // Target ACK Delay of our REPs (rxe: 15)
  uint64_t seed = 0;         // comm IDs and the TID's high half
  // Linux's values for what rdma_cm puts in a REQ (CMA_CM_RESPONSE_TIMEOUT, max CM retries).
  uint8_t cm_response_timeout = 20;
  uint8_t max_cm_retries = 15;
};

enum class AgentEventType : uint8_t {
  kReqReceived,      // a new connection for a listener: conn is new, cookie the listener's
  kRepReceived,      // our REQ was answered; the consumer moves its QP on and calls send_rtu
  kEstablished,      // passive: the RTU arrived
  kRejected,         // msg holds the REJ
  kUnreachable,      // retries exhausted (REQ, REP or SIDR_REQ): -ETIMEDOUT
  kDreqReceived,     // the peer disconnects (our DREP has gone out)
  kDisconnected,     // our DREQ was answered or timed out
  kSidrReqReceived,  // a UD service query for a listener: conn is new, cookie the listener's
  kSidrRepReceived,  // the answer to our SIDR_REQ
};
const char* agent_event_name(AgentEventType t);

struct AgentEvent {
  AgentEventType type;
  uint32_t conn = 0;         // the agent's handle (our local comm ID / request ID)
  void* cookie = nullptr;    // the connection's, or for k*ReqReceived the listener's
  uint32_t peer_ip = 0;
  const CmMsg* msg = nullptr;  // the message behind it (REQ, REP, REJ, SIDR_REQ, SIDR_REP)
};

// Where the agent's MADs and events go. Called from inside the agent's
// methods; an implementation must not call back into the agent from them.
class AgentOutput {
 public:
  virtual ~AgentOutput() = default;
  virtual void send_mad(uint32_t dst_ip, const uint8_t* mad) = 0;  // kMadLen bytes
  virtual void on_event(const AgentEvent& ev) = 0;
};

struct ConnectParams {
  uint32_t peer_ip = 0;
  uint64_t service_id = 0;
  uint32_t qpn = 0;
  uint32_t starting_psn = 0;
  uint8_t responder_resources = 0;
  uint8_t initiator_depth = 0;
  uint8_t retry_count = 7;
  uint8_t rnr_retry_count = 7;
  uint8_t transport = kTransportRc;
  bool srq = false;
  bool flow_control = false;
  uint8_t local_ack_timeout = 19;   // the REQ's primary path Local ACK Timeout
  uint8_t packet_life_time = 18;    // for the REQ's retransmission timeout
  uint8_t traffic_class = 0;
  uint8_t hop_limit = 64;
  uint32_t flow_label = 0;
  std::array<uint8_t, kReqPrivateLen> private_data{};  // the IP header and user data
  void* cookie = nullptr;
};

struct AcceptParams {
  uint32_t qpn = 0;
  uint32_t starting_psn = 0;
  uint8_t responder_resources = 0;
  uint8_t initiator_depth = 0;
  uint8_t rnr_retry_count = 7;
  bool srq = false;
  bool flow_control = false;
  std::array<uint8_t, kRepPrivateLen> private_data{};
};

// Threading: none inside; the caller serialises every call (one lock).
class Agent {
 public:
  Agent(const AgentConfig& cfg, AgentOutput* out);

  // A listener for an exact service ID, on ip (host order) or any (0).
  // False when one is there already.
  bool listen(uint64_t service_id, uint32_t ip, void* cookie);
  void unlisten(uint64_t service_id, uint32_t ip);

  // Active side. connect returns the connection handle (never 0).
  uint32_t connect(const ConnectParams& p, AgentNanos now);
  // After kRepReceived: RTU out, the connection established.
  bool send_rtu(uint32_t conn, AgentNanos now);
  // Passive side, after kReqReceived.
  bool accept(uint32_t conn, const AcceptParams& p, AgentNanos now);
  // REJ to a REQ (passive) or a REP (active): reason, up to 148 bytes of private data.
  bool reject(uint32_t conn, uint16_t reason, const uint8_t* pd, size_t len, AgentNanos now);
  // An MRA for a received REQ whose answer will take a while (service timeout code).
  bool send_mra(uint32_t conn, uint8_t service_timeout, AgentNanos now);
  // DREQ when established, nothing when the peer's DREQ came first (its DREP
  // went out with it). False when the connection cannot disconnect.
  bool disconnect(uint32_t conn, AgentNanos now);
  // The consumer is done with conn: no more events for it. Pending exchanges
  // are ended as ib_cm's cm_destroy_id does (REJ, DREQ); timewait goes on.
  void destroy(uint32_t conn, AgentNanos now);
  void set_cookie(uint32_t conn, void* cookie);
  // Forgets a received request without an answer (a listener's backlog is
  // full: Linux drops the REQ and lets the peer retry).
  void drop_request(uint32_t conn);
  // The process is ending: every connection the consumer still has is
  // destroyed (REJ for pending ones, DREQ for established ones), so peers
  // hear of it at once rather than by their retries.
  void destroy_all(AgentNanos now);

  // SIDR (UD): a query for service_id at peer_ip, and the listener's answer.
  uint32_t sidr_query(uint32_t peer_ip, uint64_t service_id, const uint8_t* pd, size_t len, void* cookie,
                      AgentNanos now);
  bool sidr_reply(uint32_t conn, uint8_t status, uint32_t qpn, uint32_t qkey, const uint8_t* pd, size_t len);

  // A MAD from QP1 (any bytes: malformed ones are counted and dropped).
  void on_mad(uint32_t src_ip, std::span<const uint8_t> mad, AgentNanos now);
  // Retransmissions, timeouts and timewait ends that are due.
  void on_timer(AgentNanos now);

  struct Counters {
    uint64_t rx_mads = 0;
    uint64_t rx_malformed = 0;       // decode_cm_mad refused it
    uint64_t rx_unknown_conn = 0;    // no connection matches its comm IDs
    uint64_t rx_wrong_state = 0;     // valid, but not in the connection's state
    uint64_t rx_bad_qpn = 0;         // DREQ whose Remote QPN is not ours (Linux drops it)
    uint64_t rx_duplicates = 0;
    uint64_t tx_mads = 0;
    uint64_t retransmits = 0;
    uint64_t rej_no_listener = 0;    // REJ 8 / SIDR status 1 sent
    uint64_t rej_bad_gid = 0;        // REJ 12: the REQ's GIDs are not the packet's addresses
  };
  const Counters& counters() const { return counters_; }
  size_t connections() const { return conns_.size(); }

 private:
  enum class State : uint8_t {
    kReqSent,
    kMraReqRcvd,
    kRepRcvd,
    kReqRcvd,
    kMraReqSent,
    kRepSent,
    kEstablished,
    kDreqSent,
    kTimewait,
    kSidrReqSent,
    kSidrReqRcvd,
    kClosed,       // rejected or unreachable: kept until destroy
  };
  struct Conn {
    State state;
    bool destroyed = false;
    void* cookie = nullptr;
    uint32_t peer_ip = 0;
    uint32_t local_id = 0;
    uint32_t remote_id = 0;
    uint32_t local_qpn = 0;
    uint32_t remote_qpn = 0;
    uint64_t tid = 0;            // of the exchange in progress
    uint8_t last_mad[kMadLen];   // what a retransmission or a duplicate gets again
    bool has_last = false;
    AgentNanos deadline = 0;     // 0: no timer
    AgentNanos timeout_ns = 0;
    int retries_left = 0;
    AgentNanos resp_timeout_ns = 0;  // the peer's CM response time (our REQ/REP timers)
    uint8_t max_retries = 15;
    AgentNanos timewait_ns = 0;
    CmMsg msg;                   // the last message an event pointed at
  };

  uint32_t new_id();
  uint64_t tid_for(uint32_t local_id) const { return tid_hi_ << 32 | local_id; }
  void send(Conn& c, const CmMad& m, bool keep, AgentNanos now, AgentNanos timeout_ns, int retries);
  void send_once(uint32_t dst_ip, const CmMad& m);
  void emit(Conn& c, AgentEventType t, void* cookie_override = nullptr);
  void enter_timewait(Conn& c, AgentNanos now);
  Conn* find(uint32_t local_id);
  Conn* find_remote(uint32_t peer_ip, uint32_t remote_id);

  void on_req(uint32_t src, const MadHdr& h, const Req& m, AgentNanos now);
  void on_rep(const MadHdr& h, const Rep& m, AgentNanos now);
  void on_rtu(const Rtu& m);
  void on_rej(const Rej& m);
  void on_mra(const Mra& m, AgentNanos now);
  void on_dreq(uint32_t src, const MadHdr& h, const Dreq& m, AgentNanos now);
  void on_drep(const Drep& m, AgentNanos now);
  void on_sidr_req(uint32_t src, const MadHdr& h, const SidrReq& m);
  void on_sidr_rep(const SidrRep& m);
  void* listener_for(uint64_t service_id, uint32_t dst_ip) const;

  AgentConfig cfg_;
  AgentOutput* out_;
  uint64_t rng_;
  uint64_t tid_hi_;
  std::map<uint32_t, Conn> conns_;   // by local comm ID (or SIDR request ID)
  std::map<std::pair<uint64_t, uint32_t>, void*> listeners_;  // (service ID, ip or 0)
  Counters counters_;
};

}  // namespace droce::cm
