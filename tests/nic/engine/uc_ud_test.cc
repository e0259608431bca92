// Data paths beyond the RC basics (IBTA vol. 1 9.8 UC, 9.8.4 UD, 9.7.6 path
// MTU): UC SEND / WRITE (+IMM) at the sizes around the MTU, UD SEND (+IMM) with
// the GRH in the receive buffer, Q_Key and address failures; RC at every path
// MTU; scatter/gather lists, inline data, immediate data, solicited events.
#include <tuple>

#include "nic/counters.h"
#include "nic/wire/ipv4.h"
#include "tests/nic/engine/fake_clock.h"

namespace droce::nic::test {
namespace {

constexpr uint32_t kMtu = 1024;  // path MTU of the default 1500-byte port

// ---- UC ----

class Uc : public FakeClockTest {
 protected:
  std::pair<Qp*, Qp*> uc_pair() {
    Qp* qa = make_qp(a_, QpType::kUc);
    Qp* qb = make_qp(b_, QpType::kUc);
    connect(a_, qa, b_, qb, kAccessRemoteWrite);
    connect(b_, qb, a_, qa, kAccessRemoteWrite);
    return {qa, qb};
  }
};

class UcSizes : public Uc, public ::testing::WithParamInterface<uint32_t> {};

TEST_P(UcSizes, SendArrivesByteExact) {
  const uint32_t size = GetParam();
  auto [qa, qb] = uc_pair();
  Buffer src = make_buffer(a_, size, kAllAccess);
  fill_pattern(src.bytes, size);
  Buffer dst = make_buffer(b_, size + 16, kAllAccess, 0xEE);
  ASSERT_EQ(post_recv(qb, 40, dst, uint32_t(dst.bytes.size())), 0);
  ASSERT_EQ(post(qa, WrOpcode::kSend, 4, &src, size), 0);
  auto sc = collect(a_.scq, 1);
  auto rc = collect(b_.rcq, 1);
  ASSERT_EQ(sc.size(), 1u);
  ASSERT_EQ(rc.size(), 1u);
  EXPECT_EQ(sc[0].status, WcStatus::kSuccess);
  EXPECT_EQ(sc[0].opcode, WcOpcode::kSend);
  EXPECT_EQ(rc[0].status, WcStatus::kSuccess);
  EXPECT_EQ(rc[0].wr_id, 40u);
  EXPECT_EQ(rc[0].opcode, WcOpcode::kRecv);
  EXPECT_EQ(rc[0].byte_len, size);
  EXPECT_EQ(rc[0].wc_flags, 0);
  EXPECT_TRUE(std::equal(src.bytes.begin(), src.bytes.begin() + size, dst.bytes.begin()));
  EXPECT_EQ(dst.bytes[size], 0xEE);
  // UC has no acknowledgements.
  EXPECT_EQ(qb->counters().tx_packets, 0u);
}

TEST_P(UcSizes, WriteAndWriteWithImmediateArriveByteExact) {
  const uint32_t size = GetParam();
  auto [qa, qb] = uc_pair();
  Buffer src = make_buffer(a_, size, kAllAccess);
  fill_pattern(src.bytes, size + 5);
  Buffer dst = make_buffer(b_, 2 * size + 16, kAllAccess, 0xEE);
  ASSERT_EQ(post(qa, WrOpcode::kRdmaWrite, 1, &src, size, &dst, 0), 0);
  Buffer none = make_buffer(b_, 1, kAllAccess);
  ASSERT_EQ(post_recv(qb, 41, none, 0), 0);  // WRITE with immediate takes a receive
  SendWqe w = wqe(WrOpcode::kRdmaWriteImm, 2);
  Sge s{src.addr(), size, src.key};
  w.num_sge = 1;
  w.remote_addr = dst.addr() + size;
  w.rkey = dst.key;
  w.imm_or_inv = 0x11223344;
  ASSERT_EQ(qa->post_send(w, &s, nullptr), 0);
  auto sc = collect(a_.scq, 2);
  auto rc = collect(b_.rcq, 1);
  ASSERT_EQ(sc.size(), 2u);
  EXPECT_EQ(sc[0].status, WcStatus::kSuccess);
  EXPECT_EQ(sc[0].opcode, WcOpcode::kRdmaWrite);
  EXPECT_EQ(sc[1].status, WcStatus::kSuccess);
  ASSERT_EQ(rc.size(), 1u);
  EXPECT_EQ(rc[0].wr_id, 41u);
  EXPECT_EQ(rc[0].status, WcStatus::kSuccess);
  EXPECT_EQ(rc[0].opcode, WcOpcode::kRecvRdmaImm);
  EXPECT_EQ(rc[0].byte_len, size);
  EXPECT_EQ(rc[0].wc_flags, kWcWithImm);
  EXPECT_EQ(rc[0].imm_or_inv, 0x11223344u);
  EXPECT_TRUE(std::equal(src.bytes.begin(), src.bytes.begin() + size, dst.bytes.begin()));
  EXPECT_TRUE(std::equal(src.bytes.begin(), src.bytes.begin() + size, dst.bytes.begin() + size));
  EXPECT_EQ(dst.bytes[2 * size], 0xEE);
}

INSTANTIATE_TEST_SUITE_P(Sizes, UcSizes,
                         ::testing::Values(0u, 1u, kMtu - 1, kMtu, kMtu + 1, 1u << 20));

TEST_F(Uc, SendWithoutReceiveIsDroppedAndTheQpGoesOn) {
  auto [qa, qb] = uc_pair();
  Buffer src = make_buffer(a_, 3000, kAllAccess);
  fill_pattern(src.bytes, 1);
  Buffer dst = make_buffer(b_, 3000, kAllAccess);
  ASSERT_EQ(post(qa, WrOpcode::kSend, 1, &src, 3000), 0);
  auto sc = collect(a_.scq, 1);
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].status, WcStatus::kSuccess);  // UC completes once sent
  run_for(kNanosPerMs);
  EXPECT_TRUE(drain(b_.rcq).empty());
  EXPECT_GE(qb->counters().drops, 1u);
  EXPECT_EQ(qb->state(), QpState::kRts);
  // The next message, with a receive posted, arrives.
  ASSERT_EQ(post_recv(qb, 9, dst, 3000), 0);
  ASSERT_EQ(post(qa, WrOpcode::kSend, 2, &src, 3000), 0);
  auto rc = collect(b_.rcq, 1);
  ASSERT_EQ(rc.size(), 1u);
  EXPECT_EQ(rc[0].status, WcStatus::kSuccess);
  EXPECT_EQ(src.bytes, dst.bytes);
}

TEST_F(Uc, GapDropsTheRestOfTheMessageAndTheReceiveIsReused) {
  // IBTA 9.8.3 (UC): a missing packet loses the message; the receive WQE in
  // progress is used again by the next message that starts with FIRST/ONLY.
  auto [qa, qb] = uc_pair();
  Buffer dst = make_buffer(b_, 4096, kAllAccess, 0);
  ASSERT_EQ(post_recv(qb, 77, dst, 4096), 0);
  run_for(kNanosPerMs);
  std::vector<uint8_t> payload(kMtu, 0xAB);
  // SEND_FIRST 0x123, then SEND_LAST 0x125 (0x124 lost).
  wire::PacketSpec s = spec(a_, b_, wire::op::kUc | wire::op::kSendFirst, qb->qpn(), 0x123);
  s.payload_len = kMtu;
  inject(a_, s, payload.data());
  s = spec(a_, b_, wire::op::kUc | wire::op::kSendLast, qb->qpn(), 0x125);
  s.payload_len = 10;
  inject(a_, s, payload.data());
  // A MIDDLE with no message in progress is dropped too.
  s = spec(a_, b_, wire::op::kUc | wire::op::kSendMiddle, qb->qpn(), 0x126);
  s.payload_len = kMtu;
  inject(a_, s, payload.data());
  run_for(100 * kNanosPerUs);
  EXPECT_TRUE(drain(b_.rcq).empty());
  EXPECT_EQ(qb->state(), QpState::kRts);
  // SEND_ONLY 0x127 lands in the same receive WQE, at its start.
  std::vector<uint8_t> p2(100, 0x5C);
  s = spec(a_, b_, wire::op::kUc | wire::op::kSendOnly, qb->qpn(), 0x127);
  s.payload_len = 100;
  inject(a_, s, p2.data());
  run_for(100 * kNanosPerUs);
  auto rc = drain(b_.rcq);
  ASSERT_EQ(rc.size(), 1u);
  EXPECT_EQ(rc[0].wr_id, 77u);
  EXPECT_EQ(rc[0].status, WcStatus::kSuccess);
  EXPECT_EQ(rc[0].byte_len, 100u);
  EXPECT_EQ(dst.bytes[0], 0x5C);
  EXPECT_EQ(dst.bytes[99], 0x5C);
  EXPECT_GE(qb->counters().out_of_sequence, 1u);
}

TEST_F(Uc, WriteToABadKeyIsDroppedSilently) {
  // UC has no NAKs: a WRITE the responder refuses is dropped, both QPs go on.
  auto [qa, qb] = uc_pair();
  Buffer src = make_buffer(a_, 64, kAllAccess, 0x11);
  Buffer dst = make_buffer(b_, 64, kAllAccess, 0x22);
  Buffer bad = dst;
  bad.bytes.clear();
  bad.key = 0x3FFF01;
  ASSERT_EQ(post(qa, WrOpcode::kRdmaWrite, 1, &src, 64, &bad), 0);
  ASSERT_EQ(post(qa, WrOpcode::kRdmaWrite, 2, &src, 64, &dst), 0);
  auto sc = collect(a_.scq, 2);
  ASSERT_EQ(sc.size(), 2u);
  EXPECT_EQ(sc[0].status, WcStatus::kSuccess);
  EXPECT_EQ(sc[1].status, WcStatus::kSuccess);
  run_for(kNanosPerMs);
  EXPECT_EQ(dst.bytes, std::vector<uint8_t>(64, 0x11));
  EXPECT_EQ(qb->state(), QpState::kRts);
  EXPECT_GE(qb->counters().drops, 1u);
}

TEST_F(Uc, ReadAndAtomicsAreRefusedAtPost) {
  auto [qa, qb] = uc_pair();
  Buffer buf = make_buffer(a_, 64, kAllAccess);
  EXPECT_EQ(post(qa, WrOpcode::kRdmaRead, 1, &buf, 8, &buf), EINVAL);
  EXPECT_EQ(post(qa, WrOpcode::kFetchAdd, 1, &buf, 8, &buf), EINVAL);
  EXPECT_EQ(post(qa, WrOpcode::kCmpSwap, 1, &buf, 8, &buf), EINVAL);
}

// ---- UD ----

class Ud : public FakeClockTest {
 protected:
  void SetUp() override {
    FakeClockTest::SetUp();
    qa_ = make_qp(a_, QpType::kUd);
    qb_ = make_qp(b_, QpType::kUd);
    connect(a_, qa_, b_, qb_);
    connect(b_, qb_, a_, qa_);
    ah_ = a_.dev->create_ah(a_.pd, av_to(b_)).value();
  }
  int send_ud(WrOpcode op, uint64_t wr_id, const Buffer& src, uint32_t len, uint32_t qkey,
              uint32_t ah = 0, uint32_t imm = 0) {
    SendWqe w = wqe(op, wr_id);
    Sge s{src.addr(), len, src.key};
    w.num_sge = 1;
    w.ah = ah ? ah : ah_;
    w.remote_qpn = qb_->qpn();
    w.remote_qkey = qkey;
    w.imm_or_inv = imm;
    return qa_->post_send(w, &s, nullptr);
  }
  Qp* qa_ = nullptr;
  Qp* qb_ = nullptr;
  uint32_t ah_ = 0;
};

class UdSizes : public Ud, public ::testing::WithParamInterface<std::tuple<uint32_t, bool>> {};

TEST_P(UdSizes, DatagramWithGrhInTheFirst40Bytes) {
  const uint32_t size = std::get<0>(GetParam());
  const bool imm = std::get<1>(GetParam());
  Buffer src = make_buffer(a_, size, kAllAccess);
  fill_pattern(src.bytes, size);
  Buffer dst = make_buffer(b_, 40 + kMtu + 16, kAllAccess, 0xEE);
  ASSERT_EQ(post_recv(qb_, 5, dst, 40 + kMtu), 0);
  ASSERT_EQ(
      send_ud(imm ? WrOpcode::kSendImm : WrOpcode::kSend, 3, src, size, 0x11111111, 0, 0xCAFEF00D),
      0);
  auto sc = collect(a_.scq, 1);
  auto rc = collect(b_.rcq, 1);
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].status, WcStatus::kSuccess);
  ASSERT_EQ(rc.size(), 1u);
  const Cqe& c = rc[0];
  EXPECT_EQ(c.status, WcStatus::kSuccess);
  EXPECT_EQ(c.wr_id, 5u);
  EXPECT_EQ(c.opcode, WcOpcode::kRecv);
  EXPECT_EQ(c.byte_len, 40 + size);
  EXPECT_EQ(c.src_qp, qa_->qpn());
  EXPECT_EQ(c.qp_num, qb_->qpn());
  EXPECT_EQ(c.wc_flags, imm ? (kWcGrh | kWcWithImm) : kWcGrh);
  if (imm) {
    EXPECT_EQ(c.imm_or_inv, 0xCAFEF00Du);
  }
  // GRH for IPv4 (as rxe): 20 zero bytes, then the IPv4 header of the packet.
  for (int i = 0; i < 20; ++i) EXPECT_EQ(dst.bytes[size_t(i)], 0) << i;
  const auto* ip = reinterpret_cast<const wire::Ipv4Hdr*>(dst.bytes.data() + 20);
  EXPECT_EQ(dst.bytes[20], 0x45);
  EXPECT_EQ(dst.bytes[29], 17);  // UDP
  EXPECT_EQ(ip->src.get(), a_.dev->port().ipv4());
  EXPECT_EQ(ip->dst.get(), b_.dev->port().ipv4());
  EXPECT_TRUE(std::equal(src.bytes.begin(), src.bytes.begin() + size, dst.bytes.begin() + 40));
  EXPECT_EQ(dst.bytes[40 + size], 0xEE);
}

INSTANTIATE_TEST_SUITE_P(Sizes, UdSizes,
                         ::testing::Combine(::testing::Values(0u, 1u, kMtu - 1, kMtu),
                                            ::testing::Bool()));

TEST_F(Ud, LargerThanTheMtuIsRefusedAtPost) {
  Buffer src = make_buffer(a_, kMtu + 1, kAllAccess);
  EXPECT_EQ(send_ud(WrOpcode::kSend, 1, src, kMtu + 1, 0x11111111), EINVAL);
}

TEST_F(Ud, QkeyMismatchIsDroppedAndCounted) {
  Buffer src = make_buffer(a_, 64, kAllAccess);
  Buffer dst = make_buffer(b_, 200, kAllAccess);
  ASSERT_EQ(post_recv(qb_, 1, dst, 200), 0);
  ASSERT_EQ(send_ud(WrOpcode::kSend, 1, src, 64, 0x22222222), 0);
  auto sc = collect(a_.scq, 1);
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].status, WcStatus::kSuccess);  // the sender cannot know
  run_for(kNanosPerMs);
  EXPECT_TRUE(drain(b_.rcq).empty());
  EXPECT_EQ(qb_->counters().drops, 1u);
  EXPECT_EQ(qb_->counters().drop_bad_qkey, 1u);
  // The receive is still there for a datagram with the right Q_Key.
  ASSERT_EQ(send_ud(WrOpcode::kSend, 2, src, 64, 0x11111111), 0);
  auto rc = collect(b_.rcq, 1);
  ASSERT_EQ(rc.size(), 1u);
  EXPECT_EQ(rc[0].wr_id, 1u);
}

TEST_F(Ud, QkeyWithTheHighBitTakesTheQpsOwn) {
  // IBTA 10.2.5: a WR Q_Key with bit 31 set means "use the QP's Q_Key"
  // (0x11111111 here, as the peer's).
  Buffer src = make_buffer(a_, 64, kAllAccess);
  Buffer dst = make_buffer(b_, 200, kAllAccess);
  ASSERT_EQ(post_recv(qb_, 1, dst, 200), 0);
  ASSERT_EQ(send_ud(WrOpcode::kSend, 1, src, 64, 0x80000000u), 0);
  auto rc = collect(b_.rcq, 1);
  ASSERT_EQ(rc.size(), 1u);
  EXPECT_EQ(rc[0].status, WcStatus::kSuccess);
}

TEST_F(Ud, NoReceivePostedDropsTheDatagram) {
  Buffer src = make_buffer(a_, 64, kAllAccess);
  ASSERT_EQ(send_ud(WrOpcode::kSend, 1, src, 64, 0x11111111), 0);
  collect(a_.scq, 1);
  run_for(kNanosPerMs);
  EXPECT_TRUE(drain(b_.rcq).empty());
  EXPECT_EQ(qb_->counters().drops, 1u);
  EXPECT_EQ(qb_->counters().drop_no_recv_wqe, 1u);
  EXPECT_EQ(qb_->state(), QpState::kRts);
}

TEST_F(Ud, ReceiveTooSmallForGrhAndPayloadIsLocalLengthError) {
  Buffer src = make_buffer(a_, 100, kAllAccess);
  Buffer dst = make_buffer(b_, 200, kAllAccess);
  ASSERT_EQ(post_recv(qb_, 1, dst, 40 + 99), 0);
  ASSERT_EQ(send_ud(WrOpcode::kSend, 1, src, 100, 0x11111111), 0);
  auto rc = collect(b_.rcq, 1);
  ASSERT_EQ(rc.size(), 1u);
  EXPECT_EQ(rc[0].status, WcStatus::kLocLenErr);
  EXPECT_EQ(qb_->state(), QpState::kRts);  // UD: the QP goes on
}

TEST_F(Ud, UnansweredArpCompletesWithGeneralErrorAndTheQpGoesOn) {
  // As documented in qp_requester.cc: a destination that never answers ARP
  // loses the datagram; the WQE completes with IBV_WC_GENERAL_ERR and the QP
  // stays usable (UD has no connection to break).
  AddressVector nowhere;
  ipv4_to_gid(parse_ipv4("10.9.0.99").value(), nowhere.dgid);
  const uint32_t bad_ah = a_.dev->create_ah(a_.pd, nowhere).value();
  Buffer src = make_buffer(a_, 64, kAllAccess);
  Buffer dst = make_buffer(b_, 200, kAllAccess);
  ASSERT_EQ(post_recv(qb_, 1, dst, 200), 0);
  ASSERT_EQ(send_ud(WrOpcode::kSend, 1, src, 64, 0x11111111, bad_ah), 0);
  ASSERT_EQ(send_ud(WrOpcode::kSend, 2, src, 64, 0x11111111), 0);
  auto sc = collect(a_.scq, 2, 100 * kNanosPerUs);  // ARP: 3 requests 10 ms apart
  ASSERT_EQ(sc.size(), 2u);
  EXPECT_EQ(sc[0].wr_id, 1u);
  EXPECT_EQ(sc[0].status, WcStatus::kGeneralErr);
  EXPECT_EQ(sc[1].wr_id, 2u);
  EXPECT_EQ(sc[1].status, WcStatus::kSuccess);
  EXPECT_EQ(qa_->state(), QpState::kRts);
  EXPECT_EQ(collect(b_.rcq, 1).size(), 1u);
  EXPECT_GE(a_.dev->port().counters().arp_failed, 1u);
}

// As rxe fails a WQE whose AH is gone: LOC_QP_OP_ERR, the UD QP goes on.
TEST_F(Ud, DestroyedAddressHandleCompletesWithLocQpOpErr) {
  const uint32_t gone = a_.dev->create_ah(a_.pd, av_to(b_)).value();
  ASSERT_TRUE(a_.dev->destroy_ah(gone).is_ok());
  Buffer src = make_buffer(a_, 64, kAllAccess);
  ASSERT_EQ(send_ud(WrOpcode::kSend, 1, src, 64, 0x11111111, gone), 0);
  auto sc = collect(a_.scq, 1);
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].status, WcStatus::kLocQpOpErr);
  EXPECT_EQ(qa_->state(), QpState::kRts);
}

// ---- RC at every path MTU ----

// Two 9000-byte ports: a 9000-byte port MTU allows a 4096-byte path MTU.
class JumboPair : public FakeClockTest {
 protected:
  void SetUp() override {
    PortConfig ca = test_config("10.9.0.1"), cb = test_config("10.9.0.2");
    ca.mtu = cb.mtu = 9000;
    ca.mbufs = cb.mbufs = 1023;
    auto pair = make_port_pair(ca, cb);
    ASSERT_TRUE(pair.is_ok()) << pair.status().message();
    pair_ = std::make_unique<PortPair>(std::move(pair.value()));
    make_side(&pair_->a(), &a_);
    make_side(&pair_->b(), &b_);
    now_ = monotonic_now();
  }
};

class RcMtu : public JumboPair,
              public ::testing::WithParamInterface<std::tuple<uint32_t, WrOpcode, int>> {};

std::string rc_mtu_name(const std::tuple<uint32_t, WrOpcode, int>& p) {
  const WrOpcode o = std::get<1>(p);
  const char* sizes[] = {"MtuMinus1", "Mtu", "MtuPlus1", "1MiB"};
  return "Mtu" + std::to_string(std::get<0>(p)) +
         (o == WrOpcode::kSend        ? "Send"
          : o == WrOpcode::kRdmaWrite ? "Write"
                                      : "Read") +
         sizes[std::get<2>(p)];
}

TEST_P(RcMtu, ArrivesByteExactInTheRightNumberOfPackets) {
  const uint32_t mtu = std::get<0>(GetParam());
  const WrOpcode opc = std::get<1>(GetParam());
  const int which = std::get<2>(GetParam());
  const uint32_t size = which == 0 ? mtu - 1 : which == 1 ? mtu : which == 2 ? mtu + 1 : 1u << 20;
  auto p = rc_pair(kAccessRemoteWrite | kAccessRemoteRead, mtu);
  Buffer a_buf = make_buffer(a_, size + 16, kAllAccess, 0xEE);
  Buffer b_buf = make_buffer(b_, size + 16, kAllAccess, 0xEE);
  Buffer& src = opc == WrOpcode::kRdmaRead ? b_buf : a_buf;
  Buffer& dst = opc == WrOpcode::kRdmaRead ? a_buf : b_buf;
  fill_pattern(src.bytes, mtu + size);
  src.bytes[size] = 0xEE;
  if (opc == WrOpcode::kSend) {
    ASSERT_EQ(post_recv(p.b, 1, b_buf, size + 16), 0);
  }
  ASSERT_EQ(post(p.a, opc, 2, &a_buf, size, opc == WrOpcode::kSend ? nullptr : &b_buf), 0);
  auto sc = collect(a_.scq, 1);
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].status, WcStatus::kSuccess);
  if (opc == WrOpcode::kSend) {
    auto rc = collect(b_.rcq, 1);
    ASSERT_EQ(rc.size(), 1u);
    EXPECT_EQ(rc[0].byte_len, size);
  }
  EXPECT_TRUE(std::equal(src.bytes.begin(), src.bytes.begin() + size, dst.bytes.begin()));
  EXPECT_EQ(dst.bytes[size], 0xEE);
  const uint64_t pkts = (size + mtu - 1) / mtu;
  const Qp* data_sender = opc == WrOpcode::kRdmaRead ? p.b : p.a;
  const Qp* request_sender = p.a;
  if (opc == WrOpcode::kRdmaRead) {
    EXPECT_EQ(data_sender->counters().tx_packets, pkts);  // READ responses
    EXPECT_EQ(request_sender->counters().tx_packets, 1u);
  } else {
    EXPECT_EQ(data_sender->counters().tx_packets, pkts);
  }
  EXPECT_EQ(p.a->counters().retransmits, 0u);
}

INSTANTIATE_TEST_SUITE_P(AllMtus, RcMtu,
                         ::testing::Combine(::testing::Values(256u, 512u, 1024u, 2048u, 4096u),
                                            ::testing::Values(WrOpcode::kSend, WrOpcode::kRdmaWrite,
                                                              WrOpcode::kRdmaRead),
                                            ::testing::Values(0, 1, 2, 3)),
                         [](const auto& info) { return rc_mtu_name(info.param); });

// The QP's non-zero counters, for failure messages.
std::string nonzero_counters(const QpCounters& c) {
  std::string out;
  for (const auto& n : kQpCounterNames) {
    if (c.*n.field != 0) out += std::string(n.name) + "=" + std::to_string(c.*n.field) + " ";
  }
  return out;
}

// Both directions at once on 9000-byte ports, path MTU 4096: each side
// WRITEs to, SENDs to and READs from the other, 64 KiB + 1 each (17 packets
// of at most 4096 bytes), all in flight together.
TEST_F(JumboPair, RcWriteSendReadBothWaysAtPathMtu4096) {
  constexpr uint32_t kMtu = 4096, kSize = 65537, kPackets = (kSize + kMtu - 1) / kMtu;
  ASSERT_EQ(a_.dev->port().path_mtu(), kMtu);
  ASSERT_EQ(b_.dev->port().path_mtu(), kMtu);
  auto p = rc_pair(kAccessRemoteWrite | kAccessRemoteRead, kMtu);
  Side* side[2] = {&a_, &b_};
  Qp* qp[2] = {p.a, p.b};
  // Per side: [0] WRITE source, [1] SEND source, [2] READ sink, [3] WRITE sink,
  // [4] receive buffer, [5] READ source (read by the peer).
  std::vector<Buffer> buf[2];
  for (int s = 0; s < 2; ++s) {
    for (int k = 0; k < 6; ++k) {
      buf[s].push_back(make_buffer(*side[s], kSize, kAllAccess));
      fill_pattern(buf[s][k].bytes, uint32_t(s * 16 + k + 1));
    }
    ASSERT_EQ(post_recv(qp[s], 100, buf[s][4], kSize), 0);
  }
  for (int s = 0; s < 2; ++s) {
    std::vector<Buffer>& peer = buf[1 - s];
    ASSERT_EQ(post(qp[s], WrOpcode::kRdmaWrite, 1, &buf[s][0], kSize, &peer[3]), 0);
    ASSERT_EQ(post(qp[s], WrOpcode::kSend, 2, &buf[s][1], kSize, nullptr), 0);
    ASSERT_EQ(post(qp[s], WrOpcode::kRdmaRead, 3, &buf[s][2], kSize, &peer[5]), 0);
  }
  for (int s = 0; s < 2; ++s) {
    auto sc = collect(side[s]->scq, 3);
    ASSERT_EQ(sc.size(), 3u) << "side " << s;
    for (const Cqe& c : sc) EXPECT_EQ(c.status, WcStatus::kSuccess) << "side " << s;
    auto rc = collect(side[s]->rcq, 1);
    ASSERT_EQ(rc.size(), 1u) << "side " << s;
    EXPECT_EQ(rc[0].byte_len, kSize);
  }
  for (int s = 0; s < 2; ++s) {
    const std::vector<Buffer>& mine = buf[s];
    const std::vector<Buffer>& peer = buf[1 - s];
    EXPECT_EQ(peer[3].bytes, mine[0].bytes) << "WRITE from side " << s;
    EXPECT_EQ(peer[4].bytes, mine[1].bytes) << "SEND from side " << s;
    EXPECT_EQ(mine[2].bytes, peer[5].bytes) << "READ by side " << s;
    // Sent: WRITE and SEND requests, one READ request and the READ responses
    // for the peer (3 * 17 + 1 packets carrying 3 * kSize bytes), plus at
    // most one ACK per request packet of the peer. At path MTU 1024 the data
    // alone would be 3 * 65 + 1 packets.
    const QpCounters& c = qp[s]->counters();
    EXPECT_EQ(c.tx_bytes, 3ull * kSize) << "side " << s;
    EXPECT_GE(c.tx_packets, 3 * kPackets + 1) << "side " << s << ": " << nonzero_counters(c);
    EXPECT_LE(c.tx_packets, 3 * kPackets + 1 + 2 * kPackets)
        << "side " << s << ": " << nonzero_counters(c);
    EXPECT_EQ(c.retransmits, 0u);
  }
}

// ---- SGE lists, inline, immediate, solicited ----

// UD datagrams are bounded by the port's path MTU (a UD QP has no path MTU
// attribute): on 9000-byte ports a 4096-byte datagram goes through, 4097 is refused.
class UdJumbo : public JumboPair {};

TEST_F(UdJumbo, DatagramUpToThePortsPathMtu) {
  Qp* qa = make_qp(a_, QpType::kUd);
  Qp* qb = make_qp(b_, QpType::kUd);
  connect(a_, qa, b_, qb);
  connect(b_, qb, a_, qa);
  const uint32_t ah = a_.dev->create_ah(a_.pd, av_to(b_)).value();
  ASSERT_EQ(a_.dev->port().path_mtu(), 4096u);
  Buffer src = make_buffer(a_, 4097, kAllAccess);
  fill_pattern(src.bytes, 4096);
  Buffer dst = make_buffer(b_, 40 + 4096, kAllAccess);
  ASSERT_EQ(post_recv(qb, 9, dst, 40 + 4096), 0);
  SendWqe w = wqe(WrOpcode::kSend, 1);
  Sge s{src.addr(), 4097, src.key};
  w.num_sge = 1;
  w.ah = ah;
  w.remote_qpn = qb->qpn();
  w.remote_qkey = 0x11111111;
  EXPECT_EQ(qa->post_send(w, &s, nullptr), EINVAL);
  s.length = 4096;
  ASSERT_EQ(qa->post_send(w, &s, nullptr), 0);
  auto rc = collect(b_.rcq, 1);
  ASSERT_EQ(rc.size(), 1u);
  EXPECT_EQ(rc[0].status, WcStatus::kSuccess);
  EXPECT_EQ(rc[0].byte_len, 40u + 4096u);
  EXPECT_TRUE(std::equal(src.bytes.begin(), src.bytes.begin() + 4096, dst.bytes.begin() + 40));
}

class Features : public FakeClockTest {};

TEST_F(Features, PathMtuAboveWhatThePortCarriesIsRefused) {
  // A 1500-byte port carries a 1024-byte path MTU at most (RcMtu uses 9000-byte ports for 4096).
  Qp* qa = make_qp(a_, QpType::kRc);
  QpAttrs at;
  at.state = QpState::kInit;
  at.access = kAllAccess;
  ASSERT_TRUE(
      a_.dev
          ->modify_qp(qa, at,
                      QpAttr::kState | QpAttr::kPkeyIndex | QpAttr::kPort | QpAttr::kAccessFlags)
          .is_ok());
  at.state = QpState::kRtr;
  at.dest_qpn = 0x11;
  at.av = av_to(b_);
  const uint32_t mask = QpAttr::kState | QpAttr::kAv | QpAttr::kPathMtu | QpAttr::kDestQpn |
                        QpAttr::kRqPsn | QpAttr::kMaxDestRdAtomic | QpAttr::kMinRnrTimer;
  at.path_mtu = 2048;
  EXPECT_FALSE(a_.dev->modify_qp(qa, at, mask).is_ok());
  EXPECT_EQ(qa->state(), QpState::kInit);
  at.path_mtu = 1024;
  EXPECT_TRUE(a_.dev->modify_qp(qa, at, mask).is_ok());
}

TEST_F(Features, ScatterGatherListsWithOddLengthsOnBothSides) {
  auto p = rc_pair();
  // Gather from four pieces of two MRs, scatter into four pieces of two MRs.
  Buffer s1 = make_buffer(a_, 5000, kAllAccess), s2 = make_buffer(a_, 5000, kAllAccess);
  fill_pattern(s1.bytes, 11);
  fill_pattern(s2.bytes, 12);
  const Sge gather[4] = {{s1.addr() + 1, 3, s1.key},
                         {s2.addr() + 7, 1000, s2.key},
                         {s1.addr() + 100, 17, s1.key},
                         {s2.addr() + 2001, 2500, s2.key}};
  std::vector<uint8_t> want;
  for (const Sge& g : gather) {
    const auto* base = reinterpret_cast<const uint8_t*>(g.addr);
    want.insert(want.end(), base, base + g.length);
  }
  const uint32_t total = uint32_t(want.size());  // 3520
  Buffer r1 = make_buffer(b_, 5000, kAllAccess, 0xEE), r2 = make_buffer(b_, 5000, kAllAccess, 0xEE);
  const Sge scatter[4] = {{r1.addr() + 5, 10, r1.key},
                          {r2.addr() + 3, 777, r2.key},
                          {r1.addr() + 999, 2, r1.key},
                          {r2.addr() + 1001, 3000, r2.key}};
  ASSERT_EQ(p.b->post_recv(8, scatter, 4), 0);
  SendWqe w = wqe(WrOpcode::kSend, 1);
  w.num_sge = 4;
  ASSERT_EQ(p.a->post_send(w, gather, nullptr), 0);
  auto rc = collect(b_.rcq, 1);
  ASSERT_EQ(rc.size(), 1u);
  EXPECT_EQ(rc[0].status, WcStatus::kSuccess);
  EXPECT_EQ(rc[0].byte_len, total);
  std::vector<uint8_t> got;
  uint32_t left = total;
  for (const Sge& s : scatter) {
    const uint32_t n = std::min(left, s.length);
    const auto* base = reinterpret_cast<const uint8_t*>(s.addr);
    got.insert(got.end(), base, base + n);
    left -= n;
  }
  EXPECT_EQ(got, want);
  EXPECT_EQ(r1.bytes[4], 0xEE);
  EXPECT_EQ(r1.bytes[15], 0xEE);
  EXPECT_EQ(r2.bytes[1001 + (total - 789)], 0xEE);  // past the end of the message

  // The same lists for WRITE (gather) and READ (scatter).
  Buffer dst = make_buffer(b_, 4096, kAllAccess);
  w = wqe(WrOpcode::kRdmaWrite, 2);
  w.num_sge = 4;
  w.remote_addr = dst.addr() + 1;
  w.rkey = dst.key;
  ASSERT_EQ(p.a->post_send(w, gather, nullptr), 0);
  Buffer l1 = make_buffer(a_, 5000, kAllAccess, 0xEE), l2 = make_buffer(a_, 5000, kAllAccess, 0xEE);
  const Sge local[3] = {
      {l1.addr() + 3, 1, l1.key}, {l2.addr(), 1519, l2.key}, {l1.addr() + 11, 2000, l1.key}};
  w = wqe(WrOpcode::kRdmaRead, 3);
  w.num_sge = 3;
  w.remote_addr = dst.addr() + 1;
  w.rkey = dst.key;
  ASSERT_EQ(p.a->post_send(w, local, nullptr), 0);
  auto sc = collect(a_.scq, 3);
  ASSERT_EQ(sc.size(), 3u);
  for (const Cqe& c : sc) EXPECT_EQ(c.status, WcStatus::kSuccess);
  EXPECT_EQ(sc[2].byte_len, 3520u);
  EXPECT_TRUE(std::equal(want.begin(), want.end(), dst.bytes.begin() + 1));
  std::vector<uint8_t> read_back;
  for (const Sge& s : local) {
    const auto* base = reinterpret_cast<const uint8_t*>(s.addr);
    read_back.insert(read_back.end(), base, base + s.length);
  }
  EXPECT_EQ(read_back, want);
}

TEST_F(Features, InlineDataIsCopiedAtPostTime) {
  auto p = rc_pair();
  Buffer dst = make_buffer(b_, 256, kAllAccess, 0);
  Buffer wdst = make_buffer(b_, 256, kAllAccess, 0);
  ASSERT_EQ(post_recv(p.b, 1, dst, 256), 0);
  uint8_t data[64];
  for (int i = 0; i < 64; ++i) data[i] = uint8_t(i * 3 + 1);
  SendWqe w = wqe(WrOpcode::kSend, 1, kSendSignaled | kSendInline);
  w.length = 64;
  ASSERT_EQ(p.a->post_send(w, nullptr, data), 0);
  w = wqe(WrOpcode::kRdmaWrite, 2, kSendSignaled | kSendInline);
  w.length = 37;
  w.remote_addr = wdst.addr() + 5;
  w.rkey = wdst.key;
  ASSERT_EQ(p.a->post_send(w, nullptr, data), 0);
  std::memset(data, 0xFF, sizeof(data));  // the WQEs hold their own copy
  auto sc = collect(a_.scq, 2);
  ASSERT_EQ(sc.size(), 2u);
  EXPECT_EQ(sc[0].status, WcStatus::kSuccess);
  EXPECT_EQ(sc[1].status, WcStatus::kSuccess);
  auto rc = collect(b_.rcq, 1);
  ASSERT_EQ(rc.size(), 1u);
  EXPECT_EQ(rc[0].byte_len, 64u);
  for (int i = 0; i < 64; ++i) EXPECT_EQ(dst.bytes[size_t(i)], uint8_t(i * 3 + 1)) << i;
  for (int i = 0; i < 37; ++i) EXPECT_EQ(wdst.bytes[size_t(5 + i)], uint8_t(i * 3 + 1)) << i;
  EXPECT_EQ(wdst.bytes[4], 0);
  EXPECT_EQ(wdst.bytes[42], 0);
  // Beyond the QP's inline size: refused at post.
  w = wqe(WrOpcode::kSend, 3, kSendSignaled | kSendInline);
  w.length = 4096;
  std::vector<uint8_t> big(4096);
  EXPECT_EQ(p.a->post_send(w, nullptr, big.data()), EINVAL);
}

TEST_F(Features, ImmediateDataInTheReceiveCompletion) {
  auto p = rc_pair();
  Buffer src = make_buffer(a_, 3000, kAllAccess);
  Buffer dst = make_buffer(b_, 3000, kAllAccess);
  for (int i = 0; i < 2; ++i) ASSERT_EQ(post_recv(p.b, uint64_t(i), dst, 3000), 0);
  SendWqe w = wqe(WrOpcode::kSendImm, 1);
  Sge s{src.addr(), 3000, src.key};
  w.num_sge = 1;
  w.imm_or_inv = 0x01020304;  // network order as stored: passed through untouched
  ASSERT_EQ(p.a->post_send(w, &s, nullptr), 0);
  w = wqe(WrOpcode::kRdmaWriteImm, 2);
  w.num_sge = 1;
  w.imm_or_inv = 0xA0B0C0D0;
  w.remote_addr = dst.addr();
  w.rkey = dst.key;
  ASSERT_EQ(p.a->post_send(w, &s, nullptr), 0);
  auto rc = collect(b_.rcq, 2);
  ASSERT_EQ(rc.size(), 2u);
  EXPECT_EQ(rc[0].opcode, WcOpcode::kRecv);
  EXPECT_EQ(rc[0].wc_flags, kWcWithImm);
  EXPECT_EQ(rc[0].imm_or_inv, 0x01020304u);
  EXPECT_EQ(rc[0].byte_len, 3000u);
  EXPECT_EQ(rc[1].opcode, WcOpcode::kRecvRdmaImm);
  EXPECT_EQ(rc[1].wc_flags, kWcWithImm);
  EXPECT_EQ(rc[1].imm_or_inv, 0xA0B0C0D0u);
  EXPECT_EQ(rc[1].byte_len, 3000u);
}

TEST_F(Features, SolicitedFlagWakesASolicitedOnlyCq) {
  auto p = rc_pair();
  Buffer src = make_buffer(a_, 2500, kAllAccess);
  Buffer dst = make_buffer(b_, 2500, kAllAccess);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(post_recv(p.b, uint64_t(i), dst, 2500), 0);
  EXPECT_FALSE(b_.rcq->arm(/*solicited_only=*/true));
  const uint64_t fired = b_.rcq->events_fired();
  ASSERT_EQ(post(p.a, WrOpcode::kSend, 1, &src, 2500), 0);  // not solicited
  auto rc = collect(b_.rcq, 1);
  ASSERT_EQ(rc.size(), 1u);
  EXPECT_EQ(b_.rcq->events_fired(), fired);  // no event
  // A multi-packet SEND with the solicited flag: SE on its last packet only.
  ASSERT_EQ(post(p.a, WrOpcode::kSend, 2, &src, 2500, nullptr, 0, kSendSignaled | kSendSolicited),
            0);
  rc = collect(b_.rcq, 1);
  ASSERT_EQ(rc.size(), 1u);
  EXPECT_EQ(b_.rcq->events_fired(), fired + 1);
  // And for WRITE with immediate.
  EXPECT_FALSE(b_.rcq->arm(true));
  SendWqe w = wqe(WrOpcode::kRdmaWriteImm, 3, kSendSignaled | kSendSolicited);
  Sge s{src.addr(), 100, src.key};
  w.num_sge = 1;
  w.remote_addr = dst.addr();
  w.rkey = dst.key;
  ASSERT_EQ(p.a->post_send(w, &s, nullptr), 0);
  rc = collect(b_.rcq, 1);
  ASSERT_EQ(rc.size(), 1u);
  EXPECT_EQ(b_.rcq->events_fired(), fired + 2);
}

}  // namespace
}  // namespace droce::nic::test
