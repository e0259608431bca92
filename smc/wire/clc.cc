// CLC encode/decode: Proposal, Accept, Confirm, Decline, v1 and v2, as Linux
// 6.1 writes them (smc_clc.c smc_clc_send_proposal, smc_clc_send_confirm_accept,
// smc_clc_send_decline) and checks them (smc_clc_msg_hdr_valid and the
// per-type *_valid functions); reference/smc-v2-linux61.md A4-A18, B1-B5.
#include "smc/wire/clc.h"

#include <algorithm>
#include <cstring>

#include "smc/wire/bytes.h"

namespace droce::smc::wire {
namespace {

// Common offsets (smc_clc_msg_hdr, smc_clc_msg_local).
constexpr size_t kOffType = 4;
constexpr size_t kOffLength = 5;
constexpr size_t kOffVersion = 7;  // version << 4 | typev2 << 2 | typev1
constexpr size_t kOffPeerId = 8;
constexpr size_t kOffGid = 16;
constexpr size_t kOffMac = 32;
constexpr uint8_t kFlagBit =
    0x08;  // first contact / out of sync (SMC_FIRST_CONTACT_MASK in typev2)

// Proposal (smc_clc_msg_proposal, smc_clc_msg_smcd, prefix area, v2 extension).
constexpr size_t kOffIpareaOffset = 38;
constexpr size_t kProposalBaseLen = 40;  // sizeof(smc_clc_msg_proposal)
constexpr size_t kSmcdAreaLen = 40;      // sizeof(smc_clc_msg_smcd)
constexpr size_t kOffV2ExtOffset = 50;   // smcd area + 10
constexpr size_t kV2ExtOffsetBase = 52;  // v2_ext_offset counts from here
constexpr size_t kPrefixLen = 8;         // smc_clc_msg_proposal_prefix
constexpr size_t kIpv6PrefixLen = 17;    // smc_clc_ipv6_prefix (packed)
constexpr size_t kV2ExtLen = 40;         // smc_clc_v2_extension without EIDs
constexpr size_t kEidLen = 32;
constexpr size_t kSmcdV2ExtLen = 48;  // smc_clc_smcd_v2_extension without GID/CHIDs
constexpr size_t kGidChidLen = 10;
constexpr size_t kMaxIsmGids = 8;  // SMC_MAX_ISM_DEVS

// Accept / Confirm (smcr_clc_msg_accept_confirm and the v2 tail).
constexpr size_t kOffQpn = 38;
constexpr size_t kOffRkey = 41;
constexpr size_t kOffRmbeIdx = 45;
constexpr size_t kOffToken = 46;
constexpr size_t kOffSizeMtu = 50;
constexpr size_t kOffRmbVaddr = 52;
constexpr size_t kOffPsn = 61;
constexpr size_t kOffEid = 64;
constexpr size_t kOffFce = 104;  // smc_clc_first_contact_ext (36 bytes)
constexpr size_t kFceLen = 36;
constexpr size_t kOffHostname = kOffFce + 4;
constexpr size_t kGleReservedLen = 16;                              // smc_clc_fce_gid_ext.reserved
constexpr size_t kOffGidCnt = kOffFce + kFceLen + kGleReservedLen;  // 156
constexpr size_t kOffGidList = kOffGidCnt + 4;                      // 160
static_assert(kOffGidCnt == 156 && kOffGidList == 160, "smc-v2-linux61.md A8");
static_assert(kClcAcceptV2FirstContactLen == kOffGidCnt + kClcTrailerLen,
              "A8: the Accept stops at 156");
static_assert(kClcConfirmV2FirstContactBase == kOffGidList + kClcTrailerLen,
              "A8: Confirm 164 + 16 g");
static_assert(kClcAcceptConfirmV2Len == kOffFce + kClcTrailerLen, "SMCR_CLC_ACCEPT_CONFIRM_LEN_V2");

// Decline (smc_clc_msg_decline, _v2).
constexpr size_t kOffDiag = 16;
constexpr size_t kOffOsType = 20;
constexpr size_t kOffDiagExt = 24;

bool is_eyecatcher(const uint8_t* p) {
  return std::memcmp(p, kEyecatcherSmcr.data(), 4) == 0 ||
         std::memcmp(p, kEyecatcherSmcd.data(), 4) == 0;
}

bool smcd_indicated(SmcType t) { return t == SmcType::kD || t == SmcType::kBoth; }

uint8_t version_byte(uint8_t version, SmcType typev2, SmcType typev1) {
  return uint8_t(version << 4 | (uint8_t(typev2) & 3) << 2 | (uint8_t(typev1) & 3));
}

// Header, eyecatcher and trailer; `len` is the whole message length.
void put_frame(uint8_t* p, ClcType type, size_t len, uint8_t byte7) {
  std::memset(p, 0, len);
  std::memcpy(p, kEyecatcherSmcr.data(), 4);
  p[kOffType] = uint8_t(type);
  put_be16(p + kOffLength, uint16_t(len));
  p[kOffVersion] = byte7;
  std::memcpy(p + len - kClcTrailerLen, kEyecatcherSmcr.data(), 4);
}

// The checks every decoder makes first: enough bytes for a header, the
// eyecatcher, the version, the expected type, the header's length present.
// On success *len is the header's length.
ClcError check_common(std::span<const uint8_t> msg, ClcType expected, ClcHeader* h, size_t* len) {
  const ClcError e = peek_header(msg, h);
  if (e != ClcError::kOk) return e;
  if (h->type != expected) return ClcError::kType;
  if (msg.size() < h->length) return ClcError::kTruncated;
  *len = h->length;
  return ClcError::kOk;
}

bool trailer_ok(std::span<const uint8_t> msg, size_t len) {
  return is_eyecatcher(msg.data() + len - kClcTrailerLen);
}

size_t prefix_area_len(const ClcProposal& p) { return kPrefixLen + kIpv6PrefixLen * p.ipv6_count; }
size_t v2_ext_len(const ClcProposal& p) { return kV2ExtLen + kEidLen * p.eid_cnt; }
size_t smcd_v2_ext_len(const ClcProposal& p) { return kSmcdV2ExtLen + kGidChidLen * p.ism_gid_cnt; }

}  // namespace

const char* clc_error_name(ClcError e) {
  switch (e) {
    case ClcError::kOk:
      return "ok";
    case ClcError::kTruncated:
      return "truncated";
    case ClcError::kEyecatcher:
      return "wrong eyecatcher";
    case ClcError::kTrailer:
      return "wrong trailer eyecatcher";
    case ClcError::kType:
      return "unexpected type";
    case ClcError::kVersion:
      return "bad version";
    case ClcError::kLength:
      return "length does not match the layout";
    case ClcError::kLayout:
      return "offset or count out of bounds";
  }
  return "unknown";
}

ClcError peek_header(std::span<const uint8_t> bytes, ClcHeader* out) {
  if (bytes.size() < kClcHeaderLen) return ClcError::kTruncated;
  const uint8_t* p = bytes.data();
  if (!is_eyecatcher(p)) return ClcError::kEyecatcher;
  const uint8_t b7 = p[kOffVersion];
  if ((b7 >> 4) < 1) return ClcError::kVersion;
  if (p[kOffType] < uint8_t(ClcType::kProposal) || p[kOffType] > uint8_t(ClcType::kDecline))
    return ClcError::kType;
  const uint16_t length = get_be16(p + kOffLength);
  if (length < kClcHeaderLen + kClcTrailerLen) return ClcError::kLength;
  ClcHeader h;
  h.type = ClcType(p[kOffType]);
  h.length = length;
  h.version = uint8_t(b7 >> 4);
  h.typev2 = SmcType((b7 >> 2) & 3);
  h.typev1 = SmcType(b7 & 3);
  h.flag = (b7 & kFlagBit) != 0;
  h.smcd = std::memcmp(p, kEyecatcherSmcd.data(), 4) == 0;
  *out = h;
  return ClcError::kOk;
}

// ---------------------------------------------------------------------------
// Proposal

size_t proposal_length(const ClcProposal& p) {
  if (p.version == 1)  // RFC 7609 layout: no SMC-D area, prefix area at 40
    return kProposalBaseLen + prefix_area_len(p) + kClcTrailerLen;
  size_t len = kProposalBaseLen + kSmcdAreaLen + kClcTrailerLen;
  if (p.typev1 != SmcType::kNone) len += prefix_area_len(p);
  if (p.typev2 != SmcType::kNone) len += v2_ext_len(p);
  if (smcd_indicated(p.typev2)) len += smcd_v2_ext_len(p);
  return len;
}

size_t encode_proposal(const ClcProposal& p, std::span<uint8_t> out) {
  if (p.version == 0 || p.version > 15 || p.ipv6_count > kClcMaxIpv6Prefixes ||
      p.eid_cnt > kClcMaxEids || p.ism_gid_cnt > kMaxIsmGids)
    return 0;
  if (p.version == 1 && p.typev1 == SmcType::kNone) return 0;  // Linux: v1 must offer something
  const size_t len = proposal_length(p);
  if (out.size() < len) return 0;
  uint8_t* b = out.data();
  // Version 1 has no typev2: its bits stay 0 (bit 3 is the v1 `flag`).
  put_frame(b, ClcType::kProposal, len,
            version_byte(p.version, p.version == 1 ? SmcType::kR : p.typev2, p.typev1));
  std::memcpy(b + kOffPeerId, p.peer_id.data(), p.peer_id.size());
  std::memcpy(b + kOffGid, p.gid.data(), p.gid.size());
  std::memcpy(b + kOffMac, p.mac.data(), p.mac.size());

  size_t pos = kProposalBaseLen;
  const bool has_prefix = p.version == 1 || p.typev1 != SmcType::kNone;
  if (p.version >= 2) {
    // iparea_offset = 40 when the prefix area follows the SMC-D area, else 0 (A4).
    put_be16(b + kOffIpareaOffset, has_prefix ? uint16_t(kSmcdAreaLen) : 0);
    if (p.typev2 != SmcType::kNone) {
      const size_t ext_off = kProposalBaseLen + kSmcdAreaLen - kV2ExtOffsetBase +
                             (has_prefix ? prefix_area_len(p) : 0);  // 28 (+ 8 + 17 k)
      put_be16(b + kOffV2ExtOffset, uint16_t(ext_off));
    }
    pos += kSmcdAreaLen;
  }
  if (has_prefix) {
    put_be32(b + pos, p.ipv4_prefix);
    b[pos + 4] = p.ipv4_prefix_len;
    b[pos + 7] = p.ipv6_count;
    pos += kPrefixLen;
    for (uint8_t i = 0; i < p.ipv6_count; ++i, pos += kIpv6PrefixLen) {
      std::memcpy(b + pos, p.ipv6[i].prefix.data(), 16);
      b[pos + 16] = p.ipv6[i].len;
    }
  }
  if (p.version >= 2 && p.typev2 != SmcType::kNone) {
    uint8_t* ext = b + pos;
    ext[0] = p.eid_cnt;
    ext[3] = p.v2_flag;
    if (smcd_indicated(p.typev2)) {
      ext[1] = p.ism_gid_cnt;
      put_be16(ext + 6, uint16_t(kV2ExtLen - 8 + kEidLen * p.eid_cnt));  // smcd_v2_ext_offset
    }
    std::memcpy(ext + 8, p.roce_v2_gid.data(), 16);
    pos += kV2ExtLen;
    for (uint8_t i = 0; i < p.eid_cnt; ++i, pos += kEidLen)
      std::memcpy(b + pos, p.eids[i].data(), kEidLen);
    if (smcd_indicated(p.typev2))
      pos += smcd_v2_ext_len(p);  // SEID and ISM GIDs: zero, droce has no SMC-D
  }
  return pos + kClcTrailerLen == len ? len : 0;
}

ClcError decode_proposal(std::span<const uint8_t> msg, ClcProposal* out) {
  ClcHeader h;
  size_t len = 0;
  ClcError e = check_common(msg, ClcType::kProposal, &h, &len);
  if (e != ClcError::kOk) return e;
  const uint8_t* b = msg.data();
  if (len < kProposalBaseLen + kClcTrailerLen) return ClcError::kLength;

  ClcProposal p;
  p.version = h.version;
  p.typev1 = h.typev1;
  p.typev2 = h.typev2;
  std::memcpy(p.peer_id.data(), b + kOffPeerId, p.peer_id.size());
  std::memcpy(p.gid.data(), b + kOffGid, p.gid.size());
  std::memcpy(p.mac.data(), b + kOffMac, p.mac.size());

  // smc_clc_proposal_get_prefix: iparea_offset <= 40, and the prefix count
  // (read even when typev1 is N) at most 8. droce also wants that count
  // inside the message, where Linux reads its zeroed receive buffer.
  const uint16_t iparea = get_be16(b + kOffIpareaOffset);
  if (iparea > kSmcdAreaLen) return ClcError::kLayout;
  const size_t prefix_pos = kProposalBaseLen + iparea;
  if (prefix_pos + kPrefixLen > len) return ClcError::kLayout;
  const uint8_t ipv6_cnt = b[prefix_pos + 7];
  if (ipv6_cnt > kClcMaxIpv6Prefixes) return ClcError::kLayout;
  p.ipv6_count = ipv6_cnt;
  const size_t prefix_len = kPrefixLen + kIpv6PrefixLen * ipv6_cnt;

  if (h.version == 1) {
    if (h.typev1 == SmcType::kNone) return ClcError::kVersion;
    if (len != kProposalBaseLen + iparea + prefix_len + kClcTrailerLen) return ClcError::kLength;
    p.typev2 = SmcType::kNone;  // v1 has no typev2; keep round trips stable
  } else {
    size_t ext_pos = 0;
    if (h.typev2 != SmcType::kNone) {
      // smc_get_clc_msg_smcd / smc_get_clc_v2_ext.
      if (smcd_indicated(h.typev1) && iparea != kSmcdAreaLen) return ClcError::kLayout;
      if (len < kProposalBaseLen + kSmcdAreaLen) return ClcError::kLength;
      const uint16_t v2_off = get_be16(b + kOffV2ExtOffset);
      if (v2_off == 0 || v2_off > kClcV2ExtMaxOffset) return ClcError::kLayout;
      ext_pos = kV2ExtOffsetBase + v2_off;
      if (ext_pos + kV2ExtLen > len - kClcTrailerLen) return ClcError::kLayout;
      p.eid_cnt = b[ext_pos];
      if (p.eid_cnt > kClcMaxEids) return ClcError::kLayout;
      if (smcd_indicated(h.typev2)) {
        p.ism_gid_cnt = b[ext_pos + 1];
        if (p.ism_gid_cnt > kMaxIsmGids) return ClcError::kLayout;
      }
    }
    // The exact length of smc_clc_msg_prop_valid (B2).
    size_t want = kProposalBaseLen + kSmcdAreaLen + kClcTrailerLen;
    if (h.typev1 != SmcType::kNone) want += prefix_len;
    if (h.typev2 != SmcType::kNone) want += v2_ext_len(p);
    if (smcd_indicated(h.typev2)) want += smcd_v2_ext_len(p);
    if (len != want) return ClcError::kLength;
    // Linux trusts the offsets once the length adds up; droce also keeps
    // every area it reads before the trailer.
    if (h.typev1 != SmcType::kNone && prefix_pos + prefix_len > len - kClcTrailerLen)
      return ClcError::kLayout;
    if (h.typev2 != SmcType::kNone) {
      if (ext_pos + v2_ext_len(p) > len - kClcTrailerLen) return ClcError::kLayout;
      p.v2_flag = b[ext_pos + 3];
      std::memcpy(p.roce_v2_gid.data(), b + ext_pos + 8, 16);
      for (uint8_t i = 0; i < p.eid_cnt; ++i)
        std::memcpy(p.eids[i].data(), b + ext_pos + kV2ExtLen + kEidLen * i, kEidLen);
    }
  }
  if (h.version == 1 || h.typev1 != SmcType::kNone) {
    const uint8_t* pr = b + prefix_pos;
    p.ipv4_prefix = get_be32(pr);
    p.ipv4_prefix_len = pr[4];
    for (uint8_t i = 0; i < ipv6_cnt; ++i) {
      std::memcpy(p.ipv6[i].prefix.data(), pr + kPrefixLen + kIpv6PrefixLen * i, 16);
      p.ipv6[i].len = pr[kPrefixLen + kIpv6PrefixLen * i + 16];
    }
  } else {
    p.ipv6_count = 0;  // the count byte Linux checks lies in another area
  }
  if (!trailer_ok(msg, len)) return ClcError::kTrailer;
  *out = p;
  return ClcError::kOk;
}

// ---------------------------------------------------------------------------
// Accept / Confirm

size_t accept_confirm_length(const ClcAcceptConfirm& m) {
  if (m.version == 1) return kClcAcceptConfirmV1Len;
  if (!m.first_contact) return kClcAcceptConfirmV2Len;
  if (m.type == ClcType::kConfirm) return kClcConfirmV2FirstContactBase + 16 * size_t(m.gid_cnt);
  return kClcAcceptV2FirstContactLen;
}

size_t encode_accept_confirm(const ClcAcceptConfirm& m, std::span<uint8_t> out) {
  if (m.type != ClcType::kAccept && m.type != ClcType::kConfirm) return 0;
  if (m.version == 0 || m.version > 15 || m.gid_cnt > kClcMaxConfirmGids || m.rmbe_size > 15 ||
      m.mtu > 15 || m.fce.os_type > 15 || m.fce.release > 15)
    return 0;
  const size_t len = accept_confirm_length(m);
  if (out.size() < len) return 0;
  uint8_t* b = out.data();
  // typev1 R; the first-contact bit is bit 1 of typev2 (A9: 0x28 / 0x20, v1 0x18 / 0x10).
  put_frame(b, m.type, len, uint8_t(m.version << 4 | (m.first_contact ? kFlagBit : 0)));
  std::memcpy(b + kOffPeerId, m.peer_id.data(), m.peer_id.size());
  std::memcpy(b + kOffGid, m.gid.data(), m.gid.size());
  std::memcpy(b + kOffMac, m.mac.data(), m.mac.size());
  put_be24(b + kOffQpn, m.qpn & 0xFFFFFF);
  put_be32(b + kOffRkey, m.rkey);
  b[kOffRmbeIdx] = m.rmbe_idx;
  put_be32(b + kOffToken, m.rmbe_alert_token);
  b[kOffSizeMtu] = uint8_t(m.rmbe_size << 4 | m.mtu);
  put_be64(b + kOffRmbVaddr, m.rmb_vaddr);
  put_be24(b + kOffPsn, m.psn & 0xFFFFFF);
  if (m.version == 1) return len;
  std::memcpy(b + kOffEid, m.eid.data(), m.eid.size());
  if (!m.first_contact) return len;
  b[kOffFce] = m.fce.v2_direct ? 0x80 : 0;
  b[kOffFce + 1] = uint8_t(m.fce.os_type << 4 | m.fce.release);
  std::memcpy(b + kOffHostname, m.fce.hostname.data(), m.fce.hostname.size());
  if (m.type == ClcType::kConfirm) {
    b[kOffGidCnt] = m.gid_cnt;
    for (uint8_t i = 0; i < m.gid_cnt; ++i)
      std::memcpy(b + kOffGidList + 16 * i, m.gids[i].data(), 16);
  }
  return len;
}

ClcError decode_accept_confirm(std::span<const uint8_t> msg, ClcType expected,
                               ClcAcceptConfirm* out) {
  if (expected != ClcType::kAccept && expected != ClcType::kConfirm) return ClcError::kType;
  ClcHeader h;
  size_t len = 0;
  ClcError e = check_common(msg, expected, &h, &len);
  if (e != ClcError::kOk) return e;
  // smc_clc_msg_acc_conf_valid: typev1 R or D; droce speaks SMC-R only.
  if (h.typev1 != SmcType::kR) return ClcError::kType;
  if (h.version == 1 ? len != kClcAcceptConfirmV1Len : len < kClcAcceptConfirmV2Len)
    return ClcError::kLength;
  const uint8_t* b = msg.data();
  ClcAcceptConfirm m;
  m.type = expected;
  m.version = h.version;
  m.first_contact = h.flag;
  std::memcpy(m.peer_id.data(), b + kOffPeerId, m.peer_id.size());
  std::memcpy(m.gid.data(), b + kOffGid, m.gid.size());
  std::memcpy(m.mac.data(), b + kOffMac, m.mac.size());
  m.qpn = get_be24(b + kOffQpn);
  m.rkey = get_be32(b + kOffRkey);
  m.rmbe_idx = b[kOffRmbeIdx];
  m.rmbe_alert_token = get_be32(b + kOffToken);
  m.rmbe_size = uint8_t(b[kOffSizeMtu] >> 4);
  m.mtu = uint8_t(b[kOffSizeMtu] & 0x0F);
  m.rmb_vaddr = get_be64(b + kOffRmbVaddr);
  m.psn = get_be24(b + kOffPsn);
  if (h.version >= 2) {
    std::memcpy(m.eid.data(), b + kOffEid, m.eid.size());
    if (m.first_contact) {
      if (len < kOffFce + kFceLen + kClcTrailerLen)
        return ClcError::kLength;  // no room for the fce
      m.fce.v2_direct = (b[kOffFce] & 0x80) != 0;
      m.fce.os_type = uint8_t(b[kOffFce + 1] >> 4);
      m.fce.release = uint8_t(b[kOffFce + 1] & 0x0F);
      std::memcpy(m.fce.hostname.data(), b + kOffHostname, m.fce.hostname.size());
      if (expected == ClcType::kConfirm && len >= kClcConfirmV2FirstContactBase) {
        m.gid_cnt = b[kOffGidCnt];
        if (m.gid_cnt > kClcMaxConfirmGids) return ClcError::kLayout;
        if (kOffGidList + 16 * size_t(m.gid_cnt) > len - kClcTrailerLen) return ClcError::kLength;
        for (uint8_t i = 0; i < m.gid_cnt; ++i)
          std::memcpy(m.gids[i].data(), b + kOffGidList + 16 * i, 16);
      }
    }
  } else {
    m.fce = ClcFirstContact{};  // not on the wire in v1
  }
  // Checks Linux does not make: a size code beyond SMC-R's 512 KiB and an MTU
  // outside the IB enum would make droce address memory the peer does not have.
  if (m.rmbe_size > kRmbeMaxSizeCode || m.mtu < 1 || m.mtu > 5) return ClcError::kLayout;
  if (!trailer_ok(msg, len)) return ClcError::kTrailer;
  *out = m;
  return ClcError::kOk;
}

// ---------------------------------------------------------------------------
// Decline

size_t decline_length(const ClcDecline& d) {
  return d.version == 1 ? kClcDeclineV1Len : kClcDeclineV2Len;
}

size_t encode_decline(const ClcDecline& d, std::span<uint8_t> out) {
  if (d.version == 0 || d.version > 15 || d.os_type > 15) return 0;
  const size_t len = decline_length(d);
  if (out.size() < len) return 0;
  uint8_t* b = out.data();
  // typev1 R (0); the out-of-sync bit where Accept has first contact (A18).
  put_frame(b, ClcType::kDecline, len, uint8_t(d.version << 4 | (d.out_of_sync ? kFlagBit : 0)));
  std::memcpy(b + kOffPeerId, d.peer_id.data(), d.peer_id.size());
  put_be32(b + kOffDiag, d.diag);
  b[kOffOsType] = uint8_t(d.os_type << 4);  // Linux writes 0 in a v1 Decline
  if (d.version >= 2)
    for (size_t i = 0; i < d.diag_ext.size(); ++i) put_be32(b + kOffDiagExt + 4 * i, d.diag_ext[i]);
  return len;
}

ClcError decode_decline(std::span<const uint8_t> msg, ClcDecline* out) {
  ClcHeader h;
  size_t len = 0;
  ClcError e = check_common(msg, ClcType::kDecline, &h, &len);
  if (e != ClcError::kOk) return e;
  if (len != (h.version == 1 ? kClcDeclineV1Len : kClcDeclineV2Len)) return ClcError::kLength;
  const uint8_t* b = msg.data();
  ClcDecline d;
  d.version = h.version;
  d.out_of_sync = h.flag;
  std::memcpy(d.peer_id.data(), b + kOffPeerId, d.peer_id.size());
  d.diag = get_be32(b + kOffDiag);
  d.os_type = uint8_t(b[kOffOsType] >> 4);
  if (h.version >= 2)
    for (size_t i = 0; i < d.diag_ext.size(); ++i)
      d.diag_ext[i] = get_be32(b + kOffDiagExt + 4 * i);
  *out = d;
  return ClcError::kOk;
}

// ---------------------------------------------------------------------------

uint8_t rmbe_compress(uint32_t bytes) {
  // smc_compress_bufsize: 0 up to 16 KiB, then ilog2((size - 1) >> 14) + 1, capped.
  if (bytes <= kRmbeMinSize) return 0;
  uint32_t units = (bytes - 1) >> 14;
  uint8_t log2 = 0;
  while (units >>= 1) ++log2;
  return std::min<uint8_t>(uint8_t(log2 + 1), kRmbeMaxSizeCode);
}

namespace {

struct DeclineName {
  uint32_t code;
  const char* name;
};
// Linux's wording (smc_clc.h SMC_CLC_DECL_* comments).
constexpr DeclineName kDeclineNames[] = {
    {decline::kMem, "insufficient memory resources"},
    {decline::kTimeoutCl, "timeout waiting for QP confirm link"},
    {decline::kTimeoutAl, "timeout waiting for QP add link"},
    {decline::kCnfErr, "configuration error"},
    {decline::kPeerNoSmc, "peer did not indicate SMC"},
    {decline::kIpsec, "IPsec usage"},
    {decline::kNoSmcDev, "no SMC device found (R or D)"},
    {decline::kNoSmcDDev, "no SMC-D device found"},
    {decline::kNoSmcRDev, "no SMC-R device found"},
    {decline::kNoIsm2Supp, "hardware has no ISMv2 support"},
    {decline::kNoV2Ext, "peer sent no clc v2 extension"},
    {decline::kNoV2DExt, "peer sent no clc SMC-Dv2 ext."},
    {decline::kNoSeid, "peer sent no SEID"},
    {decline::kNoSmcD2Dev, "no SMC-Dv2 device found"},
    {decline::kNoUeid, "peer sent no UEID"},
    {decline::kModeUnsupp, "smc modes do not match (R or D)"},
    {decline::kRmbeEc, "peer has eyecatcher in RMBE"},
    {decline::kOptUnsupp, "fastopen sockopt not supported"},
    {decline::kDiffPrefix, "IP prefix / subnet mismatch"},
    {decline::kGetVlanErr, "err to get vlan id of ip device"},
    {decline::kIsmVlanErr, "err to reg vlan id on ism dev"},
    {decline::kNoActLink, "no active smc-r link in lgr"},
    {decline::kNoSrvLink, "SMC-R link from srv not found"},
    {decline::kVersMismat, "SMC version mismatch"},
    {decline::kMaxDmb, "SMC-D DMB limit exceeded"},
    {decline::kNoRoute, "SMC-Rv2 conn. no route to peer"},
    {decline::kNoIndirect, "SMC-Rv2 conn. indirect mismatch"},
    {decline::kSyncErr, "synchronization error"},
    {decline::kPeerDecl, "peer declined during handshake"},
    {decline::kInterr, "internal error"},
    {decline::kErrRtok, "rtoken handling failed"},
    {decline::kErrRdyLnk, "ib ready link failed"},
    {decline::kErrRegBuf, "reg rdma bufs failed"},
};

}  // namespace

const char* decline_reason_name(uint32_t code) {
  for (const DeclineName& d : kDeclineNames)
    if (d.code == code) return d.name;
  return "unknown";
}

}  // namespace droce::smc::wire
