// Connection: the data path and close of one SMC-R connection (the roles of
// Linux 6.1 smc_tx.c, smc_rx.c, smc_cdc.c and smc_close.c; RFC 7609 sections
// 3.7-3.9). Data goes by RDMA WRITE from the send buffer into the peer's RMB
// ring, then a CDC announces the new producer cursor; the peer's CDCs carry
// its consumer cursor back, and the RFC's window rule decides when to
// announce ours.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "smc/core.h"
#include "smc/log.h"
#include "smc/runtime.h"
#include "smc/wire/cdc.h"

namespace droce::smc {

using wire::Cursor;
using wire::curs_add;
using wire::curs_diff;

namespace {
// c moved back by n bytes (n <= size) in a ring of `size` bytes.
Cursor curs_back(Cursor c, uint32_t size, uint32_t n) {
  if (n <= c.count) {
    c.count -= n;
  } else {
    c.count = size - (n - c.count);
    c.wrap = uint16_t(c.wrap - 1);
  }
  return c;
}
}  // namespace

Connection::Connection(LinkGroup* lgr, uint32_t token)
    : lgr_(lgr), token_(token), spin_(lgr->runtime()->config().busy_poll_us) {}

Connection::~Connection() {
  if (rmb_ != nullptr) lgr_->put_buffer(rmb_);
  if (sndbuf_ != nullptr) lgr_->put_buffer(sndbuf_);
  lgr_->connection_freed();
}

bool Connection::put() {
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    delete this;
    return true;
  }
  return false;
}

void Connection::release() {
  if (released_.exchange(true, std::memory_order_acq_rel)) return;
  lgr_->unregister(this);
  put();
}

// DROCE_SMC_NO_CDC_REFCOUNT exists for one test only (tests/smc/seed_race):
// it removes the CDC's hold on the connection, so that the test can show the
// use-after-free of Linux's bug under AddressSanitizer.
void Connection::cdc_get() {
  cdc_pend_tx_.fetch_add(1, std::memory_order_release);
#ifndef DROCE_SMC_NO_CDC_REFCOUNT
  hold();
#endif
}

void Connection::cdc_put() {
  cdc_pend_tx_.fetch_sub(1, std::memory_order_acq_rel);
#ifndef DROCE_SMC_NO_CDC_REFCOUNT
  put();
#endif
}

void Connection::set_peer(uint32_t peer_token, uint32_t rkey, uint64_t vaddr, uint32_t rmb_size, int rtoken) {
  std::lock_guard<std::mutex> lk(mu_);
  peer_token_ = peer_token;
  peer_rkey_ = rkey;
  peer_vaddr_ = vaddr;
  peer_rmb_size_ = rmb_size;
  rtoken_ = rtoken;
}

void Connection::activate(Link* link) {
  std::lock_guard<std::mutex> lk(mu_);
  link_.store(link, std::memory_order_release);
}

bool Connection::switch_link(Link* to) {
  std::unique_lock<std::mutex> lk(mu_);
  Link* from = link_.load(std::memory_order_relaxed);
  if (from == to || from == nullptr) return true;
  uint32_t rkey = 0;
  uint64_t vaddr = 0;
  if (!lgr_->rtoken_get(rtoken_, to->index(), &rkey, &vaddr)) {
    SMC_LOG("connection %08x: the peer's RMB has no rkey on link %u: cannot fail over", token_, to->link_id());
    fail_locked(ECONNRESET);
    return false;
  }
  link_.store(to, std::memory_order_release);
  peer_rkey_ = rkey;
  peer_vaddr_ = vaddr;
  if (error_.load(std::memory_order_relaxed) != 0) return true;
  // smc_switch_cursor: what was sent but not confirmed by a completed CDC
  // is written again from the send buffer (the old link was drained, so
  // nothing reads or writes those bytes meanwhile, and the application
  // cannot overwrite them before tx_fin moves). The peer may have seen a
  // CDC whose completion we never got: its consumer cursor can then be
  // ahead of what we count as confirmed, and those bytes are skipped.
  const uint32_t done = curs_diff(sndbuf_->size, tx_fin_, tx_sent_);
  Cursor fin_prod = curs_back(tx_prod_, peer_rmb_size_, done);
  tx_sent_ = tx_fin_;
  if (wire::curs_comp(peer_rmb_size_, peer_cons_, fin_prod) > 0) {
    const uint32_t skip = curs_diff(peer_rmb_size_, fin_prod, peer_cons_);
    tx_sent_ = curs_add(tx_sent_, sndbuf_->size, skip);
    tx_fin_ = tx_sent_;
    fin_prod = peer_cons_;
  }
  tx_prod_ = fin_prod;
  // smcr_cdc_msg_send_validation: the peer aborts the connection if it has
  // not seen our last completed CDC (it missed one: out of sync).
  const int slot = to->try_get_slot();
  if (slot >= 0) {
    wire::CdcMsg v;
    v.seqno = tx_seq_fin_;
    v.token = peer_token_;
    v.prod_flags = wire::kCdcFailoverValidation;
    if (!to->post_cdc(uint32_t(slot), this, v, nullptr, 0, tx_fin_)) {
      SMC_LOG("connection %08x: failover validation not sent", token_);
    }
  }
  // Then everything pending, with our consumer cursor (a cursor update on
  // the old link may be lost too).
  if (transmit_locked(true) == Tx::kNoSlot) lgr_->runtime()->schedule_tx(this);
  cv_.notify_all();
  lk.unlock();
  notify_ready();
  return true;
}

// ---------------------------------------------------------------------------
// Cursor bookkeeping (all under mu_)

uint32_t Connection::sndbuf_pending_locked() const { return curs_diff(sndbuf_->size, tx_sent_, tx_prep_); }

uint32_t Connection::rx_available_locked() const { return curs_diff(rmb_->size, rx_cons_, rx_prod_); }

bool Connection::should_announce_locked(bool force) const {
  wire::WindowState w;
  w.rmbe_size = rmb_->size;
  w.unannounced = curs_diff(rmb_->size, rx_cons_sent_, rx_cons_);
  w.peer_sees_free = rmb_->size - curs_diff(rmb_->size, rx_cons_sent_, rx_prod_);
  w.peer_write_blocked = peer_write_blocked_;
  w.peer_requested = peer_upd_req_;
  w.force = force;
  return w.unannounced > 0 && wire::should_update_consumer(w);
}

void Connection::fail_locked(int err) {
  if (error_.load(std::memory_order_relaxed) == 0) error_.store(err, std::memory_order_release);
  cv_.notify_all();
}

// ---------------------------------------------------------------------------
// Transmit

Connection::Tx Connection::transmit_locked(bool force_cdc) {
  Link* const link = link_.load(std::memory_order_relaxed);
  if (link == nullptr || error_.load(std::memory_order_relaxed) != 0) return Tx::kDown;
  const uint32_t pending = sndbuf_pending_locked();
  const uint32_t in_peer = curs_diff(peer_rmb_size_, peer_cons_, tx_prod_);
  const uint32_t peer_space = peer_rmb_size_ - in_peer;
  const uint32_t len = std::min(pending, peer_space);
  uint8_t state_flags = 0;
  if (want_done_writing_ && !done_writing_sent_ && len == pending) state_flags |= wire::kCdcPeerDoneWriting;
  if (want_close_ && !closed_sent_ && len == pending) state_flags |= wire::kCdcPeerConnClosed;
  const bool announce = should_announce_locked(force_cdc);
  if (len == 0 && state_flags == 0 && !announce && !force_cdc && !cdc_owed_) {
    if (pending > 0 && !write_blocked_) {
      // The peer's RMB is full: say so once, so that it announces its
      // consumer cursor as soon as it has room for us (RFC 7609 p.63).
      write_blocked_ = true;
      stats_.write_blocked.fetch_add(1, std::memory_order_relaxed);
    } else {
      return Tx::kDone;
    }
  }
  const int slot = link->try_get_slot();
  if (slot < 0) {
    cdc_owed_ = true;
    return link->active() ? Tx::kNoSlot : Tx::kDown;
  }
  // RDMA WRITEs: the destination range in the peer's RMB may wrap (two
  // WRITEs), and each source range in our send buffer may wrap (two SGEs).
  Link::WriteSeg seg[2];
  int nseg = 0;
  uint32_t src = tx_sent_.count;
  uint32_t dst = tx_prod_.count;
  uint32_t left = len;
  // Unlocked read of the MR: safe because this thread holds a slot. The
  // link's teardown (mark_down under tx_mu_, then wait_drained) cannot reach
  // deregister_buffers until every slot is back.
  const uint32_t lkey = sndbuf_->mr[link->index()]->lkey;
  while (left > 0) {
    Link::WriteSeg& w = seg[nseg++];
    const uint32_t chunk = std::min(left, peer_rmb_size_ - dst);
    w.remote_addr = peer_vaddr_ + dst;
    w.rkey = peer_rkey_;
    w.num_sge = 0;
    uint32_t c_left = chunk;
    while (c_left > 0) {
      const uint32_t piece = std::min(c_left, sndbuf_->size - src);
      w.sge[w.num_sge++] = ibv_sge{uintptr_t(sndbuf_->data + src), piece, lkey};
      src = (src + piece) % sndbuf_->size;
      c_left -= piece;
    }
    dst = (dst + chunk) % peer_rmb_size_;
    left -= chunk;
  }
  const Cursor new_sent = curs_add(tx_sent_, sndbuf_->size, len);
  const Cursor new_prod = curs_add(tx_prod_, peer_rmb_size_, len);
  const bool blocked = pending > len;
  wire::CdcMsg m;
  m.seqno = uint16_t(tx_seq_ + 1);
  m.token = peer_token_;
  m.prod = new_prod;
  m.cons = rx_cons_;
  m.prod_flags = blocked ? wire::kCdcWriteBlocked : 0;
  m.conn_state_flags = state_flags;
  if (!link->post_cdc(uint32_t(slot), this, m, seg, nseg, new_sent)) {
    // A link that went down meanwhile: failover sends it again on another.
    cdc_owed_ = true;
    if (!link->active()) return Tx::kDown;
    fail_locked(ECONNRESET);
    return Tx::kDown;
  }
  tx_seq_ = m.seqno;
  tx_sent_ = new_sent;
  tx_prod_ = new_prod;
  rx_cons_sent_ = rx_cons_;
  peer_upd_req_ = false;
  cdc_owed_ = false;
  if (blocked && !write_blocked_) stats_.write_blocked.fetch_add(1, std::memory_order_relaxed);
  write_blocked_ = blocked;
  if (state_flags & wire::kCdcPeerDoneWriting) done_writing_sent_ = true;
  if (state_flags & wire::kCdcPeerConnClosed) closed_sent_ = true;
  stats_.bytes_sent.fetch_add(len, std::memory_order_relaxed);
  stats_.cdc_sent.fetch_add(1, std::memory_order_relaxed);
  // More may be pending (e.g. the peer's space ran out mid-way, or flags
  // still wait for data): the caller loops or a later CDC retriggers.
  return Tx::kDone;
}

void Connection::transmit_blocking(std::unique_lock<std::mutex>& lk, bool force_cdc) {
  const int wait_ms = lgr_->runtime()->config().llc_wait_ms * 5;  // SMC_WR_TX_WAIT_FREE_SLOT_TIME 10 s
  for (;;) {
    const Tx r = transmit_locked(force_cdc);
    if (r != Tx::kNoSlot) return;
    Link* l = link_.load(std::memory_order_relaxed);
    lk.unlock();
    const int slot = l->get_slot(wait_ms);
    if (slot >= 0) l->put_slot_unused(uint32_t(slot));
    lk.lock();
    if (slot < 0) {
      // The link went down: a failover moves the connection (or the group
      // ends and fails it); the data stays pending until then.
      if (!l->active() && !lgr_->terminating()) {
        cv_.wait_for(lk, std::chrono::milliseconds(wait_ms), [&] {
          return link_.load(std::memory_order_relaxed) != l || error_.load(std::memory_order_relaxed) != 0;
        });
        if (link_.load(std::memory_order_relaxed) != l) continue;
      }
      fail_locked(ECONNRESET);
      return;
    }
  }
}

void Connection::try_transmit() {
  std::unique_lock<std::mutex> lk(mu_);
  transmit_blocking(lk, false);
  lk.unlock();
  notify_ready();
}

int Connection::spin_budget_us() {
  std::lock_guard<std::mutex> lk(mu_);
  return spin_.us();
}

template <typename Pred>
bool Connection::wait(std::unique_lock<std::mutex>& lk, Pred pred, int timeout_ms) {
  if (pred()) return true;
  const auto start = std::chrono::steady_clock::now();
  const auto spin_end = start + std::chrono::microseconds(spin_.us());
  const auto deadline = timeout_ms < 0 ? std::chrono::steady_clock::time_point::max()
                                       : start + std::chrono::milliseconds(timeout_ms);
  Link* l = link_.load(std::memory_order_relaxed);
  if (l != nullptr && std::chrono::steady_clock::now() < spin_end) {
    l->busy_enter();
    bool done = false;
    while (!done && std::chrono::steady_clock::now() < spin_end) {
      lk.unlock();
      l->poll_once();
      lk.lock();
      done = pred();
    }
    lk.unlock();
    l->busy_exit();
    lk.lock();
    if (done) spin_.satisfied();
    if (done || pred()) return true;
    spin_.missed();
  }
  // The progress thread dispatches from here on and notifies cv_; a poll
  // now and then is the safety net that makes a missed wake-up cost 10 ms,
  // never a hang.
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    l = link_.load(std::memory_order_relaxed);  // a failover may have moved it
    if (cv_.wait_for(lk, std::chrono::milliseconds(10)) == std::cv_status::timeout && l != nullptr) {
      lk.unlock();
      l->poll_once();
      lk.lock();
    }
  }
  return true;
}

// ---------------------------------------------------------------------------
// Application side

long Connection::send(const void* buf, size_t len, bool nonblock) {
  std::unique_lock<std::mutex> lk(mu_);
  const uint8_t* p = static_cast<const uint8_t*>(buf);
  size_t done = 0;
  const uint32_t size = sndbuf_->size;
  while (done < len) {
    if (const int e = error_.load(std::memory_order_relaxed); e != 0) return done ? long(done) : -e;
    if (want_done_writing_ || want_close_) return done ? long(done) : -EPIPE;
    const uint32_t space = size - curs_diff(size, tx_fin_, tx_prep_);
    if (space == 0) {
      if (nonblock) return done ? long(done) : -EAGAIN;
      wait(lk,
           [&] {
             return error_.load(std::memory_order_relaxed) != 0 ||
                    curs_diff(size, tx_fin_, tx_prep_) < size;
           },
           -1);
      continue;
    }
    const uint32_t n = uint32_t(std::min<size_t>(space, len - done));
    const uint32_t first = std::min(n, size - tx_prep_.count);
    std::memcpy(sndbuf_->data + tx_prep_.count, p + done, first);
    if (n > first) std::memcpy(sndbuf_->data, p + done + first, n - first);
    tx_prep_ = curs_add(tx_prep_, size, n);
    done += n;
    transmit_blocking(lk, false);
  }
  return long(done);
}

long Connection::recv(void* buf, size_t len, bool nonblock, bool peek) {
  std::unique_lock<std::mutex> lk(mu_);
  auto ready = [&] {
    return rx_available_locked() > 0 || peer_done_writing_ || peer_closed_ ||
           error_.load(std::memory_order_relaxed) != 0;
  };
  if (!ready()) {
    if (nonblock) return -EAGAIN;
    wait(lk, ready, -1);
  }
  const uint32_t avail = rx_available_locked();
  if (avail == 0) {
    if (const int e = error_.load(std::memory_order_relaxed); e != 0) return -e;
    return 0;  // end of stream
  }
  const uint32_t size = rmb_->size;
  const uint32_t n = uint32_t(std::min<size_t>(avail, len));
  const uint32_t first = std::min(n, size - rx_cons_.count);
  uint8_t* out = static_cast<uint8_t*>(buf);
  std::memcpy(out, rmb_->data + rx_cons_.count, first);
  if (n > first) std::memcpy(out + first, rmb_->data, n - first);
  if (!peek) {
    rx_cons_ = curs_add(rx_cons_, size, n);
    stats_.bytes_received.fetch_add(n, std::memory_order_relaxed);
    if (should_announce_locked(false)) transmit_blocking(lk, false);
  }
  return long(n);
}

int Connection::shutdown_write() {
  std::unique_lock<std::mutex> lk(mu_);
  if (const int e = error_.load(std::memory_order_relaxed); e != 0) return -e;
  if (want_done_writing_ || want_close_) return 0;
  want_done_writing_ = true;
  transmit_blocking(lk, false);
  return 0;
}

void Connection::close() {
  std::unique_lock<std::mutex> lk(mu_);
  if (error_.load(std::memory_order_relaxed) != 0 || peer_abort_) return;
  if (rx_available_locked() > 0) {
    // Unread data: abort, as smc_close_final does.
    lk.unlock();
    abort("closed with unread data");
    return;
  }
  if (want_close_) return;
  want_close_ = true;
  transmit_blocking(lk, false);
}

void Connection::abort(const char* why) {
  std::unique_lock<std::mutex> lk(mu_);
  if (abort_sent_) return;
  abort_sent_ = true;
  SMC_LOG("connection %08x aborted: %s", token_, why);
  lgr_->runtime()->counters().conn_aborted.fetch_add(1, std::memory_order_relaxed);
  Link* const link = link_.load(std::memory_order_relaxed);
  if (link != nullptr && error_.load(std::memory_order_relaxed) == 0 && !peer_abort_) {
    const int slot = link->try_get_slot();
    if (slot >= 0) {
      wire::CdcMsg m;
      m.seqno = uint16_t(tx_seq_ + 1);
      m.token = peer_token_;
      m.prod = tx_prod_;
      m.cons = rx_cons_;
      m.conn_state_flags = wire::kCdcPeerConnAbort;
      if (link->post_cdc(uint32_t(slot), this, m, nullptr, 0, tx_sent_)) tx_seq_ = m.seqno;
    }
  }
  fail_locked(ECONNRESET);
  lk.unlock();
  notify_ready();
}

long Connection::available() {
  std::lock_guard<std::mutex> lk(mu_);
  return long(rx_available_locked());
}

bool Connection::readable() {
  std::lock_guard<std::mutex> lk(mu_);
  return rx_available_locked() > 0 || peer_done_writing_ || peer_closed_ ||
         error_.load(std::memory_order_relaxed) != 0;
}

bool Connection::writable() {
  std::lock_guard<std::mutex> lk(mu_);
  if (error_.load(std::memory_order_relaxed) != 0) return true;
  return !want_close_ && !want_done_writing_ &&
         curs_diff(sndbuf_->size, tx_fin_, tx_prep_) < sndbuf_->size;
}

bool Connection::closed_both_ways() {
  std::lock_guard<std::mutex> lk(mu_);
  if (error_.load(std::memory_order_relaxed) != 0) return true;
  return closed_sent_ && (peer_closed_ || peer_abort_);
}

bool Connection::peer_closed() {
  std::lock_guard<std::mutex> lk(mu_);
  return peer_closed_ || peer_abort_ || error_.load(std::memory_order_relaxed) != 0;
}

bool Connection::close_sent() {
  std::lock_guard<std::mutex> lk(mu_);
  return closed_sent_ || abort_sent_;
}

std::string Connection::state_name() {
  std::lock_guard<std::mutex> lk(mu_);
  if (peer_abort_ || abort_sent_) return "ABORTED";
  if (error_.load(std::memory_order_relaxed) != 0) return "FAILED";
  if (closed_sent_ && peer_closed_) return "CLOSED";
  if (closed_sent_) return "PEERCLOSEWAIT";
  if (peer_closed_) return "APPCLOSEWAIT";
  if (done_writing_sent_ || peer_done_writing_) return "HALFCLOSED";
  return link_.load(std::memory_order_relaxed) != nullptr ? "ACTIVE" : "INIT";
}

// ---------------------------------------------------------------------------
// Link side (poll context: nothing here blocks)

void Connection::on_cdc_sent(Cursor sndbuf_fin, uint16_t seqno) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (sndbuf_ != nullptr && wire::curs_comp(sndbuf_->size, sndbuf_fin, tx_fin_) > 0) tx_fin_ = sndbuf_fin;
    if (wire::seq_before(tx_seq_fin_, seqno)) tx_seq_fin_ = seqno;
    cv_.notify_all();
  }
  notify_ready();
}

void Connection::on_link_drained() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (!sync_pending_) return;
    sync_pending_ = false;
    SMC_LOG("connection %08x: out of sync after failover (peer completed CDC %u, last seen %u)", token_,
            sync_seq_, rx_seq_);
  }
  abort("out of sync after a failover");
}

void Connection::on_cdc(const wire::CdcMsg& m, Link* via) {
  bool transmit = false;
  bool out_of_sync = false;
  // Asked before mu_ (the group's lock is never taken under a connection's
  // in this path): CDCs the old link received may not be handled yet.
  const bool others_live =
      (m.prod_flags & wire::kCdcFailoverValidation) != 0 && lgr_->other_link_live(via);
  {
    std::lock_guard<std::mutex> lk(mu_);
    // Half built (invariant 5): CDCs count once our RMB exists. The peer may
    // write before this side's handshake thread has read its Confirm (the
    // client sends as soon as its own side is done): its RMB is unknown
    // then, and its consumer cursor can only be zero.
    if (rmb_ == nullptr) return;
    stats_.cdc_received.fetch_add(1, std::memory_order_relaxed);
    if (m.prod_flags & wire::kCdcFailoverValidation) {
      // smc_cdc_msg_validate: the peer moved us to another link and names
      // its last completed CDC. One we never saw means a CDC (and maybe its
      // data) was lost with the old link: the connection cannot go on. But a
      // CDC the peer saw complete was received here (RC): while the old link
      // is not torn down it may still wait in that link's receive queue,
      // behind this validation on the new one; then the verdict waits for
      // the old link's teardown (on_link_drained).
      if (int16_t(uint16_t(rx_seq_ - m.seqno)) >= 0) return;
      if (others_live) {
        sync_pending_ = true;
        sync_seq_ = m.seqno;
        return;
      }
      SMC_LOG("connection %08x: out of sync after failover (peer completed CDC %u, last seen %u)", token_,
              m.seqno, rx_seq_);
      out_of_sync = true;
    }
  }
  if (out_of_sync) {
    abort("out of sync after a failover");
    return;
  }
  {
    std::lock_guard<std::mutex> lk(mu_);
    // Old sequence numbers are ignored (smc_cdc_before, B9); equal ones count.
    if (rx_seq_seen_ && wire::seq_before(m.seqno, rx_seq_)) return;
    rx_seq_ = m.seqno;
    rx_seq_seen_ = true;
    if (sync_pending_ && int16_t(uint16_t(rx_seq_ - sync_seq_)) >= 0) sync_pending_ = false;
    const uint32_t size = rmb_->size;
    // A producer cursor beyond our RMB, going backwards, or more than one
    // lap ahead of what we consumed would overwrite unread data: hostile.
    const bool prod_ok = m.prod.count < size && wire::curs_update_ok(rx_prod_, m.prod) &&
                         ((m.prod.wrap == rx_cons_.wrap && m.prod.count >= rx_cons_.count) ||
                          (m.prod.wrap == uint16_t(rx_cons_.wrap + 1) && m.prod.count <= rx_cons_.count));
    // The peer's consumer cursor must stay within what we produced.
    const bool cons_ok = m.cons == peer_cons_ ||
                         (m.cons.count < peer_rmb_size_ && wire::curs_update_ok(peer_cons_, m.cons) &&
                          curs_diff(peer_rmb_size_, peer_cons_, m.cons) <=
                              curs_diff(peer_rmb_size_, peer_cons_, tx_prod_));
    if (!prod_ok || !cons_ok) {
      SMC_LOG("connection %08x: CDC with an impossible %s cursor (prod %u:%u, cons %u:%u): aborting",
              token_, prod_ok ? "consumer" : "producer", m.prod.wrap, m.prod.count, m.cons.wrap,
              m.cons.count);
      peer_abort_ = true;  // treat as the peer's abort: no more traffic to it
      fail_locked(ECONNRESET);
    } else {
      const bool space_grew = !(m.cons == peer_cons_);
      rx_prod_ = m.prod;
      peer_cons_ = m.cons;
      peer_write_blocked_ = (m.prod_flags & wire::kCdcWriteBlocked) != 0;
      if (m.prod_flags & wire::kCdcConsCursUpdReq) peer_upd_req_ = true;
      if (m.conn_state_flags & wire::kCdcPeerDoneWriting) peer_done_writing_ = true;
      if (m.conn_state_flags & wire::kCdcPeerConnClosed) peer_closed_ = true;
      if (m.conn_state_flags & wire::kCdcPeerConnAbort) {
        peer_abort_ = true;
        fail_locked(ECONNRESET);
      }
      cv_.notify_all();
      transmit = error_.load(std::memory_order_relaxed) == 0 &&
                 ((space_grew && (sndbuf_pending_locked() > 0 || want_close_ || want_done_writing_)) ||
                  should_announce_locked(false) || cdc_owed_);
      if (transmit && transmit_locked(false) == Tx::kNoSlot) {
        lgr_->runtime()->schedule_tx(this);
      }
    }
  }
  notify_ready();
}

void Connection::on_link_down(int err) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    // A connection closed both ways has nothing left to lose: the link
    // group that ends under it (the peer's program ended right after both
    // closes: its DELETE LINK can come before the close timer releases the
    // connection) does not turn that orderly close into a reset.
    if (!(closed_sent_ && (peer_closed_ || peer_abort_))) fail_locked(err);
  }
  notify_ready();
}

}  // namespace droce::smc
