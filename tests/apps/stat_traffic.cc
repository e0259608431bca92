// stat_traffic: a live droce process for droce-stat's tests. Two devices
// ("droce0", "droce1") on a net_ring port pair, both driven by the main
// thread (frames cross the pair through DPDK rings, which ThreadSanitizer
// cannot see, so two engine threads would show it races that are not there;
// one thread leaves exactly the telemetry thread's reads against the engine),
// on droce's embedded default EAL arguments (so telemetry as users get it);
// an RC QP on each, connected, and RDMA WRITEs from the first to the second
// until `seconds` (argv[1], at most 300) have passed or SIGTERM comes; then
// everything is torn down and it exits 0. Prints "running" once traffic flows.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "nic/base/clock.h"
#include "nic/config.h"
#include "nic/device.h"
#include "nic/port.h"

namespace {

using namespace droce;
using namespace droce::nic;

volatile std::sig_atomic_t g_stop = 0;
void on_term(int) { g_stop = 1; }

int fail(const char* what) {
  std::fprintf(stderr, "stat_traffic: %s\n", what);
  return 1;
}

PortConfig config(const char* ip) {
  PortConfig cfg;
  cfg.ipv4 = parse_ipv4(ip).value();
  cfg.mbufs = 2047;
  return cfg;
}

bool connect(Device& dev, Qp* qp, uint32_t peer_ip, uint32_t peer_qpn) {
  QpAttrs a;
  a.state = QpState::kInit;
  a.pkey_index = 0;
  a.port_num = 1;
  a.access = kAccessRemoteWrite | kAccessLocalWrite;
  if (!dev.modify_qp(qp, a,
                     QpAttr::kState | QpAttr::kPkeyIndex | QpAttr::kPort | QpAttr::kAccessFlags)) {
    return false;
  }
  a.state = QpState::kRtr;
  a.path_mtu = 1024;
  a.dest_qpn = peer_qpn;
  a.rq_psn = 0;
  ipv4_to_gid(peer_ip, a.av.dgid);
  a.max_dest_rd_atomic = 1;
  a.min_rnr_timer = 1;
  if (!dev.modify_qp(qp, a,
                     QpAttr::kState | QpAttr::kAv | QpAttr::kPathMtu | QpAttr::kDestQpn |
                         QpAttr::kRqPsn | QpAttr::kMaxDestRdAtomic | QpAttr::kMinRnrTimer)) {
    return false;
  }
  a.state = QpState::kRts;
  a.sq_psn = 0;
  a.timeout = 14;
  a.retry_cnt = 7;
  a.rnr_retry = 7;
  a.max_rd_atomic = 1;
  return bool(dev.modify_qp(qp, a,
                            QpAttr::kState | QpAttr::kSqPsn | QpAttr::kTimeout | QpAttr::kRetryCnt |
                                QpAttr::kRnrRetry | QpAttr::kMaxQpRdAtomic));
}

}  // namespace

int main(int argc, char** argv) {
  const long seconds = argc > 1 ? std::strtol(argv[1], nullptr, 10) : 30;
  if (seconds <= 0 || seconds > 300) return fail("seconds: 1..300");
  std::signal(SIGTERM, on_term);
  auto pair = make_port_pair(config("10.7.0.1"), config("10.7.0.2"));
  if (!pair) return fail(pair.status().message().c_str());
  Device::Options oa, ob;
  oa.engine_thread = ob.engine_thread = false;
  oa.name = "droce0";
  ob.name = "droce1";
  auto da = Device::create(&pair->a(), oa);
  auto db = Device::create(&pair->b(), ob);
  if (!da || !db) return fail("Device::create");
  Device& a = *da.value();
  Device& b = *db.value();
  const uint32_t pa = a.alloc_pd().value(), pb = b.alloc_pd().value();
  CompletionQueue* ca = a.create_cq(256).value();
  CompletionQueue* cb = b.create_cq(256).value();
  std::vector<uint8_t> src(4096, 0x5a), dst(4096, 0);
  const uint32_t lkey =
      a.reg_mr(pa, src.data(), uint64_t(src.data()), src.size(), kAccessLocalWrite).value();
  const uint32_t rkey = b.reg_mr(pb, dst.data(), uint64_t(dst.data()), dst.size(),
                                 kAccessLocalWrite | kAccessRemoteWrite)
                            .value();
  QpInitAttr init;
  init.type = QpType::kRc;
  init.cap.max_send_wr = 64;
  init.cap.max_recv_wr = 64;
  init.cap.max_send_sge = 1;
  init.cap.max_recv_sge = 1;
  init.pd = pa;
  init.send_cq = init.recv_cq = ca;
  Qp* qa = a.create_qp(init).value();
  init.pd = pb;
  init.send_cq = init.recv_cq = cb;
  Qp* qb = b.create_qp(init).value();
  if (!connect(a, qa, b.port().ipv4(), qb->qpn()) || !connect(b, qb, a.port().ipv4(), qa->qpn())) {
    return fail("connecting the QPs");
  }

  const Nanos end = monotonic_now() + seconds * kNanosPerSec;
  uint64_t done = 0;
  bool announced = false;
  int outstanding = 0;
  while (monotonic_now() < end && !g_stop) {
    while (outstanding < 16) {
      SendWqe w{};
      w.wr_id = done + uint64_t(outstanding);
      w.opcode = WrOpcode::kRdmaWrite;
      w.flags = kSendSignaled;
      w.num_sge = 1;
      w.length = uint32_t(src.size());
      w.rkey = rkey;
      w.remote_addr = uint64_t(dst.data());
      const Sge sge{uint64_t(src.data()), uint32_t(src.size()), lkey};
      if (qa->post_send(w, &sge, nullptr) != 0) break;
      ++outstanding;
    }
    Cqe c[16];
    const int n = ca->poll(c, 16);
    for (int i = 0; i < n; ++i) {
      if (c[i].status != WcStatus::kSuccess) return fail("a WRITE completed in error");
    }
    outstanding -= n;
    done += uint64_t(n);
    if (!announced && done >= 100) {
      std::printf("running: qpn %u -> %u\n", qa->qpn(), qb->qpn());
      std::fflush(stdout);
      announced = true;
    }
    a.progress();
    b.progress();
  }
  // Let the WRITEs in flight complete, so that the QPs go down idle.
  const Nanos drain_end = monotonic_now() + 5 * kNanosPerSec;
  while (outstanding > 0 && monotonic_now() < drain_end) {
    Cqe c[16];
    outstanding -= ca->poll(c, 16);
    a.progress();
    b.progress();
  }
  std::printf("%llu WRITEs\n", (unsigned long long)done);
  return 0;
}
