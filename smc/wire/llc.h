// LLC (link layer control) messages: RC SENDs on a link that confirm, add and
// delete links, register RMB rkeys on all links and test liveness
// (RFC 7609 section 3.6; Linux 6.1 smc_llc.c). v1 messages are 44 bytes;
// SMC-Rv2 types (0x2X) carry a 16-bit length in HOST order, little-endian on
// x86 (reference/smc-v2-linux61.md A1-A3, A12, B7): droce writes it
// little-endian, as an x86 Linux peer does, and never trusts it on receive
// (the receive completion's byte_len is the length).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <variant>
#include <vector>

#include "smc/wire/types.h"

namespace droce::smc::wire {

// v1 type codes; an SMC-Rv2 message has the same code with 0x20 added.
enum class LlcType : uint8_t {
  kConfirmLink = 0x01,
  kAddLink = 0x02,
  kAddLinkCont = 0x03,   // v1 only
  kDeleteLink = 0x04,
  kReqAddLink = 0x05,    // only as 0x25 (A12)
  kConfirmRkey = 0x06,
  kTestLink = 0x07,
  kConfirmRkeyCont = 0x08,  // v1 only; Linux never sends it
  kDeleteRkey = 0x09,
};
inline constexpr uint8_t kLlcV2 = 0x20;       // added to the type code in SMC-Rv2
inline constexpr size_t kLlcMsgLen = 44;      // v1 length, and every 44-byte v2 message
inline constexpr size_t kLlcV2MaxLen = 8192;  // SMC_WR_BUF_V2_SIZE: v2 receive buffers hold this

// Header flags (byte 3).
inline constexpr uint8_t kLlcFlagResp = 0x80;
inline constexpr uint8_t kLlcAddLinkRejected = 0x40;
inline constexpr uint8_t kLlcDeleteLinkAll = 0x40;
inline constexpr uint8_t kLlcDeleteLinkOrderly = 0x20;
inline constexpr uint8_t kLlcConfirmRkeyNegative = 0x20;
inline constexpr uint8_t kLlcConfirmRkeyRetry = 0x10;
inline constexpr uint8_t kLlcConfirmLinkNoRmbeEyecatcher = 0x03;  // must be set (B6: else 0x03050000)

// ADD LINK reject reason (byte 2 bits 3-0, v1 only: A2).
inline constexpr uint8_t kLlcAddLinkRejNoAltPath = 1;

// DELETE LINK reasons (smc_llc.h).
inline constexpr uint32_t kLlcDelLostPath = 0x00010000;
inline constexpr uint32_t kLlcDelOpInitTerm = 0x00020000;
inline constexpr uint32_t kLlcDelProgInitTerm = 0x00030000;
inline constexpr uint32_t kLlcDelProtViol = 0x00040000;
inline constexpr uint32_t kLlcDelNoAsymNeeded = 0x00050000;
inline constexpr uint32_t kLlcDelUnknownLink = 0x00100000;
inline constexpr uint32_t kLlcDelUnknownLgr = 0x00200000;

inline constexpr uint8_t kLlcMaxLinks = 2;  // SMC_LLC_ADD_LNK_MAX_LINKS, announced in CONFIRM LINK
inline constexpr uint8_t kLlcMaxDeleteRkeys = 8;

struct LlcHeader {
  LlcType type = LlcType::kConfirmLink;  // without the v2 bit
  bool v2 = false;
  uint16_t length = kLlcMsgLen;  // as written on the wire (v1 byte 1; v2 LE16 at 1)
  uint8_t add_link_rej_rsn = 0;  // v1 only
  uint8_t flags = 0;             // kLlcFlagResp | per-type flags
  friend bool operator==(const LlcHeader&, const LlcHeader&) = default;
};

struct LlcConfirmLink {  // 0x01 / 0x21, 44 bytes
  LlcHeader hdr;
  Mac sender_mac{};
  Gid sender_gid{};
  uint32_t sender_qpn = 0;  // 24 bits
  uint8_t link_num = 0;
  std::array<uint8_t, 4> link_uid{};
  uint8_t max_links = kLlcMaxLinks;
  friend bool operator==(const LlcConfirmLink&, const LlcConfirmLink&) = default;
};

struct LlcRkeyPair {  // ADD LINK (CONT) rkey triple: 16 bytes, all BE
  uint32_t rkey_existing = 0;  // rkey of an RMB on the existing link
  uint32_t rkey_new = 0;       // its rkey on the new link
  uint64_t vaddr_new = 0;      // its address on the new link
  friend bool operator==(const LlcRkeyPair&, const LlcRkeyPair&) = default;
};

struct LlcAddLink {  // 0x02 / 0x22: 44 bytes (v1, v2 reject); v2 request/positive response 72 + 16 n
  LlcHeader hdr;
  Mac sender_mac{};
  Gid sender_gid{};
  uint32_t sender_qpn = 0;
  uint8_t link_num = 0;
  uint8_t mtu = 0;      // bits 3-0 of byte 32
  uint32_t psn = 0;     // 24 bits
  // v2 extension (present when hdr.v2 and the message is longer than 44 bytes).
  bool has_v2_ext = false;
  bool v2_direct = false;
  Gid client_target_gid{};
  // num_rkeys is LE16 on the wire (A3); decode keeps its low byte, as Linux's
  // min_t(u8, num_rkeys, 255) does, and wants every pair inside the message.
  std::vector<LlcRkeyPair> rkeys;
  friend bool operator==(const LlcAddLink&, const LlcAddLink&) = default;
};

struct LlcAddLinkCont {  // 0x03, v1 only, 44 bytes
  LlcHeader hdr;
  uint8_t link_num = 0;
  // Rkeys still to be sent, this message's included (smc_llc_add_link_cont);
  // the message carries min(num_rkeys, 2) of them.
  uint8_t num_rkeys = 0;
  std::array<LlcRkeyPair, 2> rkeys{};
  friend bool operator==(const LlcAddLinkCont&, const LlcAddLinkCont&) = default;
};

struct LlcReqAddLink {  // 0x25, v2 only: 28 + 16 g bytes (gid_cnt at 24)
  LlcHeader hdr;
  std::vector<Gid> gids;
  friend bool operator==(const LlcReqAddLink&, const LlcReqAddLink&) = default;
};

struct LlcDeleteLink {  // 0x04 / 0x24, 44 bytes
  LlcHeader hdr;         // flags: kLlcDeleteLinkAll, kLlcDeleteLinkOrderly, kLlcFlagResp
  uint8_t link_num = 0;
  uint32_t reason = 0;
  friend bool operator==(const LlcDeleteLink&, const LlcDeleteLink&) = default;
};

struct LlcRtoken {  // 13 bytes
  uint8_t link_id_or_count = 0;  // rtoken[0]: number of extra tokens; rtoken[1..2]: link id
  uint32_t rkey = 0;
  uint64_t vaddr = 0;
  friend bool operator==(const LlcRtoken&, const LlcRtoken&) = default;
};

struct LlcConfirmRkey {  // 0x06 / 0x26, 44 bytes
  LlcHeader hdr;  // flags: kLlcFlagResp, kLlcConfirmRkeyNegative, kLlcConfirmRkeyRetry
  std::array<LlcRtoken, 3> rtoken{};
  friend bool operator==(const LlcConfirmRkey&, const LlcConfirmRkey&) = default;
};

struct LlcTestLink {  // 0x07 / 0x27, 44 bytes
  LlcHeader hdr;
  std::array<uint8_t, 16> user_data{};  // echoed in the response
  friend bool operator==(const LlcTestLink&, const LlcTestLink&) = default;
};

struct LlcDeleteRkey {  // 0x09 / 0x29: 44 bytes (v1, and every v2 request Linux sends)
  LlcHeader hdr;
  // v1: up to 8 (rkey[8] at 8-39). v2: rkeys from offset 8 to the message's
  // end, so 9 fit in 44 bytes and a v2 message is max(44, 8 + 4 n) long.
  uint8_t num_rkeys = 0;
  uint8_t err_mask = 0;   // response: v1 bit mask of invalid rkeys; v2 the count (B7)
  std::vector<uint32_t> rkeys;  // exactly num_rkeys entries (encode refuses others)
  friend bool operator==(const LlcDeleteRkey&, const LlcDeleteRkey&) = default;
};

// A message type droce parses but does not act on (CONFIRM RKEY CONT).
struct LlcOther {
  LlcHeader hdr;
  friend bool operator==(const LlcOther&, const LlcOther&) = default;
};

using LlcMsg = std::variant<LlcConfirmLink, LlcAddLink, LlcAddLinkCont, LlcReqAddLink, LlcDeleteLink,
                            LlcConfirmRkey, LlcTestLink, LlcDeleteRkey, LlcOther>;

enum class LlcError : uint8_t {
  kOk = 0,
  kTruncated,  // shorter than 44 bytes, or than the v2 counts need
  kType,       // not in Linux 6.1's receive table (0x01-0x04, 0x06-0x09, 0x21, 0x22, 0x24-0x27, 0x29)
  kLength,     // v1 length byte not 44; v2 length_v2 (LE) below 44
  kLayout,     // counts beyond their maximum (v1 delete rkey > 8)
};
const char* llc_error_name(LlcError e);

// Reads the first bytes of an LLC message as Linux's smc_llc_rx_handler
// does: type in the receive table, v1 length byte 44, v2 length_v2 >= 44.
LlcError decode_llc_header(std::span<const uint8_t> msg, LlcHeader* out);
// Decodes a whole message of `msg.size()` bytes (the completion's byte_len).
LlcError decode_llc(std::span<const uint8_t> msg, LlcMsg* out);

// Each encoder writes the message and returns its length (0 when `out` is
// too small, or the type with hdr.v2 is not in the receive table, or a count
// does not fit its layout). The type comes from the alternative (LlcOther:
// hdr.type), v2 from hdr.v2; reserved bytes are zero; length is
// computed, and written LE16 for v2 (byte 2 is then the length's high byte,
// so a v2 ADD LINK reject carries reason 0, as Linux's does: A2).
size_t encode_llc(const LlcMsg& m, std::span<uint8_t> out);
// Length encode_llc would write for m.
size_t llc_length(const LlcMsg& m);

}  // namespace droce::smc::wire
