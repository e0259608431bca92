// Queue pairs (IBTA vol. 1, ch. 9-11): the object the driver posts to and the
// engine-side transport state of the three roles, requester (qp_requester.cc),
// responder (qp_responder.cc) and completer (qp_completer.cc), plus the state
// machine and error-state flush (qp.cc).
//
// Threading: the driver thread(s) call post_send / post_recv (they touch only
// the work queues and the atomic state_ mirror, and ring the doorbell).
// Everything else runs under the device's engine lock: control commands
// (modify, query, destroy) and the engine's poll loop.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "nic/base/clock.h"
#include "nic/base/status.h"
#include "nic/cq.h"
#include "nic/qp_state.h"
#include "nic/wire/eth.h"
#include "nic/work_queue.h"
#include "nic/wqe.h"
#include "nic/wire/aeth.h"
#include "nic/wire/builder.h"

struct rte_mbuf;

namespace droce::nic {

class Device;
class Srq;
struct MrEntry;
enum class AsyncEventType : uint8_t;
struct RxPacket;

inline constexpr uint32_t kMaxMessageBytes = 1u << 31;  // IBTA: 2^31 bytes per message

struct QpCaps {
  uint32_t max_send_wr = 0;
  uint32_t max_recv_wr = 0;
  uint32_t max_send_sge = 1;
  uint32_t max_recv_sge = 1;
  uint32_t max_inline_data = 0;
};

struct QpInitAttr {
  QpType type = QpType::kRc;
  uint32_t pd = 0;
  CompletionQueue* send_cq = nullptr;
  CompletionQueue* recv_cq = nullptr;
  Srq* srq = nullptr;
  QpCaps cap;
  bool sq_sig_all = false;
};

// Where a connected QP (or a UD address handle) sends to. The destination
// MAC is resolved by ARP on the port.
struct AddressVector {
  uint8_t dgid[16] = {};  // RoCEv2: ::ffff:a.b.c.d for IPv4
  uint32_t dst_ip = 0;    // from dgid, host byte order
  uint8_t sgid_index = 0;
  uint8_t hop_limit = 64;
  uint8_t traffic_class = 0;
  uint32_t flow_label = 0;
  uint8_t sl = 0;
  uint8_t port_num = 1;
};

// The attributes of ibv_qp_attr that droce keeps (bits in QpAttr say which
// a modify carries).
struct QpAttrs {
  QpState state = QpState::kReset;
  QpState cur_state = QpState::kReset;
  bool en_sqd_async_notify = false;
  uint32_t access = 0;  // remote access the responder grants (Access bits)
  uint16_t pkey_index = 0;
  uint8_t port_num = 1;
  uint32_t qkey = 0;
  AddressVector av;
  uint32_t path_mtu = 1024;  // bytes: 256 .. 4096
  uint8_t timeout = 14;      // local ACK timeout: 4.096 us * 2^timeout, 0 = infinite
  uint8_t retry_cnt = 7;
  uint8_t rnr_retry = 7;
  uint8_t min_rnr_timer = 12;
  uint32_t rq_psn = 0;
  uint32_t sq_psn = 0;
  uint8_t max_rd_atomic = 1;       // initiator depth
  uint8_t max_dest_rd_atomic = 1;  // responder resources
  uint32_t dest_qpn = 0;
  QpCaps cap;
  bool sq_draining = false;
};

// Engine bookkeeping for one SQ slot, parallel to the work queue.
struct SendMeta {
  uint32_t first_psn = 0;
  uint32_t last_psn = 0;  // PSN of the last request packet (READ: of the last response)
  uint32_t npkts = 0;     // PSNs the WQE occupies
  bool started = false;   // PSNs assigned
  bool requested = false; // READ / atomic: request packet sent (holds an initiator-depth credit)
  bool done = false;      // acknowledged / completed, waiting for in-order retire
  WcStatus status = WcStatus::kSuccess;
};

// A READ, atomic, FLUSH or ATOMIC_WRITE the responder accepted (IBTA 9.7.5.1.3
// responder resources; A19 for the last two): kept so that a duplicate request
// is answered again, and an atomic never executes twice.
struct RespResource {
  // kPlacement: FLUSH / ATOMIC_WRITE, answered by a zero-length READ RESPONSE
  // ONLY (a READ stream of length 0), as rxe's send_read_response_ack does.
  enum class Kind : uint8_t { kFree, kRead, kAtomic, kPlacement };
  Kind kind = Kind::kFree;
  uint32_t first_psn = 0;  // PSN of the request
  uint32_t last_psn = 0;   // PSN of the last response packet
  uint64_t va = 0;
  uint32_t rkey = 0;
  uint32_t length = 0;
  uint8_t* host = nullptr;  // READ: where the data starts
  // Response stream in progress (READ): next PSN and offset to send.
  uint32_t cur_psn = 0;
  uint32_t cur_off = 0;
  bool sending = false;
  uint64_t atomic_orig = 0;  // ATOMIC: the value replied
  uint8_t atomic_opcode = 0;
};

// Counters per QP, written by the engine only.
struct QpCounters {
  uint64_t tx_packets = 0, tx_bytes = 0, rx_packets = 0, rx_bytes = 0;
  uint64_t retransmits = 0;         // packets sent again after a timeout or NAK
  uint64_t timeouts = 0;            // retransmit timer expiries
  uint64_t rnr_naks_sent = 0, rnr_naks_received = 0;
  uint64_t seq_naks_sent = 0, seq_naks_received = 0;
  uint64_t err_naks_sent = 0, err_naks_received = 0;  // the sum of the three codes below
  uint64_t invalid_request_naks_sent = 0, invalid_request_naks_received = 0;
  uint64_t remote_access_naks_sent = 0, remote_access_naks_received = 0;
  uint64_t remote_op_naks_sent = 0, remote_op_naks_received = 0;
  uint64_t duplicates = 0;          // duplicate requests (answered again, or drop_stale_duplicate)
  uint64_t out_of_sequence = 0;     // requests dropped while a seq NAK is outstanding
  uint64_t drops = 0;               // packets dropped for this QP: the sum of the drop_* below
  uint64_t drop_bad_state = 0;      // the QP's state takes no such packet (RESET, INIT, ERR; a response in RTR)
  uint64_t drop_bad_qkey = 0;       // UD: Q_Key mismatch (IBTA 10.2.5)
  uint64_t drop_no_recv_wqe = 0;    // UD / UC: no receive WQE, the message is lost
  uint64_t drop_msg_lost = 0;       // UC: the rest of a message whose start was lost or whose WRITE target went away
  uint64_t drop_uc_reject = 0;      // UC: a request RC would NAK (invalid, access), silently dropped (9.8.3)
  uint64_t drop_bad_aeth = 0;       // a response whose AETH has the reserved type
  uint64_t drop_stale_duplicate = 0;  // duplicate READ / atomic / FLUSH whose responder resource was reused (class D)
  uint64_t stale_naks = 0;          // seq NAKs ignored: a go-back-N to that PSN is under way
  uint64_t duplicate_responses = 0; // responses for PSNs already acknowledged (earlier round)
  uint64_t response_gaps = 0;       // READ responses / atomic ACKs past a missing one
  uint64_t ghost_responses = 0;     // responses for PSNs never sent (dropped)
  uint64_t unexpected_responses = 0;  // responses of the wrong kind for their request (dropped)
  uint64_t tx_unresolved = 0;       // packets not sent: the peer's MAC is not resolved (ARP failed)
  uint64_t rx_bad_src_addr = 0;     // RC/UC packets from another address than the QP's peer
  uint64_t unknown_naks_received = 0;  // NAK codes an RC requester does not know (4..31)
  uint64_t acks_sent = 0;           // ACK frames (positive acknowledgements) the responder sent
  uint64_t acks_coalesced = 0;      // requests that asked for an ACK, answered by a later one
};

// kNoAh: the UD WQE's address handle no longer exists.
enum class ResolveResult : uint8_t { kResolved, kPending, kFailed, kNoAh };

class Qp {
 public:
  Qp(Device* dev, uint32_t qpn, const QpInitAttr& init, std::unique_ptr<WorkQueue> sq,
     std::unique_ptr<WorkQueue> rq);
  ~Qp();

  // --- driver side (any thread, no engine lock) ---
  // Validates and queues one send WQE (header + sges or inline bytes) and
  // rings the doorbell. Returns 0 or an errno as libibverbs: EINVAL for a bad
  // WR or a state that cannot send, ENOMEM when the queue is full.
  int post_send(const SendWqe& wqe, const Sge* sges, const void* inline_data);
  int post_recv(uint64_t wr_id, const Sge* sges, uint32_t num_sge);

  QpState state() const { return state_mirror_.load(std::memory_order_acquire); }
  uint32_t qpn() const { return qpn_; }
  QpType type() const { return type_; }
  uint32_t pd() const { return pd_; }
  CompletionQueue* send_cq() const { return send_cq_; }
  CompletionQueue* recv_cq() const { return recv_cq_; }
  Srq* srq() const { return srq_; }
  bool sq_sig_all() const { return sq_sig_all_; }
  WorkQueue& sq() { return *sq_; }

  // --- under the engine lock ---
  Status modify(const QpAttrs& attrs, uint32_t mask);
  QpAttrs query() const;
  const QpCounters& counters() const { return counters_; }
  // Times the per-QP header template was made (wire::HeaderTemplate): once
  // per destination and attribute change, not per packet (tests look).
  uint32_t header_template_rebuilds() const { return tx_template_.rebuilds; }
  // The IPv4 address of the connected peer (RC/UC; from the AV of RTR).
  uint32_t peer_ip() const { return attrs_.av.dst_ip; }
  // A packet dropped for reason (one of QpCounters' drop_* fields), counted
  // in drops too; the device's receive checks call it before the QP sees one.
  void count_drop(uint64_t QpCounters::*reason) {
    ++counters_.drops;
    ++(counters_.*reason);
  }
  void count_bad_src_addr() { ++counters_.rx_bad_src_addr; }
  // Moves the QP to ERR and flushes (a fatal completion, a remote error, a
  // CQ overflow, device removal). Idempotent: a second call completes nothing twice.
  void enter_error();
  // dereg_mr of [host, host + length): a WRITE in progress into it caches
  // where its next packet lands, so the message fails now (remote access
  // error, as its next packet would) and the engine never touches the region.
  void on_mr_deregistered(uint32_t key);

  // Engine entry points. Device::dispatch has checked the packet's transport,
  // the QP's state, the source address and the P_Key (rxe_recv.c hdr_check).
  void handle_request(const RxPacket& pkt);   // qp_responder.cc
  void handle_response(const RxPacket& pkt);  // qp_completer.cc
  void run_requester(Nanos now);              // qp_requester.cc
  void run_timers(Nanos now);                 // qp_completer.cc
  // The end of the receive burst in which the QP deferred an ACK
  // (Device::defer_ack): the ACK leaves unless responses are still owed
  // before it (then send_resp_resources sends it after them).
  void send_deferred_ack(Nanos now);          // qp_responder.cc
  // True while the QP needs the engine without a doorbell (timers, response streams).
  bool needs_service() const;

 private:
  friend class QpTestPeer;

  // qp.cc: state, completions, packets.
  void set_state(QpState s);
  Status check_modify_values(const QpAttrs& a, uint32_t mask, uint32_t* dst_ip) const;
  void apply_attrs(const QpAttrs& a, uint32_t mask, uint32_t dst_ip);
  void change_state(QpState next);
  void reset_queues();
  void resize_resources(uint8_t max_dest_rd_atomic);
  void flush_send_queue();
  void flush_recv_queue();
  // ERR without the flush: state, timers off, LAST_WQE_REACHED once. Safe
  // inside a completion push (push_cqe); the next poll flushes.
  void mark_error();
  // A CQE the QP owes (flush, or one kept on CQ overrun): pushed only when
  // the CQ has room, never counted as an overflow. False: try again later.
  bool push_owed(CompletionQueue* cq, const Cqe& cqe, bool solicited);
  Cqe send_cqe(uint32_t index, WcStatus status);
  // No send WQE is in progress: every started one is completed (SQD, IBTA
  // 10.3.1: WQEs not yet started wait; a half-sent one still counts).
  bool sq_drained() const;
  void check_sq_drained();
  // Marks a WQE finished now (local work, UC/UD, errors); an error is fatal
  // to the QP unless said otherwise.
  void complete_send_now(uint32_t index, WcStatus status, bool fatal = true);
  void retire_sends();
  // Completes the oldest send WQE: frees its slot, then its CQE (if signal).
  void retire_send_head(bool signal, WcStatus status);
  bool push_cqe(CompletionQueue* cq, const Cqe& cqe, bool solicited);
  void post_recv_cqe(WcStatus status, WcOpcode opcode, uint32_t byte_len, uint8_t flags,
                     uint32_t imm_or_inv, uint32_t src_qp, bool solicited);
  uint32_t psns_for(uint32_t length) const;
  SendWqe& wqe_at(uint32_t index) { return *reinterpret_cast<SendWqe*>(sq_->slot(index)); }
  SendMeta& meta_at(uint32_t index) { return meta_[index & (sq_->capacity() - 1)]; }
  rte_mbuf* build_packet(wire::PacketSpec& s, const wire::MacAddr& dst_mac, uint32_t dst_ip,
                         uint8_t** payload);
  // The same with the payload attached from the registered memory at host
  // (Device::build_chain); nullptr: build_packet and copy instead.
  rte_mbuf* build_attached(wire::PacketSpec& s, const wire::MacAddr& dst_mac, uint32_t dst_ip,
                           const MrEntry& mr, uint8_t* host);
  void address_packet(wire::PacketSpec& s, const wire::MacAddr& dst_mac, uint32_t dst_ip);
  // RC and UC send every packet to one peer: their headers come from the
  // QP's template. UD's destination changes per WQE: written field by field.
  wire::HeaderTemplate* header_template() {
    return type_ == QpType::kUd ? nullptr : &tx_template_;
  }
  void finish_packet(rte_mbuf* m, const wire::PacketSpec& s);
  int check_send_wqe(const SendWqe& w, const Sge* sges) const;
  // Copies len bytes between buf and an SGE list, starting at byte `off` of
  // the list: into the SGEs (scatter, needs local write) or out of them
  // (gather). Every key is checked for the bytes it covers; false when one
  // fails or the list is too short.
  bool copy_sges(const Sge* sge, uint32_t num_sge, uint32_t off, uint8_t* buf, uint32_t len,
                 bool scatter);

  // qp_requester.cc: the request chain (rxe_req.c).
  // Where the next request goes: its MAC, IPv4 address, QPN and (UD) Q_Key.
  // unresolved: RC whose peer did not answer ARP (the packet counts as lost).
  struct RequestDest {
    wire::MacAddr mac{};
    uint32_t ip = 0;
    uint32_t qpn = 0;
    uint32_t qkey = 0;
    bool unresolved = false;
  };
  // kGo: send; kWait: nothing more this poll; kNext: the WQE completed
  // locally, the next one may send.
  enum class RequestStep : uint8_t { kGo, kWait, kNext };
  bool send_one_packet(Nanos now);
  bool next_request(Nanos now, uint32_t* npsns);
  RequestStep resolve_request(const SendWqe& w, Nanos now, RequestDest* d);
  wire::PacketSpec init_request(const SendWqe& w, const RequestDest& d, uint32_t npsns,
                                bool* last);
  bool transmit_request(const SendWqe& w, wire::PacketSpec& s, const RequestDest& d);
  void advance_request(const wire::PacketSpec& s, uint32_t npsns, bool last, Nanos now);
  bool start_wqe(uint32_t index, Nanos now);
  bool gather(const SendWqe& w, uint32_t off, uint8_t* dst, uint32_t len);
  // Zero-copy transmit: the region and host address of len payload bytes at
  // message offset off of w, when one SGE holds them all and the device
  // attaches payloads of that size; nullptr: the caller copies.
  const MrEntry* zero_copy_source(const SendWqe& w, uint32_t off, uint32_t len, uint8_t** host);
  void restart_from(uint32_t psn);
  ResolveResult resolve_peer(Nanos now, wire::MacAddr* mac);
  ResolveResult resolve_ah(uint32_t ah, Nanos now, wire::MacAddr* mac, uint32_t* ip);

  // qp_responder.cc: the request chain (rxe_resp.c), then responses.
  // What a failed check does (IBTA 9.9): a class C error (NAK, the receive
  // WQE in progress completes with `status`, QP to ERR, `event`), an RNR NAK
  // (class B), or a silent drop (UC).
  struct Reject {
    enum class Kind : uint8_t { kError, kRnr, kDrop };
    Kind kind = Kind::kError;
    wire::NakCode code = wire::NakCode::kInvalidRequest;
    WcStatus status = WcStatus::kRemInvReqErr;
    AsyncEventType event{};
    const char* why = "";
    static Reject invalid(const char* why);  // NAK invalid request, QP_REQ_ERR
    static Reject access(const char* why);   // NAK remote access error, QP_ACCESS_ERR
    static Reject rnr() { return {Kind::kRnr}; }
    static Reject drop() { return {Kind::kDrop}; }
  };
  bool check_psn(const RxPacket& pkt);
  bool check_op_seq(const RxPacket& pkt, Reject* r);
  bool check_op_valid(const RxPacket& pkt, Reject* r);
  bool check_resource(const RxPacket& pkt, Reject* r);
  bool check_length(const RxPacket& pkt, Reject* r);
  bool check_rkey(const RxPacket& pkt, Reject* r);
  bool check_write_rkey(const RxPacket& pkt, Reject* r);
  bool check_read_rkey(const RxPacket& pkt, Reject* r);
  bool check_atomic_rkey(const RxPacket& pkt, Reject* r);
  bool check_atomic_write_rkey(const RxPacket& pkt, Reject* r);
  bool check_flush_rkey(const RxPacket& pkt, Reject* r);
  bool check_receive(const RxPacket& pkt, Reject* r);
  void reject(const RxPacket& pkt, const Reject& r);
  bool execute(const RxPacket& pkt);
  bool execute_send(const RxPacket& pkt);
  void execute_write(const RxPacket& pkt);
  void execute_read(const RxPacket& pkt);
  void execute_atomic(const RxPacket& pkt);
  void execute_atomic_write(const RxPacket& pkt);
  void execute_flush(const RxPacket& pkt);
  bool complete(const RxPacket& pkt);
  void acknowledge(const RxPacket& pkt);
  void send_ack(uint8_t syndrome, uint32_t psn, Nanos now);
  // An ACK up to psn is owed: held behind owed responses, deferred to the end
  // of the receive burst (coalescing), or sent now.
  void hold_ack(uint32_t psn, Nanos now);
  // Sends the held ACK unless responses are owed before it.
  void release_held_ack(Nanos now);
  void responder_error(wire::NakCode code, WcStatus status, uint32_t psn, Nanos now,
                       AsyncEventType event);
  bool take_recv_wqe();
  WcStatus scatter_recv(const uint8_t* src, uint32_t len);
  void handle_ud_send(const RxPacket& pkt);
  void replay_duplicate(const RxPacket& pkt);
  RespResource& alloc_resource();
  void queue_placement_response(uint32_t psn);
  void send_atomic_ack(const RespResource& r, Nanos now);
  bool send_resp_resources(Nanos now);
  bool responses_owed() const;

  // qp_completer.cc: the response chain (rxe_comp.c), timers and retries.
  bool check_response_psn(const RxPacket& pkt);
  bool check_ack(const RxPacket& pkt);
  void on_rnr_nak(const RxPacket& pkt);
  void on_nak(const RxPacket& pkt);
  void complete_ack(const RxPacket& pkt);
  bool check_response(const RxPacket& pkt, uint32_t* index);
  bool do_placement(const RxPacket& pkt, uint32_t index);
  bool do_read(const RxPacket& pkt, uint32_t index);
  bool do_atomic(const RxPacket& pkt, uint32_t index);
  void finish_response(const RxPacket& pkt, uint32_t index);
  void ack_up_to(uint32_t psn, Nanos now);
  void note_progress(Nanos now);
  void complete_error_at(uint32_t psn, WcStatus status);
  void arm_retransmit(Nanos now);
  void retry(Nanos now, bool timeout, uint32_t from);

  Device* const dev_;
  const uint32_t qpn_;
  const QpType type_;
  const uint32_t pd_;
  CompletionQueue* const send_cq_;
  CompletionQueue* const recv_cq_;
  Srq* const srq_;
  const bool sq_sig_all_;
  const QpCaps caps_;
  std::unique_ptr<WorkQueue> sq_;
  std::unique_ptr<WorkQueue> rq_;  // null with an SRQ
  std::unique_ptr<SendMeta[]> meta_;  // one per SQ slot

  QpAttrs attrs_;
  std::atomic<QpState> state_mirror_{QpState::kReset};  // written under the engine lock
  QpCounters counters_;
  wire::HeaderTemplate tx_template_;  // header_template()

  // Requester (rxe_req.c).
  uint32_t sq_comp_ = 0;  // oldest WQE not yet retired
  uint32_t sq_send_ = 0;  // WQE being sent
  uint32_t send_off_ = 0; // bytes of sq_send_ already sent
  uint32_t psn_ = 0;      // next PSN to send
  uint32_t psn_max_sent_ = 0;  // one past the highest PSN ever sent (retransmit counting)
  uint32_t comp_psn_ = 0; // oldest PSN not yet acknowledged
  uint32_t noack_pkts_ = 0;
  uint32_t rd_atomic_inflight_ = 0;  // READ requests and atomics awaiting their responses
  uint32_t read_request_psns_;       // PSNs per READ request (kMaxReadRequestPsns)
  uint8_t retry_left_ = 7;
  uint8_t rnr_left_ = 7;
  Nanos retransmit_at_ = 0;  // 0: timer off
  Nanos rnr_until_ = 0;      // 0: not waiting for an RNR timer
  bool need_retry_ = false;  // implicit NAK seen: retry from retry_psn_
  uint32_t retry_psn_ = 0;
  bool sq_drained_sent_ = false;
  bool resolve_pending_ = false;  // entered RTR: run_requester starts ARP for the peer
  // A go-back-N (NAK, implicit NAK or RNR) started and no progress since:
  // further sequence NAKs for the same PSN come from the earlier round
  // (rxe's comp.started_retry). Cleared when comp_psn_ advances.
  bool retry_started_ = false;

  // Responder (rxe_resp.c).
  uint32_t epsn_ = 0;
  uint32_t msn_ = 0;
  bool seq_nak_sent_ = false;
  enum class InMsg : uint8_t { kNone, kSend, kWrite } in_msg_ = InMsg::kNone;
  bool have_recv_ = false;                // recv_copy_ holds the WQE of the message in progress
  std::unique_ptr<uint8_t[]> recv_copy_;  // RecvWqe + Sges
  uint32_t recv_copy_size_ = 0;
  uint32_t recv_off_ = 0;                 // bytes received into it
  uint8_t* rkey_host_ = nullptr;          // check_rkey -> execute: the atomic's host word
  uint8_t* write_host_ = nullptr;         // WRITE in progress: next byte
  uint32_t write_rkey_ = 0;               // ... and the MR it lands in
  uint32_t write_resid_ = 0;
  uint32_t write_len_ = 0;
  std::unique_ptr<RespResource[]> res_;   // max_dest_rd_atomic entries
  uint32_t res_cap_ = 0;
  uint32_t res_count_ = 0;
  uint32_t res_next_ = 0;
  // An ACK owed up to held_ack_psn_: behind READ responses / atomic replies
  // still owed, or (ack_deferred_) until the end of the receive burst.
  bool ack_held_ = false;
  uint32_t held_ack_psn_ = 0;
  bool ack_deferred_ = false;  // on the device's deferred-ACK list
  bool error_entered_ = false;
  // A receive completion that found its CQ full (CQ overrun): kept, and
  // delivered first by the flush once the consumer has made room.
  Cqe overrun_recv_cqe_{};
  bool overrun_recv_pending_ = false;
  bool overrun_recv_solicited_ = false;
};

}  // namespace droce::nic
