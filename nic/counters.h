// The names tools show for every counter of the engine, its QPs, its port and
// the fault shim: the keys of the telemetry commands (nic/telemetry.h) and of
// droce-stat's output. Names are interfaces; the static_asserts make a field
// added to a counter struct without a name here fail to compile.
#pragma once

#include <cstddef>
#include <cstdint>

#include "nic/device.h"
#include "nic/fault.h"
#include "nic/port.h"
#include "nic/qp.h"
#include "nic/wire/packet.h"

namespace droce::nic {

template <typename Counters>
struct CounterName {
  const char* name;
  uint64_t Counters::*field;
};

inline constexpr CounterName<EngineCounters> kEngineCounterNames[] = {
    {"polls", &EngineCounters::polls},
    {"rx_no_qp", &EngineCounters::rx_no_qp},
    {"rx_bad_transport", &EngineCounters::rx_bad_transport},
    {"rx_bad_state", &EngineCounters::rx_bad_state},
    {"rx_bad_pkey", &EngineCounters::rx_bad_pkey},
    {"rx_bad_src_addr", &EngineCounters::rx_bad_src_addr},
    {"rx_cnp", &EngineCounters::rx_cnp},
    {"tx_no_mbuf", &EngineCounters::tx_no_mbuf},
    {"tx_after_removal", &EngineCounters::tx_after_removal},
    {"tx_zero_copy", &EngineCounters::tx_zero_copy},
    {"tx_zero_copy_fallback", &EngineCounters::tx_zero_copy_fallback},
    {"sleeps", &EngineCounters::sleeps},
    {"sleeps_rx_interrupt", &EngineCounters::sleeps_rx_interrupt},
    {"wakes_rx_interrupt", &EngineCounters::wakes_rx_interrupt},
    {"wakes_rx_interrupt_needless", &EngineCounters::wakes_rx_interrupt_needless},
    {"wakes_doorbell", &EngineCounters::wakes_doorbell},
    {"wakes_timeout", &EngineCounters::wakes_timeout},
    {"wakes_aside_timer", &EngineCounters::wakes_aside_timer},
    {"lingers_caught", &EngineCounters::lingers_caught},
    {"lingers_missed", &EngineCounters::lingers_missed},
    {"lingers_cut", &EngineCounters::lingers_cut},
};
static_assert(std::size(kEngineCounterNames) * sizeof(uint64_t) == sizeof(EngineCounters),
              "every EngineCounters field needs a name");

inline constexpr CounterName<GsiCounters> kGsiCounterNames[] = {
    {"rx_mads", &GsiCounters::rx_mads},
    {"rx_bad_opcode", &GsiCounters::rx_bad_opcode},
    {"rx_bad_qkey", &GsiCounters::rx_bad_qkey},
    {"rx_bad_len", &GsiCounters::rx_bad_len},
    {"rx_bad_pkey", &GsiCounters::rx_bad_pkey},
    {"rx_no_agent", &GsiCounters::rx_no_agent},
    {"tx_mads", &GsiCounters::tx_mads},
    {"tx_queue_full", &GsiCounters::tx_queue_full},
    {"tx_no_neighbor", &GsiCounters::tx_no_neighbor},
};
static_assert(std::size(kGsiCounterNames) * sizeof(uint64_t) == sizeof(GsiCounters),
              "every GsiCounters field needs a name");

inline constexpr CounterName<QpCounters> kQpCounterNames[] = {
    {"tx_packets", &QpCounters::tx_packets},
    {"tx_bytes", &QpCounters::tx_bytes},
    {"rx_packets", &QpCounters::rx_packets},
    {"rx_bytes", &QpCounters::rx_bytes},
    {"retransmits", &QpCounters::retransmits},
    {"timeouts", &QpCounters::timeouts},
    {"rnr_naks_sent", &QpCounters::rnr_naks_sent},
    {"rnr_naks_received", &QpCounters::rnr_naks_received},
    {"seq_naks_sent", &QpCounters::seq_naks_sent},
    {"seq_naks_received", &QpCounters::seq_naks_received},
    {"err_naks_sent", &QpCounters::err_naks_sent},
    {"err_naks_received", &QpCounters::err_naks_received},
    {"invalid_request_naks_sent", &QpCounters::invalid_request_naks_sent},
    {"invalid_request_naks_received", &QpCounters::invalid_request_naks_received},
    {"remote_access_naks_sent", &QpCounters::remote_access_naks_sent},
    {"remote_access_naks_received", &QpCounters::remote_access_naks_received},
    {"remote_op_naks_sent", &QpCounters::remote_op_naks_sent},
    {"remote_op_naks_received", &QpCounters::remote_op_naks_received},
    {"duplicates", &QpCounters::duplicates},
    {"out_of_sequence", &QpCounters::out_of_sequence},
    {"drops", &QpCounters::drops},
    {"drop_bad_state", &QpCounters::drop_bad_state},
    {"drop_bad_qkey", &QpCounters::drop_bad_qkey},
    {"drop_no_recv_wqe", &QpCounters::drop_no_recv_wqe},
    {"drop_msg_lost", &QpCounters::drop_msg_lost},
    {"drop_uc_reject", &QpCounters::drop_uc_reject},
    {"drop_bad_aeth", &QpCounters::drop_bad_aeth},
    {"drop_stale_duplicate", &QpCounters::drop_stale_duplicate},
    {"stale_naks", &QpCounters::stale_naks},
    {"duplicate_responses", &QpCounters::duplicate_responses},
    {"response_gaps", &QpCounters::response_gaps},
    {"ghost_responses", &QpCounters::ghost_responses},
    {"unexpected_responses", &QpCounters::unexpected_responses},
    {"tx_unresolved", &QpCounters::tx_unresolved},
    {"rx_bad_src_addr", &QpCounters::rx_bad_src_addr},
    {"unknown_naks_received", &QpCounters::unknown_naks_received},
    {"acks_sent", &QpCounters::acks_sent},
    {"acks_coalesced", &QpCounters::acks_coalesced},
};
static_assert(std::size(kQpCounterNames) * sizeof(uint64_t) == sizeof(QpCounters),
              "every QpCounters field needs a name");

// PortCounters' scalar fields; its two arrays are named by parse_drop_key()
// and port_drop_key().
inline constexpr CounterName<PortCounters> kPortCounterNames[] = {
    {"rx_packets", &PortCounters::rx_packets}, {"rx_bytes", &PortCounters::rx_bytes},
    {"tx_packets", &PortCounters::tx_packets}, {"tx_bytes", &PortCounters::tx_bytes},
    {"rx_roce", &PortCounters::rx_roce},       {"arp_rx", &PortCounters::arp_rx},
    {"arp_tx", &PortCounters::arp_tx},         {"arp_failed", &PortCounters::arp_failed},
    {"rx_chained", &PortCounters::rx_chained}, {"rx_linearised", &PortCounters::rx_linearised},
};
static_assert((std::size(kPortCounterNames) + wire::kParseErrorCount + kPortDropCount) *
                      sizeof(uint64_t) ==
                  sizeof(PortCounters),
              "every PortCounters field needs a name");

// Received frames the parser refused, by wire::ParseError (kOk is never
// counted). A switch, so that a new ParseError without a name warns (-Wswitch).
constexpr const char* parse_drop_key(wire::ParseError e) {
  using wire::ParseError;
  switch (e) {
    case ParseError::kOk:
      return "ok";
    case ParseError::kTooShortEth:
      return "too_short_eth";
    case ParseError::kNotIp:
      return "not_ip";
    case ParseError::kNotUdp:
      return "not_udp";
    case ParseError::kNotRocePort:
      return "not_roce_port";
    case ParseError::kIpFragment:
      return "ip_fragment";
    case ParseError::kTooShortIp:
      return "too_short_ip";
    case ParseError::kBadIpVersion:
      return "bad_ip_version";
    case ParseError::kBadIpHeaderLen:
      return "bad_ip_header_len";
    case ParseError::kBadIpLength:
      return "bad_ip_length";
    case ParseError::kTooShortUdp:
      return "too_short_udp";
    case ParseError::kBadUdpLength:
      return "bad_udp_length";
    case ParseError::kTooShortBth:
      return "too_short_bth";
    case ParseError::kUnknownOpcode:
      return "unknown_opcode";
    case ParseError::kBadTver:
      return "bad_tver";
    case ParseError::kHeaderLength:
      return "header_length";
    case ParseError::kPadBeyondPayload:
      return "pad_beyond_payload";
    case ParseError::kPayloadNotAllowed:
      return "payload_not_allowed";
    case ParseError::kBadIcrc:
      return "bad_icrc";
    case ParseError::kBadIpChecksum:
      return "bad_ip_checksum";
    case ParseError::kCount:
      break;
  }
  return "unknown";
}

// Frames the port dropped, by PortDrop.
constexpr const char* port_drop_key(PortDrop d) {
  switch (d) {
    case PortDrop::kNotOurMac:
      return "not_our_mac";
    case PortDrop::kNotOurIp:
      return "not_our_ip";
    case PortDrop::kMultiSegment:
      return "multi_segment";
    case PortDrop::kArpMalformed:
      return "arp_malformed";
    case PortDrop::kArpNotForUs:
      return "arp_not_for_us";
    case PortDrop::kTxRingFull:
      return "tx_ring_full";
    case PortDrop::kMbufAllocFailed:
      return "mbuf_alloc_failed";
    case PortDrop::kPortRemoved:
      return "port_removed";
    case PortDrop::kCount:
      break;
  }
  return "unknown";
}

inline constexpr CounterName<FaultCounters> kFaultCounterNames[] = {
    {"frames", &FaultCounters::frames},         {"dropped", &FaultCounters::dropped},
    {"duplicated", &FaultCounters::duplicated}, {"dup_no_mbuf", &FaultCounters::dup_no_mbuf},
    {"reordered", &FaultCounters::reordered},   {"delayed", &FaultCounters::delayed},
    {"bitflipped", &FaultCounters::bitflipped}, {"hold_full", &FaultCounters::hold_full},
    {"released", &FaultCounters::released},
};
static_assert(std::size(kFaultCounterNames) * sizeof(uint64_t) == sizeof(FaultCounters),
              "every FaultCounters field needs a name");

}  // namespace droce::nic
