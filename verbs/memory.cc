// Protection domains, memory regions and address handles (IBTA vol. 1,
// 11.2.2-11.2.3 and 10.6), with libibverbs's return conventions; address
// handles from a received GRH (RoCEv2 IPv4, annex A17.4.5.1) as rdma-core does.
#include <netinet/ip.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "nic/base/clock.h"
#include "verbs/internal.h"

namespace droce::verbs {
namespace {

constexpr unsigned kMrAccessKnown = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
                                    IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC |
                                    IBV_ACCESS_MW_BIND | IBV_ACCESS_ZERO_BASED;
static_assert(unsigned(IBV_ACCESS_LOCAL_WRITE) == unsigned(nic::kAccessLocalWrite));
static_assert(unsigned(IBV_ACCESS_REMOTE_WRITE) == unsigned(nic::kAccessRemoteWrite));
static_assert(unsigned(IBV_ACCESS_REMOTE_READ) == unsigned(nic::kAccessRemoteRead));
static_assert(unsigned(IBV_ACCESS_REMOTE_ATOMIC) == unsigned(nic::kAccessRemoteAtomic));
static_assert(unsigned(IBV_ACCESS_MW_BIND) == unsigned(nic::kAccessMwBind));
static_assert(unsigned(IBV_ACCESS_ZERO_BASED) == unsigned(nic::kAccessZeroBased));

// The kernel pins the pages of a region and fails with EFAULT when some are
// not mapped; droce checks the same (msync with MS_ASYNC only looks the range up).
bool range_mapped(const void* addr, size_t length) {
  if (length == 0) return true;
  const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
  const uintptr_t a = reinterpret_cast<uintptr_t>(addr);
  if (a + length < a) return false;
  const uintptr_t start = a & ~(page - 1);
  const uintptr_t end = (a + length + page - 1) & ~(page - 1);
  return msync(reinterpret_cast<void*>(start), end - start, MS_ASYNC) == 0 || errno != ENOMEM;
}

// Checks and normalises access flags as the kernel does for a user MR:
// optional flags (relaxed ordering ...) and the hugetlb hint are dropped.
int mr_access(unsigned in, uint32_t* out) {
  if (in & IBV_ACCESS_ON_DEMAND) return EOPNOTSUPP;
  unsigned a = in & ~unsigned(IBV_ACCESS_OPTIONAL_RANGE) & ~unsigned(IBV_ACCESS_HUGETLB);
  if (a & ~kMrAccessKnown) return EINVAL;
  if ((a & (IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_ATOMIC)) && !(a & IBV_ACCESS_LOCAL_WRITE)) {
    return EINVAL;  // IBTA 10.6.3.1
  }
  *out = a;
  return 0;
}

ibv_mr* reg_mr(ibv_pd* pd, void* addr, size_t length, uint64_t iova, unsigned access) {
  uint32_t acc = 0;
  if (int err = mr_access(access, &acc); err != 0) {
    return refuse_null("ibv_reg_mr", err,
                       err == EOPNOTSUPP
                           ? "on-demand paging is not supported"
                           : "bad access flags (remote write/atomic need local write)");
  }
  if (!range_mapped(addr, length)) {
    return refuse_null("ibv_reg_mr", EFAULT, "the range is not mapped memory");
  }
  nic::Device* dev = dev_of(pd->context);
  auto key = dev->reg_mr(pd_of(pd)->handle, addr, iova, length, acc);
  if (!key) return fail_null<ibv_mr>("ibv_reg_mr", key.status());
  auto* m = new Mr;
  std::memset(&m->mr, 0, sizeof(m->mr));
  m->mr.context = pd->context;
  m->mr.pd = pd;
  m->mr.addr = addr;
  m->mr.length = length;
  m->mr.handle = key.value();
  m->mr.lkey = key.value();
  m->mr.rkey = key.value();
  m->access = acc;
  return &m->mr;
}

int rereg_mr(ibv_mr* mr, int flags, ibv_pd* pd, void* addr, size_t length, int access) {
  constexpr int kSupported =
      IBV_REREG_MR_CHANGE_TRANSLATION | IBV_REREG_MR_CHANGE_PD | IBV_REREG_MR_CHANGE_ACCESS;
  auto* m = reinterpret_cast<Mr*>(mr);
  if ((flags & ~kSupported) || flags == 0 ||
      ((flags & IBV_REREG_MR_CHANGE_TRANSLATION) && (addr == nullptr || length == 0)) ||
      (access != 0 && !(flags & IBV_REREG_MR_CHANGE_ACCESS)) ||
      ((flags & IBV_REREG_MR_CHANGE_PD) && (pd == nullptr || pd->context != mr->context))) {
    errno = EINVAL;
    return IBV_REREG_MR_ERR_INPUT;
  }
  ibv_pd* new_pd = (flags & IBV_REREG_MR_CHANGE_PD) ? pd : mr->pd;
  void* new_addr = (flags & IBV_REREG_MR_CHANGE_TRANSLATION) ? addr : mr->addr;
  size_t new_len = (flags & IBV_REREG_MR_CHANGE_TRANSLATION) ? length : mr->length;
  uint32_t new_access = m->access;
  if (flags & IBV_REREG_MR_CHANGE_ACCESS) {
    if (int err = mr_access(unsigned(access), &new_access); err != 0) {
      errno = err;
      return IBV_REREG_MR_ERR_INPUT;
    }
  }
  if (!range_mapped(new_addr, new_len)) {
    errno = EFAULT;
    return IBV_REREG_MR_ERR_INPUT;
  }
  // Register the new translation first, so a failure leaves the old MR valid.
  nic::Device* dev = dev_of(mr->context);
  auto key = dev->reg_mr(pd_of(new_pd)->handle, new_addr, reinterpret_cast<uintptr_t>(new_addr),
                         new_len, new_access);
  if (!key) {
    errno = fail("ibv_rereg_mr", key.status());
    return IBV_REREG_MR_ERR_INPUT;
  }
  Status st = dev->dereg_mr(mr->lkey);
  if (!st) {
    (void)dev->dereg_mr(key.value());
    errno = fail("ibv_rereg_mr", st);
    return IBV_REREG_MR_ERR_INPUT;
  }
  mr->pd = new_pd;
  mr->addr = new_addr;
  mr->length = new_len;
  mr->handle = mr->lkey = mr->rkey = key.value();
  m->access = new_access;
  return 0;
}

ibv_ah* create_ah(ibv_pd* pd, ibv_ah_attr* attr) {
  // RoCE needs the GRH: the destination is a GID (IPv4-mapped for RoCEv2 over IPv4).
  if (!attr->is_global || attr->port_num != 1 || attr->grh.sgid_index != 0) {
    return refuse_null("ibv_create_ah", EINVAL,
                       "RoCE needs is_global = 1 (a GID), port_num 1 and sgid_index 0");
  }
  nic::AddressVector av;
  std::memcpy(av.dgid, attr->grh.dgid.raw, 16);
  av.sgid_index = attr->grh.sgid_index;
  av.hop_limit = attr->grh.hop_limit;
  av.traffic_class = attr->grh.traffic_class;
  av.flow_label = attr->grh.flow_label;
  av.sl = attr->sl;
  av.port_num = attr->port_num;
  auto h = dev_of(pd->context)->create_ah(pd_of(pd)->handle, av);
  if (!h) return fail_null<ibv_ah>("ibv_create_ah", h.status());
  auto* a = new Ah;
  std::memset(&a->ah, 0, sizeof(a->ah));
  a->ah.context = pd->context;
  a->ah.pd = pd;
  a->ah.handle = h.value();
  a->handle = h.value();
  return &a->ah;
}

// IPv4 header checksum over 20 bytes (ones' complement sum).
uint16_t ipv4_checksum(const uint8_t* h) {
  uint32_t sum = 0;
  for (int i = 0; i < 20; i += 2) {
    if (i == 10) continue;  // the checksum field itself
    sum += uint32_t(h[i]) << 8 | h[i + 1];
  }
  while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
  return uint16_t(~sum);
}

int init_ah_from_wc(ibv_context* context, uint8_t port_num, ibv_wc* wc, ibv_grh* grh,
                    ibv_ah_attr* ah) {
  std::memset(ah, 0, sizeof(*ah));
  ah->dlid = wc->slid;
  ah->sl = wc->sl;
  ah->src_path_bits = wc->dlid_path_bits;
  ah->port_num = port_num;
  if (!(wc->wc_flags & IBV_WC_GRH)) return 0;
  ah->is_global = 1;
  // RoCEv2 over IPv4 puts 20 unused bytes, then the IPv4 header, where an
  // IPv6 GRH would be (rxe, and droce). Recognised by version and checksum.
  const auto* raw = reinterpret_cast<const uint8_t*>(grh);
  const uint8_t* ip4 = raw + 20;
  const bool v6 = (raw[0] >> 4) == 6;
  const bool v4 = (ip4[0] >> 4) == 4 && (ip4[0] & 0xF) == 5 &&
                  (!v6 || ipv4_checksum(ip4) == (uint16_t(ip4[10]) << 8 | ip4[11]));
  if (!v4) {
    errno = v6 ? EINVAL : EPROTONOSUPPORT;  // droce has IPv4 GIDs only
    return -1;
  }
  // The destination address must be this port's GID (index 0).
  ibv_gid own;
  if (ibv_query_gid(context, port_num, 0, &own) != 0) return -1;
  if (std::memcmp(own.raw + 12, ip4 + 16, 4) != 0) {
    errno = ENOENT;
    return -1;
  }
  std::memset(ah->grh.dgid.raw, 0, 10);
  ah->grh.dgid.raw[10] = ah->grh.dgid.raw[11] = 0xFF;
  std::memcpy(ah->grh.dgid.raw + 12, ip4 + 12, 4);
  ah->grh.sgid_index = 0;
  ah->grh.hop_limit = ip4[8];
  ah->grh.traffic_class = ip4[1];
  ah->grh.flow_label = 0;
  return 0;
}

int resolve_eth_l2(ibv_context* context, ibv_ah_attr* attr, uint8_t mac[6], uint16_t* vid) {
  ibv_gid sgid;
  if (ibv_query_gid(context, attr->port_num, attr->grh.sgid_index, &sgid) != 0) return -EINVAL;
  uint32_t ip;
  if (!nic::gid_to_ipv4(attr->grh.dgid.raw, &ip)) return -EINVAL;  // IPv6 is not supported
  Context* c = ctx_of(context);
  // rdma-core waits up to 3 s for the kernel's neighbour table; droce asks its ARP.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  for (;;) {
    wire::MacAddr m{};
    const nic::ArpResult r = c->dev->resolve_neighbor(ip, &m);
    if (r == nic::ArpResult::kResolved) {
      std::memcpy(mac, m.data(), 6);
      if (vid != nullptr) *vid = 0xFFFF;  // no VLAN
      return 0;
    }
    if (r == nic::ArpResult::kFailed || std::chrono::steady_clock::now() > deadline) {
      return -EHOSTUNREACH;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

}  // namespace
}  // namespace droce::verbs

using namespace droce::verbs;  // NOLINT: the C entry points below

extern "C" {

ibv_pd* ibv_alloc_pd(ibv_context* context) {
  return guard(
      [&]() -> ibv_pd* {
        auto h = dev_of(context)->alloc_pd();
        if (!h) return fail_null<ibv_pd>("ibv_alloc_pd", h.status());
        auto* p = new Pd;
        std::memset(&p->pd, 0, sizeof(p->pd));
        p->pd.context = context;
        p->pd.handle = h.value();
        p->handle = h.value();
        return &p->pd;
      },
      static_cast<ibv_pd*>(nullptr));
}

int ibv_dealloc_pd(ibv_pd* pd) {
  return guard(
      [&] {
        Status st = dev_of(pd->context)->dealloc_pd(pd_of(pd)->handle);
        if (!st) return fail("ibv_dealloc_pd", st);
        delete pd_of(pd);
        return 0;
      },
      ENOMEM);
}

ibv_mr* ibv_reg_mr_iova2(ibv_pd* pd, void* addr, size_t length, uint64_t iova,
                         unsigned int access) {
  return guard([&] { return reg_mr(pd, addr, length, iova, access); },
               static_cast<ibv_mr*>(nullptr));
}

ibv_mr* ibv_reg_mr(ibv_pd* pd, void* addr, size_t length, int access) {
  return ibv_reg_mr_iova2(pd, addr, length, reinterpret_cast<uintptr_t>(addr), unsigned(access));
}

ibv_mr* ibv_reg_mr_iova(ibv_pd* pd, void* addr, size_t length, uint64_t iova, int access) {
  return ibv_reg_mr_iova2(pd, addr, length, iova, unsigned(access));
}

ibv_mr* ibv_reg_dmabuf_mr(ibv_pd*, uint64_t, size_t, uint64_t, int, int) {
  errno = EOPNOTSUPP;  // no device memory behind droce
  return nullptr;
}

int ibv_rereg_mr(ibv_mr* mr, int flags, ibv_pd* pd, void* addr, size_t length, int access) {
  return guard([&] { return rereg_mr(mr, flags, pd, addr, length, access); },
               int(IBV_REREG_MR_ERR_INPUT));
}

int ibv_dereg_mr(ibv_mr* mr) {
  return guard(
      [&] {
        Status st = dev_of(mr->context)->dereg_mr(mr->lkey);
        if (!st) return fail("ibv_dereg_mr", st);
        delete reinterpret_cast<Mr*>(mr);
        return 0;
      },
      ENOMEM);
}

ibv_ah* ibv_create_ah(ibv_pd* pd, ibv_ah_attr* attr) {
  return guard([&] { return create_ah(pd, attr); }, static_cast<ibv_ah*>(nullptr));
}

int ibv_destroy_ah(ibv_ah* ah) {
  return guard(
      [&] {
        auto* a = reinterpret_cast<Ah*>(ah);
        Status st = dev_of(ah->context)->destroy_ah(a->handle);
        if (!st) return fail("ibv_destroy_ah", st);
        delete a;
        return 0;
      },
      ENOMEM);
}

int ibv_init_ah_from_wc(ibv_context* context, uint8_t port_num, ibv_wc* wc, ibv_grh* grh,
                        ibv_ah_attr* ah_attr) {
  return guard([&] { return init_ah_from_wc(context, port_num, wc, grh, ah_attr); }, -1);
}

ibv_ah* ibv_create_ah_from_wc(ibv_pd* pd, ibv_wc* wc, ibv_grh* grh, uint8_t port_num) {
  ibv_ah_attr attr;
  if (ibv_init_ah_from_wc(pd->context, port_num, wc, grh, &attr) != 0) return nullptr;
  return ibv_create_ah(pd, &attr);
}

int ibv_resolve_eth_l2_from_gid(ibv_context* context, ibv_ah_attr* attr, uint8_t eth_mac[6],
                                uint16_t* vid) {
  return guard([&] { return resolve_eth_l2(context, attr, eth_mac, vid); }, -ENOMEM);
}

}  // extern "C"
