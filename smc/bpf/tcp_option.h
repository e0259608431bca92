/* What smc/bpf/tcp_option.bpf.c and droce's loader (smc/tcp_option.cc) share:
 * the per-socket state in the BPF socket storage map, and the option itself
 * (smc-v2-linux61.md B10: TCP experimental option kind 254, length 6, ExID
 * 0xE2D4C3D9, as Linux's smc_parse_options expects it). C, for both sides. */
#ifndef DROCE_SMC_BPF_TCP_OPTION_H
#define DROCE_SMC_BPF_TCP_OPTION_H

/* The socket storage map's name in the object (the loader looks it up). */
#define DROCE_SMC_SK_MAP "droce_smc_sk"

enum {
  DROCE_SMC_OPT_KIND = 254, /* TCPOPT_EXP (RFC 6994) */
  DROCE_SMC_OPT_LEN = 6,    /* kind, length, 4-byte ExID */
};

/* droce_smc_sk.flags */
enum {
  /* Set by droce on its SMC sockets before connect() or listen(): only
   * these carry the option (never another socket of the cgroup). */
  DROCE_SMC_SK_WANT = 1u << 0,
  /* Set by the program once the handshake is done: the peer's SYN-ACK
   * (active side) or SYN (passive side) has been looked at. */
  DROCE_SMC_SK_CHECKED = 1u << 1,
  /* ... and it carried the option. */
  DROCE_SMC_SK_PEER_SMC = 1u << 2,
};

struct droce_smc_sk {
  unsigned int flags;
};

#endif
