// LinkGroup: the links and connections to one peer system, their buffers,
// and the LLC flows between the two ends (the roles of Linux 6.1
// smc_core.c link group handling and smc_llc.c; RFC 7609 sections 3.3-3.6,
// reference/smc-v2-linux61.md B7 for what a Linux peer expects answered).
#include <sys/mman.h>

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

Link* LinkGroup::add_link(IbDevice* dev, std::string* err) {
  int index = -1;
  uint8_t link_id;
  {
    std::lock_guard<std::mutex> lk(mu_);
    for (int i = 0; i < kMaxLinks && index < 0; ++i) {
      if (!links_[i]) index = i;
    }
    if (index < 0) {
      *err = "link group has no free link slot";
      return nullptr;
    }
    link_id = next_link_id_++;
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
  if (l != nullptr) l->teardown();
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

bool LinkGroup::llc_wait_request(wire::LlcType type, wire::LlcMsg* req, int wait_ms) {
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
      llc_have_ = true;
      llc_cv_.notify_all();
    }
    return;
  }
  switch (h.type) {
    case wire::LlcType::kConfirmLink:
      // The client's first-contact flow waits for it (it may arrive first).
      llc_msg_ = m;
      llc_have_ = true;
      llc_cv_.notify_all();
      return;
    case wire::LlcType::kAddLink:
      if ((llc_wait_request_ && llc_wait_type_ == int(h.type)) ||
          expect_add_link_.load(std::memory_order_acquire)) {
        llc_msg_ = m;
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
      case wire::LlcType::kTestLink:     // echo (B7: within 2 s)
      case wire::LlcType::kDeleteRkey:   // nothing registered under those keys here
        if (auto* d = std::get_if<wire::LlcDeleteRkey>(&m)) d->err_mask = 0;
        link->send_llc(m, wait_ms);
        break;
      case wire::LlcType::kConfirmRkey:  // one link: the rkey needs nothing more
        link->send_llc(m, wait_ms);
        break;
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
        SMC_LOG("link group %u: peer deletes %s (reason %08x)", id_,
                (d.hdr.flags & wire::kLlcDeleteLinkAll) ? "all links" : "a link", d.reason);
        // The response first (it must leave before the QP goes to ERR);
        // one link per group: losing it ends the group.
        if (link->send_llc(m, wait_ms)) link->wait_sends_done(500);
        terminate(false, "peer deleted the link");
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
