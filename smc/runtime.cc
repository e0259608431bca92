// Runtime: the device, the link groups and the progress thread (see
// runtime.h).
#include "smc/runtime.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <random>
#include <thread>

#include "smc/log.h"

namespace droce::smc {

void FallbackCounters::add(uint32_t reason) {
  std::lock_guard<std::mutex> lk(mu);
  ++by_reason[reason];
}

void FallbackCounters::note(FallbackEvent e) {
  std::lock_guard<std::mutex> lk(mu);
  recent.push_back(std::move(e));
  if (recent.size() > kRecent) recent.pop_front();
}

Runtime::Runtime(const Config& cfg) : cfg_(cfg) {}

std::unique_ptr<Runtime> Runtime::create(const Config& cfg, std::string* err) {
  std::unique_ptr<Runtime> rt(new Runtime(cfg));
  // SMC_DEVICE names one device or a comma-separated list; unset, every
  // device (a second one gives each link group a second link, as Linux
  // does with two RoCE ports). An unnamed device that cannot carry SMC-R
  // (no IPv4 RoCEv2 GID) is left out; a named one is an error.
  std::vector<std::string> names;
  const bool all = cfg.device.empty();
  if (all) {
    names = device_names(err);
    if (names.empty()) return nullptr;
  } else {
    size_t pos = 0;
    while (pos <= cfg.device.size()) {
      const size_t comma = std::min(cfg.device.find(',', pos), cfg.device.size());
      if (comma > pos) names.push_back(cfg.device.substr(pos, comma - pos));
      pos = comma + 1;
    }
  }
  for (const std::string& name : names) {
    if (rt->devs_.size() == size_t(kMaxLinks)) break;
    auto d = std::make_unique<IbDevice>();
    std::string e;
    if (!open_device(name, cfg.gid_index, d.get(), &e)) {
      if (!all || rt->devs_.empty()) {
        *err = e;
        return nullptr;
      }
      SMC_LOG("not using %s: %s", name.c_str(), e.c_str());
      continue;
    }
    rt->devs_.push_back(std::move(d));
  }
  if (rt->devs_.empty()) {
    *err = "SMC_DEVICE names no device";
    return nullptr;
  }
  // System ID: two random bytes and the RoCE port's MAC (as Linux's
  // smc_ib_define_local_systemid).
  std::random_device rd;
  const uint32_t r = rd();
  rt->system_id_[0] = uint8_t(r >> 8);
  rt->system_id_[1] = uint8_t(r);
  std::memcpy(rt->system_id_.data() + 2, rt->device()->mac.data(), 6);
  rt->token_seq_.store(rd(), std::memory_order_relaxed);
  rt->lgr_seq_.store(rd() & 0xFFFF, std::memory_order_relaxed);
  rt->epfd_ = epoll_create1(EPOLL_CLOEXEC);
  rt->wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (rt->epfd_ < 0 || rt->wake_fd_ < 0) {
    *err = std::string("epoll/eventfd: ") + std::strerror(errno);
    return nullptr;
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = &rt->wake_fd_;
  epoll_ctl(rt->epfd_, EPOLL_CTL_ADD, rt->wake_fd_, &ev);
  for (auto& d : rt->devs_) {
    const int afd = d->ctx->async_fd;
    fcntl(afd, F_SETFL, fcntl(afd, F_GETFL) | O_NONBLOCK);
    ev.data.ptr = d.get();
    epoll_ctl(rt->epfd_, EPOLL_CTL_ADD, afd, &ev);
  }
  // Before this process makes an SMC socket: the cgroup binds sockets
  // created after the move (TcpOption::mark).
  if (cfg.capability_tcp_option) {
    std::string why;
    rt->tcp_option_ = TcpOption::acquire(&why);
    if (rt->tcp_option_ == nullptr) SMC_LOG("capability: peek mode (TCP option 254 unavailable: %s)", why.c_str());
  }
  if (rt->tcp_option_ != nullptr) {
    SMC_LOG("capability: TCP option 254 (cgroup %s)", rt->tcp_option_->cgroup().c_str());
  } else if (!cfg.capability_tcp_option) {
    SMC_LOG("capability: peek mode (SMC_CAPABILITY=%s)", cfg.capability_local ? "local" : "peek");
  }
  rt->thread_ = std::thread([p = rt.get()] { p->progress_loop(); });
  return rt;
}

Runtime::~Runtime() {
  terminate_all(true);
  stop_.store(true, std::memory_order_release);
  wake();
  if (thread_.joinable()) thread_.join();
  // Close timers hold connections: end them now.
  for (auto& [fd, c] : tcp_watch_) c->put();
  tcp_watch_.clear();
  for (auto& [t, c] : tcp_gone_) c->put();
  tcp_gone_.clear();
  for (auto& [t, c] : close_timers_) {
    c.conn->release();
    if (c.tcp_fd >= 0) close(c.tcp_fd);
  }
  close_timers_.clear();
  for (Connection* c : tx_work_) c->put();
  tx_work_.clear();
  std::lock_guard<std::mutex> lk(lgr_mu_);
  for (auto& g : lgrs_) {
    if (g->live_connections() != 0) {
      // A connection still owned by the application would point into the
      // group: keep the group (a leak at exit, never a use-after-free).
      SMC_LOG("link group %u: %u connection(s) still open at exit", g->id(), g->live_connections());
      (void)g.release();
    }
  }
  lgrs_.clear();
  if (epfd_ >= 0) close(epfd_);
  if (wake_fd_ >= 0) close(wake_fd_);
  if (stat_fd_ >= 0) {
    close(stat_fd_);
    unlink(stat_path_.c_str());
  }
  unregister_all_listeners();
}

int64_t Runtime::now_ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

uint32_t Runtime::next_token() { return token_seq_.fetch_add(1, std::memory_order_relaxed) + 1; }
uint32_t Runtime::next_lgr_id() { return lgr_seq_.fetch_add(1, std::memory_order_relaxed) + 1; }

IbDevice* Runtime::device_by_gid(const wire::Gid& gid) {
  for (auto& d : devs_) {
    if (d->gid == gid) return d.get();
  }
  return nullptr;
}

IbDevice* Runtime::other_device(const IbDevice* not_this) {
  for (auto& d : devs_) {
    if (d.get() != not_this && d->port_active()) return d.get();
  }
  return nullptr;
}

// ---------------------------------------------------------------------------
// Link groups

LinkGroup* Runtime::find_lgr(Role role, const wire::SystemId& peer_id, const wire::Gid& peer_gid, bool v2,
                             uint32_t peer_qpn) {
  std::lock_guard<std::mutex> lk(lgr_mu_);
  for (auto& g : lgrs_) {
    if (g->terminating() || g->role() != role || g->v2() != v2 || g->peer_id != peer_id) continue;
    // smcr_lgr_match: a link of the group goes to that GID (the server:
    // the client's CLC GID; the client: the link the Accept names by QP).
    bool match = false;
    for (int i = 0; i < kMaxLinks && !match; ++i) {
      Link* l = g->link(i);
      match = l != nullptr && l->active() && l->peer_gid() == peer_gid &&
              (role == Role::kServer || l->peer_qpn() == peer_qpn);
    }
    if (!match) continue;
    if (role == Role::kServer && g->connection_count() >= kMaxConnsPerLgr) continue;
    g->use();
    return g.get();
  }
  return nullptr;
}

LinkGroup* Runtime::create_lgr(Role role, bool v2) {
  auto g = std::make_unique<LinkGroup>(this, role, next_lgr_id(), v2);
  g->use();
  std::lock_guard<std::mutex> lk(lgr_mu_);
  lgrs_.push_back(std::move(g));
  return lgrs_.back().get();
}

void Runtime::for_each_lgr(const std::function<void(LinkGroup*)>& f) {
  std::lock_guard<std::mutex> lk(lgr_mu_);
  for (auto& g : lgrs_) f(g.get());
}

std::vector<LinkGroup*> Runtime::use_all_lgrs() {
  std::vector<LinkGroup*> all;
  for_each_lgr([&](LinkGroup* g) {
    g->use();  // not deleted while we work on it outside lgr_mu_
    all.push_back(g);
  });
  return all;
}

void Runtime::terminate_all(bool orderly) {
  if (orderly) {
    // Closes still waiting for the peer's close (close timers) finish
    // first, within their own bound: DELETE LINK right after our close
    // would leave the peer's close CDC unacknowledged, and a Linux peer's
    // close() then waits for its completion without a bound
    // (smc_cdc_wait_pend_tx_wr).
    const int64_t until = now_ms() + config().close_wait_ms;
    for (;;) {
      {
        std::lock_guard<std::mutex> lk(work_mu_);
        if (close_timers_.empty()) break;
      }
      if (now_ms() >= until || stop_.load(std::memory_order_acquire)) break;
      wake();
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  for (LinkGroup* g : use_all_lgrs()) {
    g->terminate(orderly, orderly ? "program ends" : "device removed");
    g->unuse();
  }
}

void Runtime::terminate_device(const char* why) {
  // Per group and per link (invariant 4): each link is torn down by its
  // group's terminate, which drains it first.
  for (LinkGroup* g : use_all_lgrs()) {
    g->terminate(false, why);
    g->unuse();
  }
}

void Runtime::device_down(IbDevice* dev, const char* why) {
  for (LinkGroup* g : use_all_lgrs()) {
    for (int i = 0; i < kMaxLinks; ++i) {
      Link* l = g->link(i);
      if (l == nullptr || l->device() != dev || l->state() == LinkState::kFreed) continue;
      g->link_down(l, why, true);
    }
    g->unuse();
  }
}

// ---------------------------------------------------------------------------
// Progress thread

void Runtime::wake() {
  const uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof(one));
}

bool Runtime::watch_link(Link* l, ibv_comp_channel* ch) {
  fcntl(ch->fd, F_SETFL, fcntl(ch->fd, F_GETFL) | O_NONBLOCK);
  std::lock_guard<std::mutex> lk(watch_mu_);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = l;
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, ch->fd, &ev) != 0) return false;
  watched_[l] = ch;
  return true;
}

void Runtime::unwatch_link(Link* l, ibv_comp_channel* ch) {
  std::lock_guard<std::mutex> lk(watch_mu_);
  auto it = watched_.find(l);
  if (it == watched_.end()) return;
  epoll_ctl(epfd_, EPOLL_CTL_DEL, ch->fd, nullptr);
  // Events read from the channel are acknowledged at once (handle_channel),
  // so none is outstanding when the CQs are destroyed.
  ibv_cq* cq;
  void* ctx;
  while (ibv_get_cq_event(ch, &cq, &ctx) == 0) ibv_ack_cq_events(cq, 1);
  watched_.erase(it);
}

void Runtime::schedule_llc(LinkGroup* lgr) {
  lgr->use();
  {
    std::lock_guard<std::mutex> lk(work_mu_);
    llc_work_.push_back(lgr);
  }
  wake();
}

void Runtime::schedule_tx(Connection* c) {
  c->hold();
  {
    std::lock_guard<std::mutex> lk(work_mu_);
    tx_work_.push_back(c);
  }
  wake();
}

void Runtime::schedule_terminate(LinkGroup* lgr, const char* why) {
  lgr->use();
  {
    std::lock_guard<std::mutex> lk(work_mu_);
    terminate_work_.emplace_back(lgr, why);
  }
  wake();
}

void Runtime::schedule_link_down(LinkGroup* lgr, Link* l, const char* why) {
  lgr->use();
  {
    std::lock_guard<std::mutex> lk(work_mu_);
    link_down_work_.push_back(LinkDown{lgr, l, why});
  }
  wake();
}

void Runtime::schedule_close_timer(Connection* c, int64_t deadline_ms, int tcp_fd) {
  {
    std::lock_guard<std::mutex> lk(work_mu_);
    close_timers_.emplace(deadline_ms, Closing{c, tcp_fd});
  }
  wake();
}

// epoll data for a watched CLC socket: the descriptor with the top bit set
// (never a valid pointer of ours).
constexpr uint64_t kTcpTag = uint64_t(1) << 63;

void Runtime::watch_tcp(Connection* c, int fd) {
  c->hold();
  {
    std::lock_guard<std::mutex> lk(work_mu_);
    tcp_watch_[fd] = c;
  }
  epoll_event ev{};
  ev.events = EPOLLRDHUP | EPOLLET;
  ev.data.u64 = kTcpTag | uint64_t(uint32_t(fd));
  epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev);
}

void Runtime::unwatch_tcp(int fd) {
  epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
  Connection* c = nullptr;
  {
    std::lock_guard<std::mutex> lk(work_mu_);
    auto it = tcp_watch_.find(fd);
    if (it == tcp_watch_.end()) return;
    c = it->second;
    tcp_watch_.erase(it);
  }
  c->put();
}

void Runtime::on_tcp_event(int fd) {
  std::lock_guard<std::mutex> lk(work_mu_);
  auto it = tcp_watch_.find(fd);
  if (it == tcp_watch_.end()) return;
  it->second->hold();
  tcp_gone_.emplace(now_ms() + cfg_.tcp_gone_grace_ms, it->second);
}

void Runtime::run_keepalive(int64_t now) {
  if (cfg_.testlink_ms <= 0 || now < next_testlink_check_ms_) return;
  next_testlink_check_ms_ = now + std::min(cfg_.testlink_ms, 1000) / 4 + 1;
  std::vector<Link*> probe, dead;
  const std::vector<LinkGroup*> groups = use_all_lgrs();
  for (LinkGroup* g : groups) {
    if (g->terminating()) continue;
    for (int i = 0; i < kMaxLinks; ++i) {
      Link* l = g->link(i);
      if (l == nullptr || !l->active()) continue;
      const int64_t sent = l->test_link_sent_ms.load();
      if (sent != 0 && now - sent > cfg_.llc_wait_ms) {
        dead.push_back(l);
      } else if (sent == 0 && now - l->last_rx_ms() > cfg_.testlink_ms) {
        probe.push_back(l);
      }
    }
  }
  for (Link* l : dead) l->fail("TEST LINK not answered");
  for (Link* l : probe) {
    wire::LlcTestLink t;
    t.hdr.type = wire::LlcType::kTestLink;
    t.hdr.v2 = l->lgr()->v2();
    l->test_link_sent_ms.store(now);
    if (!l->send_llc(t, 0)) l->test_link_sent_ms.store(0);
  }
  for (LinkGroup* g : groups) g->unuse();
}

void Runtime::deliver_held_cdc(Link* l, const ibv_wc& wc) {
  // Through the normal dispatch path, as if the CQ had just returned it.
  l->deliver_send_wc(wc);
}

void Runtime::handle_channel(Link* l, ibv_comp_channel* ch) {
  ibv_cq* cq;
  void* ctx;
  bool send = false, recv = false;
  while (ibv_get_cq_event(ch, &cq, &ctx) == 0) {
    ibv_ack_cq_events(cq, 1);
    send |= cq == l->send_cq();
    recv |= cq == l->recv_cq();
  }
  // An application thread polls the link now: leave the CQs unarmed, it
  // re-arms them when it stops (Link::busy_exit).
  if (l->busy_polled()) return;
  // Arm first, then drain what fired: a completion after the drain raises a
  // new event. Only the CQs that fired, and no final empty poll: on droce an
  // empty ibv_poll_cq runs the engine inline and makes its thread stand
  // aside for a while, which an event-driven poller must not cause.
  l->arm();
  l->drain(send, recv);
}

void Runtime::handle_async(IbDevice* dev) {
  ibv_async_event ev;
  while (ibv_get_async_event(dev->ctx, &ev) == 0) {
    const ibv_event_type type = ev.event_type;
    ibv_ack_async_event(&ev);
    switch (type) {
      case IBV_EVENT_DEVICE_FATAL:
        SMC_LOG("%s: device fatal error: its links fail over or end", dev->name.c_str());
        dev->fatal.store(true, std::memory_order_release);
        device_work_.emplace_back(dev, "device removed");
        break;
      case IBV_EVENT_PORT_ERR:
        // Checked again when the work runs (as smc_ib_port_event_work): a
        // port that came back meanwhile keeps its links.
        device_work_.emplace_back(dev, "port went down");
        break;
      case IBV_EVENT_QP_FATAL:
      case IBV_EVENT_QP_ACCESS_ERR:
      case IBV_EVENT_QP_REQ_ERR:
        SMC_LOG("%s: QP error event %s", dev->name.c_str(), ibv_event_type_str(type));
        break;
      default:
        break;
    }
  }
}

void Runtime::run_work() {
  std::vector<LinkGroup*> llc;
  std::vector<Connection*> tx;
  std::vector<std::pair<LinkGroup*, std::string>> term;
  std::vector<LinkDown> down;
  std::vector<std::pair<IbDevice*, std::string>> devs;
  {
    std::lock_guard<std::mutex> lk(work_mu_);
    llc.swap(llc_work_);
    tx.swap(tx_work_);
    term.swap(terminate_work_);
    down.swap(link_down_work_);
    devs.swap(device_work_);
  }
  for (auto& [d, why] : devs) {
    if (d->port_active()) continue;
    SMC_LOG("%s: %s", d->name.c_str(), why.c_str());
    device_down(d, why.c_str());
  }
  for (LinkDown& w : down) {
    w.lgr->link_down(w.link, w.why.c_str(), true);
    w.lgr->unuse();
  }
  for (LinkGroup* g : llc) {
    g->run_llc_work();
    g->unuse();
  }
  for (Connection* c : tx) {
    c->try_transmit();
    c->put();
  }
  for (auto& [g, why] : term) {
    g->terminate(false, why.c_str());
    g->unuse();
  }
}

void Runtime::run_timers() {
  const int64_t now = now_ms();
  std::vector<Closing> due;
  std::vector<Closing> done;
  {
    std::lock_guard<std::mutex> lk(work_mu_);
    for (auto it = close_timers_.begin(); it != close_timers_.end();) {
      if (it->second.conn->closed_both_ways()) {
        done.push_back(it->second);
        it = close_timers_.erase(it);
      } else if (it->first <= now) {
        due.push_back(it->second);
        it = close_timers_.erase(it);
      } else {
        ++it;
      }
    }
  }
  // Close's bounded fallback (invariant 6): the peer did not close in time.
  // If our close flag went out, the peer knows; otherwise (its RMB stayed
  // full, or the link is gone) tell it with an abort.
  for (Closing& c : due) {
    if (!c.conn->close_sent()) c.conn->abort("close not delivered within SMC_CLOSE_WAIT_MS");
    done.push_back(c);
  }
  for (Closing& c : done) {
    if (c.tcp_fd >= 0) {
      unwatch_tcp(c.tcp_fd);
      close(c.tcp_fd);
    }
    c.conn->release();
  }
  // Peers whose TCP ended without an SMC-R close (invariant 6's other side:
  // never wait forever on a peer that is gone).
  std::vector<Connection*> gone;
  {
    std::lock_guard<std::mutex> lk(work_mu_);
    while (!tcp_gone_.empty() && tcp_gone_.begin()->first <= now) {
      gone.push_back(tcp_gone_.begin()->second);
      tcp_gone_.erase(tcp_gone_.begin());
    }
  }
  for (Connection* c : gone) {
    if (!c->peer_closed()) c->abort("the peer's TCP connection ended without an SMC-R close");
    c->put();
  }
  run_keepalive(now);
  // Link groups: idle ones end after SMC_LGR_IDLE_MS; terminated ones whose
  // links and connections are all gone are deleted.
  std::vector<LinkGroup*> idle;
  {
    std::lock_guard<std::mutex> lk(lgr_mu_);
    for (auto it = lgrs_.begin(); it != lgrs_.end();) {
      LinkGroup* g = it->get();
      if (g->terminating() && g->live_connections() == 0 && !g->in_use() && g->links_freed()) {
        it = lgrs_.erase(it);
        continue;
      }
      if (!g->terminating() && g->connection_count() == 0 && g->live_connections() == 0 && !g->in_use() &&
          now - g->idle_since_ms() > cfg_.lgr_idle_ms) {
        idle.push_back(g);
      }
      ++it;
    }
  }
  for (LinkGroup* g : idle) g->terminate(true, "idle");
}

IbDevice* Runtime::async_device(void* p) {
  for (auto& d : devs_) {
    if (d.get() == p) return d.get();
  }
  return nullptr;
}

void Runtime::progress_loop() {
  epoll_event evs[16];
  while (!stop_.load(std::memory_order_acquire)) {
    const int n = epoll_wait(epfd_, evs, 16, 20);
    for (int i = 0; i < n; ++i) {
      void* p = evs[i].data.ptr;
      if (evs[i].data.u64 & kTcpTag) {
        on_tcp_event(int(uint32_t(evs[i].data.u64)));
      } else if (p == &wake_fd_) {
        uint64_t v;
        (void)!read(wake_fd_, &v, sizeof(v));
      } else if (p == &stat_fd_) {
        serve_stat();
      } else if (IbDevice* d = async_device(p); d != nullptr) {
        std::lock_guard<std::mutex> lk(work_mu_);
        handle_async(d);
      } else {
        std::lock_guard<std::mutex> lk(watch_mu_);
        auto it = watched_.find(static_cast<Link*>(p));
        if (it != watched_.end()) handle_channel(it->first, it->second);
      }
    }
    run_work();
    run_timers();
  }
}

}  // namespace droce::smc
