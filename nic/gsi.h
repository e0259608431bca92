// QP1, the General Services Interface (IBTA vol. 1, 13.5): the device's end
// of the Communication Manager's path. Receive: a UD SEND ONLY to QPN 1 with
// Q_Key 0x80010000 carrying one 256-byte MAD goes to the registered handler.
// Transmit: MADs queued by control threads leave from source QP 1 once the
// port's ARP knows the destination (reference/rdma-cm.md 3.1, 3.7).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "nic/base/clock.h"
#include "nic/wire/packet.h"

namespace droce::nic {

class Device;

inline constexpr uint32_t kGsiQpn = 1;
inline constexpr size_t kGsiMadLen = 256;

struct GsiCounters {
  uint64_t rx_mads = 0;          // handed to the handler
  uint64_t rx_bad_opcode = 0;    // not UD SEND ONLY
  uint64_t rx_bad_qkey = 0;      // DETH Q_Key is not 0x80010000
  uint64_t rx_bad_len = 0;       // payload is not 256 bytes
  uint64_t rx_bad_pkey = 0;
  uint64_t rx_no_agent = 0;      // nobody registered a handler
  uint64_t tx_mads = 0;
  uint64_t tx_queue_full = 0;    // queue refused a MAD
  uint64_t tx_no_neighbor = 0;   // ARP gave up on the destination: MAD dropped
};

// Everything runs under the device's engine lock (Device::gsi_send and
// set_gsi_handler take it; receive and transmit run in poll).
class Gsi {
 public:
  // Called on the engine thread with the engine lock held: it must not call
  // back into the device (queue the MAD and return).
  using Handler = void (*)(void* arg, uint32_t src_ip, const uint8_t* mad, size_t len);
  // Room for a burst of connections (cmtime -c 200 sends 200 REQs at once).
  static constexpr size_t kTxSlots = 1024;

  void set_handler(Handler fn, void* arg) {
    fn_ = fn;
    arg_ = arg;
  }
  void receive(const wire::PacketView& v);
  // False (and counted) when the queue is full or len is not 256.
  bool queue(uint32_t dst_ip, const uint8_t* mad, size_t len, uint8_t tos);
  // Sends the queued MADs whose destination MAC is known; keeps those whose
  // ARP is pending; drops those whose ARP failed.
  void transmit(Device& dev, Nanos now);
  const GsiCounters& counters() const { return counters_; }

 private:
  struct Slot {
    uint32_t dst_ip;
    uint8_t tos;
    uint8_t mad[kGsiMadLen];
  };
  Handler fn_ = nullptr;
  void* arg_ = nullptr;
  std::array<Slot, kTxSlots> tx_{};
  size_t tx_head_ = 0;
  size_t tx_count_ = 0;
  uint32_t psn_ = 0;
  GsiCounters counters_;
};

}  // namespace droce::nic
