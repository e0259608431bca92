// The CLC handshake on a connected TCP socket (RFC 7609 section 3.5; Linux
// 6.1 af_smc.c __smc_connect / smc_listen_work, smc_clc.c): Proposal,
// Accept, Confirm or Decline, first-contact link setup with CONFIRM LINK and
// ADD LINK, CONFIRM RKEY for new buffers in an existing link group.
//
// Capability: between droce peers the server peeks at the first bytes of an
// accepted connection (a Proposal starts SMC, anything else is plain TCP).
// `peer_signalled` lets a caller gate on TCP option 254 instead: false means
// the peer did not signal SMC, so no CLC is exchanged (0x03010000), as Linux.
#pragma once

#include <cstdint>

#include "smc/core.h"

namespace droce::smc {

class Runtime;

struct ClcOutcome {
  bool smc = false;              // SMC-R in use: conn is set (owner reference)
  Connection* conn = nullptr;
  uint32_t fallback_reason = 0;  // when !smc and error == 0: Linux decline code (local reason)
  uint32_t peer_diagnosis = 0;   // the peer's Decline code, when it declined
  int error = 0;                 // errno: the TCP connection is unusable (malformed CLC, reset)
  uint8_t version = 0;           // SMC-R version in use
  bool first_contact = false;
};

// Client side, after connect() on tcp_fd succeeded.
ClcOutcome clc_connect(Runtime& rt, int tcp_fd);
// Server side, after accept(); peek mode unless peer_signalled says otherwise.
ClcOutcome clc_accept(Runtime& rt, int tcp_fd, bool peer_signalled = true);

// Linux's wording for a fallback reason: decline_reason_name, plus the
// peek-mode reasons.
const char* fallback_reason_text(uint32_t reason);

}  // namespace droce::smc
