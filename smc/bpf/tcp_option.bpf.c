/* TCP option 254 (ExID 0xE2D4C3D9) on droce's SMC sockets: a cgroup-v2
 * sock_ops program that writes the option into the SYN and SYN-ACK and
 * records whether the peer's SYN / SYN-ACK carried it, as Linux 6.1 does for
 * AF_SMC sockets (tcp_output.c smc_options_write, tcp_input.c
 * smc_parse_options; smc-v2-linux61.md B10). Header-option API of Linux 5.10+
 * (include/uapi/linux/bpf.h, BPF_SOCK_OPS_*_HDR_OPT_*).
 *
 * Only sockets that droce marked (DROCE_SMC_SK_WANT in their socket storage,
 * set before connect() or listen()) are touched; every other socket of the
 * cgroup passes through unchanged. Built with clang -target bpf. */
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

#include "tcp_option.h"

#define SOL_TCP 6
#define TCP_SAVE_SYN 27 /* linux/tcp.h: keep the SYN for the passive side's check */
#define TCPHDR_SYN 0x02
#define TCPHDR_ACK 0x10

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* Per-socket state. BPF_F_CLONE: a connection accepted from a marked
 * listener starts with the listener's state (DROCE_SMC_SK_WANT). */
struct {
  __uint(type, BPF_MAP_TYPE_SK_STORAGE);
  __uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);
  __type(key, int);
  __type(value, struct droce_smc_sk);
} droce_smc_sk SEC(".maps");

static const __u8 kOption[DROCE_SMC_OPT_LEN] = {DROCE_SMC_OPT_KIND, DROCE_SMC_OPT_LEN, 0xE2, 0xD4, 0xC3, 0xD9};

/* Whether the SYN (flags BPF_LOAD_HDR_OPT_TCP_SYN) or the packet in
 * skb_data (flags 0) carries the option. bpf_load_hdr_opt matches kind 254
 * with the 4-byte ExID (kind-length 6 says the magic is 4 bytes). */
static __always_inline int has_option(struct bpf_sock_ops *skops, __u64 flags) {
  __u8 opt[40] = {DROCE_SMC_OPT_KIND, DROCE_SMC_OPT_LEN, 0xE2, 0xD4, 0xC3, 0xD9};
  return bpf_load_hdr_opt(skops, opt, sizeof(opt), flags) >= DROCE_SMC_OPT_LEN;
}

static __always_inline struct droce_smc_sk *marked(struct bpf_sock_ops *skops) {
  struct bpf_sock *sk = skops->sk;
  if (!sk) return 0;
  struct droce_smc_sk *st = bpf_sk_storage_get(&droce_smc_sk, sk, 0, 0);
  if (!st || !(st->flags & DROCE_SMC_SK_WANT)) return 0;
  return st;
}

/* Which outgoing packets carry the option: the SYN of a marked connecting
 * socket, and the SYN-ACK of a marked listener only when the SYN carried it
 * and no SYN cookie is sent (Linux: ireq->smc_ok, cleared under cookies). */
static __always_inline int wants_option(struct bpf_sock_ops *skops) {
  const __u32 f = skops->skb_tcp_flags;
  if (!(f & TCPHDR_SYN)) return 0;
  if (!(f & TCPHDR_ACK)) return 1;
  if (skops->args[0]) return 0; /* want_cookie */
  return has_option(skops, BPF_LOAD_HDR_OPT_TCP_SYN);
}

/* After the handshake: record the peer's answer and stop being called for
 * every later packet. */
static __always_inline void record(struct bpf_sock_ops *skops, __u64 load_flags) {
  struct droce_smc_sk *st = marked(skops);
  if (!st) return;
  __u32 flags = st->flags | DROCE_SMC_SK_CHECKED;
  if (has_option(skops, load_flags)) flags |= DROCE_SMC_SK_PEER_SMC;
  st->flags = flags;
  bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags & ~BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG);
}

SEC("sockops")
int droce_smc_sockops(struct bpf_sock_ops *skops) {
  int one = 1;
  switch (skops->op) {
    case BPF_SOCK_OPS_TCP_CONNECT_CB:
      /* Before the SYN is built. */
      if (marked(skops)) {
        bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG);
      }
      break;
    case BPF_SOCK_OPS_TCP_LISTEN_CB:
      /* SYN-ACKs are written with the listener's flags; the SYN is kept
       * so that the accepted socket can look at it once established. */
      if (marked(skops)) {
        bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG);
        bpf_setsockopt(skops, SOL_TCP, TCP_SAVE_SYN, &one, sizeof(one));
      }
      break;
    case BPF_SOCK_OPS_HDR_OPT_LEN_CB:
      if (wants_option(skops)) bpf_reserve_hdr_opt(skops, DROCE_SMC_OPT_LEN, 0);
      break;
    case BPF_SOCK_OPS_WRITE_HDR_OPT_CB:
      if (wants_option(skops)) bpf_store_hdr_opt(skops, kOption, sizeof(kOption), 0);
      break;
    case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
      record(skops, 0); /* skb_data: the SYN-ACK */
      break;
    case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
      record(skops, BPF_LOAD_HDR_OPT_TCP_SYN); /* the saved SYN */
      break;
    default:
      break;
  }
  return 1;
}
