// Zero-copy transmit (nic/zero_copy.cc, docs/engine.md): RC payloads go out
// attached from the registered memory as chained frames, the receiving port
// takes the chain as it is, the ICRC over a chain equals the one over the same
// bytes laid out contiguously, and dereg_mr never lets a frame that points
// into the region outlive it.
#include <pcap/pcap.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>

#include "nic/capture.h"
#include "nic/wire/packet.h"
#include "tests/nic/engine/engine_fixture.h"

namespace droce::nic::test {
namespace {

constexpr uint32_t kAll =
    kAccessLocalWrite | kAccessRemoteWrite | kAccessRemoteRead | kAccessRemoteAtomic;

void fill_pattern(uint8_t* p, size_t n, uint32_t seed) {
  for (size_t i = 0; i < n; ++i) p[i] = uint8_t(i * 31 + seed + (i >> 8));
}

class ZeroCopyTest : public EngineTest {
 protected:
  // One RC pair, connected at path MTU 1024.
  void connect_pair(uint8_t timeout = 14) {
    qa_ = make_qp(a_, QpType::kRc);
    qb_ = make_qp(b_, QpType::kRc);
    connect(a_, qa_, b_, qb_, kAccessRemoteWrite | kAccessRemoteRead | kAccessRemoteAtomic, 1024,
            timeout);
    connect(b_, qb_, a_, qa_, kAccessRemoteWrite | kAccessRemoteRead | kAccessRemoteAtomic, 1024,
            timeout);
  }
  void post_write(uint64_t wr_id, uint64_t src, uint32_t len, uint32_t lkey, const Buffer& dst) {
    SendWqe w = wqe(WrOpcode::kRdmaWrite, wr_id);
    Sge s{src, len, lkey};
    w.num_sge = 1;
    w.remote_addr = dst.addr();
    w.rkey = dst.key;
    ASSERT_EQ(qa_->post_send(w, &s, nullptr), 0);
  }
  // A small WRITE both ways pumped to completion: ARP is resolved, so the
  // next poll of a sends at once.
  void warm_up() {
    Buffer s = make_buffer(a_, 64, kAll), d = make_buffer(b_, 64, kAll);
    post_write(100, s.addr(), 64, s.key, d);
    ASSERT_EQ(wait_cqes(a_.scq, 1).size(), 1u);
    pump([] { return false; }, 5 * kNanosPerMs);
  }
  static void poll_one(Side& s) {
    auto l = s.dev->lock_engine();
    s.dev->poll(monotonic_now());
  }
  Qp* qa_ = nullptr;
  Qp* qb_ = nullptr;
};

TEST_F(ZeroCopyTest, PortsOfThePairChain) {
  // net_ring takes chained mbufs (RTE_ETH_TX_OFFLOAD_MULTI_SEGS) in DPDK 22.11.
  EXPECT_TRUE(pair_->a().tx_chains());
  EXPECT_TRUE(pair_->b().tx_chains());
}

// WRITE, SEND and READ responses at or above the threshold go out with their
// payload attached, one frame per packet; the peer's port delivers the chains
// as they are; every byte arrives.
TEST_F(ZeroCopyTest, RcPayloadsGoOutAttachedAndArriveExact) {
  connect_pair();
  const uint32_t size = 64 * 1024;
  Buffer src = make_buffer(a_, size, kAll);
  Buffer dst = make_buffer(b_, size, kAll, 0xEE);
  fill_pattern(src.bytes.data(), size, 7);

  post_write(1, src.addr(), size, src.key, dst);
  auto sc = wait_cqes(a_.scq, 1);
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].status, WcStatus::kSuccess);
  EXPECT_EQ(src.bytes, dst.bytes);
  EXPECT_EQ(a_.dev->stats().engine.tx_zero_copy, size / 1024);
  EXPECT_EQ(b_.dev->stats().port.rx_chained, size / 1024);
  EXPECT_EQ(b_.dev->stats().port.rx_linearised, 0u);
  EXPECT_EQ(b_.dev->stats().port.parse_drop(wire::ParseError::kBadIcrc), 0u);

  // A payload below the threshold is copied into the frame.
  const uint32_t small = kTestZeroCopyMin - 4;
  post_write(2, src.addr(), small, src.key, dst);
  ASSERT_EQ(wait_cqes(a_.scq, 1).size(), 1u);
  EXPECT_EQ(a_.dev->stats().engine.tx_zero_copy, size / 1024);

  // SEND of 4 KiB: four packets attached.
  std::vector<uint8_t> rbuf(8192, 0);
  const uint32_t rkey = b_.dev->reg_mr(b_.pd, rbuf.data(), reinterpret_cast<uint64_t>(rbuf.data()),
                                       rbuf.size(), kAll)
                            .value();
  Sge rs{reinterpret_cast<uint64_t>(rbuf.data()), uint32_t(rbuf.size()), rkey};
  ASSERT_EQ(qb_->post_recv(3, &rs, 1), 0);
  SendWqe w = wqe(WrOpcode::kSend, 3);
  Sge ss{src.addr() + 100, 4096, src.key};
  w.num_sge = 1;
  ASSERT_EQ(qa_->post_send(w, &ss, nullptr), 0);
  ASSERT_EQ(wait_cqes(a_.scq, 1).size(), 1u);
  auto rc = wait_cqes(b_.rcq, 1);
  ASSERT_EQ(rc.size(), 1u);
  EXPECT_EQ(rc[0].byte_len, 4096u);
  EXPECT_TRUE(std::equal(rbuf.begin(), rbuf.begin() + 4096, src.bytes.begin() + 100));
  EXPECT_EQ(a_.dev->stats().engine.tx_zero_copy, size / 1024 + 4);

  // READ of 16 KiB: the responder (b) sends 16 responses from its region.
  Buffer local = make_buffer(a_, 16384, kAll, 0);
  fill_pattern(dst.bytes.data(), 16384, 99);
  SendWqe r = wqe(WrOpcode::kRdmaRead, 4);
  Sge ls{local.addr(), 16384, local.key};
  r.num_sge = 1;
  r.remote_addr = dst.addr();
  r.rkey = dst.key;
  ASSERT_EQ(qa_->post_send(r, &ls, nullptr), 0);
  ASSERT_EQ(wait_cqes(a_.scq, 1).size(), 1u);
  EXPECT_TRUE(std::equal(local.bytes.begin(), local.bytes.end(), dst.bytes.begin()));
  EXPECT_EQ(b_.dev->stats().engine.tx_zero_copy, 16u);
  EXPECT_EQ(a_.dev->stats().port.rx_chained, 16u);
}

// Payloads split over two SGEs inside one packet are copied (one attached
// segment per frame); the bytes are the same.
TEST_F(ZeroCopyTest, PacketSpanningSgesIsCopied) {
  connect_pair();
  Buffer src = make_buffer(a_, 4096, kAll);
  Buffer dst = make_buffer(b_, 4096, kAll, 0);
  fill_pattern(src.bytes.data(), 4096, 3);
  SendWqe w = wqe(WrOpcode::kRdmaWrite, 1);
  Sge s[2] = {{src.addr(), 1500, src.key}, {src.addr() + 1500, 2596, src.key}};
  w.num_sge = 2;
  w.remote_addr = dst.addr();
  w.rkey = dst.key;
  ASSERT_EQ(qa_->post_send(w, s, nullptr), 0);
  ASSERT_EQ(wait_cqes(a_.scq, 1).size(), 1u);
  EXPECT_EQ(src.bytes, dst.bytes);
  // Packets [0,1024) and [2048,3072), [3072,4096) lie in one SGE; [1024,2048) spans both.
  EXPECT_EQ(a_.dev->stats().engine.tx_zero_copy, 3u);
}

// The ICRC the engine writes over a chained frame equals the one over the
// same bytes laid out contiguously: the capture copies each frame into one
// buffer, and the parser verifies it there.
TEST_F(ZeroCopyTest, ChainedFramesCarryTheContiguousIcrc) {
  const std::string path = std::filesystem::temp_directory_path() /
                           ("droce_zc_" + std::to_string(getpid()) + ".pcapng");
  {
    auto cap = Capture::open(path, 1600);
    ASSERT_TRUE(cap.is_ok()) << cap.status().message();
    auto l = a_.dev->lock_engine();
    pair_->a().set_capture(std::shared_ptr<Capture>(std::move(cap.value())));
  }
  connect_pair();
  Buffer src = make_buffer(a_, 8192 + 3, kAll);
  Buffer dst = make_buffer(b_, 8192 + 3, kAll, 0);
  fill_pattern(src.bytes.data(), src.bytes.size(), 11);
  // 8195 bytes: eight full packets and a last one of 3 bytes (pad 1, copied).
  post_write(1, src.addr(), 8192 + 3, src.key, dst);
  ASSERT_EQ(wait_cqes(a_.scq, 1).size(), 1u);
  EXPECT_EQ(src.bytes, dst.bytes);
  // Odd payload lengths (pad 1..3) attached: 513, 514, 515 bytes.
  static_assert(kTestZeroCopyMin <= 512);
  for (uint32_t n : {513u, 514u, 515u}) {
    post_write(n, src.addr() + 1, n, src.key, dst);
    ASSERT_EQ(wait_cqes(a_.scq, 1).size(), 1u);
  }
  EXPECT_EQ(a_.dev->stats().engine.tx_zero_copy, 8u + 3u);
  {
    auto l = a_.dev->lock_engine();
    pair_->a().set_capture(nullptr);
  }
  char err[PCAP_ERRBUF_SIZE] = {};
  pcap_t* p = pcap_open_offline(path.c_str(), err);
  ASSERT_NE(p, nullptr) << err;
  pcap_pkthdr* h = nullptr;
  const u_char* data = nullptr;
  uint32_t writes = 0, good = 0;
  while (pcap_next_ex(p, &h, &data) == 1) {
    std::vector<uint8_t> f(data, data + h->caplen);
    wire::PacketView v;
    wire::ParseOptions no_icrc;
    no_icrc.verify_icrc = false;
    if (wire::parse_frame(f.data(), f.size(), &v, no_icrc) != wire::ParseError::kOk) continue;
    if (v.payload_len < 512) continue;  // the 3-byte last packet (copied), ACKs
    ++writes;
    if (wire::parse_frame(f.data(), f.size(), &v) == wire::ParseError::kOk) ++good;
  }
  pcap_close(p);
  std::filesystem::remove(path);
  EXPECT_EQ(writes, 11u);
  EXPECT_EQ(good, writes) << "a chained frame's ICRC differs from the contiguous one";
}

// The default threshold: on 9000-byte ports (path MTU 4096) full packets
// are attached, shorter ones copied; on 1500-byte ports (path MTU 1024)
// nothing is attached.
class ZeroCopyDefaults : public EngineTest {
 protected:
  void SetUp() override {}  // the sides are made per test, with default options
  void make(uint16_t mtu) {
    PortConfig ca = test_config("10.9.2.1"), cb = test_config("10.9.2.2");
    ca.mtu = cb.mtu = mtu;
    auto pair = make_port_pair(ca, cb);
    ASSERT_TRUE(pair.is_ok()) << pair.status().message();
    pair_ = std::make_unique<PortPair>(std::move(pair.value()));
    for (auto [port, side] : {std::pair{&pair_->a(), &a_}, std::pair{&pair_->b(), &b_}}) {
      Device::Options opts;  // zero_copy_min as shipped
      opts.engine_thread = false;
      side->dev = std::move(Device::create(port, opts).value());
      side->pd = side->dev->alloc_pd().value();
      side->scq = side->dev->create_cq(256).value();
      side->rcq = side->dev->create_cq(256).value();
    }
  }
  uint64_t write_and_count(uint32_t mtu_attr, uint32_t size) {
    Qp* qa = make_qp(a_, QpType::kRc);
    Qp* qb = make_qp(b_, QpType::kRc);
    connect(a_, qa, b_, qb, kAccessRemoteWrite, mtu_attr);
    connect(b_, qb, a_, qa, kAccessRemoteWrite, mtu_attr);
    Buffer src = make_buffer(a_, size, kAll);
    Buffer dst = make_buffer(b_, size, kAll, 0);
    fill_pattern(src.bytes.data(), size, 1);
    const uint64_t before = a_.dev->stats().engine.tx_zero_copy;
    SendWqe w = wqe(WrOpcode::kRdmaWrite, 1);
    Sge s{src.addr(), size, src.key};
    w.num_sge = 1;
    w.remote_addr = dst.addr();
    w.rkey = dst.key;
    EXPECT_EQ(qa->post_send(w, &s, nullptr), 0);
    EXPECT_EQ(wait_cqes(a_.scq, 1).size(), 1u);
    EXPECT_EQ(src.bytes, dst.bytes);
    return a_.dev->stats().engine.tx_zero_copy - before;
  }
};

TEST_F(ZeroCopyDefaults, JumboPortsAttachFullPackets) {
  make(9000);
  EXPECT_EQ(write_and_count(4096, 65536 + 100), 16u);  // 16 full packets; the 100-byte one copied
}

TEST_F(ZeroCopyDefaults, DefaultMtuCopies) {
  make(1500);
  EXPECT_EQ(write_and_count(1024, 65536), 0u);
}

// With zero copy off (DROCE_ZERO_COPY=0) every payload is copied.
TEST(ZeroCopyOff, EveryPayloadCopied) {
  PortConfig ca = test_config("10.9.1.1"), cb = test_config("10.9.1.2");
  ca.zero_copy = cb.zero_copy = false;
  auto pair = make_port_pair(ca, cb);
  ASSERT_TRUE(pair.is_ok()) << pair.status().message();
  EXPECT_FALSE(pair.value().a().tx_chains());
  EXPECT_FALSE(pair.value().b().tx_chains());
}

// dereg_mr never returns while a frame points into the region: here the
// region's pages are made inaccessible right after dereg_mr succeeds, so a
// frame that still pointed into them would fault when the peer reads it.
// The WRITE completes while retransmitted copies of its packets are still
// queued toward the peer (the peer has not polled again): the case the verbs
// contract makes legal (a completed WQE's buffer is the application's).
// Inline-driven peers cannot drain by themselves, so dereg_mr gives up with
// EBUSY; once the peer has taken the frames it succeeds.
TEST_F(ZeroCopyTest, DeregAfterCompletionNeverLeavesFramesInTheRegion) {
  connect_pair(/*timeout=*/8);  // 4.096 us * 2^8 ~ 1 ms local ACK timeout
  const size_t page = size_t(sysconf(_SC_PAGESIZE));
  const uint32_t size = 32 * 1024;  // 32 packets: one receive burst of the peer
  const size_t map_len = size + 2 * page;
  auto* map = static_cast<uint8_t*>(
      mmap(nullptr, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(map, MAP_FAILED);
  uint8_t* region = map + page;  // guard pages on both sides
  ASSERT_EQ(mprotect(map, page, PROT_NONE), 0);
  ASSERT_EQ(mprotect(region + size, page, PROT_NONE), 0);
  fill_pattern(region, size, 5);
  const uint64_t va = reinterpret_cast<uint64_t>(region);
  const uint32_t key = a_.dev->reg_mr(a_.pd, region, va, size, kAll).value();
  Buffer dst = make_buffer(b_, size, kAll, 0);
  warm_up();

  post_write(1, va, size, key, dst);
  poll_one(a_);  // 32 frames toward b
  // Past the local ACK timeout: a resends all 32 (go-back-N) behind them.
  const uint64_t before = a_.dev->stats().engine.tx_zero_copy;
  for (int i = 0; i < 200 && a_.dev->stats().engine.tx_zero_copy < before + size / 1024; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    poll_one(a_);
  }
  ASSERT_EQ(a_.dev->stats().engine.tx_zero_copy, before + size / 1024) << "no retransmission";
  poll_one(b_);  // takes the first 32 (one burst), ACKs them
  Cqe c{};
  for (int i = 0; i < 1000 && a_.scq->poll(&c, 1) == 0; ++i) poll_one(a_);
  ASSERT_EQ(c.wr_id, 1u);
  ASSERT_EQ(c.status, WcStatus::kSuccess);
  EXPECT_TRUE(std::equal(region, region + size, dst.bytes.begin()));

  // Completed; the resent copies still point into the region.
  {
    auto l = a_.dev->lock_engine();
    EXPECT_EQ(Device::frames_in(*a_.dev->mrs().find(key)), size / 1024);
  }
  Status st = a_.dev->dereg_mr(key);
  if (st.is_ok()) {
    // What the region's owner may do once dereg_mr returned.
    ASSERT_EQ(mprotect(region, size, PROT_NONE), 0);
    pump([] { return false; }, 50 * kNanosPerMs);  // b reads the frames: a fault
    FAIL() << "dereg_mr returned while frames pointed into the region";
  }
  EXPECT_EQ(st.code(), Errc::kBusy) << st.message();
  // The region is still registered and usable; b takes the frames, and then
  // dereg_mr succeeds.
  poll_one(b_);
  st = a_.dev->dereg_mr(key);
  ASSERT_TRUE(st.is_ok()) << st.message();
  ASSERT_EQ(mprotect(region, size, PROT_NONE), 0);
  // Whatever the engines still do (ACKs, timers), nothing reads the region.
  pump([] { return false; }, 50 * kNanosPerMs);
  EXPECT_EQ(b_.dev->stats().port.parse_drop(wire::ParseError::kBadIcrc), 0u);
  munmap(map, map_len);
}

// With the peer on an engine thread of its own, dereg_mr waits until the
// peer has taken the frames, and returns success.
TEST_F(ZeroCopyTest, DeregWaitsForAPeerThatPolls) {
  connect_pair(/*timeout=*/8);
  const uint32_t size = 32 * 1024;
  const size_t page = size_t(sysconf(_SC_PAGESIZE));
  auto* region = static_cast<uint8_t*>(
      mmap(nullptr, size + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(region, MAP_FAILED);
  fill_pattern(region, size, 9);
  const uint64_t va = reinterpret_cast<uint64_t>(region);
  const uint32_t key = a_.dev->reg_mr(a_.pd, region, va, size, kAll).value();
  Buffer dst = make_buffer(b_, size, kAll, 0);
  warm_up();
  post_write(1, va, size, key, dst);
  poll_one(a_);  // 32 frames queued toward b, which has not polled
  {
    auto l = a_.dev->lock_engine();
    ASSERT_EQ(Device::frames_in(*a_.dev->mrs().find(key)), size / 1024);
  }
  // b polls on a thread of its own while a deregisters.
  std::atomic<bool> stop{false};
  std::thread peer([&] {
    while (!stop.load()) poll_one(b_);
  });
  const Status st = a_.dev->dereg_mr(key);
  EXPECT_TRUE(st.is_ok()) << st.message();
  if (st.is_ok()) {
    ASSERT_EQ(mprotect(region, size, PROT_NONE), 0);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  stop.store(true);
  peer.join();
  munmap(region, size + page);
}

}  // namespace
}  // namespace droce::nic::test
