// SMC-R settings of a process, from the environment (README "SMC-R"):
// which verbs device and GID carry SMC-R, the user EID, buffer sizes and the
// protocol's wait times (Linux 6.1 values by default: CLC_WAIT_TIME,
// SMC_LLC_WAIT_TIME, smc.wmem/rmem).
#pragma once

#include <cstdint>
#include <string>

#include "smc/wire/clc.h"
#include "smc/wire/types.h"

namespace droce::smc {

struct Config {
  std::string device;            // SMC_DEVICE: device names, comma separated; "" = every device (at most 2)
  int gid_index = 0;             // SMC_GID_INDEX: the RoCEv2 IPv4-mapped GID
  wire::Eid ueid{};              // SMC_UEID, space padded (default "DROCE")
  // 256 KiB: with droce's engine a window round trip costs tens of
  // microseconds, and 64 KiB rings left streams waiting on it (docs/benchmarks.md).
  uint32_t sndbuf_size = 262144;  // SMC_WMEM: per connection send buffer
  uint32_t rmb_size = 262144;     // SMC_RMEM: per connection RMB (16 KiB .. 512 KiB)
  int clc_wait_ms = 6000;        // SMC_CLC_WAIT_MS: one CLC message (CLC_WAIT_TIME)
  int llc_wait_ms = 2000;        // SMC_LLC_WAIT_MS: one LLC response (SMC_LLC_WAIT_TIME)
  int close_wait_ms = 5000;      // SMC_CLOSE_WAIT_MS: peer's close after ours, then give up
  int lgr_idle_ms = 600000;      // SMC_LGR_IDLE_MS: an unused link group lives this long
  // Longer than droce's engine thread stands aside after an application's
  // last poll (200 us): a waiter that stops polling sooner leaves nobody
  // driving the engine until then (docs/benchmarks.md, "SMC-R").
  int busy_poll_us = 500;        // SMC_BUSY_POLL_US: spin on the CQ before sleeping
  int testlink_ms = 30000;       // SMC_TESTLINK_MS: TEST LINK after this long without receives
                                 // (smcr_testlink_time); 0: never
  // SMC_CAPABILITY "tcp-option" (default): TCP option 254 through the
  // sock_ops program of smc/tcp_option.h when the process may load it (root,
  // cgroup v2), as Linux: a client proposes only when the SYN-ACK carried
  // the option, a server reads a Proposal only when the SYN did. Where it
  // cannot be loaded, and with "local" or "peek", capability_local says how.
  bool capability_tcp_option = true;
  // How a client knows the server speaks SMC-R before it sends a Proposal
  // without TCP option 254 ("peek mode"). "local": to a
  // loopback address only when a droce SMC-R listener of this network
  // namespace has registered the port (Runtime::register_listener), so a
  // plain TCP server never reads a Proposal; other destinations are
  // proposed to. "peek": always propose (a plain server then reads the
  // Proposal as data).
  bool capability_local = true;
  int tcp_gone_grace_ms = 1000;  // the peer's TCP ended while SMC-R was open: wait this long for
                                 // its close over SMC-R before aborting
  bool v1 = false;               // SMC_VERSIONS contains 1: offer / accept SMC-R v1
  bool v2 = true;                // SMC_VERSIONS contains 2 (default "2")
  uint8_t mtu = 0;               // SMC_MTU: IB MTU enum cap (0: the port's active MTU)
};

// Reads the environment. A bad value leaves the default and sets *error to a
// message naming the variable (the caller decides whether to refuse).
Config config_from_env(std::string* error);

// Linux's buffer rule: sizes are powers of two between 16 KiB and 512 KiB.
uint32_t round_buffer_size(uint32_t bytes);

}  // namespace droce::smc
