// The verbs device SMC-R runs on (the role of Linux 6.1 smc_ib.c): opened by
// name through the public ibv_* API only, its RoCEv2 IPv4-mapped GID, active
// MTU and async events. One per Runtime.
#pragma once

#include <infiniband/verbs.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "smc/wire/types.h"

namespace droce::smc {

struct IbDevice {
  ibv_context* ctx = nullptr;
  std::string name;
  uint8_t port = 1;
  int gid_index = 0;
  wire::Gid gid{};
  uint32_t ipv4 = 0;           // inside the GID (host order)
  uint8_t active_mtu = 0;      // IB MTU enum of the port
  wire::Mac mac{};             // advertised in CLC/LLC (see open_device)
  std::atomic<bool> fatal{false};  // IBV_EVENT_DEVICE_FATAL seen

  IbDevice() = default;
  IbDevice(const IbDevice&) = delete;
  IbDevice& operator=(const IbDevice&) = delete;
  ~IbDevice();
  bool port_active();
};

// The names of every verbs device, in ibv_get_device_list order.
std::vector<std::string> device_names(std::string* err);

// Opens `name` ("" = the first device) and checks that gid_index holds an
// IPv4-mapped RoCEv2 GID. A port that is down is fine (it may come up);
// handshakes check port_active(). False with *err saying why.
bool open_device(const std::string& name, int gid_index, IbDevice* dev, std::string* err);

// QP transitions with the attributes Linux 6.1 uses (smc_ib.c, B8).
bool qp_to_init(ibv_qp* qp, uint8_t port, std::string* err);
bool qp_to_rtr(ibv_qp* qp, uint8_t port, int gid_index, const wire::Gid& dgid, uint32_t dest_qpn,
               uint32_t rq_psn, uint8_t mtu, std::string* err);
bool qp_to_rts(ibv_qp* qp, uint32_t sq_psn, std::string* err);
bool qp_to_err(ibv_qp* qp);

}  // namespace droce::smc
