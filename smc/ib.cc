// Verbs device and QP transitions for SMC-R links (see ib.h).
#include "smc/ib.h"

#include <cstring>

namespace droce::smc {

IbDevice::~IbDevice() {
  if (ctx != nullptr) ibv_close_device(ctx);
}

bool IbDevice::port_active() {
  ibv_port_attr pa{};
  return ctx != nullptr && !fatal.load(std::memory_order_acquire) &&
         ibv_query_port(ctx, port, &pa) == 0 && pa.state == IBV_PORT_ACTIVE;
}

std::vector<std::string> device_names(std::string* err) {
  std::vector<std::string> names;
  int n = 0;
  ibv_device** list = ibv_get_device_list(&n);
  if (list == nullptr) {
    *err = "no RDMA device (ibv_get_device_list: " + std::string(std::strerror(errno)) + ")";
    return names;
  }
  for (int i = 0; i < n; ++i) names.emplace_back(ibv_get_device_name(list[i]));
  ibv_free_device_list(list);
  if (names.empty()) *err = "no RDMA device";
  return names;
}

bool open_device(const std::string& name, int gid_index, IbDevice* dev, std::string* err) {
  int n = 0;
  ibv_device** list = ibv_get_device_list(&n);
  if (list == nullptr || n == 0) {
    *err = "no RDMA device (ibv_get_device_list: " + std::string(std::strerror(errno)) + ")";
    if (list != nullptr) ibv_free_device_list(list);
    return false;
  }
  ibv_device* pick = nullptr;
  for (int i = 0; i < n && pick == nullptr; ++i) {
    if (name.empty() || name == ibv_get_device_name(list[i])) pick = list[i];
  }
  if (pick == nullptr) {
    *err = "SMC_DEVICE: no RDMA device named '" + name + "'";
    ibv_free_device_list(list);
    return false;
  }
  dev->name = ibv_get_device_name(pick);
  dev->ctx = ibv_open_device(pick);
  ibv_free_device_list(list);
  if (dev->ctx == nullptr) {
    *err = "ibv_open_device(" + dev->name + "): " + std::strerror(errno);
    return false;
  }
  ibv_port_attr pa{};
  if (ibv_query_port(dev->ctx, dev->port, &pa) != 0) {
    *err = "ibv_query_port(" + dev->name + "): " + std::strerror(errno);
    return false;
  }
  // A port that is down now (a memif peer not started yet) may come up
  // later: the handshake checks port_active() per connection.
  if (pa.link_layer != IBV_LINK_LAYER_ETHERNET) {
    *err = dev->name + ": not a RoCE device";
    return false;
  }
  dev->active_mtu = uint8_t(pa.active_mtu);
  ibv_gid gid{};
  if (ibv_query_gid(dev->ctx, dev->port, gid_index, &gid) != 0) {
    *err = dev->name + ": ibv_query_gid(" + std::to_string(gid_index) + "): " + std::strerror(errno);
    return false;
  }
  std::memcpy(dev->gid.data(), gid.raw, 16);
  dev->gid_index = gid_index;
  if (!wire::gid_to_ipv4(dev->gid, &dev->ipv4)) {
    *err = dev->name + ": GID index " + std::to_string(gid_index) +
           " is not an IPv4-mapped RoCEv2 GID (SMC_GID_INDEX)";
    return false;
  }
  // The port MAC from the node GUID when it is the MAC's EUI-64 (rxe and
  // droce make it so); otherwise a locally administered MAC from the IPv4
  // address. A Linux peer's rxe steers by IP, not by this MAC (B8).
  ibv_device_attr da{};
  const bool have_attr = ibv_query_device(dev->ctx, &da) == 0;
  uint8_t g[8];
  const uint64_t guid = have_attr ? be64toh(da.node_guid) : 0;
  for (int i = 0; i < 8; ++i) g[i] = uint8_t(guid >> (56 - 8 * i));
  if (have_attr && g[3] == 0xFF && g[4] == 0xFE) {
    dev->mac = {uint8_t(g[0] ^ 0x02), g[1], g[2], g[5], g[6], g[7]};
  } else {
    dev->mac = {0x02, 0x00, uint8_t(dev->ipv4 >> 24), uint8_t(dev->ipv4 >> 16),
                uint8_t(dev->ipv4 >> 8), uint8_t(dev->ipv4)};
  }
  return true;
}

bool qp_to_init(ibv_qp* qp, uint8_t port, std::string* err) {
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_INIT;
  a.pkey_index = 0;
  a.port_num = port;
  a.qp_access_flags = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE;
  const int rc = ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT |
                                           IBV_QP_ACCESS_FLAGS);
  if (rc != 0) *err = std::string("modify QP to INIT: ") + std::strerror(rc);
  return rc == 0;
}

bool qp_to_rtr(ibv_qp* qp, uint8_t port, int gid_index, const wire::Gid& dgid, uint32_t dest_qpn,
               uint32_t rq_psn, uint8_t mtu, std::string* err) {
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_RTR;
  a.path_mtu = ibv_mtu(mtu);
  a.dest_qp_num = dest_qpn;
  a.rq_psn = rq_psn;
  a.max_dest_rd_atomic = 1;
  a.min_rnr_timer = 5;  // 0.08 ms, as smc_ib_modify_qp_rtr
  a.ah_attr.is_global = 1;
  a.ah_attr.port_num = port;
  a.ah_attr.grh.sgid_index = uint8_t(gid_index);
  a.ah_attr.grh.hop_limit = 64;
  std::memcpy(a.ah_attr.grh.dgid.raw, dgid.data(), 16);
  const int rc = ibv_modify_qp(qp, &a,
                               IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
                                   IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER);
  if (rc != 0) *err = std::string("modify QP to RTR: ") + std::strerror(rc);
  return rc == 0;
}

bool qp_to_rts(ibv_qp* qp, uint32_t sq_psn, std::string* err) {
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_RTS;
  a.timeout = 15;    // 4.096 us << 15 = 134 ms, as smc_ib_modify_qp_rts
  a.retry_cnt = 7;
  a.rnr_retry = 7;   // infinite
  a.sq_psn = sq_psn;
  a.max_rd_atomic = 1;
  const int rc = ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
                                           IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC);
  if (rc != 0) *err = std::string("modify QP to RTS: ") + std::strerror(rc);
  return rc == 0;
}

bool qp_to_err(ibv_qp* qp) {
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_ERR;
  return ibv_modify_qp(qp, &a, IBV_QP_STATE) == 0;
}

}  // namespace droce::smc
