// The SMC-R state of one process (or of one simulated system in a test): the
// verbs device, the link groups in both roles, and the progress thread that
// waits on completion channels and async events, answers LLC requests,
// retries deferred transmissions and runs the timers (the roles of Linux's
// smc_core.c link group list, smc_wr.c tasklets and smc_llc.c workers).
// State lives here, never in globals: a test runs two Runtimes in one process.
#pragma once

#include <sys/epoll.h>
#include <sys/socket.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "smc/config.h"
#include "smc/core.h"
#include "smc/ib.h"
#include "smc/tcp_option.h"

namespace droce::smc {

// Why connections did not use SMC-R, by Linux decline code (local reason),
// and the most recent ones with their addresses (`droce-smc stat`).
struct FallbackEvent {
  int64_t when_ms = 0;      // CLOCK_REALTIME, ms
  std::string label;        // "local -> peer"
  uint32_t reason = 0;
  uint32_t peer_diagnosis = 0;
};
struct FallbackCounters {
  static constexpr size_t kRecent = 32;
  std::mutex mu;
  std::map<uint32_t, uint64_t> by_reason;
  std::deque<FallbackEvent> recent;
  void add(uint32_t reason);
  void note(FallbackEvent e);  // the socket layer, once addresses are known
};

struct RuntimeCounters {
  std::atomic<uint64_t> smc_connections{0};  // connections that used SMC-R
  std::atomic<uint64_t> first_contacts{0};   // of them, ones that created a link group
  std::atomic<uint64_t> clc_malformed{0};    // CLC messages that broke a rule (connection closed)
  std::atomic<uint64_t> declines_sent{0}, declines_received{0};
  std::atomic<uint64_t> lgr_terminated{0};
  std::atomic<uint64_t> conn_aborted{0};
  std::atomic<uint64_t> failovers{0};        // connections moved to another link
  std::atomic<uint64_t> links_added{0};      // second links confirmed by ADD LINK
  std::atomic<uint64_t> links_lost{0};       // links removed while their group went on
};

// Test hooks (tests/smc): never set in production.
struct RuntimeHooks {
  // Called for every CDC send completion before it is handled. Returning
  // true keeps the completion: the hook calls Runtime::deliver_held_cdc
  // later (the deterministic seed-race test). Set and cleared while the
  // progress thread handles completions, so behind a lock that only a set
  // hook costs anything.
  void set_hold_cdc_completion(std::function<bool(Link*, const ibv_wc&)> f) {
    std::lock_guard<std::mutex> lk(hold_mu_);
    hold_cdc_completion_ = std::move(f);
    hold_set_.store(bool(hold_cdc_completion_), std::memory_order_release);
  }
  bool hold_cdc_completion(Link* l, const ibv_wc& wc) {
    if (!hold_set_.load(std::memory_order_acquire)) return false;
    std::lock_guard<std::mutex> lk(hold_mu_);
    return hold_cdc_completion_ && hold_cdc_completion_(l, wc);
  }
  // Steps of a link teardown as they happen ("qp_err", "drained",
  // "destroy_qp", "destroy_cq", "dereg_mr", "dealloc_pd").
  std::function<void(Link*, const char*)> trace;
  // Every LLC message a link receives, as its bytes, before it is handled.
  std::function<void(Link*, const uint8_t*, size_t)> llc_received;

 private:
  std::mutex hold_mu_;
  std::atomic<bool> hold_set_{false};
  std::function<bool(Link*, const ibv_wc&)> hold_cdc_completion_;
};

class Runtime {
 public:
  // Opens the devices (SMC_DEVICE: a name, a comma-separated list, or every
  // device when empty; at most kMaxLinks) and starts the progress thread.
  // nullptr with *err.
  static std::unique_ptr<Runtime> create(const Config& cfg, std::string* err);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  const Config& config() const { return cfg_; }
  // The first device: its GID and MAC go into CLC messages and the system ID.
  IbDevice* device() { return devs_.front().get(); }
  const std::vector<std::unique_ptr<IbDevice>>& devices() const { return devs_; }
  IbDevice* device_by_gid(const wire::Gid& gid);
  // An active device other than `not_this` (the second link's), or nullptr.
  IbDevice* other_device(const IbDevice* not_this);
  const wire::SystemId& system_id() const { return system_id_; }
  RuntimeCounters& counters() { return counters_; }
  FallbackCounters& fallbacks() { return fallbacks_; }
  RuntimeHooks& hooks() { return hooks_; }

  // --- link groups --------------------------------------------------------
  // Server: a group of ours with this client system and GID, usable for one
  // more connection. Client: the group whose link talks to peer_qpn of that
  // server system. nullptr when none.
  LinkGroup* find_lgr(Role role, const wire::SystemId& peer_id, const wire::Gid& peer_gid, bool v2,
                      uint32_t peer_qpn);
  LinkGroup* create_lgr(Role role, bool v2);
  void for_each_lgr(const std::function<void(LinkGroup*)>& f);
  // Every group, each with a use taken (the caller unuses each).
  std::vector<LinkGroup*> use_all_lgrs();
  // Terminates every group (process exit, device removal). Orderly: DELETE
  // LINK to the peers first.
  void terminate_all(bool orderly);
  // Terminates every group (the stress tests' device removal).
  void terminate_device(const char* why);
  // A device's port went down or the device is gone: each of its links
  // fails over to another link of its group, or ends the group.
  void device_down(IbDevice* dev, const char* why);

  // --- progress ------------------------------------------------------------
  // Registers a link's completion channel with the progress thread.
  bool watch_link(Link* l, ibv_comp_channel* ch);
  // Removes it: after this returns, the progress thread holds no event of
  // the link's CQs (all acknowledged) and will not read another one.
  void unwatch_link(Link* l, ibv_comp_channel* ch);
  // Queues work for the progress thread.
  void schedule_llc(LinkGroup* lgr);
  void schedule_tx(Connection* c);          // takes a hold on c
  void schedule_terminate(LinkGroup* lgr, const char* why);
  // A link failed (Link::fail): LinkGroup::link_down on the progress thread.
  void schedule_link_down(LinkGroup* lgr, Link* l, const char* why);
  // Takes the owner's reference of a closed connection and its CLC socket:
  // both end when the peer's close arrived or at deadline_ms (invariant 6).
  void schedule_close_timer(Connection* c, int64_t deadline_ms, int tcp_fd);
  // Watches an open SMC-R connection's CLC socket: when the peer's TCP ends
  // (its process died, or it closed without an SMC-R close) the connection
  // is aborted after tcp_gone_grace_ms unless the peer's close arrived.
  // Takes a hold on c; unwatch_tcp drops it (before the socket is closed).
  void watch_tcp(Connection* c, int tcp_fd);
  void unwatch_tcp(int tcp_fd);
  uint32_t next_token();
  uint32_t next_lgr_id();
  int64_t now_ms() const;

  // Everything `droce-smc stat` shows, as one JSON object.
  std::string stat_json();
  std::string stat_text();
  // Serves stat_json on a Unix socket in stat_dir() named after the pid, so
  // that `droce-smc stat` finds every running process. False with *err.
  bool enable_stat_socket(std::string* err);
  static std::string stat_dir();

  // Capability without TCP option 254 (Config::capability_local): a
  // listener announces its port in stat_dir()/listen/ (named with this
  // network namespace and the pid); a client proposes SMC-R to a loopback
  // address only when a live process announced that port.
  void register_listener(uint16_t port);
  void unregister_listener(uint16_t port);
  void unregister_all_listeners();
  // TCP option 254 (Config::capability_tcp_option), when it could be
  // loaded; null in peek mode. capability_mode() names the mode in use
  // ("tcp-option" or "peek", as `droce-smc stat` shows it).
  TcpOption* tcp_option() const { return tcp_option_.get(); }
  const char* capability_mode() const { return tcp_option_ ? "tcp-option" : "peek"; }

  bool peer_may_speak_smc(const sockaddr* dst, socklen_t len) const {
    return peer_may_speak_smc(cfg_.capability_local, dst, len);
  }
  static bool peer_may_speak_smc(bool capability_local, const sockaddr* dst, socklen_t len);

  // Test hook support: hands a held CDC completion to the normal path.
  void deliver_held_cdc(Link* l, const ibv_wc& wc);

 private:
  explicit Runtime(const Config& cfg);
  void progress_loop();
  void handle_channel(Link* l, ibv_comp_channel* ch);
  void handle_async(IbDevice* dev);
  IbDevice* async_device(void* epoll_ptr);
  void serve_stat();
  void run_work();
  void run_timers();
  void run_keepalive(int64_t now);
  void on_tcp_event(int fd);
  void wake();

  Config cfg_;
  std::vector<std::unique_ptr<IbDevice>> devs_;
  wire::SystemId system_id_{};
  RuntimeCounters counters_;
  FallbackCounters fallbacks_;
  RuntimeHooks hooks_;
  std::shared_ptr<TcpOption> tcp_option_;  // set in create, before any socket

  std::mutex lgr_mu_;  // guards lgrs_
  std::vector<std::unique_ptr<LinkGroup>> lgrs_;
  std::atomic<uint32_t> token_seq_{0};
  std::atomic<uint32_t> lgr_seq_{0};

  // Progress thread.
  int epfd_ = -1;
  int wake_fd_ = -1;
  int stat_fd_ = -1;
  std::string stat_path_;
  std::mutex listen_mu_;
  std::vector<std::string> listen_files_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex watch_mu_;  // held while an event of a watched channel is read and handled
  std::map<Link*, ibv_comp_channel*> watched_;
  std::mutex work_mu_;   // guards the queues below
  std::vector<LinkGroup*> llc_work_;
  std::vector<Connection*> tx_work_;
  std::vector<std::pair<LinkGroup*, std::string>> terminate_work_;
  struct LinkDown {
    LinkGroup* lgr;
    Link* link;
    std::string why;
  };
  std::vector<LinkDown> link_down_work_;
  std::vector<std::pair<IbDevice*, std::string>> device_work_;
  struct Closing {
    Connection* conn;
    int tcp_fd;
  };
  std::multimap<int64_t, Closing> close_timers_;
  std::map<int, Connection*> tcp_watch_;           // CLC socket -> connection (work_mu_)
  std::multimap<int64_t, Connection*> tcp_gone_;   // grace deadlines (work_mu_), holds
  int64_t next_testlink_check_ms_ = 0;
};

}  // namespace droce::smc
