// Test helpers for the QP state machine, flush and device tests: a field-by-
// field QpAttrs diff, a completion ledger (every WQE completes at most once,
// every signaled one exactly once), CQ/event draining, and QpTestPeer.
#pragma once

#include <gtest/gtest.h>
#include <pthread.h>

#include <cstring>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "nic/device.h"
#include "nic/qp.h"

namespace droce::nic {

// Reaches QP internals the public interface does not offer (DESIGN: "a test
// peer class, never #define private public").
class QpTestPeer {
 public:
  // Puts the QP in a state no modify_qp can reach (SQE), under the engine lock.
  static void force_state(Device& dev, Qp* qp, QpState s) {
    auto lock = dev.lock_engine();
    qp->set_state(s);
  }

  // The engine-side state RESET must forget (IBTA 10.3.1: a QP in RESET is as
  // created), as one comparable string; the PSNs are left out because the
  // transitions to RTR and RTS set them again.
  static std::string engine_state(Device& dev, Qp* qp) {
    auto lock = dev.lock_engine();
    std::ostringstream o;
    o << "send_off " << qp->send_off_ << " noack " << qp->noack_pkts_ << " rd_atomic "
      << qp->rd_atomic_inflight_ << " retransmit_at " << qp->retransmit_at_ << " rnr_until "
      << qp->rnr_until_ << " need_retry " << qp->need_retry_ << " retry_started "
      << qp->retry_started_ << " sq_drained_sent " << qp->sq_drained_sent_ << " msn " << qp->msn_
      << " seq_nak_sent " << qp->seq_nak_sent_ << " in_msg " << int(qp->in_msg_) << " have_recv "
      << qp->have_recv_ << " recv_off " << qp->recv_off_ << " write_host "
      << static_cast<const void*>(qp->write_host_) << " write_resid " << qp->write_resid_
      << " write_len " << qp->write_len_ << " res " << qp->res_count_ << "/" << qp->res_next_
      << " ack_held " << qp->ack_held_ << " error_entered " << qp->error_entered_
      << " overrun_recv " << qp->overrun_recv_pending_ << " sq_in_flight "
      << (qp->sq_comp_ != qp->sq_send_);
    return o.str();
  }
  // Responder resources holding a READ, atomic or placement request.
  static uint32_t resources_in_use(Device& dev, Qp* qp) {
    auto lock = dev.lock_engine();
    return qp->res_count_;
  }
  // READ requests of at most n PSNs (the engine's split, at a testable size).
  static void set_read_request_psns(Device& dev, Qp* qp, uint32_t n) {
    auto lock = dev.lock_engine();
    qp->read_request_psns_ = n;
  }
  // Sets every field engine_state() shows to a value a busy QP could have.
  static void dirty(Device& dev, Qp* qp) {
    auto lock = dev.lock_engine();
    static uint8_t byte;
    qp->send_off_ = 100;
    qp->noack_pkts_ = 3;
    qp->rd_atomic_inflight_ = 2;
    qp->retransmit_at_ = 12345;
    qp->rnr_until_ = 678;
    qp->need_retry_ = true;
    qp->retry_started_ = true;
    qp->sq_drained_sent_ = true;
    qp->msn_ = 9;
    qp->seq_nak_sent_ = true;
    qp->in_msg_ = Qp::InMsg::kWrite;
    qp->have_recv_ = true;
    qp->recv_off_ = 10;
    qp->write_host_ = &byte;
    qp->write_resid_ = 11;
    qp->write_len_ = 12;
    qp->res_count_ = 1;
    qp->res_next_ = 1;
    qp->ack_held_ = true;
    qp->error_entered_ = true;
    qp->overrun_recv_pending_ = true;
  }
};

// Reaches Device internals the public interface does not offer.
class DeviceTestPeer {
 public:
  // The engine thread's idle sleep, run by the caller (a device without an
  // engine thread): false when a last poll found work and it did not sleep.
  static bool sleep_until_work(Device& dev, Nanos max_ns, bool arm_rx = true) {
    return dev.sleep_until_work(max_ns, arm_rx);
  }
  // The engine thread (Options::engine_thread), for its CPU affinity.
  static pthread_t engine_thread(Device& dev) { return dev.thread_.native_handle(); }
};

namespace test {

// "" when equal, else one line per differing field.
inline std::string diff_attrs(const QpAttrs& x, const QpAttrs& y) {
  std::ostringstream o;
  auto f = [&](const char* name, auto a, auto b) {
    if (a != b) o << name << ": " << uint64_t(a) << " != " << uint64_t(b) << "\n";
  };
  f("state", uint8_t(x.state), uint8_t(y.state));
  f("cur_state", uint8_t(x.cur_state), uint8_t(y.cur_state));
  f("en_sqd_async_notify", x.en_sqd_async_notify, y.en_sqd_async_notify);
  f("access", x.access, y.access);
  f("pkey_index", x.pkey_index, y.pkey_index);
  f("port_num", x.port_num, y.port_num);
  f("qkey", x.qkey, y.qkey);
  if (std::memcmp(x.av.dgid, y.av.dgid, 16) != 0) o << "av.dgid differs\n";
  f("av.dst_ip", x.av.dst_ip, y.av.dst_ip);
  f("av.sgid_index", x.av.sgid_index, y.av.sgid_index);
  f("av.hop_limit", x.av.hop_limit, y.av.hop_limit);
  f("av.traffic_class", x.av.traffic_class, y.av.traffic_class);
  f("av.flow_label", x.av.flow_label, y.av.flow_label);
  f("av.sl", x.av.sl, y.av.sl);
  f("av.port_num", x.av.port_num, y.av.port_num);
  f("path_mtu", x.path_mtu, y.path_mtu);
  f("timeout", x.timeout, y.timeout);
  f("retry_cnt", x.retry_cnt, y.retry_cnt);
  f("rnr_retry", x.rnr_retry, y.rnr_retry);
  f("min_rnr_timer", x.min_rnr_timer, y.min_rnr_timer);
  f("rq_psn", x.rq_psn, y.rq_psn);
  f("sq_psn", x.sq_psn, y.sq_psn);
  f("max_rd_atomic", x.max_rd_atomic, y.max_rd_atomic);
  f("max_dest_rd_atomic", x.max_dest_rd_atomic, y.max_dest_rd_atomic);
  f("dest_qpn", x.dest_qpn, y.dest_qpn);
  f("cap.max_send_wr", x.cap.max_send_wr, y.cap.max_send_wr);
  f("cap.max_recv_wr", x.cap.max_recv_wr, y.cap.max_recv_wr);
  f("cap.max_send_sge", x.cap.max_send_sge, y.cap.max_send_sge);
  f("cap.max_recv_sge", x.cap.max_recv_sge, y.cap.max_recv_sge);
  f("cap.max_inline_data", x.cap.max_inline_data, y.cap.max_inline_data);
  f("sq_draining", x.sq_draining, y.sq_draining);
  return o.str();
}

// What a consumer like SMC-R keeps: the WQEs it posted, and for each the
// completions seen. check() asserts the DESIGN.md section 4 rules: at most one
// CQE per WQE; a signaled WQE gets one; an unsignaled one gets one only when
// it did not succeed. in_flight() is the count of signaled WQEs without a CQE.
class Ledger {
 public:
  void post(uint64_t wr_id, bool signaled) {
    ASSERT_EQ(wqes_.count(wr_id), 0u) << "wr_id reused in test: " << wr_id;
    wqes_[wr_id] = {signaled, 0, WcStatus::kSuccess};
    if (signaled) ++in_flight_;
  }
  void on_cqe(const Cqe& c) {
    auto it = wqes_.find(c.wr_id);
    ASSERT_NE(it, wqes_.end()) << "CQE for a WQE never posted: wr_id " << c.wr_id;
    Entry& e = it->second;
    ++e.cqes;
    EXPECT_EQ(e.cqes, 1) << "wr_id " << c.wr_id << " completed twice";
    if (!e.signaled) {
      EXPECT_NE(c.status, WcStatus::kSuccess)
          << "unsignaled wr_id " << c.wr_id << " got a success CQE";
    } else if (e.cqes == 1) {
      --in_flight_;
    }
    e.status = c.status;
  }
  void on_cqes(const std::vector<Cqe>& v) {
    for (const Cqe& c : v) on_cqe(c);
  }
  int in_flight() const { return in_flight_; }
  int cqes(uint64_t wr_id) const {
    auto it = wqes_.find(wr_id);
    return it == wqes_.end() ? -1 : it->second.cqes;
  }

 private:
  struct Entry {
    bool signaled;
    int cqes;
    WcStatus status;
  };
  std::map<uint64_t, Entry> wqes_;
  int in_flight_ = 0;
};

// Everything in the CQ now, without driving any engine.
inline std::vector<Cqe> drain(CompletionQueue* cq) {
  std::vector<Cqe> out;
  Cqe c[64];
  for (int n; (n = cq->poll(c, 64)) > 0;) out.insert(out.end(), c, c + n);
  return out;
}

inline std::vector<AsyncEvent> drain_events(Device& dev) {
  std::vector<AsyncEvent> out;
  AsyncEvent ev;
  while (dev.get_async_event(&ev)) out.push_back(ev);
  return out;
}

// One engine iteration of one device, as its engine thread would run it.
inline void poll_once(Device& dev) {
  auto lock = dev.lock_engine();
  dev.poll(monotonic_now());
}

// Expected CQE (wr_id, status) sequence, for readable assertions.
struct Want {
  uint64_t wr_id;
  WcStatus status;
};

inline std::string describe(const std::vector<Cqe>& got) {
  std::ostringstream o;
  for (const Cqe& c : got) o << "(" << c.wr_id << "," << int(c.status) << ") ";
  return o.str();
}

inline void expect_cqes(const std::vector<Cqe>& got, const std::vector<Want>& want, uint32_t qpn,
                        const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what << ": got " << describe(got);
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].wr_id, want[i].wr_id) << what << " #" << i << ": got " << describe(got);
    EXPECT_EQ(got[i].status, want[i].status) << what << " #" << i << ": got " << describe(got);
    EXPECT_EQ(got[i].qp_num, qpn) << what << " #" << i;
  }
}

}  // namespace test
}  // namespace droce::nic
