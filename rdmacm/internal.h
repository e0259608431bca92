// The drop-in librdmacm.so.1: private id and channel objects behind the
// public structs of rdma-core v44's <rdma/rdma_cma.h> (reference/rdma-cm.md
// sections 1-2), the process's devices and its port table.
#pragma once

#include <infiniband/sa.h>
#include <infiniband/verbs.h>
#include <netinet/in.h>
#include <rdma/rdma_cma.h>
#include <rdma/rdma_verbs.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <vector>

namespace droce::rdmacm {

// Largest private data an event carries (REP: 196, SIDR_REQ user data: 180).
inline constexpr size_t kEventPrivateMax = 256;

struct IdPriv;
class CmService;

// One queued or delivered event. event.param.conn.private_data points into
// private_data, valid until rdma_ack_cm_event.
struct Event {
  rdma_cm_event event{};
  IdPriv* owner = nullptr;   // the id whose accounting the event counts in
  bool dead = false;         // its id was destroyed or migrated before delivery
  uint8_t private_data[kEventPrivateMax]{};
};

// Threading: any thread may post or get. mu guards queue; the eventfd holds
// one count per queued event (dead ones included), so the fd is readable
// exactly when rdma_get_cm_event has something to return or skip.
struct Channel {
  rdma_event_channel ch{-1};  // first: programs read ch.fd
  std::mutex mu;
  std::deque<Event*> queue;
};

// rdma_cm_id states, after the kernel's enum rdma_cm_state.
enum class IdState : uint8_t {
  kIdle,
  kAddrQuery,
  kAddrResolved,
  kRouteQuery,
  kRouteResolved,
  kConnect,
  kDisconnect,
  kAddrBound,
  kListen,
  kDevRemoval,
  kDestroying,
};

struct Options {
  uint8_t tos = 0;
  bool tos_set = false;
  bool reuseaddr = false;
  bool afonly = false;
  uint8_t ack_timeout = 0;
  bool ack_timeout_set = false;
};

// What the CM exchange settled for a connection: the inputs of the QP
// attributes rdma_init_qp_attr derives (reference/rdma-cm.md 2.3). PSNs are
// crossed as Linux does: a side receives from the PSN it announced and sends
// from the PSN its peer announced.
struct ConnParams {
  bool valid = false;          // a REQ (passive) or REP (active) has been taken in
  uint32_t remote_qpn = 0;
  uint32_t local_psn = 0;      // announced in our REQ/REP: rq_psn
  uint32_t remote_psn = 0;     // announced by the peer: sq_psn
  ibv_mtu path_mtu = IBV_MTU_1024;
  uint8_t responder_resources = 0;  // max_dest_rd_atomic
  uint8_t initiator_depth = 0;      // max_rd_atomic
  uint8_t retry_count = 7;
  uint8_t rnr_retry_count = 7;
  uint8_t ack_timeout = 0;     // QP timeout (4.096 us * 2^n)
  uint32_t remote_ipv4 = 0;    // host order
  uint32_t flow_label = 0;
  uint8_t hop_limit = 64;
  uint8_t traffic_class = 0;
  uint32_t remote_qkey = 0;    // UD (SIDR_REP)
};

// The private id: the public rdma_cm_id must come first, because events and
// callers hand back &id (rdma-core's cma.c uses container_of).
struct IdPriv {
  rdma_cm_id id{};
  bool sync = false;          // created with a NULL channel: calls block for their event
  Channel* own_channel = nullptr;  // the private channel of a sync id

  // mu guards everything below; cv signals event acks and async work ending.
  std::mutex mu;
  std::condition_variable cv;
  uint32_t events_reported = 0;
  uint32_t events_completed = 0;
  int async_busy = 0;         // address resolutions running for this id
  IdState state = IdState::kIdle;
  Options opt;
  uint16_t bound_port = 0;    // host order; 0 = no port held
  bool holds_port = false;    // children of a listener hold none
  int backlog = 0;
  ibv_sa_path_rec path{};
  ibv_comp_channel* own_send_channel = nullptr;  // made by rdma_create_qp
  ibv_comp_channel* own_recv_channel = nullptr;
  ibv_cq* own_send_cq = nullptr;
  ibv_cq* own_recv_cq = nullptr;
  ibv_qp_init_attr ep_qp_attr{};  // rdma_create_ep on a passive id: for rdma_get_request
  ibv_pd* ep_pd = nullptr;
  bool ep_has_qp_attr = false;
  ibv_ece local_ece{};
  ConnParams conn;

  // The CM side (conn.cc): guarded by the CmService's lock, not mu.
  CmService* cm = nullptr;       // the agent of the id's device, once it uses the CM
  uint32_t cm_conn = 0;          // the agent's connection (0: none)
  bool cm_listening = false;
  uint64_t listen_sid = 0;
  uint32_t listen_ip = 0;
  IdPriv* listener = nullptr;    // a child's listener while its request is pending
  int pending_requests = 0;      // a listener's children not yet accepted or rejected
  std::vector<IdPriv*> requests;  // those children
  uint8_t want_resp_res = 0;     // what rdma_connect asked for
  uint8_t want_init_depth = 0;
  bool connected = false;        // ESTABLISHED reported
};

inline IdPriv* priv(rdma_cm_id* id) { return reinterpret_cast<IdPriv*>(id); }
inline Channel* chan(rdma_event_channel* c) { return reinterpret_cast<Channel*>(c); }

// One opened droce device: rdma_get_devices hands out these contexts, and
// ids share one PD per device, as rdma-core's cma_device does.
struct DeviceEntry {
  ibv_context* ctx = nullptr;
  uint32_t ipv4 = 0;          // host order, from GID index 0 (::ffff:a.b.c.d)
  ibv_pd* pd = nullptr;       // allocated on first use
  ibv_mtu active_mtu = IBV_MTU_1024;
  ibv_device_attr attr{};
};

// The process's librdmacm state: its devices and the ports ids hold.
// Threading: mu guards ports; devices are fixed after init.
class Library {
 public:
  // Opens the devices on first use; ENODEV when there is none.
  static int get(Library** out);

  std::vector<DeviceEntry>& devices() { return devices_; }
  // The device whose port has ipv4 (host order), or nullptr.
  DeviceEntry* device_for_ip(uint32_t ipv4);
  DeviceEntry* device_for_ctx(ibv_context* ctx);
  ibv_pd* shared_pd(DeviceEntry* d);

  // Port table per port space: EADDRINUSE unless both holders set REUSEADDR
  // and neither listens. port 0 picks a free ephemeral port (32768..60999).
  int take_port(uint16_t ps, uint16_t* port, bool reuseaddr);
  void release_port(uint16_t ps, uint16_t port);
  bool port_listening(uint16_t ps, uint16_t port);
  void set_listening(uint16_t ps, uint16_t port, bool on);

 private:
  struct PortUse {
    int holders = 0;
    bool reuseaddr = true;
    bool listening = false;
  };
  std::vector<DeviceEntry> devices_;
  std::mutex mu_;
  std::map<uint32_t, PortUse> ports_;  // key: ps << 16 | port
  uint64_t rng_ = 0;
};

// ---- events (channel.cc) ----
// Queues an event for `id` on its channel. pd/len: private data copied into
// the event; reported_len: what the event says its length is (the kernel
// reports the maximum size of the message, not the sender's length).
// param: the event's conn/ud parameters (their private-data fields are set here).
// via: another channel than the id's (a sync listener's, for its child's request).
using EventParam = decltype(rdma_cm_event::param);
void post_event(IdPriv* id, rdma_cm_event_type type, int status, const void* pd, size_t len,
                uint8_t reported_len, rdma_cm_id* listen_id = nullptr, const EventParam* param = nullptr,
                Channel* via = nullptr);
// Marks every undelivered event of `id` on `c` dead; returns how many.
int kill_events(Channel* c, IdPriv* id);
// A sync id's wait for the event its call produced (rdma-core ucma_complete):
// 0, or -1 with errno from the event's status.
int complete(IdPriv* id);
Channel* new_channel();
void free_channel(Channel* c);

// ---- the CM (cm.cc, conn.cc) ----
// The device's CM service (its agent and progress thread), started on first use.
CmService* cm_service(DeviceEntry* d);
// Ends the CM side of an id being destroyed (rdma_destroy_id).
void cm_release(IdPriv* p);

// ---- addresses (id.cc) ----
// The IPv4 address (host order) of an AF_INET or v4-mapped AF_INET6 sockaddr.
bool sockaddr_ipv4(const sockaddr* sa, uint32_t* ip, uint16_t* port);
socklen_t sockaddr_len(const sockaddr* sa);
void ipv4_gid(uint32_t ip, ibv_gid* gid);

// Sets errno and returns -1 (the library's error convention).
inline int fail(int err) {
  errno = err;
  return -1;
}

}  // namespace droce::rdmacm
