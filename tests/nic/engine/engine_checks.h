// Test helpers for the QP state machine, flush and device tests: a field-by-
// field QpAttrs diff, a completion ledger (every WQE completes at most once,
// every signaled one exactly once), CQ/event draining, and QpTestPeer.
#pragma once

#include <gtest/gtest.h>

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
