// Test fixture: two emulated RNICs (Devices) joined by an in-process port
// pair, driven inline by the test (no engine threads), with helpers to make
// connected QPs, register memory, post work and wait for completions.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <memory>
#include <vector>

#include "nic/base/clock.h"
#include "nic/device.h"
#include "nic/port.h"
#include "tests/nic/port/eal_env.h"

namespace droce::nic::test {

// The engine tests attach every RC payload of this many bytes or more from
// its registered memory (zero-copy transmit), far below the default
// threshold (tuned for speed, path MTU 4096 packets), so that the protocol,
// lossy-link, replay and hardening tests run that path at path MTU 1024.
inline constexpr uint32_t kTestZeroCopyMin = 256;

struct Buffer {
  std::vector<uint8_t> bytes;
  uint32_t key = 0;
  uint64_t addr() const { return reinterpret_cast<uint64_t>(bytes.data()); }
};

// One side: device, PD, CQs.
struct Side {
  std::unique_ptr<Device> dev;
  uint32_t pd = 0;
  CompletionQueue* scq = nullptr;
  CompletionQueue* rcq = nullptr;
};

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pair = make_port_pair(test_config("10.9.0.1"), test_config("10.9.0.2"));
    ASSERT_TRUE(pair.is_ok()) << pair.status().message();
    pair_ = std::make_unique<PortPair>(std::move(pair.value()));
    make_side(&pair_->a(), &a_);
    make_side(&pair_->b(), &b_);
  }
  void TearDown() override {
    a_.dev.reset();
    b_.dev.reset();
    pair_.reset();
  }

  void make_side(Port* port, Side* s, uint32_t cqe = 4096, bool coalesce_acks = true) {
    Device::Options opts;
    opts.engine_thread = false;
    opts.coalesce_acks = coalesce_acks;
    opts.zero_copy_min = kTestZeroCopyMin;
    make_device(port, s, opts, cqe);
  }

  // A side whose device runs its own engine thread (opts otherwise as
  // given: the defaults a program gets), replacing the side's device.
  void make_threaded_side(Port* port, Side* s, uint32_t cqe, Device::Options opts = {}) {
    s->dev.reset();
    opts.engine_thread = true;
    make_device(port, s, opts, cqe);
  }

  void make_device(Port* port, Side* s, const Device::Options& opts, uint32_t cqe) {
    auto dev = Device::create(port, opts);
    ASSERT_TRUE(dev.is_ok()) << dev.status().message();
    s->dev = std::move(dev.value());
    s->pd = s->dev->alloc_pd().value();
    s->scq = s->dev->create_cq(cqe).value();
    s->rcq = s->dev->create_cq(cqe).value();
  }

  Buffer make_buffer(Side& s, size_t size, uint32_t access, uint8_t fill = 0) {
    Buffer b;
    b.bytes.assign(size ? size : 1, fill);
    auto key = s.dev->reg_mr(s.pd, b.bytes.data(), b.addr(), b.bytes.size(), access);
    EXPECT_TRUE(key.is_ok()) << key.status().message();
    b.key = key.is_ok() ? key.value() : 0;
    return b;
  }

  Qp* make_qp(Side& s, QpType type, uint32_t depth = 256, uint32_t max_sge = 4) {
    QpInitAttr init;
    init.type = type;
    init.pd = s.pd;
    init.send_cq = s.scq;
    init.recv_cq = s.rcq;
    init.cap.max_send_wr = depth;
    init.cap.max_recv_wr = depth;
    init.cap.max_send_sge = max_sge;
    init.cap.max_recv_sge = max_sge;
    init.cap.max_inline_data = 64;
    auto qp = s.dev->create_qp(init);
    EXPECT_TRUE(qp.is_ok()) << qp.status().message();
    return qp.is_ok() ? qp.value() : nullptr;
  }

  static AddressVector av_to(Side& peer) {
    AddressVector av;
    ipv4_to_gid(peer.dev->port().ipv4(), av.dgid);
    return av;
  }

  // RESET -> INIT -> RTR -> RTS, as ibv_rc_pingpong does.
  void connect(Side& s, Qp* qp, Side& peer, Qp* peer_qp, uint32_t access = kAccessRemoteWrite | kAccessRemoteRead | kAccessRemoteAtomic,
               uint32_t mtu = 1024, uint8_t timeout = 14, uint8_t retry = 7, uint8_t rnr_retry = 7) {
    QpAttrs a;
    a.state = QpState::kInit;
    a.pkey_index = 0;
    a.port_num = 1;
    uint32_t mask = QpAttr::kState | QpAttr::kPkeyIndex | QpAttr::kPort;
    if (qp->type() == QpType::kUd) {
      a.qkey = 0x11111111;
      mask |= uint32_t(QpAttr::kQkey);
    } else {
      a.access = access;
      mask |= uint32_t(QpAttr::kAccessFlags);
    }
    ASSERT_TRUE(s.dev->modify_qp(qp, a, mask).is_ok());
    a.state = QpState::kRtr;
    if (qp->type() == QpType::kUd) {
      mask = uint32_t(QpAttr::kState);
    } else {
      a.path_mtu = mtu;
      a.dest_qpn = peer_qp->qpn();
      a.rq_psn = 0x123;
      a.av = av_to(peer);
      mask = QpAttr::kState | QpAttr::kAv | QpAttr::kPathMtu | QpAttr::kDestQpn | QpAttr::kRqPsn;
      if (qp->type() == QpType::kRc) {
        a.max_dest_rd_atomic = 16;
        a.min_rnr_timer = 1;
        mask |= QpAttr::kMaxDestRdAtomic | QpAttr::kMinRnrTimer;
      }
    }
    auto st = s.dev->modify_qp(qp, a, mask);
    ASSERT_TRUE(st.is_ok()) << st.message();
    a.state = QpState::kRts;
    a.sq_psn = 0x123;
    mask = QpAttr::kState | QpAttr::kSqPsn;
    if (qp->type() == QpType::kRc) {
      a.timeout = timeout;
      a.retry_cnt = retry;
      a.rnr_retry = rnr_retry;
      a.max_rd_atomic = 16;
      mask |= QpAttr::kTimeout | QpAttr::kRetryCnt | QpAttr::kRnrRetry | QpAttr::kMaxQpRdAtomic;
    }
    st = s.dev->modify_qp(qp, a, mask);
    ASSERT_TRUE(st.is_ok()) << st.message();
  }

  // Drives both engines until pred() or the deadline (real time).
  bool pump(const std::function<bool()>& pred, Nanos timeout = 10 * kNanosPerSec) {
    const Nanos end = monotonic_now() + timeout;
    while (!pred()) {
      if (monotonic_now() > end) return false;
      {
        auto la = a_.dev->lock_engine();
        a_.dev->poll(monotonic_now());
      }
      {
        auto lb = b_.dev->lock_engine();
        b_.dev->poll(monotonic_now());
      }
    }
    return true;
  }

  // Polls cq until n completions arrived (pumping the engines) or timeout.
  std::vector<Cqe> wait_cqes(CompletionQueue* cq, size_t n, Nanos timeout = 20 * kNanosPerSec) {
    std::vector<Cqe> out;
    pump([&] {
      Cqe c[16];
      int got = cq->poll(c, 16);
      for (int i = 0; i < got; ++i) out.push_back(c[i]);
      return out.size() >= n;
    }, timeout);
    return out;
  }

  static SendWqe wqe(WrOpcode op, uint64_t wr_id, uint8_t flags = kSendSignaled) {
    SendWqe w{};
    w.wr_id = wr_id;
    w.opcode = op;
    w.flags = flags;
    return w;
  }

  std::unique_ptr<PortPair> pair_;
  Side a_, b_;
};

}  // namespace droce::nic::test
