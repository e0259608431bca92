// LLC encode/decode, v1 and SMC-Rv2 (RFC 7609 section 3.6; Linux 6.1
// smc_llc.c message structs, smc_llc_init_msg_hdr, smc_llc_rx_handler,
// smc_llc_fill_ext_v2; reference/smc-v2-linux61.md A1-A3, A12, B7).
#include "smc/wire/llc.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <type_traits>

#include "smc/wire/bytes.h"

namespace droce::smc::wire {
namespace {

constexpr size_t kOffType = 0;
constexpr size_t kOffLength = 1;  // v1: u8; v2: host-order (LE) u16 at 1-2
constexpr size_t kOffRejRsn = 2;  // v1 only: bits 3-0
constexpr size_t kOffFlags = 3;

// CONFIRM LINK (smc_llc_msg_confirm_link).
constexpr size_t kClMac = 4, kClGid = 10, kClQpn = 26, kClLinkNum = 29, kClLinkUid = 30,
                 kClMaxLinks = 34;
// ADD LINK (smc_llc_msg_add_link) and its v2 extension (smc_llc_msg_add_link_v2_ext).
constexpr size_t kAlMac = 4, kAlGid = 12, kAlQpn = 28, kAlLinkNum = 31, kAlMtu = 32, kAlPsn = 33;
constexpr size_t kAlExt = kLlcMsgLen;           // 44
constexpr size_t kAlExtTargetGid = kAlExt + 2;  // 46
constexpr size_t kAlExtNumRkeys = kAlExt + 26;  // 70, host-order u16 (A3)
constexpr size_t kAlExtRkeys = kAlExt + 28;     // 72
constexpr size_t kRkeyPairLen = 16;
constexpr size_t kMaxAddLinkRkeysV2 = 255;  // SMC_LLC_RKEYS_PER_MSG_V2
static_assert(kAlExtNumRkeys == 70 && kAlExtRkeys == 72, "smc-v2-linux61.md A3");
// ADD LINK CONT (smc_llc_msg_add_link_cont).
constexpr size_t kAcLinkNum = 4, kAcNumRkeys = 5, kAcRkeys = 8;
constexpr uint8_t kRkeysPerContMsg = 2;
// REQ ADD LINK v2 (smc_llc_msg_req_add_link_v2).
constexpr size_t kRqGidCnt = 24, kRqGids = 28;
// DELETE LINK (smc_llc_msg_del_link).
constexpr size_t kDlLinkNum = 4, kDlReason = 5;
// CONFIRM RKEY (smc_llc_msg_confirm_rkey): 3 rtokens of 13 bytes.
constexpr size_t kCrRtoken = 4, kRtokenLen = 13;
// TEST LINK.
constexpr size_t kTlUserData = 4;
// DELETE RKEY (smc_llc_msg_delete_rkey, _v2).
constexpr size_t kDrNum = 4, kDrErrMask = 5, kDrRkeys = 8;
constexpr size_t kMaxDeleteRkeysV2 = 255;

// Linux 6.1's receive table (smc_llc_rx_handlers): 0x05, 0x23, 0x28 and
// everything else are dropped.
constexpr std::array<bool, 256> kReceiveTable = [] {
  std::array<bool, 256> t{};
  for (uint8_t c :
       {0x01, 0x02, 0x03, 0x04, 0x06, 0x07, 0x08, 0x09, 0x21, 0x22, 0x24, 0x25, 0x26, 0x27, 0x29})
    t[c] = true;
  return t;
}();
bool in_receive_table(uint8_t type) { return kReceiveTable[type]; }

void put_pair(uint8_t* p, const LlcRkeyPair& r) {
  put_be32(p, r.rkey_existing);
  put_be32(p + 4, r.rkey_new);
  put_be64(p + 8, r.vaddr_new);
}
LlcRkeyPair get_pair(const uint8_t* p) {
  return LlcRkeyPair{get_be32(p), get_be32(p + 4), get_be64(p + 8)};
}

// The type code a message is sent with (without the v2 bit), and its length.
template <class T>
constexpr LlcType type_of([[maybe_unused]] const T& m) {
  if constexpr (std::is_same_v<T, LlcConfirmLink>)
    return LlcType::kConfirmLink;
  else if constexpr (std::is_same_v<T, LlcAddLink>)
    return LlcType::kAddLink;
  else if constexpr (std::is_same_v<T, LlcAddLinkCont>)
    return LlcType::kAddLinkCont;
  else if constexpr (std::is_same_v<T, LlcReqAddLink>)
    return LlcType::kReqAddLink;
  else if constexpr (std::is_same_v<T, LlcDeleteLink>)
    return LlcType::kDeleteLink;
  else if constexpr (std::is_same_v<T, LlcConfirmRkey>)
    return LlcType::kConfirmRkey;
  else if constexpr (std::is_same_v<T, LlcTestLink>)
    return LlcType::kTestLink;
  else if constexpr (std::is_same_v<T, LlcDeleteRkey>)
    return LlcType::kDeleteRkey;
  else
    return m.hdr.type;  // LlcOther
}

size_t length_of(const LlcAddLink& m) {
  return m.hdr.v2 && m.has_v2_ext ? kAlExtRkeys + kRkeyPairLen * m.rkeys.size() : kLlcMsgLen;
}
size_t length_of(const LlcReqAddLink& m) {
  return std::max(kLlcMsgLen, kRqGids + 16 * m.gids.size());
}
size_t length_of(const LlcDeleteRkey& m) {
  return m.hdr.v2 ? std::max(kLlcMsgLen, kDrRkeys + 4 * m.rkeys.size()) : kLlcMsgLen;
}
template <class T>
size_t length_of(const T&) {
  return kLlcMsgLen;
}

// Whether m can be written at all (counts within what its layout holds).
bool encodable(const LlcAddLink& m) {
  return m.rkeys.empty() || (m.hdr.v2 && m.has_v2_ext && m.rkeys.size() <= kMaxAddLinkRkeysV2);
}
bool encodable(const LlcAddLinkCont& m) { return !m.hdr.v2; }
bool encodable(const LlcReqAddLink& m) {
  return m.hdr.v2 && m.gids.size() <= 255 && length_of(m) <= kLlcV2MaxLen;
}
bool encodable(const LlcDeleteRkey& m) {
  if (m.rkeys.size() != m.num_rkeys) return false;
  return m.hdr.v2 ? m.rkeys.size() <= kMaxDeleteRkeysV2 : m.rkeys.size() <= kLlcMaxDeleteRkeys;
}
template <class T>
bool encodable(const T&) {
  return true;
}

void put_body(uint8_t* b, const LlcConfirmLink& m) {
  std::memcpy(b + kClMac, m.sender_mac.data(), 6);
  std::memcpy(b + kClGid, m.sender_gid.data(), 16);
  put_be24(b + kClQpn, m.sender_qpn & 0xFFFFFF);
  b[kClLinkNum] = m.link_num;
  std::memcpy(b + kClLinkUid, m.link_uid.data(), 4);
  b[kClMaxLinks] = m.max_links;
}
void put_body(uint8_t* b, const LlcAddLink& m) {
  std::memcpy(b + kAlMac, m.sender_mac.data(), 6);
  std::memcpy(b + kAlGid, m.sender_gid.data(), 16);
  put_be24(b + kAlQpn, m.sender_qpn & 0xFFFFFF);
  b[kAlLinkNum] = m.link_num;
  b[kAlMtu] = m.mtu & 0x0F;
  put_be24(b + kAlPsn, m.psn & 0xFFFFFF);
  if (!(m.hdr.v2 && m.has_v2_ext)) return;
  b[kAlExt] = m.v2_direct ? 0x80 : 0;
  std::memcpy(b + kAlExtTargetGid, m.client_target_gid.data(), 16);
  put_le16(b + kAlExtNumRkeys, uint16_t(m.rkeys.size()));  // host order, as x86 Linux (A3)
  for (size_t i = 0; i < m.rkeys.size(); ++i)
    put_pair(b + kAlExtRkeys + kRkeyPairLen * i, m.rkeys[i]);
}
void put_body(uint8_t* b, const LlcAddLinkCont& m) {
  b[kAcLinkNum] = m.link_num;
  b[kAcNumRkeys] = m.num_rkeys;
  for (uint8_t i = 0; i < std::min(m.num_rkeys, kRkeysPerContMsg); ++i)
    put_pair(b + kAcRkeys + kRkeyPairLen * i, m.rkeys[i]);
}
void put_body(uint8_t* b, const LlcReqAddLink& m) {
  b[kRqGidCnt] = uint8_t(m.gids.size());
  for (size_t i = 0; i < m.gids.size(); ++i)
    std::memcpy(b + kRqGids + 16 * i, m.gids[i].data(), 16);
}
void put_body(uint8_t* b, const LlcDeleteLink& m) {
  b[kDlLinkNum] = m.link_num;
  put_be32(b + kDlReason, m.reason);
}
void put_body(uint8_t* b, const LlcConfirmRkey& m) {
  for (size_t i = 0; i < m.rtoken.size(); ++i) {
    uint8_t* t = b + kCrRtoken + kRtokenLen * i;
    t[0] = m.rtoken[i].link_id_or_count;
    put_be32(t + 1, m.rtoken[i].rkey);
    put_be64(t + 5, m.rtoken[i].vaddr);
  }
}
void put_body(uint8_t* b, const LlcTestLink& m) {
  std::memcpy(b + kTlUserData, m.user_data.data(), 16);
}
void put_body(uint8_t* b, const LlcDeleteRkey& m) {
  b[kDrNum] = m.num_rkeys;
  b[kDrErrMask] = m.err_mask;
  for (size_t i = 0; i < m.rkeys.size(); ++i) put_be32(b + kDrRkeys + 4 * i, m.rkeys[i]);
}
void put_body(uint8_t*, const LlcOther&) {}

}  // namespace

const char* llc_error_name(LlcError e) {
  switch (e) {
    case LlcError::kOk:
      return "ok";
    case LlcError::kTruncated:
      return "truncated";
    case LlcError::kType:
      return "type not in the receive table";
    case LlcError::kLength:
      return "bad length field";
    case LlcError::kLayout:
      return "count out of bounds";
  }
  return "unknown";
}

LlcError decode_llc_header(std::span<const uint8_t> msg, LlcHeader* out) {
  if (msg.size() < kLlcMsgLen) return LlcError::kTruncated;  // smc_llc_rx_handler: byte_len < 44
  const uint8_t* b = msg.data();
  const uint8_t type = b[kOffType];
  if (!in_receive_table(type)) return LlcError::kType;
  LlcHeader h;
  h.type = LlcType(type & 0x0F);
  h.v2 = (type & 0xF0) == kLlcV2;
  if (h.v2) {
    h.length = get_le16(b + kOffLength);
    if (h.length < kLlcMsgLen) return LlcError::kLength;
  } else {
    h.length = b[kOffLength];
    if (h.length != kLlcMsgLen) return LlcError::kLength;
    h.add_link_rej_rsn = b[kOffRejRsn] & 0x0F;
  }
  h.flags = b[kOffFlags];
  *out = h;
  return LlcError::kOk;
}

LlcError decode_llc(std::span<const uint8_t> msg, LlcMsg* out) {
  LlcHeader h;
  const LlcError e = decode_llc_header(msg, &h);
  if (e != LlcError::kOk) return e;
  const uint8_t* b = msg.data();
  const size_t n = msg.size();
  switch (h.type) {
    case LlcType::kConfirmLink: {
      LlcConfirmLink m;
      m.hdr = h;
      std::memcpy(m.sender_mac.data(), b + kClMac, 6);
      std::memcpy(m.sender_gid.data(), b + kClGid, 16);
      m.sender_qpn = get_be24(b + kClQpn);
      m.link_num = b[kClLinkNum];
      std::memcpy(m.link_uid.data(), b + kClLinkUid, 4);
      m.max_links = b[kClMaxLinks];
      *out = m;
      return LlcError::kOk;
    }
    case LlcType::kAddLink: {
      LlcAddLink m;
      m.hdr = h;
      std::memcpy(m.sender_mac.data(), b + kAlMac, 6);
      std::memcpy(m.sender_gid.data(), b + kAlGid, 16);
      m.sender_qpn = get_be24(b + kAlQpn);
      m.link_num = b[kAlLinkNum];
      m.mtu = b[kAlMtu] & 0x0F;
      m.psn = get_be24(b + kAlPsn);
      if (h.v2 && n > kLlcMsgLen) {
        if (n < kAlExtRkeys) return LlcError::kTruncated;
        m.has_v2_ext = true;
        m.v2_direct = (b[kAlExt] & 0x80) != 0;
        std::memcpy(m.client_target_gid.data(), b + kAlExtTargetGid, 16);
        // smc_llc_save_add_link_rkeys: min_t(u8, num_rkeys, 255) keeps the
        // low byte of the host-order u16, so 00 01 (big-endian 1) means 0.
        const size_t cnt = get_le16(b + kAlExtNumRkeys) & 0xFF;
        if (kAlExtRkeys + kRkeyPairLen * cnt > n) return LlcError::kTruncated;
        m.rkeys.reserve(cnt);
        for (size_t i = 0; i < cnt; ++i)
          m.rkeys.push_back(get_pair(b + kAlExtRkeys + kRkeyPairLen * i));
      }
      *out = std::move(m);
      return LlcError::kOk;
    }
    case LlcType::kAddLinkCont: {  // v1 only (0x23 is not in the table)
      LlcAddLinkCont m;
      m.hdr = h;
      m.link_num = b[kAcLinkNum];
      m.num_rkeys = b[kAcNumRkeys];  // rkeys still to come, this message's included
      for (uint8_t i = 0; i < std::min(m.num_rkeys, kRkeysPerContMsg); ++i)
        m.rkeys[i] = get_pair(b + kAcRkeys + kRkeyPairLen * i);
      *out = m;
      return LlcError::kOk;
    }
    case LlcType::kReqAddLink: {  // v2 only (0x05 is not in the table)
      LlcReqAddLink m;
      m.hdr = h;
      const size_t cnt = b[kRqGidCnt];
      if (kRqGids + 16 * cnt > n) return LlcError::kTruncated;
      m.gids.resize(cnt);
      for (size_t i = 0; i < cnt; ++i) std::memcpy(m.gids[i].data(), b + kRqGids + 16 * i, 16);
      *out = std::move(m);
      return LlcError::kOk;
    }
    case LlcType::kDeleteLink: {
      LlcDeleteLink m;
      m.hdr = h;
      m.link_num = b[kDlLinkNum];
      m.reason = get_be32(b + kDlReason);
      *out = m;
      return LlcError::kOk;
    }
    case LlcType::kConfirmRkey: {
      LlcConfirmRkey m;
      m.hdr = h;
      for (size_t i = 0; i < m.rtoken.size(); ++i) {
        const uint8_t* t = b + kCrRtoken + kRtokenLen * i;
        m.rtoken[i] = LlcRtoken{t[0], get_be32(t + 1), get_be64(t + 5)};
      }
      *out = m;
      return LlcError::kOk;
    }
    case LlcType::kTestLink: {
      LlcTestLink m;
      m.hdr = h;
      std::memcpy(m.user_data.data(), b + kTlUserData, 16);
      *out = m;
      return LlcError::kOk;
    }
    case LlcType::kDeleteRkey: {
      LlcDeleteRkey m;
      m.hdr = h;
      m.num_rkeys = b[kDrNum];
      m.err_mask = b[kDrErrMask];
      // v1: rkey[8] in 44 bytes. v2: rkeys from offset 8 up to the message's
      // end (smc_llc_msg_delete_rkey_v2), so 9 fit in 44 bytes.
      if (!h.v2 && m.num_rkeys > kLlcMaxDeleteRkeys) return LlcError::kLayout;
      if (h.v2 && kDrRkeys + 4 * size_t(m.num_rkeys) > n) return LlcError::kTruncated;
      m.rkeys.resize(m.num_rkeys);
      for (size_t i = 0; i < m.num_rkeys; ++i) m.rkeys[i] = get_be32(b + kDrRkeys + 4 * i);
      *out = std::move(m);
      return LlcError::kOk;
    }
    case LlcType::kConfirmRkeyCont:
      *out = LlcOther{h};
      return LlcError::kOk;
  }
  return LlcError::kType;  // unreachable: the table admits only the codes above
}

size_t llc_length(const LlcMsg& m) {
  return std::visit([](const auto& x) { return length_of(x); }, m);
}

size_t encode_llc(const LlcMsg& m, std::span<uint8_t> out) {
  return std::visit(
      [&](const auto& x) -> size_t {
        const uint8_t type = uint8_t(uint8_t(type_of(x)) | (x.hdr.v2 ? kLlcV2 : 0));
        if (!in_receive_table(type) || !encodable(x)) return 0;
        const size_t len = length_of(x);
        if (len > kLlcV2MaxLen || out.size() < len) return 0;
        uint8_t* b = out.data();
        std::memset(b, 0, len);
        b[kOffType] = type;
        if (x.hdr.v2) {
          put_le16(b + kOffLength, uint16_t(len));  // smc_llc_init_msg_hdr: length_v2 = len
        } else {
          b[kOffLength] = uint8_t(len);
          b[kOffRejRsn] = x.hdr.add_link_rej_rsn & 0x0F;
        }
        b[kOffFlags] = x.hdr.flags;
        put_body(b, x);
        return len;
      },
      m);
}

}  // namespace droce::smc::wire
