// libFuzzer target for the responder (issue 4 section 7): arbitrary frames
// into a Device with live RC, UC and UD QPs and MRs whose buffers sit between
// PROT_NONE guard pages, so a touch outside a registered MR crashes.
// Each input is up to kMaxFrames records; the first byte of a record picks:
//   even: the next bytes are a raw frame, sent as-is;
//   odd:  the next bytes fill a wire::PacketSpec (opcode, QPN, PSN near the
//         expected one, rkey of a live MR or not, VA, lengths, payload) that
//         wire::build_frame turns into a frame with a valid ICRC, optionally
//         damaged afterwards (ICRC recomputed), so the deep paths run.
// Every input starts from the same state: all QPs reset and reconnected.
// Spoofing: a built frame may come from another source address than the
// peer's (another IPv4, the victim's own) or another MAC. A frame for an RC or
// UC QP from another IPv4 than its peer's must change nothing: the fuzzer
// aborts if the responder's memory or the state of its RC/UC QPs differs
// after it (rxe_recv.c check_addr).
#include <dirent.h>
#include <rte_eal.h>
#include <rte_mbuf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "nic/device.h"
#include "nic/eal.h"
#include "nic/port.h"
#include "nic/wire/builder.h"
#include "nic/wire/icrc.h"
#include "nic/wire/packet.h"

namespace {

using namespace droce;
using namespace droce::nic;

constexpr int kMaxFrames = 8;
constexpr uint32_t kQkey = 0x11111111;
constexpr uint32_t kPsn = 0x100;
constexpr uint32_t kRqDepth = 16;
constexpr uint32_t kAll =
    kAccessLocalWrite | kAccessRemoteWrite | kAccessRemoteRead | kAccessRemoteAtomic;
constexpr int kQpTypes = 3;  // RC, UC, UD

// Reads input bytes; zeros once they run out.
class Input {
 public:
  Input(const uint8_t* p, size_t n) : p_(p), n_(n) {}
  uint8_t u8() { return n_ ? (--n_, *p_++) : 0; }
  uint16_t u16() { return uint16_t(u8() << 8 | u8()); }
  uint32_t u32() { return uint32_t(u16()) << 16 | u16(); }
  uint64_t u64() { return uint64_t(u32()) << 32 | u32(); }
  size_t take(uint8_t* out, size_t max) {
    const size_t k = max < n_ ? max : n_;
    std::memcpy(out, p_, k);
    p_ += k;
    n_ -= k;
    return k;
  }
  size_t left() const { return n_; }

 private:
  const uint8_t* p_;
  size_t n_;
};

// A buffer of `pages` pages between two PROT_NONE pages.
struct Guarded {
  uint8_t* base = nullptr;  // the first guard page
  uint8_t* data = nullptr;
  size_t len = 0;
  size_t map_len = 0;

  bool make(size_t pages) {
    const size_t pg = size_t(sysconf(_SC_PAGESIZE));
    map_len = (pages + 2) * pg;
    void* m = mmap(nullptr, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return false;
    base = static_cast<uint8_t*>(m);
    data = base + pg;
    len = pages * pg;
    return mprotect(base, pg, PROT_NONE) == 0 && mprotect(data + len, pg, PROT_NONE) == 0;
  }
  void release() {
    if (base) munmap(base, map_len);
    base = data = nullptr;
  }
};

struct Side {
  std::unique_ptr<Device> dev;
  uint32_t pd = 0;
  CompletionQueue* cq = nullptr;
  Qp* qp[kQpTypes] = {};
};

struct State {
  std::unique_ptr<PortPair> pair;
  Side req, resp;            // req on port a (frames are sent from a), resp on port b
  Guarded small, big, recv;  // responder MRs: 1 page, 16 pages, receive buffers
  uint32_t small_key = 0, big_key = 0, recv_key = 0;
  uint64_t small_va = 0x10000, big_va = 0x7f0000000000;  // iova of the MRs
  Nanos now = kNanosPerSec;
};

State* g = nullptr;

void die(const char* what, const Status& st) {
  std::fprintf(stderr, "responder_fuzz: %s: %s\n", what, st.message().c_str());
  std::abort();
}

PortConfig config(const char* ip) {
  PortConfig c;
  c.ipv4 = parse_ipv4(ip).value();
  c.mbufs = 2047;
  c.rx_desc = 512;
  c.tx_desc = 512;
  return c;
}

void make_side(Port* port, Side* s) {
  Device::Options opts;
  opts.engine_thread = false;
  opts.attr.max_qp = 16;
  opts.attr.max_mr = 16;
  auto dev = Device::create(port, opts);
  if (!dev.is_ok()) die("Device::create", dev.status());
  s->dev = std::move(dev.value());
  s->pd = s->dev->alloc_pd().value();
  s->cq = s->dev->create_cq(1024).value();
  const QpType types[kQpTypes] = {QpType::kRc, QpType::kUc, QpType::kUd};
  for (int i = 0; i < kQpTypes; ++i) {
    QpInitAttr init;
    init.type = types[i];
    init.pd = s->pd;
    init.send_cq = s->cq;
    init.recv_cq = s->cq;
    init.cap.max_send_wr = 16;
    init.cap.max_recv_wr = kRqDepth;
    init.cap.max_send_sge = 2;
    init.cap.max_recv_sge = 2;
    auto qp = s->dev->create_qp(init);
    if (!qp.is_ok()) die("create_qp", qp.status());
    s->qp[i] = qp.value();
  }
}

// RESET -> INIT -> RTR -> RTS with the fixed PSNs.
void connect(Side& s, Qp* qp, Port& peer, Qp* peer_qp) {
  QpAttrs a;
  a.state = QpState::kReset;
  Status st = s.dev->modify_qp(qp, a, uint32_t(QpAttr::kState));
  if (!st.is_ok()) die("modify RESET", st);
  a.state = QpState::kInit;
  a.pkey_index = 0;
  a.port_num = 1;
  uint32_t mask = QpAttr::kState | QpAttr::kPkeyIndex | QpAttr::kPort;
  if (qp->type() == QpType::kUd) {
    a.qkey = kQkey;
    mask |= uint32_t(QpAttr::kQkey);
  } else {
    a.access = kAll;
    mask |= uint32_t(QpAttr::kAccessFlags);
  }
  st = s.dev->modify_qp(qp, a, mask);
  if (!st.is_ok()) die("modify INIT", st);
  a.state = QpState::kRtr;
  mask = uint32_t(QpAttr::kState);
  if (qp->type() != QpType::kUd) {
    a.path_mtu = 1024;
    a.dest_qpn = peer_qp->qpn();
    a.rq_psn = kPsn;
    ipv4_to_gid(peer.ipv4(), a.av.dgid);
    mask |= QpAttr::kAv | QpAttr::kPathMtu | QpAttr::kDestQpn | QpAttr::kRqPsn;
    if (qp->type() == QpType::kRc) {
      a.max_dest_rd_atomic = 4;
      a.min_rnr_timer = 1;
      mask |= QpAttr::kMaxDestRdAtomic | QpAttr::kMinRnrTimer;
    }
  }
  st = s.dev->modify_qp(qp, a, mask);
  if (!st.is_ok()) die("modify RTR", st);
  a.state = QpState::kRts;
  a.sq_psn = kPsn;
  mask = QpAttr::kState | QpAttr::kSqPsn;
  if (qp->type() == QpType::kRc) {
    a.timeout = 1;
    a.retry_cnt = 1;
    a.rnr_retry = 1;
    a.max_rd_atomic = 4;
    mask |= QpAttr::kTimeout | QpAttr::kRetryCnt | QpAttr::kRnrRetry | QpAttr::kMaxQpRdAtomic;
  }
  st = s.dev->modify_qp(qp, a, mask);
  if (!st.is_ok()) die("modify RTS", st);
}

void drain_cq(CompletionQueue* cq) {
  Cqe c[64];
  for (int i = 0; i < 64 && cq->poll(c, 64) > 0; ++i) {
  }
}

void poll_both(int rounds) {
  for (int i = 0; i < rounds; ++i) {
    g->now += kNanosPerMs;
    {
      auto l = g->resp.dev->lock_engine();
      g->resp.dev->poll(g->now);
    }
    {
      auto l = g->req.dev->lock_engine();
      g->req.dev->poll(g->now);
    }
  }
}

// Same starting state for every input: QPs reconnected, receives posted.
void reset_qps() {
  for (int i = 0; i < kQpTypes; ++i) {
    connect(g->resp, g->resp.qp[i], g->pair->a(), g->req.qp[i]);
    connect(g->req, g->req.qp[i], g->pair->b(), g->resp.qp[i]);
  }
  drain_cq(g->resp.cq);
  drain_cq(g->req.cq);
  // Two SGEs per receive, each a slice of the guarded receive buffer.
  const uint32_t slice = uint32_t(g->recv.len / (kQpTypes * kRqDepth * 2));
  for (int i = 0; i < kQpTypes; ++i) {
    for (uint32_t k = 0; k < kRqDepth; ++k) {
      const uint64_t at =
          reinterpret_cast<uint64_t>(g->recv.data) + (uint64_t(i) * kRqDepth + k) * 2 * slice;
      Sge s[2] = {{at, slice, g->recv_key}, {at + slice, slice, g->recv_key}};
      if (g->resp.qp[i]->post_recv(k, s, 2) != 0) break;
    }
  }
}

void cleanup() {
  if (g == nullptr) return;
  g->req.dev.reset();
  g->resp.dev.reset();
  g->pair.reset();
  g->small.release();
  g->big.release();
  g->recv.release();
  delete g;
  g = nullptr;
  // eal_cleanup removes only a runtime directory whose prefix droce generated;
  // this one came from DROCE_EAL_ARGS, so it is removed here.
  const std::string dir = rte_eal_get_runtime_dir();
  eal_cleanup();
  if (dir.find("droce-rfuzz-") == std::string::npos) return;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') unlink((dir + "/" + e->d_name).c_str());
    }
    closedir(d);
  }
  rmdir(dir.c_str());
}

// A frame as it is sent: IPv4 without options, from another address than
// the peer's, to the responder's RC or UC QP.
bool still_spoofed(const uint8_t* buf, size_t n) {
  constexpr size_t kSrcIp = 14 + 12, kDestQpn = 14 + 20 + 8 + 5;
  if (n < kDestQpn + 3 || buf[12] != 0x08 || buf[13] != 0x00 || buf[14] != 0x45) return false;
  const uint32_t src = uint32_t(buf[kSrcIp]) << 24 | uint32_t(buf[kSrcIp + 1]) << 16 |
                       uint32_t(buf[kSrcIp + 2]) << 8 | buf[kSrcIp + 3];
  const uint32_t qpn = uint32_t(buf[kDestQpn]) << 16 | uint32_t(buf[kDestQpn + 1]) << 8 | buf[kDestQpn + 2];
  return src != g->pair->a().ipv4() && (qpn == g->resp.qp[0]->qpn() || qpn == g->resp.qp[1]->qpn());
}

// One frame from a record; returns its length in buf (0: nothing to send).
// *spoofed: a built frame for an RC or UC QP from another IPv4 than its peer's.
size_t make_frame(Input& in, uint8_t* buf, size_t cap, bool* spoofed) {
  *spoofed = false;
  const uint8_t mode = in.u8();
  if ((mode & 1) == 0) {
    const size_t len = in.u16() % (cap + 1);
    return in.take(buf, len);
  }
  Port& a = g->pair->a();
  Port& b = g->pair->b();
  wire::PacketSpec s;
  s.src_mac = a.mac();
  s.dst_mac = b.mac();
  s.src_ip = a.ipv4();
  s.dst_ip = b.ipv4();
  const uint8_t src = in.u8();
  if (src >= 0xC0) s.src_ip = src >= 0xF0 ? b.ipv4() : (src & 0x10 ? in.u32() : a.ipv4() + 1 + (src & 7));
  if (src & 1) {
    for (uint8_t& x : s.src_mac) x = in.u8();
  }
  const uint8_t sel = in.u8();
  s.opcode = (mode & 2) ? in.u8()
                        : uint8_t((sel & 0x60) << 0 | (in.u8() % 0x18));  // any, or RC/UC/UD range
  const uint8_t qsel = in.u8();
  s.dest_qp = qsel < 0xF0 ? g->resp.qp[qsel % kQpTypes]->qpn() : in.u32() & 0xFFFFFF;
  *spoofed = s.src_ip != a.ipv4() && qsel < 0xF0 && qsel % kQpTypes != 2;
  const int8_t dpsn = int8_t(in.u8());
  s.psn = (mode & 4) ? in.u32() & 0xFFFFFF : (kPsn + uint32_t(int32_t(dpsn) / 16)) & 0xFFFFFF;
  const uint8_t flags = in.u8();
  s.se = flags & 1;
  s.ackreq = flags & 2;
  s.migreq = flags & 4;
  s.becn_fecn = (flags & 8) ? 0x40 : 0;
  s.pkey = (flags & 16) ? in.u16() : 0xFFFF;
  // rkey / VA / length: a live MR with an offset near it, or anything.
  const uint8_t ksel = in.u8();
  uint32_t key;
  uint64_t va;
  switch (ksel & 3) {
    case 0:
      key = g->small_key;
      va = g->small_va;
      break;
    case 1:
      key = g->big_key;
      va = g->big_va;
      break;
    case 2:
      key = g->recv_key;
      va = reinterpret_cast<uint64_t>(g->recv.data);
      break;
    default:
      key = in.u32();
      va = in.u64();
      break;
  }
  if (ksel & 4) key ^= 1u << (in.u8() % 32);
  va += int64_t(int16_t(in.u16())) * ((ksel & 8) ? 1 : 64);
  const uint32_t len = (ksel & 16) ? in.u32() : in.u16() % 5000;
  s.reth_rkey = key;
  s.reth_va = va;
  s.reth_len = len;
  s.atomic_rkey = key;
  s.atomic_va = (ksel & 32) ? va : va & ~7ull;
  s.atomic_swap_add = in.u64();
  s.atomic_compare = in.u64();
  s.aeth_syndrome = in.u8();
  s.aeth_msn = in.u32() & 0xFFFFFF;
  s.atomic_ack_orig = 0;
  s.imm_raw = in.u32();
  s.ieth_rkey = (ksel & 64) ? g->big_key : in.u32();
  s.deth_qkey = (ksel & 128) ? in.u32() : kQkey;
  s.deth_src_qp = g->req.qp[2]->qpn();
  s.payload_len = in.u16() % 1100;
  uint8_t payload[1100] = {};
  in.take(payload, s.payload_len);
  size_t n = wire::build_frame(buf, cap, s, payload);
  if (n == 0) {
    s.payload_len = 0;  // opcodes that carry no payload
    n = wire::build_frame(buf, cap, s, nullptr);
  }
  if (n == 0) return 0;
  // Damage: overwrite one byte past the Ethernet header, then recompute the ICRC.
  const uint8_t dmg = in.u8();
  if (dmg & 1) {
    const size_t off = 14 + in.u16() % (n - 14 - 4);
    buf[off] = in.u8();
    // A hostile sender computes the IPv4 header checksum too (else the
    // damage to the header only meets the port's checksum check).
    if ((dmg & 4) && (buf[14] & 0x0F) == 5) {
      buf[14 + 10] = buf[14 + 11] = 0;
      const uint16_t sum = wire::ipv4_checksum(*reinterpret_cast<const wire::Ipv4Hdr*>(buf + 14));
      buf[14 + 10] = uint8_t(sum >> 8);
      buf[14 + 11] = uint8_t(sum);
    }
    const uint32_t l3_len = uint32_t(n - 14 - 4);
    wire::icrc_write(buf + 14, l3_len, false);
    if (dmg & 2) n -= in.u8() % 8;  // truncate too
    // The damage may have made the frame come from the peer after all (a
    // byte of the source IPv4), or go to the UD QP, which takes any source:
    // spoofed is what the frame says as sent. Where the damage moved the
    // headers themselves (EtherType, IPv4 header length), nothing is claimed.
    *spoofed = *spoofed && still_spoofed(buf, n);
  }
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  char args[256];
  std::snprintf(args, sizeof(args),
                "--no-huge --no-pci -m 256 --file-prefix=droce-rfuzz-%d --no-telemetry "
                "--log-level=*:error",
                int(getpid()));
  setenv("DROCE_EAL_ARGS", args, 1);
  Status st = eal_init();
  if (!st.is_ok()) die("eal_init", st);
  g = new State;
  auto pair = make_port_pair(config("10.66.0.1"), config("10.66.0.2"));
  if (!pair.is_ok()) die("make_port_pair", pair.status());
  g->pair = std::make_unique<PortPair>(std::move(pair.value()));
  make_side(&g->pair->a(), &g->req);
  make_side(&g->pair->b(), &g->resp);
  if (!g->small.make(1) || !g->big.make(16) || !g->recv.make(16)) {
    std::fprintf(stderr, "responder_fuzz: mmap failed\n");
    std::abort();
  }
  Device& d = *g->resp.dev;
  g->small_key = d.reg_mr(g->resp.pd, g->small.data, g->small_va, g->small.len, kAll).value();
  g->big_key = d.reg_mr(g->resp.pd, g->big.data, g->big_va, g->big.len, kAll).value();
  g->recv_key = d.reg_mr(g->resp.pd, g->recv.data, reinterpret_cast<uint64_t>(g->recv.data),
                         g->recv.len, kAll)
                    .value();
  std::atexit(cleanup);
  return 0;
}

namespace {

// What a spoofed frame must leave as it was: the responder's memory and the
// state of its connected QPs.
struct Snapshot {
  std::string mem;
  QpState state[kQpTypes];

  static Snapshot take() {
    Snapshot s;
    for (const Guarded* r : {&g->small, &g->big, &g->recv}) {
      s.mem.append(reinterpret_cast<const char*>(r->data), r->len);
    }
    for (int i = 0; i < kQpTypes; ++i) s.state[i] = g->resp.qp[i]->state();
    return s;
  }
  bool operator==(const Snapshot& o) const {
    return mem == o.mem && std::memcmp(state, o.state, sizeof(state)) == 0;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  reset_qps();
  Input in(data, size);
  Port& a = g->pair->a();
  for (int f = 0; f < kMaxFrames && in.left() > 0; ++f) {
    rte_mbuf* m = a.alloc_mbuf();
    if (m == nullptr) break;
    const size_t cap = rte_pktmbuf_tailroom(m);
    uint8_t* buf = rte_pktmbuf_mtod(m, uint8_t*);
    bool spoofed = false;
    const size_t n = make_frame(in, buf, cap < 1600 ? cap : 1600, &spoofed);
    if (n == 0 || rte_pktmbuf_append(m, uint16_t(n)) == nullptr) {
      rte_pktmbuf_free(m);
      continue;
    }
    // Nothing but this frame reaches the responder in this poll: the
    // requester side posts no work, so it sends no requests of its own.
    const Snapshot before = spoofed ? Snapshot::take() : Snapshot{};
    a.transmit(&m, 1);
    poll_both(1);
    if (spoofed && !(Snapshot::take() == before)) {
      std::fprintf(stderr, "responder_fuzz: a frame from a spoofed source changed the responder\n");
      std::abort();
    }
  }
  poll_both(4);
  return 0;
}
