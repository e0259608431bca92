// LinkGroup: the links and connections to one peer system, their buffers,
// and the LLC flows between the two ends (the roles of Linux 6.1
// smc_core.c link group handling and smc_llc.c; RFC 7609 sections 3.3-3.6,
// reference/smc-v2-linux61.md B7 for what a Linux peer expects answered).
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>

#include "smc/core.h"
#include "smc/log.h"
#include "smc/runtime.h"

namespace droce::smc {

const char* role_name(Role r) { return r == Role::kClient ? "client" : "server"; }

LinkGroup::LinkGroup(Runtime* rt, Role role, uint32_t id, bool v2)
    : rt_(rt), role_(role), id_(id), v2_(v2) {
  idle_since_ms_.store(rt->now_ms(), std::memory_order_relaxed);
}

LinkGroup::~LinkGroup() {
  for (auto& l : links_) {
    if (l) l->teardown();
  }
  for (auto& l : links_) l.reset();
  for (auto& b : buffers_) {
    for (ibv_mr*& mr : b->mr) {
      if (mr != nullptr) ibv_dereg_mr(mr);
      mr = nullptr;
    }
    munmap(b->data, b->size);
  }
}

Link* LinkGroup::active_link() {
  std::lock_guard<std::mutex> lk(mu_);
  for (auto& l : links_) {
    if (l && l->active()) return l.get();
  }
  return nullptr;
}

Link* LinkGroup::least_used_link() {
  std::lock_guard<std::mutex> lk(mu_);
  Link* best = nullptr;
  size_t best_n = 0;
  for (auto& l : links_) {
    if (!l || !l->active()) continue;
    size_t n = 0;
    for (auto& [token, c] : conns_) n += c->link() == l.get() ? 1 : 0;
    if (best == nullptr || n < best_n) {
      best = l.get();
      best_n = n;
    }
  }
  return best;
}

Link* LinkGroup::link_by_peer_qpn(uint32_t qpn) {
  std::lock_guard<std::mutex> lk(mu_);
  for (auto& l : links_) {
    if (l && l->active() && l->peer_qpn() == qpn) return l.get();
  }
  return nullptr;
}

Link* LinkGroup::link_by_id(uint8_t link_id) {
  std::lock_guard<std::mutex> lk(mu_);
  for (auto& l : links_) {
    if (l && l->state() != LinkState::kFreed && l->link_id() == link_id) return l.get();
  }
  return nullptr;
}

size_t LinkGroup::active_links() {
  std::lock_guard<std::mutex> lk(mu_);
  size_t n = 0;
  for (auto& l : links_) n += (l && l->active()) ? 1 : 0;
  return n;
}

Link* LinkGroup::add_link(IbDevice* dev, std::string* err, uint8_t link_id) {
  int index = -1;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (terminating()) {
      *err = "link group is ending";
      return nullptr;
    }
    for (int i = 0; i < kMaxLinks && index < 0; ++i) {
      if (!links_[i]) index = i;
    }
    if (index < 0) {
      *err = "link group has no free link slot";
      return nullptr;
    }
    if (link_id == 0) link_id = next_link_id_++;
    links_[index] = std::make_unique<Link>(this, dev, uint8_t(index), link_id);
  }
  Link* l = links_[index].get();
  if (!l->create(err)) return nullptr;  // stays as a freed link until the group goes
  std::lock_guard<std::mutex> lk(mu_);
  for (auto& b : buffers_) {
    if (!l->register_buffer(b.get(), err)) return nullptr;
  }
  return l;
}

void LinkGroup::remove_link(Link* l) {
  if (l == nullptr) return;
  l->teardown();
  {
    std::lock_guard<std::mutex> lk(mu_);
    for (Rtoken& t : rtokens_) {
      t.rkey[l->index()] = 0;
      t.vaddr[l->index()] = 0;
      t.set[l->index()] = false;
    }
  }
  // Every CDC the torn-down link received has been handled (teardown waits
  // for all its receives): a pending failover validation is decided.
  for_each_connection([](Connection* c) { c->on_link_drained(); });
}

bool LinkGroup::other_link_live(const Link* via) {
  std::lock_guard<std::mutex> lk(mu_);
  for (auto& o : links_) {
    if (o && o.get() != via && o->state() != LinkState::kFreed) return true;
  }
  return false;
}

void LinkGroup::send_delete_link(Link* via, uint8_t link_id, uint32_t reason) {
  wire::LlcDeleteLink d;
  d.hdr.type = wire::LlcType::kDeleteLink;
  d.hdr.v2 = v2_;
  d.link_num = link_id;
  d.reason = reason;
  via->send_llc(d, rt_->config().llc_wait_ms);
}

void LinkGroup::link_down(Link* l, const char* why, bool tell_peer) {
  if (l == nullptr || l->state() == LinkState::kFreed || terminating()) return;
  // The survivor: an active link, one whose port is up if there is one (a
  // second port may have gone down with the first, its event still queued).
  Link* to = nullptr;
  {
    std::lock_guard<std::mutex> lk(mu_);
    for (auto& o : links_) {
      if (!o || o.get() == l || !o->active()) continue;
      if (to == nullptr || o->device()->port_active()) to = o.get();
    }
  }
  if (to == nullptr) {
    terminate(false, why);
    return;
  }
  // smcr_link_down: the old link is drained first (its WRITEs no longer
  // read the send buffers), then each connection moves (smc_switch_conns).
  l->drain_sends();
  size_t moved = 0;
  for_each_connection([&](Connection* c) {
    if (c->link() != l) return;
    if (c->switch_link(to)) {
      ++moved;
    } else {
      c->abort("no rkey of the peer's RMB on the remaining link");
    }
  });
  failovers_.fetch_add(moved, std::memory_order_relaxed);
  rt_->counters().failovers.fetch_add(moved, std::memory_order_relaxed);
  rt_->counters().links_lost.fetch_add(1, std::memory_order_relaxed);
  SMC_LOG("link group %u: link %u (%s) lost (%s): %zu connection(s) moved to link %u (%s)", id_, l->link_id(),
          l->device()->name.c_str(), why, moved, to->link_id(), to->device()->name.c_str());
  // The client asks, the server tells (smcr_link_down): a DELETE LINK
  // request for the lost link, over the one that remains.
  if (tell_peer) send_delete_link(to, l->link_id(), wire::kLlcDelLostPath);
  remove_link(l);
}

int LinkGroup::rtoken_add(uint8_t link_index, uint32_t rkey, uint64_t vaddr) {
  std::lock_guard<std::mutex> lk(mu_);
  int free_idx = -1;
  for (size_t i = 0; i < rtokens_.size(); ++i) {
    Rtoken& t = rtokens_[i];
    if (t.used && t.set[link_index] && t.rkey[link_index] == rkey && t.vaddr[link_index] == vaddr) return int(i);
    if (!t.used && free_idx < 0) free_idx = int(i);
  }
  if (free_idx < 0) {
    rtokens_.emplace_back();
    free_idx = int(rtokens_.size() - 1);
  }
  Rtoken& t = rtokens_[size_t(free_idx)];
  t = Rtoken{};
  t.used = true;
  t.rkey[link_index] = rkey;
  t.vaddr[link_index] = vaddr;
  t.set[link_index] = true;
  return free_idx;
}

void LinkGroup::rtoken_add_other(uint8_t have_index, uint32_t have_rkey, uint8_t new_index, uint32_t new_rkey,
                                 uint64_t new_vaddr) {
  std::lock_guard<std::mutex> lk(mu_);
  for (Rtoken& t : rtokens_) {
    if (t.used && t.set[have_index] && t.rkey[have_index] == have_rkey) {
      t.rkey[new_index] = new_rkey;
      t.vaddr[new_index] = new_vaddr;
      t.set[new_index] = true;
      return;
    }
  }
  // Every RMB the peer has was named by a CLC of this group first
  // (smc_rtoken_set does the same): an unknown rkey is ignored.
}

bool LinkGroup::rtoken_get(int rtoken, uint8_t link_index, uint32_t* rkey, uint64_t* vaddr) {
  std::lock_guard<std::mutex> lk(mu_);
  if (rtoken < 0 || size_t(rtoken) >= rtokens_.size()) return false;
  const Rtoken& t = rtokens_[size_t(rtoken)];
  if (!t.used || !t.set[link_index]) return false;
  *rkey = t.rkey[link_index];
  *vaddr = t.vaddr[link_index];
  return true;
}

void LinkGroup::rtoken_delete(uint32_t rkey) {
  std::lock_guard<std::mutex> lk(mu_);
  for (Rtoken& t : rtokens_) {
    if (!t.used) continue;
    for (int i = 0; i < kMaxLinks; ++i) {
      if (t.set[i] && t.rkey[i] == rkey) {
        t = Rtoken{};
        break;
      }
    }
  }
}

std::vector<wire::LlcRkeyPair> LinkGroup::rmb_rkeys(uint8_t from, uint8_t to) {
  std::lock_guard<std::mutex> lk(mu_);
  std::vector<wire::LlcRkeyPair> v;
  for (auto& b : buffers_) {
    if (!b->is_rmb || b->mr[from] == nullptr || b->mr[to] == nullptr) continue;
    wire::LlcRkeyPair p;
    p.rkey_existing = b->mr[from]->rkey;
    p.rkey_new = b->mr[to]->rkey;
    p.vaddr_new = uintptr_t(b->data);
    v.push_back(p);
  }
  return v;
}

bool LinkGroup::links_freed() {
  std::lock_guard<std::mutex> lk(mu_);
  for (auto& l : links_) {
    if (l && l->state() != LinkState::kFreed) return false;
  }
  return true;
}

Connection* LinkGroup::new_connection() {
  std::lock_guard<std::mutex> lk(mu_);
  if (conns_.size() >= kMaxConnsPerLgr || terminating()) return nullptr;
  uint32_t token;
  do {
    token = rt_->next_token();
  } while (token == 0 || conns_.count(token) != 0);
  auto* c = new Connection(this, token);
  conns_[token] = c;
  live_conns_.fetch_add(1, std::memory_order_acq_rel);
  return c;
}

Connection* LinkGroup::find_connection(uint32_t token) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = conns_.find(token);
  if (it == conns_.end()) return nullptr;
  // Registered connections hold their owner's reference (release()
  // unregisters before dropping it), so this hold is safe under mu_.
  it->second->hold();
  return it->second;
}

void LinkGroup::unregister(Connection* c) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = conns_.find(c->token());
  if (it != conns_.end() && it->second == c) conns_.erase(it);
  if (conns_.empty()) idle_since_ms_.store(rt_->now_ms(), std::memory_order_relaxed);
}

size_t LinkGroup::connection_count() {
  std::lock_guard<std::mutex> lk(mu_);
  return conns_.size();
}

void LinkGroup::for_each_connection(const std::function<void(Connection*)>& f) {
  std::vector<Connection*> held;
  {
    std::lock_guard<std::mutex> lk(mu_);
    for (auto& [token, c] : conns_) {
      c->hold();
      held.push_back(c);
    }
  }
  for (Connection* c : held) {
    f(c);
    c->put();
  }
}

Buffer* LinkGroup::get_buffer(uint32_t size, bool rmb, std::string* err) {
  std::lock_guard<std::mutex> lk(mu_);
  for (auto& b : buffers_) {
    if (!b->in_use && b->is_rmb == rmb && b->size == size) {
      b->in_use = true;
      return b.get();
    }
  }
  auto b = std::make_unique<Buffer>();
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    *err = "no memory for a buffer";
    return nullptr;
  }
  b->data = static_cast<uint8_t*>(p);
  b->size = size;
  b->is_rmb = rmb;
  b->in_use = true;
  for (auto& l : links_) {
    if (!l || l->state() == LinkState::kDown || l->state() == LinkState::kFreed) continue;
    if (!l->register_buffer(b.get(), err)) {
      for (ibv_mr*& mr : b->mr) {
        if (mr != nullptr) ibv_dereg_mr(mr);
      }
      munmap(b->data, size);
      return nullptr;
    }
  }
  buffers_.push_back(std::move(b));
  return buffers_.back().get();
}

void LinkGroup::put_buffer(Buffer* b) {
  std::lock_guard<std::mutex> lk(mu_);
  b->in_use = false;
}

bool LinkGroup::buffer_rkey(const Buffer& b, uint8_t i, uint32_t* rkey) {
  std::lock_guard<std::mutex> lk(mu_);
  if (i >= b.mr.size() || b.mr[i] == nullptr) return false;
  *rkey = b.mr[i]->rkey;
  return true;
}

void LinkGroup::deregister_buffers(uint8_t link_index) {
  std::lock_guard<std::mutex> lk(mu_);
  for (auto& b : buffers_) {
    if (b->mr[link_index] != nullptr) ibv_dereg_mr(b->mr[link_index]);
    b->mr[link_index] = nullptr;
  }
}

// ---------------------------------------------------------------------------
// LLC flows

namespace {

wire::LlcHeader& header_of(wire::LlcMsg& m) {
  return std::visit([](auto& x) -> wire::LlcHeader& { return x.hdr; }, m);
}
const wire::LlcHeader& header_of(const wire::LlcMsg& m) {
  return std::visit([](const auto& x) -> const wire::LlcHeader& { return x.hdr; }, m);
}

}  // namespace

bool LinkGroup::llc_request(Link* link, const wire::LlcMsg& req, wire::LlcMsg* resp, int wait_ms) {
  std::lock_guard<std::mutex> flow(llc_flow_mu_);
  {
    std::lock_guard<std::mutex> lk(llc_mu_);
    llc_wait_type_ = int(header_of(req).type);
    llc_wait_request_ = false;
    llc_have_ = false;
  }
  if (!link->send_llc(req, wait_ms)) {
    std::lock_guard<std::mutex> lk(llc_mu_);
    llc_wait_type_ = -1;
    return false;
  }
  std::unique_lock<std::mutex> lk(llc_mu_);
  const bool got = llc_cv_.wait_for(lk, std::chrono::milliseconds(wait_ms), [&] {
    return llc_have_ || terminating() || !link->active();
  });
  llc_wait_type_ = -1;
  if (!got || !llc_have_) return false;
  *resp = llc_msg_;
  llc_have_ = false;
  return true;
}

bool LinkGroup::llc_wait_request(wire::LlcType type, wire::LlcMsg* req, int wait_ms, Link** on) {
  std::unique_lock<std::mutex> lk(llc_mu_);
  llc_wait_type_ = int(type);
  llc_wait_request_ = true;
  // A request that came before we started waiting is kept in llc_msg_.
  const bool got = llc_cv_.wait_for(lk, std::chrono::milliseconds(wait_ms), [&] {
    return (llc_have_ && header_of(llc_msg_).type == type) || terminating();
  });
  llc_wait_type_ = -1;
  llc_wait_request_ = false;
  if (!got || !llc_have_ || header_of(llc_msg_).type != type) return false;
  *req = llc_msg_;
  if (on != nullptr) *on = llc_link_;
  llc_have_ = false;
  return true;
}

void LinkGroup::on_llc(Link* link, const wire::LlcMsg& m) {
  const wire::LlcHeader& h = header_of(m);
  const bool resp = (h.flags & wire::kLlcFlagResp) != 0;
  std::unique_lock<std::mutex> lk(llc_mu_);
  if (resp) {
    // The answer to the keepalive's TEST LINK (Runtime::run_timers).
    if (h.type == wire::LlcType::kTestLink && link->test_link_sent_ms.load() != 0 &&
        !(llc_wait_type_ == int(h.type) && !llc_wait_request_)) {
      link->test_link_sent_ms.store(0);
      return;
    }
    // A response to our local flow; anything else is late and dropped.
    if (!llc_wait_request_ && llc_wait_type_ == int(h.type)) {
      llc_msg_ = m;
      llc_link_ = link;
      llc_have_ = true;
      llc_cv_.notify_all();
    }
    return;
  }
  switch (h.type) {
    case wire::LlcType::kConfirmLink:
      // The client's first-contact and ADD LINK flows wait for it (it may
      // arrive first).
      llc_msg_ = m;
      llc_link_ = link;
      llc_have_ = true;
      llc_cv_.notify_all();
      return;
    case wire::LlcType::kAddLink:
      if ((llc_wait_request_ && llc_wait_type_ == int(h.type)) ||
          expect_add_link_.load(std::memory_order_acquire)) {
        llc_msg_ = m;
        llc_link_ = link;
        llc_have_ = true;
        llc_cv_.notify_all();
        return;
      }
      break;  // answered (rejected) by the progress thread
    case wire::LlcType::kTestLink:
    case wire::LlcType::kConfirmRkey:
    case wire::LlcType::kDeleteRkey:
    case wire::LlcType::kDeleteLink:
      break;
    default:
      return;  // nothing to answer (CONFIRM RKEY CONT, ADD LINK CONT, REQ ADD LINK)
  }
  llc_work_.emplace_back(link, m);
  lk.unlock();
  rt_->schedule_llc(this);
}

void LinkGroup::run_llc_work() {
  const int wait_ms = rt_->config().llc_wait_ms;
  for (;;) {
    std::pair<Link*, wire::LlcMsg> item;
    {
      std::lock_guard<std::mutex> lk(llc_mu_);
      if (llc_work_.empty()) return;
      item = std::move(llc_work_.front());
      llc_work_.pop_front();
    }
    Link* link = item.first;
    wire::LlcMsg m = std::move(item.second);
    wire::LlcHeader& h = header_of(m);
    h.flags |= wire::kLlcFlagResp;
    switch (h.type) {
      case wire::LlcType::kTestLink:  // echo (B7: within 2 s)
        link->send_llc(m, wait_ms);
        break;
      case wire::LlcType::kDeleteRkey: {  // the peer freed RMBs: forget their rkeys
        auto& d = std::get<wire::LlcDeleteRkey>(m);
        for (uint32_t rkey : d.rkeys) rtoken_delete(rkey);
        d.err_mask = 0;
        link->send_llc(m, wait_ms);
        break;
      }
      case wire::LlcType::kConfirmRkey: {
        // A new peer RMB (smc_llc_rmt_conf_rkey): rtoken[0] is its rkey on
        // the link this came on, rtoken[1..n] on the others by link number.
        auto& c = std::get<wire::LlcConfirmRkey>(m);
        const int n = std::min<int>(c.rtoken[0].link_id_or_count, 2);
        rtoken_add(link->index(), c.rtoken[0].rkey, c.rtoken[0].vaddr);
        for (int i = 1; i <= n; ++i) {
          if (Link* o = link_by_id(c.rtoken[i].link_id_or_count); o != nullptr) {
            rtoken_add_other(link->index(), c.rtoken[0].rkey, o->index(), c.rtoken[i].rkey, c.rtoken[i].vaddr);
          }
        }
        link->send_llc(m, wait_ms);
        break;
      }
      case wire::LlcType::kAddLink: {
        // One device, no alternate path: the 44-byte reject Linux sends (A2).
        auto& a = std::get<wire::LlcAddLink>(m);
        a.hdr.flags |= wire::kLlcAddLinkRejected;
        a.hdr.add_link_rej_rsn = wire::kLlcAddLinkRejNoAltPath;
        a.has_v2_ext = false;
        a.rkeys.clear();
        link->send_llc(m, wait_ms);
        break;
      }
      case wire::LlcType::kDeleteLink: {
        auto& d = std::get<wire::LlcDeleteLink>(m);
        const bool all = (d.hdr.flags & wire::kLlcDeleteLinkAll) != 0 || d.link_num == 0;
        if (all) {
          SMC_LOG("link group %u: peer deletes all links (reason %08x)", id_, d.reason);
        } else {
          SMC_LOG("link group %u: peer deletes link %u (reason %08x)", id_, d.link_num, d.reason);
        }
        if (all) {
          // The response first (it must leave before the QP goes to ERR).
          if (link->send_llc(m, wait_ms)) link->wait_sends_done(500);
          terminate(false, "peer deleted the link group");
          break;
        }
        // One link (smc_llc_process_cli/srv_delete_link): its connections
        // move to a remaining link, then the answer goes over that link.
        Link* gone = link_by_id(d.link_num);
        if (gone == nullptr) d.reason = wire::kLlcDelUnknownLink;
        if (gone != nullptr && gone != link) link_down(gone, "peer deleted the link", false);
        if (gone == link || active_link() == nullptr) {
          terminate(false, "peer deleted the last link");
          break;
        }
        if (Link* via = active_link(); via != nullptr) via->send_llc(m, wait_ms);
        break;
      }
      default:
        break;
    }
  }
}

// After our DELETE LINK (all): keep the link receiving until the peer has
// been quiet for kQuietMs (at most max_ms). A Linux 6.1 peer answers it with
// SENDs: a server with its own DELETE LINK (smc_llc_process_srv_delete_link),
// a client by aborting its open connections (smc_conn_kill sends the abort
// CDC). Its rxe waits for the transport ACK of each; a QP destroyed under
// them leaves the peer retransmitting, and its application's close() waits
// for that completion without a bound (smc_cdc_wait_pend_tx_wr), so the
// peer's program hangs. Polling here also hands the ACKed messages to the
// usual handlers.
void LinkGroup::linger_until_quiet(Link* l, int max_ms) {
  constexpr int kQuietMs = 100;
  auto received = [l] {
    LinkCounters& c = l->counters();
    return c.cdc_received.load() + c.llc_received.load() + c.rx_unknown_token.load() +
           c.rx_bad_msg.load();
  };
  const auto start = std::chrono::steady_clock::now();
  auto quiet_since = start;
  uint64_t seen = received();
  while (l->active()) {
    if (!l->poll_once()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const auto now = std::chrono::steady_clock::now();
    if (const uint64_t r = received(); r != seen) {
      seen = r;
      quiet_since = now;
    }
    if (now - quiet_since >= std::chrono::milliseconds(kQuietMs) ||
        now - start >= std::chrono::milliseconds(max_ms)) {
      break;
    }
  }
}

void LinkGroup::terminate(bool orderly, const char* why) {
  if (terminating_.exchange(true, std::memory_order_acq_rel)) return;
  SMC_LOG("link group %u (%s) terminating: %s", id_, role_name(role_), why);
  rt_->counters().lgr_terminated.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lk(llc_mu_);
    llc_cv_.notify_all();
  }
  if (orderly) {
    if (Link* l = active_link(); l != nullptr) {
      wire::LlcDeleteLink d;
      d.hdr.type = wire::LlcType::kDeleteLink;
      d.hdr.v2 = v2_;
      d.hdr.flags = wire::kLlcDeleteLinkAll | wire::kLlcDeleteLinkOrderly;
      d.link_num = 0;
      d.reason = wire::kLlcDelProgInitTerm;
      // Let it leave before the QP goes to ERR (which would flush it).
      if (l->send_llc(d, rt_->config().llc_wait_ms)) {
        l->wait_sends_done(500);
        linger_until_quiet(l, rt_->config().llc_wait_ms);
      }
    }
  }
  for_each_connection([](Connection* c) { c->on_link_down(ECONNRESET); });
  for (int i = 0; i < kMaxLinks; ++i) {
    Link* l;
    {
      std::lock_guard<std::mutex> lk(mu_);
      l = links_[i].get();
    }
    if (l != nullptr) l->teardown();
  }
}

}  // namespace droce::smc
