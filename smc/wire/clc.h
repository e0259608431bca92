// CLC (connection layer control) messages: the SMC-R handshake that runs over
// the TCP connection (RFC 7609 section 3.5; Linux 6.1 net/smc/smc_clc.h).
// Proposal, Accept, Confirm and Decline, versions 1 and 2, byte-exact with
// what Linux 6.1 sends and accepts (reference/smc-v2-linux61.md A4-A18, B1-B6).
// Logical structs in host order; encode_* / decode_* convert to and from the
// wire. All multi-byte wire fields are big-endian.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "smc/wire/types.h"

namespace droce::smc::wire {

inline constexpr std::array<uint8_t, 4> kEyecatcherSmcr{0xE2, 0xD4, 0xC3, 0xD9};  // "SMCR" in EBCDIC
inline constexpr std::array<uint8_t, 4> kEyecatcherSmcd{0xE2, 0xD4, 0xC3, 0xC4};  // "SMCD"

enum class ClcType : uint8_t { kProposal = 1, kAccept = 2, kConfirm = 3, kDecline = 4 };

// typev1 / typev2 in header byte 7 (bits 1-0 and 3-2).
enum class SmcType : uint8_t { kR = 0, kD = 1, kNone = 2, kBoth = 3 };

inline constexpr size_t kClcHeaderLen = 8;
inline constexpr size_t kClcTrailerLen = 4;
inline constexpr size_t kClcAcceptConfirmV1Len = 68;    // SMCR_CLC_ACCEPT_CONFIRM_LEN
inline constexpr size_t kClcAcceptConfirmV2Len = 108;   // SMCR_CLC_ACCEPT_CONFIRM_LEN_V2
inline constexpr size_t kClcAcceptV2FirstContactLen = 160;  // 104 + fce 36 + 16 reserved + trailer
inline constexpr size_t kClcConfirmV2FirstContactBase = 164;  // + 16 per GID
inline constexpr size_t kClcDeclineV1Len = 28;
inline constexpr size_t kClcDeclineV2Len = 44;
inline constexpr size_t kClcMaxEids = 8;          // SMC_CLC_MAX_UEID
inline constexpr size_t kClcMaxIpv6Prefixes = 8;  // SMC_CLC_MAX_V6_PREFIX
inline constexpr size_t kClcMaxConfirmGids = 8;   // Linux sends 1 or 2; droce accepts up to 8
inline constexpr size_t kClcV2ExtMaxOffset = 172;  // smc_clc_msg_prop_valid: v2_ext_offset bound
// Largest valid CLC message: a Proposal offering v1 and v2, R and D, with 8
// IPv6 prefixes, 8 EIDs and 8 ISM GIDs (40 + 40 + (8 + 17*8) + (40 + 32*8) +
// (48 + 10*8) + 4 = 652). A valid SMC-R Accept/Confirm is at most 164 + 16*8.
inline constexpr size_t kClcMaxLen = 652;

// Why a CLC message is not acceptable. Structural errors (everything but
// kOk) make Linux close the connection without a Decline (smc-v2-linux61 B2);
// droce does the same unless a handshake step says otherwise.
enum class ClcError : uint8_t {
  kOk = 0,
  kTruncated,    // fewer bytes than the fixed part or the header's length needs
  kEyecatcher,   // header eyecatcher neither SMCR nor SMCD
  kTrailer,      // trailer eyecatcher wrong
  kType,         // type not 1..4, or not the type the decoder was asked for, or an
                 // Accept/Confirm whose typev1 is not R (droce has no SMC-D)
  kVersion,      // version 0, or a layout the version cannot have
  kLength,       // header length disagrees with the layout (per-type rules of A14/B2)
  kLayout,       // offsets or counts out of bounds (iparea_offset > 40, v2_ext_offset 0 or > 172,
                 // eid_cnt > 8, IPv6 prefix count > 8, ism_gid_cnt > 8, gid_cnt > kClcMaxConfirmGids,
                 // an area that would reach into the trailer); and two checks Linux lacks:
                 // Accept/Confirm rmbe_size > kRmbeMaxSizeCode or mtu outside 1..5
};
const char* clc_error_name(ClcError e);

// The 8-byte common header (smc_clc_msg_hdr).
struct ClcHeader {
  ClcType type = ClcType::kProposal;
  uint16_t length = 0;     // whole message, header and trailer included
  uint8_t version = 2;     // bits 7-4 of byte 7
  SmcType typev2 = SmcType::kNone;  // bits 3-2 (Proposal only; bit 3 doubles as `flag`)
  SmcType typev1 = SmcType::kR;     // bits 1-0
  bool flag = false;       // bit 3: first contact (Accept/Confirm) or out-of-sync (Decline)
  bool smcd = false;       // eyecatcher is SMCD
  friend bool operator==(const ClcHeader&, const ClcHeader&) = default;
};

// What Linux's MSG_PEEK of the first 8 bytes checks (A14): at least 8 bytes,
// a known eyecatcher, version >= 1, a type 1..4 and length >= 8 + 4.
// Returns kOk and fills *out, or the first rule broken.
ClcError peek_header(std::span<const uint8_t> bytes, ClcHeader* out);

struct Ipv6Prefix {
  std::array<uint8_t, 16> prefix{};
  uint8_t len = 0;  // prefix length in bits
  friend bool operator==(const Ipv6Prefix&, const Ipv6Prefix&) = default;
};

// Proposal (client -> server). The sender fills what it offers:
// typev1 == R adds the v1 IP prefix area, typev2 == R adds the SMCv2
// extension. The SMC-D area (40 bytes) is always present in version 2.
struct ClcProposal {
  uint8_t version = 2;
  SmcType typev1 = SmcType::kNone;
  SmcType typev2 = SmcType::kR;
  SystemId peer_id{};  // "lcl" area: zero from a Linux v2-only client (A5); droce fills it
  Gid gid{};
  Mac mac{};
  // v1 IP prefix area (typev1 != kNone).
  uint32_t ipv4_prefix = 0;  // address & mask, host order
  uint8_t ipv4_prefix_len = 0;
  uint8_t ipv6_count = 0;
  std::array<Ipv6Prefix, kClcMaxIpv6Prefixes> ipv6{};
  // SMCv2 extension (typev2 != kNone).
  uint8_t eid_cnt = 0;
  std::array<Eid, kClcMaxEids> eids{};  // user EIDs, 32 bytes each, space padded
  uint8_t v2_flag = 0;                  // byte 3 of the extension: release / seid (0 in 6.1)
  Gid roce_v2_gid{};                    // the client's RoCEv2 GID
  // Parsed from a received proposal (typev2 D or B); encode writes the SMC-Dv2
  // extension with this many zero GID/CHID entries (droce never offers SMC-D).
  uint8_t ism_gid_cnt = 0;
  friend bool operator==(const ClcProposal&, const ClcProposal&) = default;
};
size_t proposal_length(const ClcProposal& p);
// Writes the proposal; returns its length, or 0 when `out` is too small or
// the counts exceed their maximums.
size_t encode_proposal(const ClcProposal& p, std::span<uint8_t> out);
// `msg` holds the whole message (at least header.length bytes; bytes after
// it are ignored, as by every decode_*). Applies Linux 6.1's
// smc_clc_msg_prop_valid rules (B2), including the exact length formula, and
// keeps every area it reads inside the message. EIDs are not validated (Linux
// compares them byte for byte only). A version 1 Proposal decodes with
// typev2 kNone; encode writes version 1 in the RFC 7609 layout (iparea_offset 0).
ClcError decode_proposal(std::span<const uint8_t> msg, ClcProposal* out);

// The v2 first-contact extension (smc_clc_first_contact_ext, 36 bytes) and
// the 16 bytes after it (A8).
struct ClcFirstContact {
  bool v2_direct = true;    // bit 7 of byte 0: peer reachable without a gateway
  uint8_t os_type = 2;      // 1 z/OS, 2 Linux, 3 AIX (bits 7-4 of byte 1)
  uint8_t release = 0;      // bits 3-0 of byte 1 (SMC_RELEASE, 0 in 6.1)
  std::array<uint8_t, 32> hostname{};  // utsname nodename, space padded, no NUL
  friend bool operator==(const ClcFirstContact&, const ClcFirstContact&) = default;
};

// Accept (server -> client) and Confirm (client -> server), SMC-R.
// Lengths (A8): v1 68; v2 108; v2 first-contact Accept 160; v2
// first-contact Confirm 164 + 16 * gid_cnt.
struct ClcAcceptConfirm {
  ClcType type = ClcType::kAccept;  // kAccept or kConfirm
  uint8_t version = 2;
  bool first_contact = false;
  SystemId peer_id{};
  Gid gid{};
  Mac mac{};
  uint32_t qpn = 0;            // 24 bits
  uint32_t rkey = 0;           // RMB rkey
  uint8_t rmbe_idx = 1;        // Linux: always 1
  uint32_t rmbe_alert_token = 0;
  uint8_t rmbe_size = 0;       // compressed size: 16 KiB << n (bits 7-4 of byte 50)
  uint8_t mtu = 0;             // IB MTU enum 1..5 (bits 3-0 of byte 50)
  uint64_t rmb_vaddr = 0;
  uint32_t psn = 0;            // 24 bits
  // Version 2.
  Eid eid{};                   // the negotiated user EID
  ClcFirstContact fce{};       // present when version 2 and first_contact
  uint8_t gid_cnt = 0;         // Confirm, version 2, first contact only
  std::array<Gid, kClcMaxConfirmGids> gids{};
  friend bool operator==(const ClcAcceptConfirm&, const ClcAcceptConfirm&) = default;
};
size_t accept_confirm_length(const ClcAcceptConfirm& m);
size_t encode_accept_confirm(const ClcAcceptConfirm& m, std::span<uint8_t> out);
// `expected` is kAccept or kConfirm. Checks the per-type length rules of
// smc_clc_msg_acc_conf_valid (A14): v1 exactly 68, v2 >= 108 with the trailer
// at length - 4; typev1 must be R (A9). Versions above 2 read as 2, as in
// Linux. A v2 first contact needs room for the fce (>= 144 bytes); a Confirm's
// GID list is read when the message is >= 164 bytes and must end before the
// trailer.
ClcError decode_accept_confirm(std::span<const uint8_t> msg, ClcType expected, ClcAcceptConfirm* out);

struct ClcDecline {
  uint8_t version = 2;         // 1: 28 bytes, 2: 44 bytes
  bool out_of_sync = false;    // header bit 3: the receiver terminates its link group
  SystemId peer_id{};
  uint32_t diag = 0;           // peer diagnosis (DeclineCode)
  uint8_t os_type = 2;         // bits 7-4 of byte 20 (Linux writes 0 in version 1)
  std::array<uint32_t, 4> diag_ext{};  // version 2 bytes 24-39, zero from Linux
  friend bool operator==(const ClcDecline&, const ClcDecline&) = default;
};
size_t decline_length(const ClcDecline& d);
size_t encode_decline(const ClcDecline& d, std::span<uint8_t> out);
// Exactly 28 (v1) or 44 (v2) bytes; the trailer is not checked, as in Linux (A14).
ClcError decode_decline(std::span<const uint8_t> msg, ClcDecline* out);

// RMBE sizes travel compressed: 16 KiB << n, n <= 5 for SMC-R (512 KiB).
inline constexpr uint32_t kRmbeMinSize = 16 * 1024;
inline constexpr uint8_t kRmbeMaxSizeCode = 5;
inline constexpr uint32_t rmbe_uncompress(uint8_t n) { return kRmbeMinSize << (n & 0x0F); }
// The smallest code whose size holds `bytes`, capped at kRmbeMaxSizeCode.
uint8_t rmbe_compress(uint32_t bytes);

// Decline diagnosis codes (Linux 6.1 smc_clc.h, SMC_CLC_DECL_*).
namespace decline {
inline constexpr uint32_t kMem = 0x01010000;            // insufficient memory
inline constexpr uint32_t kTimeoutCl = 0x02010000;      // timeout waiting for CONFIRM LINK
inline constexpr uint32_t kTimeoutAl = 0x02020000;      // timeout waiting for ADD LINK
inline constexpr uint32_t kCnfErr = 0x03000000;         // configuration error
inline constexpr uint32_t kPeerNoSmc = 0x03010000;      // peer has not signalled SMC capability
inline constexpr uint32_t kIpsec = 0x03020000;
inline constexpr uint32_t kNoSmcDev = 0x03030000;       // no SMC device found (also a UEID mismatch, B6)
inline constexpr uint32_t kNoSmcDDev = 0x03030001;
inline constexpr uint32_t kNoSmcRDev = 0x03030002;
inline constexpr uint32_t kNoIsm2Supp = 0x03030003;
inline constexpr uint32_t kNoV2Ext = 0x03030004;
inline constexpr uint32_t kNoV2DExt = 0x03030005;
inline constexpr uint32_t kNoSeid = 0x03030006;
inline constexpr uint32_t kNoSmcD2Dev = 0x03030007;
inline constexpr uint32_t kNoUeid = 0x03030008;
inline constexpr uint32_t kModeUnsupp = 0x03040000;
inline constexpr uint32_t kRmbeEc = 0x03050000;         // peer has eyecatcher in RMBE
inline constexpr uint32_t kOptUnsupp = 0x03060000;      // fastopen
inline constexpr uint32_t kDiffPrefix = 0x03070000;
inline constexpr uint32_t kGetVlanErr = 0x03080000;
inline constexpr uint32_t kIsmVlanErr = 0x03090000;
inline constexpr uint32_t kNoActLink = 0x030a0000;
inline constexpr uint32_t kNoSrvLink = 0x030b0000;
inline constexpr uint32_t kVersMismat = 0x030c0000;
inline constexpr uint32_t kMaxDmb = 0x030d0000;
inline constexpr uint32_t kNoRoute = 0x030e0000;
inline constexpr uint32_t kNoIndirect = 0x030f0000;
inline constexpr uint32_t kSyncErr = 0x04000000;
inline constexpr uint32_t kPeerDecl = 0x05000000;
inline constexpr uint32_t kInterr = 0x09990000;
inline constexpr uint32_t kErrRtok = 0x09990001;
inline constexpr uint32_t kErrRdyLnk = 0x09990002;
inline constexpr uint32_t kErrRegBuf = 0x09990003;
}  // namespace decline
// Linux's wording for a code (smcss / smc_clc.h comments); "unknown" otherwise.
const char* decline_reason_name(uint32_t code);

}  // namespace droce::smc::wire
