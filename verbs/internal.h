// verbs/ internals: the objects behind the ibv_* handles libibverbs programs
// hold (each wraps the public struct as its first member), the device list,
// and the helpers every entry point shares (DESIGN.md section 5).
#pragma once

#include <infiniband/verbs.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>  // before verbs.h: __VERBS_ABI_IS_EXTENDED uses numeric_limits in C++
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "nic/base/clock.h"
#include "nic/base/status.h"
#include "nic/device.h"

// verbs.h turns these names into macros for the inline fast paths; the
// library defines the real functions.
#undef ibv_query_port
#undef ibv_reg_mr
#undef ibv_reg_mr_iova

// Declared by rdma-core's driver.h (not installed); Debian's ibv_devinfo imports it.
enum ibv_gid_type_sysfs {
  IBV_GID_TYPE_SYSFS_IB_ROCE_V1,
  IBV_GID_TYPE_SYSFS_ROCE_V2,
};
extern "C" int ibv_query_gid_type(struct ibv_context* context, uint8_t port_num, unsigned int index,
                                  enum ibv_gid_type_sysfs* type);

namespace droce::verbs {

using ::droce::Result;
using ::droce::Status;

// ibv_req_notify_cq flags as a bit mask (the kernel's ib_cq_notify_flags):
// libibverbs passes 0 (next completion) or 1 (solicited only); in-kernel
// style callers pass NEXT_COMP and may add REPORT_MISSED_EVENTS.
inline constexpr int kCqSolicited = 1;
inline constexpr int kCqNextComp = 2;
inline constexpr int kCqSolicitedMask = kCqSolicited | kCqNextComp;
inline constexpr int kCqReportMissedEvents = 4;

// GID table as rxe reports it: 1024 entries, index 0 is the port's RoCEv2 GID.
inline constexpr int kGidTableLen = 1024;
inline constexpr int kPkeyTableLen = 1;
inline constexpr uint16_t kDefaultPkey = 0xFFFF;
inline constexpr uint32_t kVendorId = 0xFFFFFF;  // as rxe (IBTA A3.3.1: no OUI)

struct Qp;
struct Cq;
struct Srq;

// One ethdev port seen as one RDMA device (droce0, droce1, ...). Lives for
// the life of the process once ibv_get_device_list has created it.
// Threading: mu guards device, open_count and the object maps; port and the
// ibv_device fields are written once before the slot is published.
struct Context;

struct DeviceSlot {
  ibv_device ibdev;  // handed out by ibv_get_device_list; first member
  int index = 0;
  uint64_t node_guid = 0;  // host order, EUI-64 of the port MAC
  std::unique_ptr<nic::Port> port;
  Nanos started_at = 0;  // when the port was started (ibv_get_device_list)

  std::mutex mu;
  std::unique_ptr<nic::Device> device;  // exists while a context is open
  int open_count = 0;
  Nanos closed_at = 0;  // when the last context closed (0: never)
  bool exited = false;  // the process is exiting: no more opens
  // Async events name objects by engine identity; these find the handle.
  std::unordered_map<uint32_t, Qp*> qps;  // qpn -> QP
  std::unordered_map<const nic::CompletionQueue*, Cq*> cqs;
  std::unordered_map<const nic::Srq*, Srq*> srqs;
  // Open contexts: each gets the port and device events, and the events of
  // the objects it created (as uverbs delivers them per ucontext).
  std::vector<Context*> contexts;
};

DeviceSlot* slot_of(ibv_device* dev);

// struct verbs_context with ibv_context as its last member, as verbs.h's
// inline functions expect (verbs_get_ctx subtracts the offset).
struct Context {
  verbs_context vctx;
  DeviceSlot* slot = nullptr;
  nic::Device* dev = nullptr;
  // This context's async events (guarded by slot->mu), one count each in
  // event_fd (an eventfd in semaphore mode, in async_fd's epoll set).
  std::deque<nic::AsyncEvent> events;
  int event_fd = -1;
};
inline Context* ctx_of(ibv_context* c) {
  return reinterpret_cast<Context*>(reinterpret_cast<char*>(c) - offsetof(verbs_context, context));
}
inline nic::Device* dev_of(ibv_context* c) { return ctx_of(c)->dev; }

struct Pd {
  ibv_pd pd;
  uint32_t handle = 0;  // nic PD number
};
inline Pd* pd_of(ibv_pd* p) { return reinterpret_cast<Pd*>(p); }

struct Mr {
  ibv_mr mr;
  uint32_t access = 0;
};

struct Ah {
  ibv_ah ah;
  uint32_t handle = 0;  // nic AH number
};

// A completion channel: its fd is an epoll set of the event fds of the CQs
// attached to it, so it is pollable and honours O_NONBLOCK set by the program.
struct Channel {
  ibv_comp_channel ch;
  std::mutex mu;             // serialises event reads; guards pending
  std::vector<Cq*> pending;  // CQs with events already read from their fd
};

struct Cq {
  ibv_cq_ex cq;  // ibv_cq is its prefix: the same pointer serves both
  nic::CompletionQueue* ncq = nullptr;
  nic::Device* dev = nullptr;
  DeviceSlot* slot = nullptr;
  uint64_t wc_flags = 0;      // ibv_create_cq_ex: fields the program reads
  nic::Cqe cur{};             // the CQE ibv_start_poll / ibv_next_poll hold
  uint64_t cur_ts = 0;        // its completion timestamp (CQs created with one)
  bool cur_news = false;      // since ibv_start_poll: a receive or a failure taken (cq.cc)
  uint32_t extra_events = 0;  // events read from the fd but not yet returned (channel mu)
};
inline Cq* cq_of(ibv_cq* c) { return reinterpret_cast<Cq*>(c); }
inline Cq* cq_of(ibv_cq_ex* c) { return reinterpret_cast<Cq*>(c); }

struct Srq {
  ibv_srq srq;
  nic::Srq* nsrq = nullptr;
  nic::Device* dev = nullptr;
  uint32_t max_wr = 0;
  uint32_t max_sge = 0;
};
inline Srq* srq_of(ibv_srq* s) { return reinterpret_cast<Srq*>(s); }

// Work requests built with the ibv_wr_* API between ibv_wr_start and
// ibv_wr_complete (posted on complete, dropped on abort). The program
// serialises these calls per QP, as libibverbs requires.
struct WrBatch {
  uint32_t stride = 0;    // bytes per entry: SendWqe + Sges or inline bytes
  uint32_t capacity = 0;  // entries (the SQ depth)
  uint32_t count = 0;
  int error = 0;  // first error while building; wr_complete returns it
  std::unique_ptr<uint8_t[]> mem;
  nic::SendWqe* at(uint32_t i) {
    return reinterpret_cast<nic::SendWqe*>(mem.get() + size_t(i) * stride);
  }
};

struct Qp {
  ibv_qp_ex qpx;  // ibv_qp is its first member
  nic::Qp* nqp = nullptr;
  nic::Device* dev = nullptr;
  DeviceSlot* slot = nullptr;
  uint32_t max_send_sge = 0;
  uint32_t max_inline = 0;
  bool is_ex = false;  // created with send_ops_flags: ibv_qp_to_qp_ex returns qpx
  WrBatch batch;
};
inline Qp* qp_of(ibv_qp* q) { return reinterpret_cast<Qp*>(q); }
inline Qp* qp_of(ibv_qp_ex* q) { return reinterpret_cast<Qp*>(q); }

// ---- shared helpers ----

// Logs a failed call when DROCE_LOG=1 and returns its errno value.
int fail(const char* what, const Status& st);
// Sets errno from a failed Status (logged as above) and returns nullptr.
template <typename T>
T* fail_null(const char* what, const Status& st) {
  errno = fail(what, st);
  return nullptr;
}
inline std::nullptr_t fail_errno(int err) {
  errno = err;
  return nullptr;
}
// A refusal decided in verbs/: logged with its reason when DROCE_LOG=1.
int refuse(const char* what, int err, const char* why);
inline std::nullptr_t refuse_null(const char* what, int err, const char* why) {
  errno = refuse(what, err, why);
  return nullptr;
}

// Runs f, turning an escaped C++ exception into on_exception (errno ENOMEM),
// so no exception crosses the C boundary.
template <typename F, typename R>
R guard(F&& f, R on_exception) noexcept {
  try {
    return f();
  } catch (...) {
    errno = ENOMEM;
    return on_exception;
  }
}

// O_NONBLOCK set on fd by the program?
bool fd_nonblocking(int fd);

// Blocks until the epoll fd epfd (a completion channel's or the async fd) is
// readable: 0, or -1 with errno EINTR when a signal interrupts the wait, as
// rdma-core's read(2) of its kernel fd gives. read(2) goes on after a handler
// installed with SA_RESTART, epoll_wait never does; so signals caught that way
// are held off during the wait and run in another thread (or just after).
// DPDK's net_tap raises one (SIGRTMIN+1 in 22.11) for every received frame.
int wait_readable(int epfd);

// ibv_mtu <-> bytes; 0 for a bad value.
uint32_t mtu_bytes(int mtu);
ibv_mtu mtu_enum(uint32_t bytes);

// Context operations installed in ibv_context_ops / verbs_context (cq.cc, qp.cc).
int op_poll_cq(ibv_cq* cq, int num_entries, ibv_wc* wc) noexcept;
int op_req_notify_cq(ibv_cq* cq, int flags) noexcept;
int op_post_send(ibv_qp* qp, ibv_send_wr* wr, ibv_send_wr** bad_wr) noexcept;
int op_post_recv(ibv_qp* qp, ibv_recv_wr* wr, ibv_recv_wr** bad_wr) noexcept;
int op_post_srq_recv(ibv_srq* srq, ibv_recv_wr* wr, ibv_recv_wr** bad_wr) noexcept;
ibv_cq_ex* op_create_cq_ex(ibv_context* ctx, ibv_cq_init_attr_ex* attr) noexcept;
ibv_qp* op_create_qp_ex(ibv_context* ctx, ibv_qp_init_attr_ex* attr) noexcept;
int op_query_port(ibv_context* ctx, uint8_t port, ibv_port_attr* attr, size_t len) noexcept;
int op_query_device_ex(ibv_context* ctx, const ibv_query_device_ex_input* in,
                       ibv_device_attr_ex* attr, size_t len) noexcept;

}  // namespace droce::verbs
