// Counters a user reads from outside the process: DPDK telemetry commands
// over every Device of the process (DPDK's telemetry library, v2 socket
// <runtime dir>/dpdk_telemetry.v2; Debian's dpdk-telemetry.py, droce-stat).
//
//   /droce/ports      {"<port id>": {device, ethdev, mac, ipv4, link_up, removed,
//                      qps, engine: {...}, port: {...}, parse_drops: {...},
//                      port_drops: {...}[, faults: {...}]}}
//   /droce/qps        {"<port id>": {device, count, qpns: [...]}}
//   /droce/qp,<qpn>   {"<port id>": {device, qpn, type, state, dest_qpn,
//                      peer_ipv4, counters: {...}}} for every device that has
//                      a QP of that number; null when none has
//
// Counter names are nic/counters.h's. The callbacks run on DPDK's telemetry
// thread and read each device through Device::stats() / qp_stats(), which
// take the engine lock as any control command does; the engine's hot path
// is untouched.
#pragma once

namespace droce::nic {

class Device;

// Registers the commands with DPDK; eal_init() calls it before rte_eal_init
// starts the telemetry thread (DPDK's own libraries register theirs in
// constructors, before it too), so the thread sees the table as written.
// Idempotent.
void telemetry_register_commands();

// Device::create and ~Device: the commands list the devices alive.
void telemetry_add(Device* dev);
void telemetry_remove(Device* dev);

// The most QPNs /droce/qps lists per device (DPDK's RTE_TEL_MAX_ARRAY_ENTRIES);
// "count" always says how many there are.
inline constexpr unsigned kTelemetryMaxQpns = 512;

}  // namespace droce::nic
