// DPDK telemetry commands for droce's counters (nic/telemetry.h): a registry
// of the process's devices and the three callbacks.
#include "nic/telemetry.h"

#include <rte_telemetry.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "nic/config.h"
#include "nic/counters.h"
#include "nic/device.h"

namespace droce::nic {
namespace {

// Every live Device. DPDK's callbacks carry no context pointer, so the
// registry is per process, like the EAL it serves.
struct Registry {
  // Guards devices, and is held while a callback reads them: ~Device removes
  // its device (waiting out a read in progress) before it tears anything down.
  // Never taken under an engine lock.
  std::mutex mu;
  std::vector<Device*> devices;
  std::once_flag commands_once;
};

Registry& registry() {
  static Registry* r =
      new Registry;  // never destroyed: the telemetry thread outlives exit handlers
  return *r;
}

std::string port_key(uint16_t port_id) { return std::to_string(port_id); }

std::string format_mac(const wire::MacAddr& m) {
  char buf[18];
  std::snprintf(buf, sizeof(buf), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4],
                m[5]);
  return buf;
}

// A dict of counters; the caller adds it to its parent (which frees it).
template <typename Counters, size_t N>
rte_tel_data* counters_dict(const Counters& c, const CounterName<Counters> (&names)[N]) {
  rte_tel_data* d = rte_tel_data_alloc();
  if (d == nullptr) return nullptr;
  rte_tel_data_start_dict(d);
  for (const auto& n : names) rte_tel_data_add_dict_u64(d, n.name, c.*(n.field));
  return d;
}

void add_child(rte_tel_data* parent, const char* name, rte_tel_data* child) {
  if (child != nullptr && rte_tel_data_add_dict_container(parent, name, child, 0) != 0) {
    rte_tel_data_free(child);
  }
}

rte_tel_data* port_dict(const DeviceStats& s) {
  rte_tel_data* d = rte_tel_data_alloc();
  if (d == nullptr) return nullptr;
  rte_tel_data_start_dict(d);
  rte_tel_data_add_dict_string(d, "device", s.name.c_str());
  rte_tel_data_add_dict_string(d, "ethdev", s.ethdev.c_str());
  rte_tel_data_add_dict_u64(d, "port_id", s.port_id);
  rte_tel_data_add_dict_string(d, "mac", format_mac(s.mac).c_str());
  rte_tel_data_add_dict_string(d, "ipv4", format_ipv4(s.ipv4).c_str());
  rte_tel_data_add_dict_u64(d, "link_up", s.link_up ? 1 : 0);
  rte_tel_data_add_dict_u64(d, "removed", s.removed ? 1 : 0);
  rte_tel_data_add_dict_u64(d, "qps", s.qps);
  rte_tel_data_add_dict_int(d, "engine_lcore", s.engine_lcore);
  add_child(d, "engine", counters_dict(s.engine, kEngineCounterNames));
  add_child(d, "port", counters_dict(s.port, kPortCounterNames));
  if (rte_tel_data* p = rte_tel_data_alloc()) {
    rte_tel_data_start_dict(p);
    for (size_t i = 1; i < wire::kParseErrorCount; ++i) {
      rte_tel_data_add_dict_u64(p, parse_drop_key(wire::ParseError(i)), s.port.parse_drops[i]);
    }
    add_child(d, "parse_drops", p);
  }
  if (rte_tel_data* p = rte_tel_data_alloc()) {
    rte_tel_data_start_dict(p);
    for (size_t i = 0; i < kPortDropCount; ++i) {
      rte_tel_data_add_dict_u64(p, port_drop_key(PortDrop(i)), s.port.drops[i]);
    }
    add_child(d, "port_drops", p);
  }
  if (s.faults) add_child(d, "faults", counters_dict(s.fault_counters, kFaultCounterNames));
  add_child(d, "gsi", counters_dict(s.gsi, kGsiCounterNames));
  return d;
}

int cmd_ports(const char*, const char*, rte_tel_data* out) {
  rte_tel_data_start_dict(out);
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  for (Device* dev : r.devices) {
    const DeviceStats s = dev->stats();
    add_child(out, port_key(s.port_id).c_str(), port_dict(s));
  }
  return 0;
}

int cmd_qps(const char*, const char*, rte_tel_data* out) {
  rte_tel_data_start_dict(out);
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  for (Device* dev : r.devices) {
    const std::vector<uint32_t> qpns = dev->qp_numbers();
    rte_tel_data* d = rte_tel_data_alloc();
    if (d == nullptr) return -ENOMEM;
    rte_tel_data_start_dict(d);
    rte_tel_data_add_dict_string(d, "device", dev->name().c_str());
    rte_tel_data_add_dict_u64(d, "count", qpns.size());
    if (rte_tel_data* a = rte_tel_data_alloc()) {
      rte_tel_data_start_array(a, RTE_TEL_U64_VAL);
      const size_t n = std::min<size_t>(qpns.size(), kTelemetryMaxQpns);
      for (size_t i = 0; i < n; ++i) rte_tel_data_add_array_u64(a, qpns[i]);
      add_child(d, "qpns", a);
    }
    add_child(out, port_key(dev->port().port_id()).c_str(), d);
  }
  return 0;
}

// params: the QPN, decimal or 0x-prefixed hex.
int cmd_qp(const char*, const char* params, rte_tel_data* out) {
  if (params == nullptr || *params == '\0') return -EINVAL;
  char* end = nullptr;
  errno = 0;
  const unsigned long qpn = std::strtoul(params, &end, 0);
  if (errno != 0 || end == params || *end != '\0' || qpn > 0xFFFFFF) return -EINVAL;
  rte_tel_data_start_dict(out);
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  int found = 0;
  for (Device* dev : r.devices) {
    QpStats q;
    if (!dev->qp_stats(uint32_t(qpn), &q)) continue;
    rte_tel_data* d = rte_tel_data_alloc();
    if (d == nullptr) return -ENOMEM;
    rte_tel_data_start_dict(d);
    rte_tel_data_add_dict_string(d, "device", dev->name().c_str());
    rte_tel_data_add_dict_u64(d, "qpn", q.qpn);
    rte_tel_data_add_dict_string(d, "type", qp_type_name(q.type));
    rte_tel_data_add_dict_string(d, "state", qp_state_name(q.state));
    rte_tel_data_add_dict_u64(d, "dest_qpn", q.dest_qpn);
    rte_tel_data_add_dict_string(d, "peer_ipv4", format_ipv4(q.peer_ip).c_str());
    add_child(d, "counters", counters_dict(q.counters, kQpCounterNames));
    add_child(out, port_key(dev->port().port_id()).c_str(), d);
    ++found;
  }
  return found > 0 ? 0 : -ENOENT;
}

void register_commands_once() {
  rte_telemetry_register_cmd("/droce/ports", cmd_ports,
                             "droce devices: port, engine and drop counters. No parameters");
  rte_telemetry_register_cmd("/droce/qps", cmd_qps,
                             "droce devices: the numbers of their QPs. No parameters");
  rte_telemetry_register_cmd("/droce/qp", cmd_qp,
                             "One QP's state and counters, on every droce device that has "
                             "it. Parameters: the QP number");
}

}  // namespace

void telemetry_register_commands() {
  std::call_once(registry().commands_once, register_commands_once);
}

void telemetry_add(Device* dev) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.devices.push_back(dev);
}

void telemetry_remove(Device* dev) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.devices.erase(std::remove(r.devices.begin(), r.devices.end(), dev), r.devices.end());
}

}  // namespace droce::nic
