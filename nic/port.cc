// Port: ethdev setup (mempool sized for the MTU, one rx/tx queue), burst
// receive with ARP answered in place and RoCEv2 classification (annex A17),
// burst transmit; every dropped frame counted by reason.
#include "nic/port.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>

#include <rte_bus.h>
#include <rte_dev.h>
#include <rte_devargs.h>
#include <rte_errno.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "nic/base/tsan.h"
#include "nic/eal.h"
#include "nic/tsan_pool.h"
#include "nic/wire/icrc.h"

namespace droce::nic {
namespace {

// Largest burst receive() handles at once (ARP replies are gathered on the stack).
constexpr uint16_t kMaxRxBurst = 256;
constexpr uint16_t kTxChunk = 64;          // frames per capture-and-send step
constexpr uint32_t kL2Overhead = 14 + 4 + 4;  // Ethernet + one VLAN tag + FCS
constexpr unsigned kPoolCache = 256;
// Zero-copy transmit's segments: room for the longest headers (Ethernet +
// 802.1Q, IPv4, UDP, BTH, AtomicETH: 90 bytes), or a pad and ICRC (a payload
// segment's data is the registered memory it is attached to). No headroom.
constexpr uint16_t kShellRoom = 128;
// The most bytes a received frame's headers take (Ethernet + 802.1Q, IPv4
// with options or IPv6, UDP, BTH, the longest extension headers): what
// classify_chain reads to parse a chained frame.
constexpr uint32_t kMaxHeadBytes = 18 + 60 + 8 + 12 + 32;

// How many bytes wire::parse_frame (without the ICRC) reads of a frame whose
// first len bytes are at p: Ethernet [+ 802.1Q], the IP header, UDP, BTH.
// UINT32_MAX when len bytes do not even say.
uint32_t parsed_bytes(const uint8_t* p, uint32_t len) {
  uint32_t l2 = 14;
  if (len < 18) return UINT32_MAX;
  uint16_t type = uint16_t(p[12] << 8 | p[13]);
  if (type == wire::kEtherTypeVlan) {
    l2 = 18;
    type = uint16_t(p[16] << 8 | p[17]);
  }
  if (len <= l2) return UINT32_MAX;
  const uint32_t ip = type == wire::kEtherTypeIpv6 ? 40 : std::max<uint32_t>(20, (p[l2] & 0x0F) * 4u);
  return l2 + ip + 8 + 12;
}

std::atomic<uint32_t> g_pool_seq{0};

inline bool is_group(const wire::MacAddr& m) { return (m[0] & 1) != 0; }
inline bool is_zero(const wire::MacAddr& m) {
  for (uint8_t b : m) {
    if (b != 0) return false;
  }
  return true;
}
inline bool is_unicast_ip(uint32_t ip) {
  return ip != 0 && ip != 0xFFFFFFFFu && (ip >> 28) != 0xE;
}

std::string rte_error(int rc) { return rte_strerror(rc < 0 ? -rc : rc); }

}  // namespace

const char* port_drop_name(PortDrop d) {
  switch (d) {
    case PortDrop::kNotOurMac: return "not our MAC";
    case PortDrop::kNotOurIp: return "not our IP";
    case PortDrop::kMultiSegment: return "multi-segment frame";
    case PortDrop::kArpMalformed: return "ARP malformed";
    case PortDrop::kArpNotForUs: return "ARP not for us";
    case PortDrop::kTxRingFull: return "tx ring full";
    case PortDrop::kMbufAllocFailed: return "mbuf alloc failed";
    case PortDrop::kPortRemoved: return "port removed";
    case PortDrop::kCount: break;
  }
  return "?";
}

uint64_t PortCounters::rx_dropped() const {
  uint64_t n = 0;
  for (uint64_t v : parse_drops) n += v;
  n += drop(PortDrop::kNotOurMac) + drop(PortDrop::kNotOurIp) + drop(PortDrop::kMultiSegment) +
       drop(PortDrop::kArpMalformed) + drop(PortDrop::kArpNotForUs);
  return n;
}

std::string format_counters(const PortCounters& c) {
  char buf[256];
  std::snprintf(buf, sizeof(buf),
                "rx_packets=%lu rx_bytes=%lu tx_packets=%lu tx_bytes=%lu rx_roce=%lu arp_rx=%lu "
                "arp_tx=%lu arp_failed=%lu rx_dropped=%lu tx_dropped=%lu",
                (unsigned long)c.rx_packets, (unsigned long)c.rx_bytes,
                (unsigned long)c.tx_packets, (unsigned long)c.tx_bytes, (unsigned long)c.rx_roce,
                (unsigned long)c.arp_rx, (unsigned long)c.arp_tx, (unsigned long)c.arp_failed,
                (unsigned long)c.rx_dropped(), (unsigned long)c.tx_dropped());
  std::string out = buf;
  for (size_t i = 1; i < wire::kParseErrorCount; ++i) {
    if (c.parse_drops[i] == 0) continue;
    std::snprintf(buf, sizeof(buf), " parse[%s]=%lu", wire::parse_error_name(wire::ParseError(i)),
                  (unsigned long)c.parse_drops[i]);
    out += buf;
  }
  for (size_t i = 0; i < kPortDropCount; ++i) {
    if (c.drops[i] == 0) continue;
    std::snprintf(buf, sizeof(buf), " drop[%s]=%lu", port_drop_name(PortDrop(i)),
                  (unsigned long)c.drops[i]);
    out += buf;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Setup

Port::Port(uint16_t port_id, const PortConfig& cfg)
    : port_id_(port_id), removals_at_open_(port_removals(port_id)), cfg_(cfg), neighbors_(cfg.arp) {}

Result<std::unique_ptr<Port>> Port::open(uint16_t port_id, const PortConfig& cfg) {
  if (Status st = eal_init(); !st) return st;
  if (!is_unicast_ip(cfg.ipv4)) {
    return Status(Errc::kInvalidArgument,
                  "port IPv4 address " + format_ipv4(cfg.ipv4) + " is not a unicast address");
  }
  if (cfg.mtu < kMinMtu || cfg.mtu > kMaxMtu) {
    return Status(Errc::kInvalidArgument, "MTU " + std::to_string(cfg.mtu) + " outside [" +
                                              std::to_string(kMinMtu) + ", " +
                                              std::to_string(kMaxMtu) + "]");
  }
  if (!rte_eth_dev_is_valid_port(port_id)) {
    return Status(Errc::kNotFound, "no DPDK port " + std::to_string(port_id) + " (" +
                                       std::to_string(rte_eth_dev_count_avail()) +
                                       " ports; devices come from DROCE_EAL_ARGS)");
  }
  std::unique_ptr<Port> p(new Port(port_id, cfg));
  p->cfg_.capture_path.clear();  // opened below, once the port exists
  if (Status st = p->start(); !st) return st;
  if (!cfg.capture_path.empty()) {
    auto cap = Capture::open(cfg.capture_path, uint32_t(cfg.mtu) + kL2Overhead);
    if (!cap) return cap.status();
    p->capture_ = std::shared_ptr<Capture>(std::move(cap.value()));
    p->cfg_.capture_path = cfg.capture_path;
  }
  return p;
}

Result<std::unique_ptr<Port>> Port::open_by_name(const std::string& device_name,
                                                 const PortConfig& cfg) {
  if (Status st = eal_init(); !st) return st;
  uint16_t id = 0;
  if (rte_eth_dev_get_port_by_name(device_name.c_str(), &id) != 0) {
    return Status(Errc::kNotFound, "no DPDK port named '" + device_name +
                                       "' (devices come from DROCE_EAL_ARGS, e.g. --vdev " +
                                       device_name + ",...)");
  }
  return open(id, cfg);
}

Status Port::start() {
  rte_eth_dev_info info{};
  int rc = rte_eth_dev_info_get(port_id_, &info);
  if (rc != 0) return Status(Errc::kIo, "rte_eth_dev_info_get: " + rte_error(rc));
  char name[RTE_ETH_NAME_MAX_LEN];
  if (rte_eth_dev_get_name_by_port(port_id_, name) == 0) name_ = name;
  PmdFrameLimits limits;
  limits.driver = info.driver_name != nullptr ? info.driver_name : "?";
  driver_ = limits.driver;
  limits.min_mtu = info.min_mtu;
  limits.max_mtu = info.max_mtu;
  limits.max_rx_pktlen = info.max_rx_pktlen;
  // memif in its zero-copy mode hands the peer offsets into DPDK's own
  // memory regions, which registered memory is not part of: such a port copies.
  bool memif_zero_copy = false;
  if (limits.driver == "net_memif") {
    const rte_devargs* da = info.device != nullptr ? rte_dev_devargs(info.device) : nullptr;
    const std::string args = da != nullptr && da->args != nullptr ? da->args : "";
    limits.memif_bsize = memif_bsize_from_args(args);
    memif_zero_copy = args.find("zero-copy=yes") != std::string::npos;
  }
  auto ethdev_mtu = ethdev_mtu_for(cfg_.mtu, limits, name_);
  if (!ethdev_mtu) return ethdev_mtu.status();
  if (Status st = create_pool(info); !st) return st;
  // Zero-copy transmit needs a PMD that takes chained mbufs and reads them
  // with the CPU: a virtual device. A PCI NIC would DMA from the registered
  // memory, which is not mapped for it (rte_dev_dma_map), so it copies.
  const rte_bus* bus = info.device != nullptr ? rte_dev_bus(info.device) : nullptr;
  const bool vdev = bus != nullptr && std::strcmp(rte_bus_name(bus), "vdev") == 0;
  const bool chains = (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS) != 0;
  if (cfg_.zero_copy && chains && vdev && !memif_zero_copy) {
    if (Status st = create_shells(); !st) return st;
  }
  if (Status st = configure_queues(*ethdev_mtu); !st) return st;
  set_mac();
  rc = rte_eth_dev_start(port_id_);
  if (rc != 0) return Status(Errc::kIo, "start " + name_ + ": " + rte_error(rc));
  started_ = true;
  setup_rx_interrupt();

  ipv4_to_gid(cfg_.ipv4, gid_.data());
  path_mtu_ = path_mtu_for(cfg_.mtu);
  return Status::ok();
}

// Data room: headroom + a whole frame of cfg_.mtu in one segment, never below
// DPDK's default, so every frame the port receives or builds is contiguous.
Status Port::create_pool(const rte_eth_dev_info& info) {
  uint32_t frame = (uint32_t(cfg_.mtu) + kL2Overhead + 63) & ~63u;
  if (frame < 2048) frame = 2048;
  if (frame < info.min_rx_bufsize) frame = info.min_rx_bufsize;
  const uint32_t room = RTE_PKTMBUF_HEADROOM + frame;
  const int socket = rte_eth_dev_socket_id(port_id_);
  char pool_name[RTE_MEMPOOL_NAMESIZE];
  std::snprintf(pool_name, sizeof(pool_name), "droce_mp%u", g_pool_seq.fetch_add(1));
  const unsigned cache = cfg_.mbufs >= kPoolCache * 3 / 2 ? kPoolCache : 0;
  pool_ = rte_pktmbuf_pool_create_by_ops(pool_name, cfg_.mbufs, cache, 0, uint16_t(room),
                                         socket < 0 ? SOCKET_ID_ANY : socket, mbuf_pool_ops());
  if (pool_ == nullptr) {
    return Status(Errc::kNoMemory, "cannot create mempool of " + std::to_string(cfg_.mbufs) +
                                       " mbufs for port " + name_ + ": " +
                                       rte_strerror(rte_errno) +
                                       " (raise -m in DROCE_EAL_ARGS)");
  }
  return Status::ok();
}

Status Port::create_shells() {
  char pool_name[RTE_MEMPOOL_NAMESIZE];
  std::snprintf(pool_name, sizeof(pool_name), "droce_zc%u", g_pool_seq.fetch_add(1));
  // Three shells per frame: as many frames as the main pool has. Fewer than
  // 2^16 in all, so an MR's frame count (a uint16_t shinfo refcnt) cannot wrap.
  const uint32_t n = std::min<uint32_t>(cfg_.mbufs * 3 + 2, 32767);
  const int socket = rte_eth_dev_socket_id(port_id_);
  shells_ = rte_pktmbuf_pool_create_by_ops(pool_name, n, n >= kPoolCache * 3 / 2 ? kPoolCache : 0,
                                           0, kShellRoom, socket < 0 ? SOCKET_ID_ANY : socket,
                                           mbuf_pool_ops());
  if (shells_ == nullptr) {
    return Status(Errc::kNoMemory, "cannot create the zero-copy mbuf pool for port " + name_ +
                                       ": " + rte_strerror(rte_errno) +
                                       " (raise -m in DROCE_EAL_ARGS, or DROCE_ZERO_COPY=0)");
  }
  return Status::ok();
}

Status Port::configure_queues(uint16_t ethdev_mtu) {
  rte_eth_conf conf{};
  conf.rxmode.mtu = ethdev_mtu;
  if (shells_ != nullptr) conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
  // net_tap gives each receive queue's fd to DPDK's rx-interrupt vector only
  // when asked (intr_conf.rxq); the engine could sleep on it
  // (port_rx_intr.cc, kTapRxInterrupt says why it does not yet). net_memif's
  // interrupt needs no configuration; other PMDs are not asked, so a PMD
  // without rx interrupts is never refused for it.
  if (driver_ == "net_tap" && kTapRxInterrupt) conf.intr_conf.rxq = 1;
  int rc = rte_eth_dev_configure(port_id_, 1, 1, &conf);
  if (rc != 0) return Status(Errc::kIo, "configure " + name_ + ": " + rte_error(rc));
  configured_ = true;
  uint16_t nb_rxd = cfg_.rx_desc, nb_txd = cfg_.tx_desc;
  rc = rte_eth_dev_adjust_nb_rx_tx_desc(port_id_, &nb_rxd, &nb_txd);
  if (rc != 0) return Status(Errc::kIo, "descriptor counts for " + name_ + ": " + rte_error(rc));
  const int socket = rte_eth_dev_socket_id(port_id_);
  const unsigned qsocket = socket < 0 ? unsigned(SOCKET_ID_ANY) : unsigned(socket);
  rc = rte_eth_rx_queue_setup(port_id_, 0, nb_rxd, qsocket, nullptr, pool_);
  if (rc != 0) return Status(Errc::kIo, "rx queue of " + name_ + ": " + rte_error(rc));
  rc = rte_eth_tx_queue_setup(port_id_, 0, nb_txd, qsocket, nullptr);
  if (rc != 0) return Status(Errc::kIo, "tx queue of " + name_ + ": " + rte_error(rc));
  return Status::ok();
}

void Port::set_mac() {
  rte_ether_addr addr{};
  rte_eth_macaddr_get(port_id_, &addr);
  std::memcpy(mac_.data(), addr.addr_bytes, 6);
  if (is_zero(mac_) || is_group(mac_)) {
    // Some PMDs (rings) have no address: make a locally administered one. The
    // port filters by MAC in software, so it holds even if the PMD can't set it.
    rte_eth_random_addr(addr.addr_bytes);
    std::memcpy(mac_.data(), addr.addr_bytes, 6);
    rte_eth_dev_default_mac_addr_set(port_id_, &addr);
  }
}

Port::~Port() {
  // A port DPDK released (a detached vdev) is not ours to close any more; one
  // whose device was unplugged (INTR_RMV) still is, and is closed as DPDK
  // asks of the application.
  const bool gone = released();
  teardown_rx_interrupt();
  if (started_ && !gone) rte_eth_dev_stop(port_id_);
  if (configured_ && !gone) rte_eth_dev_close(port_id_);  // releases queues and their mbufs
  capture_.reset();
  if (pool_ != nullptr) rte_mempool_free(pool_);
  if (shells_ != nullptr) rte_mempool_free(shells_);
}

uint32_t Port::link_speed_mbps() const {
  if (removed()) return 0;
  rte_eth_link link{};
  if (rte_eth_link_get_nowait(port_id_, &link) != 0 || link.link_status != RTE_ETH_LINK_UP) return 0;
  return link.link_speed;
}

bool Port::released() const {
  if (!removed()) return false;
  char name[RTE_ETH_NAME_MAX_LEN];
  return !rte_eth_dev_is_valid_port(port_id_) ||
         rte_eth_dev_get_name_by_port(port_id_, name) != 0 || name_ != name;
}

bool Port::link_up() const {
  if (removed()) return false;
  rte_eth_link link{};
  return rte_eth_link_get_nowait(port_id_, &link) == 0 && link.link_status == RTE_ETH_LINK_UP;
}

// ---------------------------------------------------------------------------
// Per packet

rte_mbuf* Port::alloc_mbuf() {
  rte_mbuf* m = rte_pktmbuf_alloc(pool_);
  if (m == nullptr) ++counters_.drops[size_t(PortDrop::kMbufAllocFailed)];
  return m;
}

bool Port::alloc_shells(rte_mbuf** out, unsigned n) {
  return shells_ != nullptr && rte_pktmbuf_alloc_bulk(shells_, out, n) == 0;
}

uint16_t Port::receive(rte_mbuf** mbufs, wire::PacketView* views, uint16_t max, Nanos now) {
  if (removed()) return 0;
  if (max > kMaxRxBurst) max = kMaxRxBurst;
  if (rx_intr_ring_ != nullptr) [[unlikely]] {
    if (!rx_ring_has_frames()) return 0;
  }
  const uint16_t n = rte_eth_rx_burst(port_id_, 0, mbufs, max);
  if (n == 0) return 0;
  tsan_acquire_all(mbufs, n);  // what the sending thread wrote (nic/base/tsan.h)
  if (capture_) capture_->record(port_id_, mbufs, n, Capture::Direction::kIn);

  rte_mbuf* replies[kMaxRxBurst];
  uint16_t n_replies = 0;
  uint16_t out = 0;
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = mbufs[i];
    if (i + 1 < n) rte_prefetch0(rte_pktmbuf_mtod(mbufs[i + 1], void*));
    ++counters_.rx_packets;
    counters_.rx_bytes += m->pkt_len;
    if (classify(&m, &views[out], now, replies, &n_replies)) mbufs[out++] = m;
  }
  if (n_replies > 0) counters_.arp_tx += send(replies, n_replies);
  return out;
}

bool Port::classify(rte_mbuf** mp, wire::PacketView* view, Nanos now, rte_mbuf** replies,
                    uint16_t* n_replies) {
  if ((*mp)->nb_segs != 1) {
    const int r = classify_chain(mp, view);
    if (r >= 0) return r == 1;
  }
  rte_mbuf* m = *mp;
  uint8_t* p = rte_pktmbuf_mtod(m, uint8_t*);
  const uint32_t len = m->data_len;
  if (len >= sizeof(wire::EthHdr) && p[12] == (wire::kEtherTypeArp >> 8) &&
      p[13] == (wire::kEtherTypeArp & 0xFF)) {
    handle_arp(m, now, replies, n_replies);
    return false;
  }

  // Parse without the ICRC first, so traffic for others costs no CRC.
  wire::ParseOptions opts;
  opts.verify_icrc = false;
  const wire::ParseError e = wire::parse_frame(p, len, view, opts);
  return check_roce(m, view, e);
}

// Address checks, then the ICRC (in one pass over a contiguous frame, over
// the segments in order for a chained one), of a parsed frame.
bool Port::check_roce(rte_mbuf* m, wire::PacketView* view, wire::ParseError e) {
  if (e == wire::ParseError::kOk) {
    PortDrop d = PortDrop::kCount;
    if (view->eth().dst != mac_) {
      d = PortDrop::kNotOurMac;
    } else if (view->ipv6 || view->ipv4().dst.get() != cfg_.ipv4) {
      d = PortDrop::kNotOurIp;
    }
    if (d != PortDrop::kCount) {
      ++counters_.drops[size_t(d)];
      rte_pktmbuf_free(m);
      return false;
    }
    uint8_t* l3 = view->frame + view->l3_off;
    bool good;
    if (m->nb_segs == 1) {
      good = wire::icrc_verify(l3, view->icrc_off - view->l3_off, view->ipv6);
    } else {
      // Pieces: the first segment from the IP header, then each later
      // segment up to the ICRC (classify_chain put the headers in the first).
      wire::IcrcPiece pieces[8];
      size_t n = 0;
      uint32_t at = m->data_len;  // frame offset of the next segment
      for (const rte_mbuf* s = m->next; s != nullptr && at < view->icrc_off; s = s->next) {
        const uint32_t take = std::min<uint32_t>(s->data_len, view->icrc_off - at);
        pieces[n++] = {rte_pktmbuf_mtod(s, const uint8_t*), take};
        at += s->data_len;
      }
      uint8_t stored[4];
      const auto* icrc =
          static_cast<const uint8_t*>(rte_pktmbuf_read(m, view->icrc_off, 4, stored));
      const uint32_t want = uint32_t(icrc[0]) | uint32_t(icrc[1]) << 8 |
                            uint32_t(icrc[2]) << 16 | uint32_t(icrc[3]) << 24;
      const uint32_t head = std::min<uint32_t>(m->data_len, view->icrc_off) - view->l3_off;
      good = wire::icrc_compute_chain(l3, head, pieces, n, view->ipv6) == want;
    }
    if (!good) {
      e = wire::ParseError::kBadIcrc;
    } else if (!view->ipv6 && !wire::ipv4_header_valid(l3, size_t(view->ipv4().ihl_bytes()))) {
      // Outside the ICRC (as TTL and TOS): a NIC drops a frame whose
      // header checksum is wrong. In the first segment (classify_chain).
      e = wire::ParseError::kBadIpChecksum;
    }
  }
  if (e != wire::ParseError::kOk) {
    ++counters_.parse_drops[size_t(e)];
    rte_pktmbuf_free(m);
    return false;
  }
  ++counters_.rx_roce;
  return true;
}

// A frame in several segments: what a peer in this process sends through
// net_ring when it attaches payloads from registered memory (headers, payload,
// pad + ICRC), or what a PMD chains on receive. Delivered as it is when every
// header is in the first segment and the payload in one segment, so the
// responder copies the payload once, from where it lies; otherwise copied
// into one buffer of the pool when it fits one, else dropped.
int Port::classify_chain(rte_mbuf** mp, wire::PacketView* view) {
  rte_mbuf* m = *mp;
  // The parser without verify_icrc reads the Ethernet, IP, UDP and BTH
  // headers and nothing past them. When the first segment holds those (a
  // zero-copy sender's does), it parses there; else from a copy of the
  // first bytes, which hold them whatever the frame.
  wire::ParseOptions opts;
  opts.verify_icrc = false;
  wire::PacketView v;
  wire::ParseError e;
  if (m->data_len >= parsed_bytes(rte_pktmbuf_mtod(m, const uint8_t*), m->data_len)) {
    e = wire::parse_frame(rte_pktmbuf_mtod(m, uint8_t*), m->pkt_len, &v, opts);
  } else {
    uint8_t head[kMaxHeadBytes];
    const uint32_t head_len = std::min<uint32_t>(m->pkt_len, kMaxHeadBytes);
    const auto* h = static_cast<const uint8_t*>(rte_pktmbuf_read(m, 0, head_len, head));
    if (h != head) std::memcpy(head, h, head_len);
    e = wire::parse_frame(head, m->pkt_len, &v, opts);
  }
  if (e == wire::ParseError::kOk && v.payload_off <= m->data_len && m->nb_segs <= 8) {
    // Payload in one segment?
    uint32_t at = m->data_len;
    const rte_mbuf* s = m->next;
    while (s != nullptr && at + s->data_len <= v.payload_off && v.payload_len != 0) {
      at += s->data_len;
      s = s->next;
    }
    const bool one = v.payload_len == 0 ||
                     (s != nullptr && v.payload_off >= at &&
                      v.payload_off + v.payload_len <= at + s->data_len);
    if (one) {
      *view = v;
      view->frame = rte_pktmbuf_mtod(m, uint8_t*);
      view->frame_len = m->data_len;
      if (v.payload_len != 0) {
        view->payload_at = rte_pktmbuf_mtod_offset(s, uint8_t*, v.payload_off - at);
      } else {
        view->payload_at = view->frame + v.payload_off;  // never read; not past the segment
      }
      ++counters_.rx_chained;
      return check_roce(m, view, e) ? 1 : 0;
    }
  }
  // Any other layout, and other traffic (ARP among it): one buffer, then the
  // normal path.
  rte_mbuf* flat = rte_pktmbuf_alloc(pool_);
  if (flat == nullptr || rte_pktmbuf_tailroom(flat) < m->pkt_len) {
    rte_pktmbuf_free(flat);
    ++counters_.drops[size_t(PortDrop::kMultiSegment)];
    rte_pktmbuf_free(m);
    return 0;
  }
  auto* dst = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(flat, uint16_t(m->pkt_len)));
  const void* src = rte_pktmbuf_read(m, 0, m->pkt_len, dst);
  if (src != dst) std::memcpy(dst, src, m->pkt_len);
  rte_pktmbuf_free(m);
  ++counters_.rx_linearised;
  *mp = flat;
  return -1;  // the caller classifies the copy
}

bool Port::handle_arp(rte_mbuf* m, Nanos now, rte_mbuf** replies, uint16_t* n_replies) {
  uint8_t* p = rte_pktmbuf_mtod(m, uint8_t*);
  const ArpHdr* arp = parse_arp_frame(p, m->data_len);
  if (arp == nullptr) {
    ++counters_.drops[size_t(PortDrop::kArpMalformed)];
    rte_pktmbuf_free(m);
    return false;
  }
  const uint32_t spa = arp->spa.get();
  const uint32_t tpa = arp->tpa.get();
  const bool for_us = tpa == cfg_.ipv4;
  // RFC 826 merge: refresh a known sender always, add it only when asked by it.
  if (is_unicast_ip(spa) && spa != cfg_.ipv4 && !is_group(arp->sha) && !is_zero(arp->sha)) {
    neighbors_.learn(spa, arp->sha, now, for_us);
  }
  if (!for_us) {
    ++counters_.drops[size_t(PortDrop::kArpNotForUs)];
    rte_pktmbuf_free(m);
    return false;
  }
  ++counters_.arp_rx;
  if (arp->oper.get() != kArpOpRequest) {
    rte_pktmbuf_free(m);
    return true;
  }
  // Answer in place: the request's buffer becomes the reply, exactly
  // kArpFrameLen bytes long. A buffer too small for that (never from a
  // droce pool) is swapped for one of ours.
  const wire::MacAddr requester = arp->sha;
  if (m->data_len > kArpFrameLen) {
    rte_pktmbuf_trim(m, uint16_t(m->data_len - kArpFrameLen));
  } else if (m->data_len < kArpFrameLen &&
             rte_pktmbuf_append(m, uint16_t(kArpFrameLen - m->data_len)) == nullptr) {
    rte_pktmbuf_free(m);
    m = alloc_mbuf();
    if (m == nullptr) return true;  // counted as kMbufAllocFailed
    rte_pktmbuf_append(m, kArpFrameLen);
  }
  write_arp_frame(rte_pktmbuf_mtod(m, uint8_t*), kArpOpReply, requester, mac_, cfg_.ipv4,
                  requester, spa);
  replies[(*n_replies)++] = m;
  return true;
}

uint16_t Port::send(rte_mbuf** mbufs, uint16_t n) {
  if (removed()) {
    for (uint16_t i = 0; i < n; ++i) rte_pktmbuf_free(mbufs[i]);
    counters_.drops[size_t(PortDrop::kPortRemoved)] += n;
    return 0;
  }
  uint16_t sent = 0;
  uint64_t bytes = 0;
  if (!capture_) {
    for (uint16_t i = 0; i < n; ++i) bytes += mbufs[i]->pkt_len;
    // To the thread that receives them (nic/base/tsan.h): after this
    // thread's last read of them, or TSan sees that read unordered with the
    // pool's next owner (an ARP reply's length, read here after the release,
    // was reported against its reuse by the other port's thread).
    tsan_release_all(mbufs, n);
    while (sent < n) {
      const uint16_t k = rte_eth_tx_burst(port_id_, 0, mbufs + sent, uint16_t(n - sent));
      if (k == 0) break;
      sent = uint16_t(sent + k);
    }
    for (uint16_t i = sent; i < n; ++i) {
      bytes -= mbufs[i]->pkt_len;
      rte_pktmbuf_free(mbufs[i]);
    }
  } else {
    // Copy before the device owns the frames; write only what it took.
    rte_mbuf* copies[kTxChunk];
    bool full = false;
    while (sent < n && !full) {
      const uint16_t k = uint16_t(n - sent < kTxChunk ? n - sent : kTxChunk);
      capture_->copy(port_id_, mbufs + sent, k, Capture::Direction::kOut, copies);
      uint64_t chunk_bytes = 0;
      for (uint16_t i = 0; i < k; ++i) chunk_bytes += mbufs[sent + i]->pkt_len;
      tsan_release_all(mbufs + sent, k);  // as above: after the last reads
      uint16_t done = 0;
      while (done < k) {
        const uint16_t t = rte_eth_tx_burst(port_id_, 0, mbufs + sent + done, uint16_t(k - done));
        if (t == 0) break;
        done = uint16_t(done + t);
      }
      for (uint16_t i = done; i < k; ++i) chunk_bytes -= mbufs[sent + i]->pkt_len;
      capture_->write(copies, done);
      capture_->discard(copies + done, uint16_t(k - done));
      bytes += chunk_bytes;
      full = done < k;
      sent = uint16_t(sent + done);
    }
    for (uint16_t i = sent; i < n; ++i) rte_pktmbuf_free(mbufs[i]);
  }
  counters_.tx_packets += sent;
  counters_.tx_bytes += bytes;
  counters_.drops[size_t(PortDrop::kTxRingFull)] += uint16_t(n - sent);
  return sent;
}

uint16_t Port::transmit(rte_mbuf** mbufs, uint16_t n) { return send(mbufs, n); }

// ---------------------------------------------------------------------------
// ARP

void Port::send_arp_request(uint32_t ip) {
  rte_mbuf* m = alloc_mbuf();
  if (m == nullptr) return;
  auto* p = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, kArpFrameLen));
  write_arp_frame(p, kArpOpRequest, kBroadcastMac, mac_, cfg_.ipv4, wire::MacAddr{}, ip);
  counters_.arp_tx += send(&m, 1);
}

ArpResult Port::resolve(uint32_t ip, wire::MacAddr* mac, Nanos now) {
  if (ip == cfg_.ipv4) {
    *mac = mac_;
    return ArpResult::kResolved;
  }
  if (!is_unicast_ip(ip)) return ArpResult::kFailed;
  bool request = false;
  const ArpResult r = neighbors_.resolve(ip, mac, now, &request);
  if (request) send_arp_request(ip);
  counters_.arp_failed = neighbors_.failures();
  return r;
}

void Port::poll(Nanos now) {
  uint32_t due[16];
  size_t n;
  do {
    n = neighbors_.poll(now, due, 16);
    for (size_t i = 0; i < n; ++i) send_arp_request(due[i]);
  } while (n == 16);
  counters_.arp_failed = neighbors_.failures();
}

// ---------------------------------------------------------------------------
// In-process pair

PortPair::PortPair(PortPair&& o) noexcept
    : a_(std::move(o.a_)),
      b_(std::move(o.b_)),
      ab_(o.ab_),
      ba_(o.ba_),
      vdev_a_(std::move(o.vdev_a_)),
      vdev_b_(std::move(o.vdev_b_)) {
  o.ab_ = o.ba_ = nullptr;
  o.vdev_a_.clear();
  o.vdev_b_.clear();
}

PortPair::~PortPair() { release(); }

void PortPair::release() {
  // Frames still in flight belong to the pools of the ports: free them first.
  for (rte_ring* r : {ab_, ba_}) {
    if (r == nullptr) continue;
    void* obj;
    while (rte_ring_dequeue(r, &obj) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(obj));
  }
  // A vdev someone detached already (rte_dev_remove) is not removed again.
  const bool a_gone = a_ && a_->released(), b_gone = b_ && b_->released();
  a_.reset();
  b_.reset();
  // The ports are closed; removing the vdevs frees DPDK's device records.
  if (!vdev_a_.empty() && !a_gone) rte_eal_hotplug_remove("vdev", vdev_a_.c_str());
  if (!vdev_b_.empty() && !b_gone) rte_eal_hotplug_remove("vdev", vdev_b_.c_str());
  vdev_a_.clear();
  vdev_b_.clear();
  rte_ring_free(ab_);
  rte_ring_free(ba_);
  ab_ = ba_ = nullptr;
}

Result<PortPair> make_port_pair(const PortConfig& a, const PortConfig& b) {
  if (Status st = eal_init(); !st) return st;
  static std::atomic<uint32_t> seq{0};
  const uint32_t id = seq.fetch_add(1);
  PortPair pair;

  uint32_t ring_size = 1;
  while (ring_size < a.rx_desc || ring_size < b.rx_desc) ring_size <<= 1;
  char name[RTE_RING_NAMESIZE];
  std::snprintf(name, sizeof(name), "droce_pr%u_ab", id);
  pair.ab_ = rte_ring_create(name, ring_size, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
  std::snprintf(name, sizeof(name), "droce_pr%u_ba", id);
  pair.ba_ = rte_ring_create(name, ring_size, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
  if (pair.ab_ == nullptr || pair.ba_ == nullptr) {
    return Status(Errc::kNoMemory, std::string("port pair rings: ") + rte_strerror(rte_errno));
  }

  int ids[2];
  const std::string suffix[2] = {"a", "b"};
  rte_ring* rx[2] = {pair.ba_, pair.ab_};
  rte_ring* tx[2] = {pair.ab_, pair.ba_};
  for (int i = 0; i < 2; ++i) {
    std::snprintf(name, sizeof(name), "droce_pr%u_%s", id, suffix[i].c_str());
    ids[i] = rte_eth_from_rings(name, &rx[i], 1, &tx[i], 1, SOCKET_ID_ANY);
    if (ids[i] < 0) {
      return Status(Errc::kIo, std::string("rte_eth_from_rings: ") + rte_strerror(rte_errno));
    }
    (i == 0 ? pair.vdev_a_ : pair.vdev_b_) = std::string("net_ring_") + name;
  }

  PortConfig ca = a, cb = b;
  ca.capture_path.clear();
  cb.capture_path.clear();
  auto pa = Port::open(uint16_t(ids[0]), ca);
  if (!pa) return pa.status();
  pair.a_ = std::move(pa.value());
  auto pb = Port::open(uint16_t(ids[1]), cb);
  if (!pb) return pb.status();
  pair.b_ = std::move(pb.value());

  // Captures open once both ports exist, so the file lists both interfaces.
  std::shared_ptr<Capture> cap_a, cap_b;
  if (!a.capture_path.empty()) {
    const uint16_t mtu = b.capture_path == a.capture_path && b.mtu > a.mtu ? b.mtu : a.mtu;
    auto c = Capture::open(a.capture_path, uint32_t(mtu) + kL2Overhead);
    if (!c) return c.status();
    cap_a = std::move(c.value());
  }
  if (!b.capture_path.empty()) {
    if (b.capture_path == a.capture_path) {
      cap_b = cap_a;  // one file, sized for the larger MTU
    } else {
      auto c = Capture::open(b.capture_path, uint32_t(b.mtu) + kL2Overhead);
      if (!c) return c.status();
      cap_b = std::move(c.value());
    }
  }
  pair.a_->set_capture(cap_a);
  pair.b_->set_capture(cap_b);
  return pair;
}

}  // namespace droce::nic
