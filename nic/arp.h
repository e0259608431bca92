// ARP for IPv4 over Ethernet (RFC 826): the wire format, and a fixed-size
// neighbor table that resolves peers with a bounded number of requests.
// No allocation after construction; time is passed in (fake clocks in tests).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "nic/base/clock.h"
#include "nic/base/endian.h"
#include "nic/wire/eth.h"

namespace droce::nic {

inline constexpr uint16_t kArpHtypeEthernet = 1;
inline constexpr uint16_t kArpOpRequest = 1;
inline constexpr uint16_t kArpOpReply = 2;

struct ArpHdr {
  Be16 htype;          // hardware type, 1 = Ethernet
  Be16 ptype;          // protocol type, 0x0800 = IPv4
  uint8_t hlen;        // hardware address length, 6
  uint8_t plen;        // protocol address length, 4
  Be16 oper;           // 1 request, 2 reply
  wire::MacAddr sha;   // sender hardware address
  Be32 spa;            // sender protocol address
  wire::MacAddr tha;   // target hardware address (zero in a request)
  Be32 tpa;            // target protocol address
};
static_assert(sizeof(ArpHdr) == 28);

// An ARP frame on the wire: Ethernet + ARP, padded to the 60-byte minimum.
inline constexpr size_t kArpFrameLen = 60;

inline constexpr wire::MacAddr kBroadcastMac = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};

// Writes an ARP frame (kArpFrameLen bytes) into buf.
void write_arp_frame(uint8_t* buf, uint16_t oper, const wire::MacAddr& eth_dst,
                     const wire::MacAddr& sha, uint32_t spa, const wire::MacAddr& tha,
                     uint32_t tpa);

// Returns the ARP header of an untagged Ethernet/IPv4 ARP frame, or nullptr
// when the frame is too short or not an Ethernet/IPv4 request or reply.
const ArpHdr* parse_arp_frame(const uint8_t* frame, size_t len);

// A peer gets 3 s to answer, as from a kernel stack (Linux's
// net.ipv4.neigh.default: mcast_solicit 3 x retrans_time_ms 1000), so a
// frame that waits for its answer (UD, QP1, an RC or UC WQE) is not lost to
// a peer that is slow to come up; but asked every 200 ms, so that a peer
// whose link joins its bridge a little late is found within 200 ms of it,
// not a second later.
struct ArpConfig {
  uint8_t max_requests = 15;                  // requests per resolution attempt
  Nanos retry_interval = 200 * kNanosPerMs;   // between two requests
  Nanos failed_hold = 1 * kNanosPerSec;      // resolve() answers kFailed this long, then retries
};

enum class ArpResult : uint8_t {
  kResolved,  // *mac is valid
  kPending,   // requests are going out; ask again later
  kFailed,    // no answer after max_requests requests (held for failed_hold)
};
const char* arp_result_name(ArpResult r);

// One neighbor. State kFree marks an unused slot.
struct Neighbor {
  enum class State : uint8_t { kFree, kPending, kResolved, kFailed };
  uint32_t ip = 0;        // host byte order
  wire::MacAddr mac{};    // valid in kResolved
  State state = State::kFree;
  uint8_t requests = 0;   // requests sent in the current attempt
  Nanos next_at = 0;      // kPending: next request due; kFailed: hold ends
  Nanos updated_at = 0;   // last state change or confirmation
};

// A fixed-capacity IPv4 -> MAC table. When full, the stalest non-pending
// entry is replaced (stalest pending if all are pending), and counted.
// Threading: not thread-safe; owned by the port's engine thread.
class NeighborTable {
 public:
  static constexpr size_t kCapacity = 128;

  explicit NeighborTable(const ArpConfig& cfg = {}) : cfg_(cfg) {}

  // Looks ip up. An unknown (or formerly failed, after its hold) address
  // gets a pending entry and *send_request = true: the caller sends the
  // first ARP request now. Later requests come from poll().
  ArpResult resolve(uint32_t ip, wire::MacAddr* mac, Nanos now, bool* send_request);

  // Records ip -> mac from a received ARP frame. With create = false only an
  // existing entry is updated (RFC 826 merge rule for frames not aimed at us).
  void learn(uint32_t ip, const wire::MacAddr& mac, Nanos now, bool create);

  // Drives retries: writes up to max addresses whose next request is due to
  // ips (the caller sends one request for each), and marks entries that used
  // up their requests as failed. Returns the number written.
  size_t poll(Nanos now, uint32_t* ips, size_t max);

  // The entry for ip, or nullptr.
  const Neighbor* find(uint32_t ip) const;

  size_t size() const;
  uint64_t evictions() const { return evictions_; }  // entries replaced while in use
  uint64_t failures() const { return failures_; }    // attempts that ran out of requests
  const ArpConfig& config() const { return cfg_; }

 private:
  Neighbor* find_mut(uint32_t ip);
  Neighbor* claim(uint32_t ip);

  ArpConfig cfg_;
  std::array<Neighbor, kCapacity> entries_{};
  uint64_t evictions_ = 0;
  uint64_t failures_ = 0;
  // No pending entry is due before this (a lower bound: poll() scans the
  // table only from then on, and sets it again). Every engine poll calls
  // poll(); the scan of 128 entries took 13 % of an idle busy-polling
  // ibv_rc_pingpong's time.
  Nanos next_due_ = kNever;
  static constexpr Nanos kNever = ~Nanos(0);
};

}  // namespace droce::nic
