// SMC-R core objects: link groups, links and connections, and the buffers
// (RMBs, send buffers) they own (RFC 7609 sections 3.2-3.4; the roles of
// Linux 6.1 smc_core.c and smc_wr.c). Only <infiniband/verbs.h> below this
// layer (DESIGN.md section 6).
//
// Lifetimes and the invariants of DESIGN.md section 6:
//  - A Connection is freed when its reference count reaches zero. The owner
//    (socket) holds one reference, every CDC in flight holds one (taken
//    before ibv_post_send, dropped by its completion whatever the status:
//    invariant 1), and a receive dispatch holds one while it works on it.
//    So the completion handler of a CDC can never touch a freed connection,
//    and the wait for the last CDC has no timeout: the NIC completes every
//    WQE (a QP in ERR flushes them).
//  - A Link is torn down by Link::teardown: QP to ERR (never RESET), wait
//    until every posted send and receive has completed, then destroy QP,
//    CQs, MRs and PD in that order (invariant 2). Sends are posted only while
//    the link is kActive, i.e. its QP is in RTS (invariant 3).
//  - Freeing is idempotent (Connection::release, LinkGroup::terminate,
//    Link::teardown may each be reached from several paths: invariant 5) and
//    completion handlers check what is built before using it.
#pragma once

#include <infiniband/verbs.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "smc/wire/cdc.h"
#include "smc/wire/clc.h"
#include "smc/wire/cursor.h"
#include "smc/wire/llc.h"
#include "smc/wire/types.h"

namespace droce::smc {

class Runtime;
class LinkGroup;
class Connection;
struct IbDevice;

inline constexpr int kMaxLinks = wire::kLlcMaxLinks;  // links per link group
inline constexpr uint32_t kTxSlots = 64;       // signalled sends in flight per link
inline constexpr uint32_t kRecvWrs = 64;       // receive WRs per link
inline constexpr uint32_t kRecvBufSize = wire::kLlcV2MaxLen;  // 8 KiB: a v2 link must (B7)
inline constexpr uint32_t kSlotBufSize = 48;   // SMC_WR_BUF_SIZE: one 44-byte CDC/LLC
inline constexpr uint32_t kMaxConnsPerLgr = 255;  // SMC_RMBS_PER_LGR_MAX

enum class Role : uint8_t { kClient, kServer };
const char* role_name(Role r);

// A buffer one connection uses: its RMB (the peer writes into it) or its send
// buffer (the source of RDMA WRITEs). Page-aligned memory, registered once per
// link of its link group. Reused by later connections of the group (Linux
// keeps RMBs for reuse too); freed with the group.
struct Buffer {
  uint8_t* data = nullptr;
  uint32_t size = 0;
  bool is_rmb = false;
  std::array<ibv_mr*, kMaxLinks> mr{};  // per link index
  bool rkey_confirmed = false;          // RMB announced to the peer (CONFIRM RKEY / CLC)
  bool in_use = false;
};

enum class LinkState : uint8_t {
  kInit,      // QP in INIT, receives posted
  kRtr,       // peer known, QP in RTR
  kActive,    // QP in RTS: sends allowed
  kDown,      // failed or being torn down: QP in ERR
  kFreed,     // torn down
};
const char* link_state_name(LinkState s);

// Kinds of signalled send work requests, kept in the slot until completion.
enum class SlotKind : uint8_t { kFree, kCdc, kLlc };

struct TxSlot {
  SlotKind kind = SlotKind::kFree;
  Connection* conn = nullptr;  // kCdc: holds one CDC in-flight reference
  wire::Cursor sndbuf_fin{};   // kCdc: the send buffer is free up to here once completed
  uint16_t seqno = 0;          // kCdc
};

struct LinkCounters {
  std::atomic<uint64_t> cdc_sent{0}, cdc_received{0}, llc_sent{0}, llc_received{0};
  std::atomic<uint64_t> writes_posted{0}, bytes_written{0};
  std::atomic<uint64_t> wc_errors{0};          // completions with a status other than success/flush
  std::atomic<uint64_t> flushed{0};            // completions flushed by teardown
  std::atomic<uint64_t> rx_bad_msg{0};         // receives dropped: malformed CDC/LLC
  std::atomic<uint64_t> rx_unknown_token{0};   // CDC for no connection of this group
  std::atomic<uint64_t> post_refused{0};       // sends not posted: the QP was not in RTS
};

// One RC QP to the peer, with its own PD, CQs, slot and receive buffers.
// Threading: state_ is read anywhere (acquire) and written under tx_mu_;
// tx_mu_ guards the slots and post_send; poll_mu_ serialises CQ polling and
// completion dispatch (lock order: poll_mu_ before LinkGroup::mu_ before
// Connection::mu_; tx_mu_ is innermost).
class Link {
 public:
  Link(LinkGroup* lgr, IbDevice* dev, uint8_t index, uint8_t link_id);
  ~Link();
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;

  // PD, CQs, QP (to INIT), buffers, receives posted. False with *err set.
  bool create(std::string* err);
  // RTR with the peer's QPN/PSN/MTU/GID, then (rts) RTS.
  bool to_rtr(const wire::Gid& peer_gid, uint32_t peer_qpn, uint32_t peer_psn, uint8_t mtu,
              std::string* err);
  bool to_rts(std::string* err);
  // Invariant 2: QP to ERR, drain every send and receive, destroy QP, CQs,
  // MRs, PD. Idempotent; safe from any thread that does not hold poll_mu_.
  void teardown();
  // Marks the link down and moves the QP to ERR (no waiting), then has the
  // progress thread fail its connections over (LinkGroup::link_down): called
  // when a completion reports an error (poll context), a TEST LINK went
  // unanswered, or the port went down.
  void fail(const char* why);
  // Failover's first step (as smcr_link_down before smc_switch_conns): the
  // link down, its QP in ERR, and every posted send completed (flushed), so
  // that no WRITE of it still reads a send buffer the connections are about
  // to reuse. Polls the CQs itself; never call with poll_mu_ held.
  void drain_sends();

  LinkState state() const { return state_.load(std::memory_order_acquire); }
  bool active() const { return state() == LinkState::kActive; }
  uint32_t qpn() const { return qpn_; }  // kept after the QP is destroyed (stat, logs)
  uint32_t psn() const { return psn_; }
  uint8_t mtu() const { return mtu_; }
  uint8_t index() const { return index_; }
  uint8_t link_id() const { return link_id_.load(std::memory_order_acquire); }
  // The client takes the link number the server's CONFIRM LINK names.
  void set_link_id(uint8_t id) { link_id_.store(id, std::memory_order_release); }
  IbDevice* device() const { return dev_; }
  ibv_pd* pd() const { return pd_; }
  LinkGroup* lgr() const { return lgr_; }
  const wire::Gid& peer_gid() const { return peer_gid_; }
  uint32_t peer_qpn() const { return peer_qpn_; }
  const std::array<uint8_t, 4>& link_uid() const { return link_uid_; }
  void set_link_uid(const std::array<uint8_t, 4>& u) { link_uid_ = u; }
  LinkCounters& counters() { return counters_; }

  // Registers a buffer on this link's PD (RMB: remote write).
  bool register_buffer(Buffer* b, std::string* err);

  // Sends one 44-byte LLC message or a v2 LLC of up to 8 KiB. Waits up to
  // wait_ms for a free slot (polling the CQs itself). False when the link is
  // not active or no slot came free.
  bool send_llc(const wire::LlcMsg& msg, int wait_ms);

  // Posts RDMA WRITEs (0..2 of them, each with up to 2 SGEs) followed by a
  // CDC SEND, in one ibv_post_send. Takes the CDC in-flight reference on
  // `conn`. `slot` comes from try_get_slot. False (slot released, reference
  // dropped) when posting failed.
  struct WriteSeg {
    uint64_t remote_addr;
    uint32_t rkey;
    ibv_sge sge[2];
    int num_sge;
  };
  bool post_cdc(uint32_t slot, Connection* conn, const wire::CdcMsg& cdc, const WriteSeg* writes,
                int num_writes, wire::Cursor sndbuf_fin);
  // A free slot index, or -1 (non-blocking). Only while active.
  int try_get_slot();
  void put_slot_unused(uint32_t slot);
  uint32_t slots_in_flight() const { return slots_used_.load(std::memory_order_acquire); }
  // Polls until every signalled send completed (or ms passed, or the link
  // went down): before a teardown that would flush a last message.
  void wait_sends_done(int ms);

  // Polls both CQs once and dispatches what it finds. try_lock: returns
  // false at once when another thread is polling. Never call with a
  // LinkGroup or Connection lock held.
  bool poll_once();
  // A send completion the test hook held back, handled now (never held again).
  void deliver_send_wc(const ibv_wc& wc) { on_send_wc(wc, false); }
  // Polls until both CQs are empty (blocking on poll_mu_): the progress
  // thread, after a completion event.
  void poll_all();
  // Polls the CQs named until a poll returns less than a full batch (the
  // progress thread, after a completion event; see Runtime::handle_channel).
  void drain(bool send, bool recv);
  // Arms both CQs for the next completion (progress thread).
  void arm();
  // Liveness (Linux's TEST LINK, smcr_testlink_time): the time of the last
  // receive, and of a TEST LINK of ours still unanswered (0: none).
  int64_t last_rx_ms() const { return last_rx_ms_.load(std::memory_order_relaxed); }
  std::atomic<int64_t> test_link_sent_ms{0};
  // An application thread busy-polls this link's CQs: the progress thread
  // then leaves the CQs unarmed (no wake-up per completion competing for the
  // core); the last busy poller to leave re-arms them.
  void busy_enter() { busy_pollers_.fetch_add(1, std::memory_order_acq_rel); }
  void busy_exit();
  bool busy_polled() const { return busy_pollers_.load(std::memory_order_acquire) != 0; }
  ibv_cq* send_cq() const { return send_cq_; }
  ibv_cq* recv_cq() const { return recv_cq_; }

  // Waits (busy-polling, then sleeping on slot_cv_) for a slot; -1 on
  // timeout or when the link went down.
  int get_slot(int wait_ms);

 private:
  friend class LinkTestPeer;
  int poll_cq_locked(ibv_cq* cq, bool is_send);
  void on_send_wc(const ibv_wc& wc, bool may_hold = true);
  void on_recv_wc(const ibv_wc& wc);
  bool post_recv(uint32_t index);
  void release_slot(uint32_t slot);
  // One signalled SEND of len bytes (an LLC message; a test peer sends
  // malformed ones through it).
  bool send_bytes(const uint8_t* bytes, size_t len, int wait_ms);
  void destroy_verbs_objects();
  void trace(const char* step);
  void dispatch_recv(const uint8_t* msg, uint32_t len);
  void teardown_locked();  // teardown_mu_ held
  // Sets the state to kDown and the QP to ERR; false when it was down already.
  bool mark_down();
  // Polls until no send (and, when receives_too, no receive) is outstanding.
  void wait_drained(bool receives_too);

  LinkGroup* const lgr_;
  IbDevice* const dev_;
  const uint8_t index_;
  std::atomic<uint8_t> link_id_;
  std::array<uint8_t, 4> link_uid_{};

  ibv_pd* pd_ = nullptr;
  ibv_comp_channel* channel_ = nullptr;
  ibv_cq* send_cq_ = nullptr;
  ibv_cq* recv_cq_ = nullptr;
  ibv_qp* qp_ = nullptr;
  uint8_t* slot_bufs_ = nullptr;  // kTxSlots * kSlotBufSize, then one 8 KiB v2 LLC buffer
  uint8_t* recv_bufs_ = nullptr;  // kRecvWrs * kRecvBufSize
  ibv_mr* slot_mr_ = nullptr;
  ibv_mr* recv_mr_ = nullptr;
  uint32_t qpn_ = 0;
  uint32_t psn_ = 0;
  uint8_t mtu_ = 0;
  wire::Gid peer_gid_{};
  uint32_t peer_qpn_ = 0;

  std::atomic<LinkState> state_{LinkState::kInit};
  std::mutex teardown_mu_;  // serialises teardown (idempotent)

  std::mutex tx_mu_;
  std::condition_variable slot_cv_;
  std::array<TxSlot, kTxSlots> slots_{};
  uint64_t free_mask_ = ~uint64_t(0);  // bit i: slot i free (kTxSlots == 64)
  bool v2_buf_busy_ = false;           // the 8 KiB LLC send buffer is in flight
  std::atomic<uint32_t> slots_used_{0};
  std::atomic<uint32_t> recv_posted_{0};

  std::mutex poll_mu_;
  std::atomic<int> busy_pollers_{0};
  std::atomic<int64_t> last_rx_ms_{0};
  LinkCounters counters_;
};

// How long one connection's blocking waits poll the CQs before sleeping:
// SMC_BUSY_POLL_US at first, doubled after a wait the poll satisfied (up to
// kMaxFactor times the setting), halved after one it did not (down to the
// setting). A streaming connection's waits for the peer are short but
// frequent, and each one that falls asleep costs wake-ups on both sides
// (docs/benchmarks.md "SMC-R"); an idle connection's waits run out and it
// is back at the setting after a few of them.
class SpinBudget {
 public:
  static constexpr int kMaxFactor = 20;
  explicit SpinBudget(int base_us) : base_us_(base_us), us_(base_us) {}
  int us() const { return us_; }
  void satisfied() { us_ = std::min(us_ * 2, base_us_ * kMaxFactor); }
  void missed() { us_ = std::max(us_ / 2, base_us_); }

 private:
  int base_us_, us_;
};

// Per connection counters and state for `droce-smc stat`.
struct ConnStats {
  std::atomic<uint64_t> bytes_sent{0}, bytes_received{0}, cdc_sent{0}, cdc_received{0};
  std::atomic<uint64_t> write_blocked{0};  // times the sender found the peer's RMB full
};

// One SMC-R connection of a link group: a send buffer, an RMB, cursors.
// Threading: mu_ guards every cursor and flag; cv_ wakes readers, writers
// and closers. refs_ and cdc_pend_tx_ are atomics (see the file comment).
class Connection {
 public:
  Connection(LinkGroup* lgr, uint32_t token);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // --- lifetime -------------------------------------------------------
  void hold() { refs_.fetch_add(1, std::memory_order_relaxed); }
  // Drops a reference; the last one frees the connection (and returns true:
  // the caller must not touch it again).
  bool put();
  // The owner is done: unregisters the token from the group and drops the
  // owner's reference. Idempotent (invariant 5).
  void release();
  // CDC in-flight accounting (invariant 1). cdc_get before the post; cdc_put
  // from the send completion whatever its status, as the handler's last act.
  void cdc_get();
  void cdc_put();
  uint32_t cdc_pending() const { return cdc_pend_tx_.load(std::memory_order_acquire); }
  uint32_t refs() const { return refs_.load(std::memory_order_acquire); }

  // --- identity and buffers (set up before the connection is active) --------
  LinkGroup* lgr() const { return lgr_; }
  uint32_t token() const { return token_; }
  Buffer* rmb() const { return rmb_; }
  Buffer* sndbuf() const { return sndbuf_; }
  void set_buffers(Buffer* rmb, Buffer* sndbuf) {
    rmb_ = rmb;
    sndbuf_ = sndbuf;
  }
  // From the peer's Accept/Confirm: its RMB and the token it wants in our CDCs.
  // rtoken: the group's entry for that RMB (LinkGroup::rtoken_add), which
  // knows its rkey on every link for a failover.
  void set_peer(uint32_t peer_token, uint32_t rkey, uint64_t vaddr, uint32_t rmb_size, int rtoken);
  uint32_t peer_rmb_size() const { return peer_rmb_size_; }
  void activate(Link* link);
  // Failover (smc_switch_conns, smc_switch_cursor): sends go on `to` from
  // now on. Everything not confirmed by a completed CDC on the old link is
  // written again (the bytes are still in the send buffer: the old link was
  // drained first), a CDC with failover_validation carries the sequence
  // number of the last completed CDC, and a CDC with the cursors follows.
  // False when the peer's RMB has no rkey on `to` (the connection is then
  // aborted by the caller).
  bool switch_link(Link* to);

  // --- data path (application threads) ---------------------------------
  // Copies up to len bytes into the send buffer and transmits. Blocks while
  // the send buffer is full unless nonblock (then -EAGAIN). Returns bytes
  // taken or -errno.
  long send(const void* buf, size_t len, bool nonblock);
  // Copies up to len available bytes out of the RMB. Blocks while none are
  // available unless nonblock. 0 at end of stream; -errno on error.
  long recv(void* buf, size_t len, bool nonblock, bool peek = false);
  // SHUT_WR: waits (bounded) until the send buffer is sent, then
  // peer_done_writing.
  int shutdown_write();
  // Orderly close (abort when unread data remains, as Linux): sends
  // peer_conn_closed after the send buffer drained (bounded wait). Returns at
  // once; the peer's close or the close wait ends the connection.
  void close();
  // Abortive close: peer_conn_abort, the connection fails at once.
  void abort(const char* why);

  // Bytes a recv would return now.
  long available();
  // Readiness, for poll/epoll on the socket's descriptor.
  bool readable();   // data, end of stream or error
  bool writable();   // send buffer space, or error
  int error() const { return error_.load(std::memory_order_acquire); }
  bool closed_both_ways();  // our close sent and the peer's received (or aborted)
  bool close_sent();        // our peer_conn_closed (or abort) went out
  bool peer_closed();       // the peer's close or abort arrived, or the connection failed

  // --- called by the link (poll context; no blocking) -------------------------
  // A CDC for this connection arrived. Returns false when it breaks a rule
  // (cursor beyond the buffer, sequence going backwards is ignored quietly):
  // the connection is then aborted.
  // via: the link it arrived on.
  void on_cdc(const wire::CdcMsg& m, Link* via);
  // A link of the group was torn down, its receives all handled: a failover
  // validation that named a CDC we had not seen yet is decided now.
  void on_link_drained();
  // Our CDC completed (status success).
  void on_cdc_sent(wire::Cursor sndbuf_fin, uint16_t seqno);
  // The link under the connection went down or the group is terminating.
  void on_link_down(int err);
  // Retries pending transmission (data or a cursor update) without blocking;
  // progress thread and completion handlers.
  void try_transmit();

  // Waits until pred() holds (under mu_), busy-polling the link's CQs for up
  // to the runtime's busy-poll time, then sleeping on cv_. Returns false on
  // timeout (timeout_ms < 0: none).
  template <typename Pred>
  bool wait(std::unique_lock<std::mutex>& lk, Pred pred, int timeout_ms);

  ConnStats& stats() { return stats_; }
  // How long the next blocking wait polls before sleeping (SpinBudget).
  int spin_budget_us();
  // Snapshot for `droce-smc stat`.
  std::string state_name();
  // Told (outside mu_) whenever readiness may have changed: data arrived,
  // send space freed, end of stream, error. Set once before the connection
  // is active; the socket layer mirrors readiness on its descriptor.
  class ReadyListener {
   public:
    virtual ~ReadyListener() = default;
    virtual void on_ready(Connection& c) = 0;
  };
  void set_ready_listener(std::unique_ptr<ReadyListener> l) { listener_ = std::move(l); }
  // "local -> peer" TCP addresses, for `droce-smc stat` (set once, before use).
  void set_label(std::string l) { label_ = std::move(l); }
  const std::string& label() const { return label_; }
  Link* link() const { return link_.load(std::memory_order_acquire); }

 private:
  friend class ConnectionTestPeer;
  enum class Tx : uint8_t { kDone, kNoSlot, kDown };
  // Posts what is pending (data, flags, a cursor update when due or forced).
  Tx transmit_locked(bool force_cdc);
  // transmit_locked, waiting for slots (application threads, progress thread).
  void transmit_blocking(std::unique_lock<std::mutex>& lk, bool force_cdc);
  uint32_t sndbuf_pending_locked() const;
  uint32_t rx_available_locked() const;
  bool should_announce_locked(bool force) const;
  void fail_locked(int err);
  void notify_ready() {
    if (listener_) listener_->on_ready(*this);
  }

  LinkGroup* const lgr_;
  const uint32_t token_;
  // The link sends go on: set by activate(), moved by switch_link(); written
  // under mu_, read anywhere.
  std::atomic<Link*> link_{nullptr};
  Buffer* rmb_ = nullptr;
  Buffer* sndbuf_ = nullptr;
  uint32_t peer_token_ = 0;
  uint32_t peer_rkey_ = 0;
  uint64_t peer_vaddr_ = 0;
  uint32_t peer_rmb_size_ = 0;
  int rtoken_ = -1;  // the group's rtoken entry of the peer's RMB

  std::atomic<uint32_t> refs_{1};         // the owner's reference
  std::atomic<uint32_t> cdc_pend_tx_{0};  // CDCs posted, not yet completed
  std::atomic<bool> released_{false};
  std::atomic<int> error_{0};

  std::mutex mu_;
  std::condition_variable cv_;
  // Send side. Send buffer ring cursors: the application wrote up to prep,
  // RDMA WRITEs were posted up to sent, their CDC completed up to fin.
  wire::Cursor tx_prep_{}, tx_sent_{}, tx_fin_{};
  wire::Cursor tx_prod_{};    // producer cursor in the peer's RMB
  wire::Cursor peer_cons_{};  // consumer cursor the peer announced (its RMB)
  uint16_t tx_seq_ = 0;       // last CDC sequence number used
  uint16_t tx_seq_fin_ = 0;   // sequence number of the last CDC that completed
  bool write_blocked_ = false;  // we told the peer its RMB is full for us
  // Receive side, our RMB: the peer produced up to rx_prod, we consumed up
  // to rx_cons and announced rx_cons_sent.
  wire::Cursor rx_prod_{}, rx_cons_{}, rx_cons_sent_{};
  uint16_t rx_seq_ = 0;  // last sequence number received
  bool rx_seq_seen_ = false;
  // A failover validation named CDC sync_seq_, not seen yet while another
  // link still held receives: decided when rx_seq_ reaches it (in sync) or
  // once that link is torn down (out of sync).
  bool sync_pending_ = false;
  uint16_t sync_seq_ = 0;
  bool peer_write_blocked_ = false, peer_upd_req_ = false;
  bool peer_done_writing_ = false, peer_closed_ = false, peer_abort_ = false;
  bool done_writing_sent_ = false, closed_sent_ = false, abort_sent_ = false;
  bool want_done_writing_ = false, want_close_ = false;  // to send once drained
  bool cdc_owed_ = false;  // a CDC (flags or cursor update) waits for a slot
  ConnStats stats_;
  SpinBudget spin_;  // under mu_
  std::unique_ptr<ReadyListener> listener_;
  std::string label_;
};

// A link group: the links to one peer system, the connections over them and
// their buffers (smc_link_group). Threading: mu_ guards conns_, the buffer
// pools and links_ entries; links themselves are thread-safe.
class LinkGroup {
 public:
  LinkGroup(Runtime* rt, Role role, uint32_t id, bool v2);
  ~LinkGroup();

  Runtime* runtime() const { return rt_; }
  Role role() const { return role_; }
  uint32_t id() const { return id_; }
  bool v2() const { return v2_; }

  // Peer identity (matching for reuse).
  wire::SystemId peer_id{};
  wire::Gid peer_gid{};
  wire::Mac peer_mac{};
  wire::Eid eid{};

  Link* link(int i) const {
    std::lock_guard<std::mutex> lk(mu_);
    return links_[i].get();
  }
  // The first active link, or nullptr.
  Link* active_link();
  // The active link with the fewest connections (new connections spread
  // over the links, as smcr_lgr_conn_assign_link), or nullptr.
  Link* least_used_link();
  // The active link whose peer QP is qpn (the link a CLC Accept names).
  Link* link_by_peer_qpn(uint32_t qpn);
  // The link (any state but freed) with this link number.
  Link* link_by_id(uint8_t link_id);
  size_t active_links();
  // A new link on dev with its buffers registered. link_id 0: the next
  // number (the server numbers links; the client takes the server's).
  Link* add_link(IbDevice* dev, std::string* err, uint8_t link_id = 0);
  // Tears down one link (invariant 2) and forgets its rkeys.
  void remove_link(Link* l);
  // True while a link other than via is not torn down yet: CDCs may still
  // wait in its receive queue.
  bool other_link_live(const Link* via);
  // A link failed or the peer deleted it (smcr_link_down): its connections
  // move to another active link (Connection::switch_link), the peer is told
  // with DELETE LINK (tell_peer), and the link is torn down. With no other
  // link the group ends. Progress thread or handshake threads; idempotent.
  void link_down(Link* l, const char* why, bool tell_peer);
  // DELETE LINK for one link, sent over `via` (no answer awaited).
  void send_delete_link(Link* via, uint8_t link_id, uint32_t reason);

  // The peer's RMBs by link (Linux's lgr->rtokens): entry i holds the rkey
  // and address of one peer RMB on each link index. CLC gives a new RMB's
  // rkey on one link; CONFIRM RKEY and ADD LINK give the others.
  int rtoken_add(uint8_t link_index, uint32_t rkey, uint64_t vaddr);
  // The RMB with have_rkey on have_index is at new_vaddr / new_rkey on
  // new_index (an ADD LINK rkey triple, a CONFIRM RKEY extra token).
  void rtoken_add_other(uint8_t have_index, uint32_t have_rkey, uint8_t new_index, uint32_t new_rkey,
                        uint64_t new_vaddr);
  bool rtoken_get(int rtoken, uint8_t link_index, uint32_t* rkey, uint64_t* vaddr);
  void rtoken_delete(uint32_t rkey);
  // Our RMBs as ADD LINK rkey triples from link `from` to link `to`.
  std::vector<wire::LlcRkeyPair> rmb_rkeys(uint8_t from, uint8_t to);
  uint64_t failovers() const { return failovers_.load(std::memory_order_relaxed); }

  // New connection with a fresh token, registered in the group.
  Connection* new_connection();
  Connection* find_connection(uint32_t token);  // takes a hold; caller puts
  void unregister(Connection* c);
  size_t connection_count();
  void for_each_connection(const std::function<void(Connection*)>& f);

  // A buffer of at least `size` bytes from the pool (registered on every
  // link), or nullptr with *err.
  Buffer* get_buffer(uint32_t size, bool rmb, std::string* err);
  void put_buffer(Buffer* b);

  // LLC flows (smc_llc.c): one local request at a time; the response is
  // delivered by the receive path. send_llc_request sends on `link` and
  // waits up to wait_ms for a response of the same type.
  bool llc_request(Link* link, const wire::LlcMsg& req, wire::LlcMsg* resp, int wait_ms);
  // Waits for a request of `type` from the peer (client side of CONFIRM LINK
  // and ADD LINK); *on: the link it came on.
  bool llc_wait_request(wire::LlcType type, wire::LlcMsg* req, int wait_ms, Link** on = nullptr);
  // Receive path: an LLC message arrived on `link`.
  void on_llc(Link* link, const wire::LlcMsg& m);
  // Client first contact: keep the server's ADD LINK for llc_wait_request
  // even when it arrives before the wait starts.
  void expect_add_link(bool on) { expect_add_link_.store(on, std::memory_order_release); }
  // Runs queued LLC requests that need an answer (progress thread).
  void run_llc_work();

  // Ends the group: DELETE LINK to the peer when orderly, every connection
  // aborted, every link torn down. Idempotent.
  void terminate(bool orderly, const char* why);
  bool terminating() const { return terminating_.load(std::memory_order_acquire); }
  // Times of last use, for the idle timer.
  int64_t idle_since_ms() const { return idle_since_ms_.load(std::memory_order_relaxed); }

  std::mutex& mutex() { return mu_; }
  // A handshake in progress uses the group (find_lgr / create_lgr take a
  // use; the handshake drops it): the group is not deleted meanwhile.
  void use() { users_.fetch_add(1, std::memory_order_acq_rel); }
  void unuse() { users_.fetch_sub(1, std::memory_order_acq_rel); }
  bool in_use() const { return users_.load(std::memory_order_acquire) != 0; }
  // Called by ~Connection.
  void connection_freed() { live_conns_.fetch_sub(1, std::memory_order_acq_rel); }
  uint32_t live_connections() const { return live_conns_.load(std::memory_order_acquire); }
  // Link teardown: deregisters every buffer's MR of that link.
  void deregister_buffers(uint8_t link_index);
  // The rkey of b's registration on link index i, read under the group's
  // lock: a link torn down meanwhile (deregister_buffers) has none (false).
  bool buffer_rkey(const Buffer& b, uint8_t i, uint32_t* rkey);
  // Whether every link is torn down (the group may be deleted once no
  // connection object is left either).
  bool links_freed();

 private:
  void linger_until_quiet(Link* l, int max_ms);
  Runtime* const rt_;
  const Role role_;
  const uint32_t id_;
  const bool v2_;
  mutable std::mutex mu_;
  std::array<std::unique_ptr<Link>, kMaxLinks> links_;
  uint8_t next_link_id_ = 1;
  struct Rtoken {
    std::array<uint32_t, kMaxLinks> rkey{};
    std::array<uint64_t, kMaxLinks> vaddr{};
    std::array<bool, kMaxLinks> set{};
    bool used = false;
  };
  std::vector<Rtoken> rtokens_;  // under mu_
  std::atomic<uint64_t> failovers_{0};  // connections moved to another link
  std::unordered_map<uint32_t, Connection*> conns_;
  std::vector<std::unique_ptr<Buffer>> buffers_;
  std::atomic<uint32_t> live_conns_{0};  // Connection objects not yet freed
  std::atomic<int> users_{0};
  std::atomic<bool> terminating_{false};
  std::atomic<int64_t> idle_since_ms_{0};

  // LLC flow state.
  std::mutex llc_flow_mu_;  // one local flow at a time
  std::mutex llc_mu_;
  std::condition_variable llc_cv_;
  std::atomic<bool> expect_add_link_{false};
  int llc_wait_type_ = -1;  // response (or request) type awaited
  bool llc_wait_request_ = false;
  bool llc_have_ = false;
  wire::LlcMsg llc_msg_{};
  Link* llc_link_ = nullptr;  // the link llc_msg_ came on
  std::deque<std::pair<Link*, wire::LlcMsg>> llc_work_;  // requests to answer
};

}  // namespace droce::smc
