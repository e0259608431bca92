// Port: one DPDK ethdev port as the NIC's Ethernet side (DESIGN.md sections 2,
// 3, 7): its mempool, one rx/tx queue pair, burst receive with ARP handled
// inside and RoCEv2 (IBTA annex A17) classified and ICRC-verified, burst
// transmit, and counters for every frame dropped.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "nic/arp.h"
#include "nic/base/clock.h"
#include "nic/base/status.h"
#include "nic/capture.h"
#include "nic/config.h"
#include "nic/eal.h"
#include "nic/wire/eth.h"
#include "nic/wire/packet.h"

struct rte_mbuf;
struct rte_mempool;
struct rte_eth_dev_info;
struct rte_ring;

namespace droce::nic {

// Why the port dropped a frame, beyond wire::ParseError.
enum class PortDrop : uint8_t {
  kNotOurMac,        // rx: RoCEv2 frame to another (or a group) MAC address
  kNotOurIp,         // rx: RoCEv2 frame to another IP address (IPv6: the port has none)
  kMultiSegment,     // rx: chained frame too large for one buffer, and not deliverable as it is
  kArpMalformed,     // rx: ARP frame too short, or not Ethernet/IPv4 request/reply
  kArpNotForUs,      // rx: ARP request for another address, or reply to someone else
  kTxRingFull,       // tx: the device took fewer frames than offered
  kMbufAllocFailed,  // no mbuf for alloc_mbuf() or an ARP request
  kPortRemoved,      // tx: frame offered after the device was removed (freed, not sent)
  kCount
};
inline constexpr size_t kPortDropCount = size_t(PortDrop::kCount);
const char* port_drop_name(PortDrop d);

// Counters, written only by the thread that drives the port.
// Every received frame is counted once in rx_packets and exactly once in one
// of: rx_roce, arp_rx, parse_drops[reason], or drops[rx reason].
struct PortCounters {
  uint64_t rx_packets = 0;  // frames taken from the device
  uint64_t rx_bytes = 0;
  uint64_t tx_packets = 0;  // frames the device accepted (RoCEv2 and ARP)
  uint64_t tx_bytes = 0;
  uint64_t rx_roce = 0;     // RoCEv2 packets for us, delivered by receive()
  uint64_t arp_rx = 0;      // ARP frames used (requests for us, replies)
  uint64_t arp_tx = 0;      // ARP requests and replies the device accepted
  uint64_t arp_failed = 0;  // resolutions that ran out of requests
  // Chained (multi-segment) RoCEv2 frames received: delivered as they are
  // (headers in the first segment, payload in one segment), or copied into
  // one buffer first (any other layout that fits one).
  uint64_t rx_chained = 0;
  uint64_t rx_linearised = 0;
  std::array<uint64_t, wire::kParseErrorCount> parse_drops{};  // rx, by parser reason
  std::array<uint64_t, kPortDropCount> drops{};                // by port reason

  uint64_t parse_drop(wire::ParseError e) const { return parse_drops[size_t(e)]; }
  uint64_t drop(PortDrop d) const { return drops[size_t(d)]; }
  uint64_t rx_dropped() const;  // all rx drop reasons
  uint64_t tx_dropped() const { return drop(PortDrop::kTxRingFull) + drop(PortDrop::kPortRemoved); }
};

// One line per non-zero counter, for tools and test output (not per packet).
std::string format_counters(const PortCounters& c);

// net_tap's receive interrupt (the queue's tap fd, DPDK rx-interrupt mode)
// works, but with it the tests that run Debian's pingpong programs over two
// net_tap ports and a kernel bridge (tests/verbs PingPongTap) fail now and
// then with transport retry exceeded, and why is not found yet; so net_tap
// sleeps on the timer as before. docs/engine.md "Progress".
inline constexpr bool kTapRxInterrupt = false;

// A started ethdev port with one rx and one tx queue.
//
// Threading: receive, transmit, alloc_mbuf, resolve, poll and counters() are
// called from one thread (the engine thread that owns the port); nothing in
// Port is synchronised. Construction and destruction happen on any thread
// while no other thread uses the port. Mbufs from the port's pool may be
// freed on any thread (DPDK mempools are thread-safe).
class Port {
 public:
  // Configures and starts ethdev port_id (eal_init() first if needed).
  static Result<std::unique_ptr<Port>> open(uint16_t port_id, const PortConfig& cfg);
  // The same, for the ethdev named device_name (e.g. "net_memif0", "net_tap0").
  static Result<std::unique_ptr<Port>> open_by_name(const std::string& device_name,
                                                    const PortConfig& cfg);
  // Stops and closes the ethdev (DPDK releases it) and frees the mempool:
  // every mbuf of this port's pool must be back by then.
  ~Port();
  Port(const Port&) = delete;
  Port& operator=(const Port&) = delete;

  // Receives up to max frames. ARP frames are handled here (requests for our
  // address answered, senders learned); everything that is not a RoCEv2
  // packet for our MAC and IPv4 address with a good ICRC is freed and
  // counted. Returns n: mbufs[0..n) are the delivered packets, views[0..n)
  // their parsed form; the caller owns (and frees) those mbufs.
  uint16_t receive(rte_mbuf** mbufs, wire::PacketView* views, uint16_t max, Nanos now);

  // Offers n frames to the device; it owns them afterwards. Frames it does
  // not take are freed and counted as kTxRingFull. Never blocks. Returns the
  // number sent.
  uint16_t transmit(rte_mbuf** mbufs, uint16_t n);

  // An mbuf from the port's pool (nullptr when empty, counted), data_off at
  // the default headroom, length 0.
  rte_mbuf* alloc_mbuf();

  // Zero-copy transmit (docs/engine.md): true when the PMD takes chained
  // mbufs (RTE_ETH_TX_OFFLOAD_MULTI_SEGS) and reads them in the CPU's address
  // space (a virtual device, not a PCI NIC whose DMA would need the memory
  // mapped), and PortConfig::zero_copy is on. Then a frame may carry its
  // payload in a segment attached to registered memory.
  bool tx_chains() const { return shells_ != nullptr; }
  // n small mbufs (128 bytes of data room) for a chained frame: its headers,
  // the one its payload is attached to, its pad and ICRC. False when the
  // pool has fewer.
  bool alloc_shells(rte_mbuf** out, unsigned n);

  // IPv4 -> MAC. An unknown peer gets an ARP request now; poll() repeats it
  // every arp.retry_interval up to arp.max_requests times, then kFailed. Our
  // own address resolves to our MAC.
  ArpResult resolve(uint32_t ip, wire::MacAddr* mac, Nanos now);
  // Timers: ARP retries. Call regularly (every engine loop).
  void poll(Nanos now);

  uint16_t port_id() const { return port_id_; }
  const std::string& name() const { return name_; }
  const wire::MacAddr& mac() const { return mac_; }
  uint32_t ipv4() const { return cfg_.ipv4; }
  const std::array<uint8_t, 16>& gid() const { return gid_; }  // GID index 0
  uint16_t mtu() const { return cfg_.mtu; }
  uint32_t path_mtu() const { return path_mtu_; }
  bool link_up() const;  // false once removed
  uint32_t link_speed_mbps() const;  // RTE_ETH_SPEED_NUM_*; 0 when down or removed
  // DPDK reported the device removed (unplugged, or the ethdev released) since
  // the port was opened: receive() returns nothing and transmit() frees what
  // it is given from then on. Any thread.
  bool removed() const { return port_removals(port_id_) != removals_at_open_; }
  // Where the next Device on this port starts handing out QP numbers: where
  // the last one left off, so that late frames of a closed device's QPs do
  // not land on a new device's QPs (0: kFirstQpn). Device only.
  uint32_t next_qpn_hint() const { return next_qpn_hint_; }
  void set_next_qpn_hint(uint32_t qpn) { next_qpn_hint_ = qpn; }
  // Removed, and the ethdev released (no longer ours to stop and close).
  bool released() const;
  rte_mempool* mempool() const { return pool_; }
  const PortConfig& config() const { return cfg_; }
  const PortCounters& counters() const { return counters_; }
  const NeighborTable& neighbors() const { return neighbors_; }
  Capture* capture() const { return capture_.get(); }

  // Receive interrupt (DPDK's rx-interrupt mode; docs/engine.md "Progress"):
  // the engine arms it before it sleeps and waits for the fd it returns to
  // become readable, so the first frame that arrives wakes it. -1: this PMD
  // has none now (not net_memif / net_tap, or the memif link is down); the
  // caller then sleeps on a timer. Engine thread only, like receive().
  // open = false arms it quiet (memif: the peer does not signal) until
  // open_rx_interrupt; a tap fd always signals.
  int arm_rx_interrupt(bool open);
  // The armed interrupt fired: true when frames wait in the ring (the caller
  // polls, and the receive burst consumes the signal); false when someone
  // has taken them already, and then the signal is consumed here (memif: the
  // eventfd read), so the next wait waits for a new frame.
  bool rx_interrupt_taken();
  // After the sleep: back to polling mode (memif: the peer stops signalling)
  // with the fd drained. Harmless when nothing is armed.
  void disarm_rx_interrupt();
  // Any thread, no lock, while armed (else nothing): the application polls
  // its CQ itself, so frames need no interrupt (quiet), or it has left
  // poll_cq with a completion and may wait on memory next (open). memif
  // only; a tap fd is level-triggered and always wakes the sleeper.
  void quiet_rx_interrupt();
  void open_rx_interrupt();
  // Any thread: the engine thread has armed the memif interrupt (it stands
  // aside, asleep or about to sleep) and not yet disarmed it.
  bool rx_interrupt_armed() const { return rx_intr_gate_.load(std::memory_order_acquire) != nullptr; }
  // "memif", "tap" or "none": how this port's receive interrupt works.
  const char* rx_interrupt_kind() const;

  // Records this port's frames to c (shared by ports of one process writing
  // one file). nullptr stops recording.
  void set_capture(std::shared_ptr<Capture> c) { capture_ = std::move(c); }

 private:
  Port(uint16_t port_id, const PortConfig& cfg);
  Status start();  // the steps below, then rte_eth_dev_start
  Status create_pool(const rte_eth_dev_info& info);
  Status create_shells();
  Status configure_queues(uint16_t ethdev_mtu);
  void setup_rx_interrupt();  // after start (nic/port_rx_intr.cc)
  void teardown_rx_interrupt();  // before stop: off the interrupt thread's list, views unmapped
  void set_mac();  // the PMD's address, or a random local one
  // One received frame: true when it is delivered (view filled).
  // *m may be replaced (a chained frame copied into one buffer).
  bool classify(rte_mbuf** m, wire::PacketView* view, Nanos now, rte_mbuf** replies,
                uint16_t* n_replies);
  // A frame in several segments: 1 delivered as it is (view filled), 0
  // dropped, -1 copied into one buffer (*m, to classify as any other).
  int classify_chain(rte_mbuf** m, wire::PacketView* view);
  bool check_roce(rte_mbuf* m, wire::PacketView* view, wire::ParseError e);
  // An ARP frame: answers (in place, appended to replies) or learns; false when dropped.
  bool handle_arp(rte_mbuf* m, Nanos now, rte_mbuf** replies, uint16_t* n_replies);
  void send_arp_request(uint32_t ip);
  uint16_t send(rte_mbuf** mbufs, uint16_t n);

  uint16_t port_id_;
  uint32_t removals_at_open_ = 0;  // port_removals(port_id_) when opened
  std::string name_;
  std::string driver_;  // the PMD, e.g. "net_memif"
  PortConfig cfg_;
  wire::MacAddr mac_{};
  std::array<uint8_t, 16> gid_{};
  uint32_t path_mtu_ = 0;
  rte_mempool* pool_ = nullptr;
  rte_mempool* shells_ = nullptr;  // zero-copy transmit's segments (tx_chains())
  bool configured_ = false;  // rte_eth_dev_configure succeeded: close on destruction
  bool started_ = false;
  NeighborTable neighbors_;
  std::shared_ptr<Capture> capture_;
  PortCounters counters_;
  // Receive interrupt (nic/port_rx_intr.cc).
  enum class RxIntr : uint8_t { kNone, kMemif, kTap };
  RxIntr rx_intr_ = RxIntr::kNone;
  uint32_t next_qpn_hint_ = 0;
  int rx_intr_fd_ = -1;           // tap: the queue's fd (level-triggered, never read here)
  // memif: this port's own view of the PMD's receive ring (its own mapping
  // of the ring's page and its own dup of the eventfd), taken on DPDK's
  // interrupt thread, where the PMD connects and disconnects, so nothing
  // here ever touches memory or an fd number the PMD has given up.
  struct MemifView;
  static void memif_view_callback(void*);  // DPDK's interrupt thread
  void memif_view_answer();                 // DPDK's interrupt thread
  static MemifView* memif_no_view();
  MemifView* memif_view_make();              // DPDK's interrupt thread
  bool memif_view_ask(Nanos now);            // engine lock; true: asked now
  bool memif_view_take();                    // engine lock, not armed: false = no view
  void memif_view_retire(MemifView* v);      // engine lock, not armed
  void open_rx_interrupt_counted();
  MemifView* rx_view_ = nullptr;                   // engine lock: the view armed with
  std::atomic<MemifView*> rx_view_next_{nullptr};  // from the interrupt thread
  int rx_view_ask_fd_ = -1;                        // eventfd: asks the interrupt thread for a view
  std::atomic<bool> rx_view_asked_{false};         // asked, and the callback has not run
  std::atomic<uint64_t> rx_view_ino_{0};           // rx_view_'s region inode (0: none)
  Nanos rx_view_asked_at_ = 0;                     // engine lock
  std::atomic<uint32_t> rx_intr_openers_{0};       // threads inside open_rx_interrupt
  void* rx_intr_ring_ = nullptr;  // memif: the armed ring (rx_view_'s), nullptr when not armed
  // memif: the armed view (a MemifView) while armed (any thread reads it: quiet/open).
  std::atomic<void*> rx_intr_gate_{nullptr};
  bool rx_ring_has_frames() const;  // memif, armed: the peer queued a frame
  int rx_intr_armed_fd_ = -1;     // memif: the eventfd armed with it (rx_view_'s)
};

// Two ports joined back to back by a pair of rte_rings in this process
// (net_ring via rte_eth_from_rings): what a sends, b receives, and the other
// way round. Unique names, so any number of pairs can exist at once.
// Destruction drains the rings, closes both ports, then frees the rings.
// If both configs name the same capture file, both ports write to it (and
// must then be driven by one thread). Otherwise a and b may be driven by two
// threads: each ring has one producer and one consumer.
class PortPair {
 public:
  PortPair(PortPair&&) noexcept;
  PortPair& operator=(PortPair&&) = delete;
  ~PortPair();

  Port& a() { return *a_; }
  Port& b() { return *b_; }

 private:
  friend Result<PortPair> make_port_pair(const PortConfig& a, const PortConfig& b);
  PortPair() = default;
  void release();

  std::unique_ptr<Port> a_, b_;
  rte_ring* ab_ = nullptr;  // a -> b
  rte_ring* ba_ = nullptr;  // b -> a
  std::string vdev_a_, vdev_b_;
};

Result<PortPair> make_port_pair(const PortConfig& a, const PortConfig& b);

}  // namespace droce::nic
