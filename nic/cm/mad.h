// Communication Manager MADs: the 24-byte MAD header and the nine CM messages
// RoCE uses (REQ, MRA, REJ, REP, RTU, DREQ, DREP, SIDR_REQ, SIDR_REP), each a
// 256-byte MAD carried in a UD SEND to QP1 (IBTA vol. 1, 12.6 and 13.4;
// offsets as Linux include/rdma/ibta_vol1_c12.h lays them out).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <variant>

namespace droce::cm {

inline constexpr size_t kMadLen = 256;     // every GSI MAD (IBTA 13.4.2)
inline constexpr size_t kMadHdrLen = 24;   // common MAD header (13.4.3)
inline constexpr size_t kCmDataLen = kMadLen - kMadHdrLen;  // 232 bytes of CM message

inline constexpr uint8_t kMadBaseVersion = 1;
inline constexpr uint8_t kMgmtClassCm = 0x07;
inline constexpr uint8_t kCmClassVersion = 2;  // the only version ib_cm registers
inline constexpr uint8_t kMadMethodSend = 0x03;

// Attribute IDs (IBTA table 104; Linux ib_cm.h CM_*_ATTR_ID).
inline constexpr uint16_t kAttrReq = 0x0010;
inline constexpr uint16_t kAttrMra = 0x0011;
inline constexpr uint16_t kAttrRej = 0x0012;
inline constexpr uint16_t kAttrRep = 0x0013;
inline constexpr uint16_t kAttrRtu = 0x0014;
inline constexpr uint16_t kAttrDreq = 0x0015;
inline constexpr uint16_t kAttrDrep = 0x0016;
inline constexpr uint16_t kAttrSidrReq = 0x0017;
inline constexpr uint16_t kAttrSidrRep = 0x0018;
inline constexpr uint16_t kAttrLap = 0x0019;  // ignored on RoCE, as Linux does
inline constexpr uint16_t kAttrApr = 0x001A;

// Private-data sizes (Linux ib_cm.h IB_CM_*_PRIVATE_DATA_SIZE).
inline constexpr size_t kReqPrivateLen = 92;
inline constexpr size_t kMraPrivateLen = 222;
inline constexpr size_t kRejPrivateLen = 148;
inline constexpr size_t kRepPrivateLen = 196;
inline constexpr size_t kRtuPrivateLen = 224;
inline constexpr size_t kDreqPrivateLen = 220;
inline constexpr size_t kDrepPrivateLen = 224;
inline constexpr size_t kSidrReqPrivateLen = 216;
inline constexpr size_t kSidrRepPrivateLen = 136;
inline constexpr size_t kRejAriLen = 72;
inline constexpr size_t kSidrRepInfoLen = 72;

// REJ reasons (IBTA table 109; Linux enum ib_cm_rej_reason).
enum class RejReason : uint16_t {
  kNoQp = 1,
  kNoEec = 2,
  kNoResources = 3,
  kTimeout = 4,
  kUnsupported = 5,
  kInvalidCommId = 6,
  kInvalidCommInstance = 7,
  kInvalidServiceId = 8,
  kInvalidTransportType = 9,
  kStaleConn = 10,
  kRdcNotExist = 11,
  kInvalidGid = 12,
  kInvalidLid = 13,
  kInvalidSl = 14,
  kInvalidTrafficClass = 15,
  kInvalidHopLimit = 16,
  kInvalidPacketRate = 17,
  kPortCmRedirect = 24,
  kPortRedirect = 25,
  kInvalidMtu = 26,
  kInsufficientRespResources = 27,
  kConsumerDefined = 28,
  kInvalidRnrRetry = 29,
  kDuplicateLocalCommId = 30,
  kInvalidClassVersion = 31,
  kInvalidFlowLabel = 32,
  kInvalidAltFlowLabel = 33,
  kVendorOptionNotSupported = 35,
};

// REJ "Message Rejected" and MRA "Message MRAed" (IBTA 12.6.7, 12.6.6).
inline constexpr uint8_t kMsgReq = 0;
inline constexpr uint8_t kMsgRep = 1;
inline constexpr uint8_t kMsgOther = 2;  // REJ: other; MRA: LAP

// SIDR_REP status (IBTA table 120; Linux enum ib_cm_sidr_status).
inline constexpr uint8_t kSidrSuccess = 0;
inline constexpr uint8_t kSidrUnsupported = 1;
inline constexpr uint8_t kSidrReject = 2;
inline constexpr uint8_t kSidrNoQp = 3;
inline constexpr uint8_t kSidrRedirect = 4;
inline constexpr uint8_t kSidrUnsupportedVersion = 5;

// REQ transport service type (2 bits).
inline constexpr uint8_t kTransportRc = 0;
inline constexpr uint8_t kTransportUc = 1;
inline constexpr uint8_t kTransportXrc = 3;

using Gid = std::array<uint8_t, 16>;

struct MadHdr {
  uint8_t base_version = kMadBaseVersion;
  uint8_t mgmt_class = kMgmtClassCm;
  uint8_t class_version = kCmClassVersion;
  uint8_t method = kMadMethodSend;
  uint16_t status = 0;
  uint16_t class_specific = 0;
  uint64_t tid = 0;        // transaction ID: originator's, echoed by replies
  uint16_t attr_id = 0;    // kAttrReq ...
  uint16_t reserved = 0;
  uint32_t attr_mod = 0;   // ECE options in newer kernels; droce sends 0
  friend bool operator==(const MadHdr&, const MadHdr&) = default;
};

// A REQ's primary or alternate path (44 bytes at CM offset 52 or 96).
struct CmPath {
  uint16_t local_lid = 0;       // RoCE: 0xFFFF (permissive)
  uint16_t remote_lid = 0;
  Gid local_gid{};              // the sender's
  Gid remote_gid{};             // the receiver's
  uint32_t flow_label = 0;      // 20 bits
  uint8_t packet_rate = 0;      // 6 bits, ib_rate
  uint8_t traffic_class = 0;
  uint8_t hop_limit = 0;
  uint8_t sl = 0;               // 4 bits
  bool subnet_local = false;
  uint8_t local_ack_timeout = 0;  // 5 bits, 4.096 us * 2^n
  friend bool operator==(const CmPath&, const CmPath&) = default;
};

struct Req {
  uint32_t local_comm_id = 0;
  uint32_t vendor_id = 0;       // 24 bits (ECE)
  uint64_t service_id = 0;
  uint64_t local_ca_guid = 0;
  uint32_t local_qkey = 0;
  uint32_t local_qpn = 0;       // 24 bits
  uint8_t responder_resources = 0;
  uint32_t local_eecn = 0;      // 24 bits
  uint8_t initiator_depth = 0;
  uint32_t remote_eecn = 0;     // 24 bits
  uint8_t remote_cm_response_timeout = 0;  // 5 bits
  uint8_t transport_type = 0;   // 2 bits, kTransportRc ...
  bool e2e_flow_control = false;
  uint32_t starting_psn = 0;    // 24 bits
  uint8_t local_cm_response_timeout = 0;   // 5 bits
  uint8_t retry_count = 0;      // 3 bits
  uint16_t pkey = 0;
  uint8_t path_mtu = 0;         // 4 bits, 1 = 256 ... 5 = 4096
  bool rdc_exists = false;
  uint8_t rnr_retry_count = 0;  // 3 bits
  uint8_t max_cm_retries = 0;   // 4 bits
  bool srq = false;
  uint8_t extended_transport_type = 0;  // 3 bits
  CmPath primary;
  CmPath alternate;             // all zero on RoCE (no APM)
  bool sap_supported = false;
  std::array<uint8_t, kReqPrivateLen> private_data{};
  friend bool operator==(const Req&, const Req&) = default;
};

struct Mra {
  uint32_t local_comm_id = 0;
  uint32_t remote_comm_id = 0;
  uint8_t message_mraed = 0;    // 2 bits: kMsgReq, kMsgRep, kMsgOther (LAP)
  uint8_t service_timeout = 0;  // 5 bits
  std::array<uint8_t, kMraPrivateLen> private_data{};
  friend bool operator==(const Mra&, const Mra&) = default;
};

struct Rej {
  uint32_t local_comm_id = 0;
  uint32_t remote_comm_id = 0;
  uint8_t message_rejected = 0;  // 2 bits
  uint8_t reject_info_len = 0;   // 7 bits, at most kRejAriLen
  uint16_t reason = 0;           // RejReason
  std::array<uint8_t, kRejAriLen> ari{};
  std::array<uint8_t, kRejPrivateLen> private_data{};
  friend bool operator==(const Rej&, const Rej&) = default;
};

struct Rep {
  uint32_t local_comm_id = 0;
  uint32_t remote_comm_id = 0;
  uint32_t local_qkey = 0;
  uint32_t local_qpn = 0;       // 24 bits
  uint32_t local_eecn = 0;      // 24 bits
  uint32_t starting_psn = 0;    // 24 bits
  uint32_t vendor_id = 0;       // 24 bits, split over bytes 15, 19, 23 (ECE)
  uint8_t responder_resources = 0;
  uint8_t initiator_depth = 0;
  uint8_t target_ack_delay = 0;  // 5 bits
  uint8_t failover_accepted = 0; // 2 bits
  bool e2e_flow_control = false;
  uint8_t rnr_retry_count = 0;   // 3 bits
  bool srq = false;
  uint64_t local_ca_guid = 0;
  std::array<uint8_t, kRepPrivateLen> private_data{};
  friend bool operator==(const Rep&, const Rep&) = default;
};

struct Rtu {
  uint32_t local_comm_id = 0;
  uint32_t remote_comm_id = 0;
  std::array<uint8_t, kRtuPrivateLen> private_data{};
  friend bool operator==(const Rtu&, const Rtu&) = default;
};

struct Dreq {
  uint32_t local_comm_id = 0;
  uint32_t remote_comm_id = 0;
  uint32_t remote_qpn = 0;      // 24 bits: the receiver's QPN (Linux drops a mismatch)
  std::array<uint8_t, kDreqPrivateLen> private_data{};
  friend bool operator==(const Dreq&, const Dreq&) = default;
};

struct Drep {
  uint32_t local_comm_id = 0;
  uint32_t remote_comm_id = 0;
  std::array<uint8_t, kDrepPrivateLen> private_data{};
  friend bool operator==(const Drep&, const Drep&) = default;
};

struct SidrReq {
  uint32_t request_id = 0;
  uint16_t pkey = 0;
  uint64_t service_id = 0;
  std::array<uint8_t, kSidrReqPrivateLen> private_data{};
  friend bool operator==(const SidrReq&, const SidrReq&) = default;
};

struct SidrRep {
  uint32_t request_id = 0;
  uint8_t status = 0;            // kSidrSuccess ...
  uint8_t info_len = 0;          // additional information length, at most kSidrRepInfoLen
  uint32_t vendor_id = 0;        // 24 bits: bytes 6..7 and 11
  uint32_t qpn = 0;              // 24 bits
  uint64_t service_id = 0;
  uint32_t qkey = 0;
  std::array<uint8_t, kSidrRepInfoLen> info{};
  std::array<uint8_t, kSidrRepPrivateLen> private_data{};
  friend bool operator==(const SidrRep&, const SidrRep&) = default;
};

using CmMsg = std::variant<Req, Mra, Rej, Rep, Rtu, Dreq, Drep, SidrReq, SidrRep>;

struct CmMad {
  MadHdr hdr;
  CmMsg msg;  // its alternative matches hdr.attr_id
  friend bool operator==(const CmMad&, const CmMad&) = default;
};

enum class MadError : uint8_t {
  kOk = 0,
  kTruncated,     // fewer than kMadLen bytes
  kLength,        // more than kMadLen bytes (a GSI MAD is exactly 256)
  kBaseVersion,   // not 1
  kClass,         // management class is not CM (0x07)
  kClassVersion,  // not 2
  kMethod,        // not SEND: CM uses no other method
  kAttribute,     // not one of the nine messages (LAP/APR included: not used on RoCE)
  kField,         // a length field larger than its area (REJ ARI, SIDR_REP info)
};
const char* mad_error_name(MadError e);

// The attribute ID of a message alternative.
uint16_t attr_id_of(const CmMsg& m);
const char* attr_name(uint16_t attr_id);  // "REQ" ...; "unknown" otherwise

// Reads and checks only the 24-byte header (class, versions, method); the
// attribute is not checked. Needs kMadHdrLen bytes.
MadError decode_mad_hdr(std::span<const uint8_t> mad, MadHdr* out);
void encode_mad_hdr(const MadHdr& h, uint8_t* out);

// Decodes a whole CM MAD: exactly kMadLen bytes, header checked, message by
// attribute. Reserved bits are not kept (encode writes them as zero).
MadError decode_cm_mad(std::span<const uint8_t> mad, CmMad* out);
// Writes kMadLen bytes; hdr.attr_id is taken from the message alternative.
void encode_cm_mad(const CmMad& m, std::span<uint8_t, kMadLen> out);

}  // namespace droce::cm
