// CM MAD encode/decode (IBTA vol. 1 tables 106-120; bit positions as
// Linux ibta_vol1_c12.h, where IBA_FIELD_BLOC counts bits from the MSB).
#include "nic/cm/mad.h"

#include <algorithm>
#include <cstring>

#include "nic/cm/bytes.h"

namespace droce::cm {

using namespace detail;

const char* mad_error_name(MadError e) {
  switch (e) {
    case MadError::kOk: return "ok";
    case MadError::kTruncated: return "truncated";
    case MadError::kLength: return "length";
    case MadError::kBaseVersion: return "base_version";
    case MadError::kClass: return "class";
    case MadError::kClassVersion: return "class_version";
    case MadError::kMethod: return "method";
    case MadError::kAttribute: return "attribute";
    case MadError::kField: return "field";
  }
  return "unknown";
}

const char* attr_name(uint16_t attr_id) {
  switch (attr_id) {
    case kAttrReq: return "REQ";
    case kAttrMra: return "MRA";
    case kAttrRej: return "REJ";
    case kAttrRep: return "REP";
    case kAttrRtu: return "RTU";
    case kAttrDreq: return "DREQ";
    case kAttrDrep: return "DREP";
    case kAttrSidrReq: return "SIDR_REQ";
    case kAttrSidrRep: return "SIDR_REP";
    case kAttrLap: return "LAP";
    case kAttrApr: return "APR";
  }
  return "unknown";
}

namespace {

struct AttrOf {
  uint16_t operator()(const Req&) const { return kAttrReq; }
  uint16_t operator()(const Mra&) const { return kAttrMra; }
  uint16_t operator()(const Rej&) const { return kAttrRej; }
  uint16_t operator()(const Rep&) const { return kAttrRep; }
  uint16_t operator()(const Rtu&) const { return kAttrRtu; }
  uint16_t operator()(const Dreq&) const { return kAttrDreq; }
  uint16_t operator()(const Drep&) const { return kAttrDrep; }
  uint16_t operator()(const SidrReq&) const { return kAttrSidrReq; }
  uint16_t operator()(const SidrRep&) const { return kAttrSidrRep; }
};

template <size_t N>
void get_bytes(const uint8_t* p, std::array<uint8_t, N>* out) {
  std::memcpy(out->data(), p, N);
}
template <size_t N>
void put_bytes(uint8_t* p, const std::array<uint8_t, N>& in) {
  std::memcpy(p, in.data(), N);
}

// A REQ path: LIDs 0/2, GIDs 4/20, flow label in the top 20 bits of 36..39,
// packet rate in the low 6 bits of 39, TC 40, hop limit 41, SL in the top
// nibble of 42 and subnet-local in its bit 3, ACK timeout in the top 5 bits of 43.
void get_path(const uint8_t* p, CmPath* out) {
  out->local_lid = get_be16(p);
  out->remote_lid = get_be16(p + 2);
  std::memcpy(out->local_gid.data(), p + 4, 16);
  std::memcpy(out->remote_gid.data(), p + 20, 16);
  out->flow_label = get_be32(p + 36) >> 12;
  out->packet_rate = get_bits(p[39], 5, 0);
  out->traffic_class = p[40];
  out->hop_limit = p[41];
  out->sl = get_bits(p[42], 7, 4);
  out->subnet_local = get_bits(p[42], 3, 3);
  out->local_ack_timeout = get_bits(p[43], 7, 3);
}

void put_path(uint8_t* p, const CmPath& in) {
  put_be16(p, in.local_lid);
  put_be16(p + 2, in.remote_lid);
  std::memcpy(p + 4, in.local_gid.data(), 16);
  std::memcpy(p + 20, in.remote_gid.data(), 16);
  put_be32(p + 36, (in.flow_label & 0xFFFFF) << 12);
  p[39] = put_bits(p[39], 5, 0, in.packet_rate);
  p[40] = in.traffic_class;
  p[41] = in.hop_limit;
  p[42] = put_bits(p[42], 7, 4, in.sl);
  p[42] = put_bits(p[42], 3, 3, in.subnet_local);
  p[43] = put_bits(p[43], 7, 3, in.local_ack_timeout);
}

// Each message: `d` is the 232-byte CM data (MAD offset 24).
void get_req(const uint8_t* d, Req* m) {
  m->local_comm_id = get_be32(d);
  m->vendor_id = get_be24(d + 5);
  m->service_id = get_be64(d + 8);
  m->local_ca_guid = get_be64(d + 16);
  m->local_qkey = get_be32(d + 28);
  m->local_qpn = get_be24(d + 32);
  m->responder_resources = d[35];
  m->local_eecn = get_be24(d + 36);
  m->initiator_depth = d[39];
  m->remote_eecn = get_be24(d + 40);
  m->remote_cm_response_timeout = get_bits(d[43], 7, 3);
  m->transport_type = get_bits(d[43], 2, 1);
  m->e2e_flow_control = get_bits(d[43], 0, 0);
  m->starting_psn = get_be24(d + 44);
  m->local_cm_response_timeout = get_bits(d[47], 7, 3);
  m->retry_count = get_bits(d[47], 2, 0);
  m->pkey = get_be16(d + 48);
  m->path_mtu = get_bits(d[50], 7, 4);
  m->rdc_exists = get_bits(d[50], 3, 3);
  m->rnr_retry_count = get_bits(d[50], 2, 0);
  m->max_cm_retries = get_bits(d[51], 7, 4);
  m->srq = get_bits(d[51], 3, 3);
  m->extended_transport_type = get_bits(d[51], 2, 0);
  get_path(d + 52, &m->primary);
  get_path(d + 96, &m->alternate);
  m->sap_supported = get_bits(d[139], 2, 2);
  get_bytes(d + 140, &m->private_data);
}

void put_req(uint8_t* d, const Req& m) {
  put_be32(d, m.local_comm_id);
  put_be24(d + 5, m.vendor_id);
  put_be64(d + 8, m.service_id);
  put_be64(d + 16, m.local_ca_guid);
  put_be32(d + 28, m.local_qkey);
  put_be24(d + 32, m.local_qpn);
  d[35] = m.responder_resources;
  put_be24(d + 36, m.local_eecn);
  d[39] = m.initiator_depth;
  put_be24(d + 40, m.remote_eecn);
  d[43] = put_bits(d[43], 7, 3, m.remote_cm_response_timeout);
  d[43] = put_bits(d[43], 2, 1, m.transport_type);
  d[43] = put_bits(d[43], 0, 0, m.e2e_flow_control);
  put_be24(d + 44, m.starting_psn);
  d[47] = put_bits(d[47], 7, 3, m.local_cm_response_timeout);
  d[47] = put_bits(d[47], 2, 0, m.retry_count);
  put_be16(d + 48, m.pkey);
  d[50] = put_bits(d[50], 7, 4, m.path_mtu);
  d[50] = put_bits(d[50], 3, 3, m.rdc_exists);
  d[50] = put_bits(d[50], 2, 0, m.rnr_retry_count);
  d[51] = put_bits(d[51], 7, 4, m.max_cm_retries);
  d[51] = put_bits(d[51], 3, 3, m.srq);
  d[51] = put_bits(d[51], 2, 0, m.extended_transport_type);
  put_path(d + 52, m.primary);
  put_path(d + 96, m.alternate);
  d[139] = put_bits(d[139], 2, 2, m.sap_supported);
  put_bytes(d + 140, m.private_data);
}

void get_mra(const uint8_t* d, Mra* m) {
  m->local_comm_id = get_be32(d);
  m->remote_comm_id = get_be32(d + 4);
  m->message_mraed = get_bits(d[8], 7, 6);
  m->service_timeout = get_bits(d[9], 7, 3);
  get_bytes(d + 10, &m->private_data);
}

void put_mra(uint8_t* d, const Mra& m) {
  put_be32(d, m.local_comm_id);
  put_be32(d + 4, m.remote_comm_id);
  d[8] = put_bits(d[8], 7, 6, m.message_mraed);
  d[9] = put_bits(d[9], 7, 3, m.service_timeout);
  put_bytes(d + 10, m.private_data);
}

bool get_rej(const uint8_t* d, Rej* m) {
  m->local_comm_id = get_be32(d);
  m->remote_comm_id = get_be32(d + 4);
  m->message_rejected = get_bits(d[8], 7, 6);
  m->reject_info_len = get_bits(d[9], 7, 1);
  m->reason = get_be16(d + 10);
  get_bytes(d + 12, &m->ari);
  get_bytes(d + 84, &m->private_data);
  return m->reject_info_len <= kRejAriLen;
}

void put_rej(uint8_t* d, const Rej& m) {
  put_be32(d, m.local_comm_id);
  put_be32(d + 4, m.remote_comm_id);
  d[8] = put_bits(d[8], 7, 6, m.message_rejected);
  d[9] = put_bits(d[9], 7, 1, m.reject_info_len);
  put_be16(d + 10, m.reason);
  put_bytes(d + 12, m.ari);
  put_bytes(d + 84, m.private_data);
}

void get_rep(const uint8_t* d, Rep* m) {
  m->local_comm_id = get_be32(d);
  m->remote_comm_id = get_be32(d + 4);
  m->local_qkey = get_be32(d + 8);
  m->local_qpn = get_be24(d + 12);
  m->local_eecn = get_be24(d + 16);
  m->starting_psn = get_be24(d + 20);
  m->vendor_id = uint32_t(d[15]) << 16 | uint32_t(d[19]) << 8 | d[23];
  m->responder_resources = d[24];
  m->initiator_depth = d[25];
  m->target_ack_delay = get_bits(d[26], 7, 3);
  m->failover_accepted = get_bits(d[26], 2, 1);
  m->e2e_flow_control = get_bits(d[26], 0, 0);
  m->rnr_retry_count = get_bits(d[27], 7, 5);
  m->srq = get_bits(d[27], 4, 4);
  m->local_ca_guid = get_be64(d + 28);
  get_bytes(d + 36, &m->private_data);
}

void put_rep(uint8_t* d, const Rep& m) {
  put_be32(d, m.local_comm_id);
  put_be32(d + 4, m.remote_comm_id);
  put_be32(d + 8, m.local_qkey);
  put_be24(d + 12, m.local_qpn);
  put_be24(d + 16, m.local_eecn);
  put_be24(d + 20, m.starting_psn);
  d[15] = uint8_t(m.vendor_id >> 16);
  d[19] = uint8_t(m.vendor_id >> 8);
  d[23] = uint8_t(m.vendor_id);
  d[24] = m.responder_resources;
  d[25] = m.initiator_depth;
  d[26] = put_bits(d[26], 7, 3, m.target_ack_delay);
  d[26] = put_bits(d[26], 2, 1, m.failover_accepted);
  d[26] = put_bits(d[26], 0, 0, m.e2e_flow_control);
  d[27] = put_bits(d[27], 7, 5, m.rnr_retry_count);
  d[27] = put_bits(d[27], 4, 4, m.srq);
  put_be64(d + 28, m.local_ca_guid);
  put_bytes(d + 36, m.private_data);
}

void get_rtu(const uint8_t* d, Rtu* m) {
  m->local_comm_id = get_be32(d);
  m->remote_comm_id = get_be32(d + 4);
  get_bytes(d + 8, &m->private_data);
}

void put_rtu(uint8_t* d, const Rtu& m) {
  put_be32(d, m.local_comm_id);
  put_be32(d + 4, m.remote_comm_id);
  put_bytes(d + 8, m.private_data);
}

void get_dreq(const uint8_t* d, Dreq* m) {
  m->local_comm_id = get_be32(d);
  m->remote_comm_id = get_be32(d + 4);
  m->remote_qpn = get_be24(d + 8);
  get_bytes(d + 12, &m->private_data);
}

void put_dreq(uint8_t* d, const Dreq& m) {
  put_be32(d, m.local_comm_id);
  put_be32(d + 4, m.remote_comm_id);
  put_be24(d + 8, m.remote_qpn);
  put_bytes(d + 12, m.private_data);
}

void get_drep(const uint8_t* d, Drep* m) {
  m->local_comm_id = get_be32(d);
  m->remote_comm_id = get_be32(d + 4);
  get_bytes(d + 8, &m->private_data);
}

void put_drep(uint8_t* d, const Drep& m) {
  put_be32(d, m.local_comm_id);
  put_be32(d + 4, m.remote_comm_id);
  put_bytes(d + 8, m.private_data);
}

void get_sidr_req(const uint8_t* d, SidrReq* m) {
  m->request_id = get_be32(d);
  m->pkey = get_be16(d + 4);
  m->service_id = get_be64(d + 8);
  get_bytes(d + 16, &m->private_data);
}

void put_sidr_req(uint8_t* d, const SidrReq& m) {
  put_be32(d, m.request_id);
  put_be16(d + 4, m.pkey);
  put_be64(d + 8, m.service_id);
  put_bytes(d + 16, m.private_data);
}

bool get_sidr_rep(const uint8_t* d, SidrRep* m) {
  m->request_id = get_be32(d);
  m->status = d[4];
  m->info_len = d[5];
  m->vendor_id = uint32_t(get_be16(d + 6)) << 8 | d[11];
  m->qpn = get_be24(d + 8);
  m->service_id = get_be64(d + 12);
  m->qkey = get_be32(d + 20);
  get_bytes(d + 24, &m->info);
  get_bytes(d + 96, &m->private_data);
  return m->info_len <= kSidrRepInfoLen;
}

void put_sidr_rep(uint8_t* d, const SidrRep& m) {
  put_be32(d, m.request_id);
  d[4] = m.status;
  d[5] = m.info_len;
  put_be16(d + 6, uint16_t(m.vendor_id >> 8));
  put_be24(d + 8, m.qpn);
  d[11] = uint8_t(m.vendor_id);
  put_be64(d + 12, m.service_id);
  put_be32(d + 20, m.qkey);
  put_bytes(d + 24, m.info);
  put_bytes(d + 96, m.private_data);
}

struct PutMsg {
  uint8_t* d;
  void operator()(const Req& m) const { put_req(d, m); }
  void operator()(const Mra& m) const { put_mra(d, m); }
  void operator()(const Rej& m) const { put_rej(d, m); }
  void operator()(const Rep& m) const { put_rep(d, m); }
  void operator()(const Rtu& m) const { put_rtu(d, m); }
  void operator()(const Dreq& m) const { put_dreq(d, m); }
  void operator()(const Drep& m) const { put_drep(d, m); }
  void operator()(const SidrReq& m) const { put_sidr_req(d, m); }
  void operator()(const SidrRep& m) const { put_sidr_rep(d, m); }
};

// Decodes the message of `attr_id` from the CM data into out->msg.
MadError get_msg(uint16_t attr_id, const uint8_t* d, CmMsg* out) {
  switch (attr_id) {
    case kAttrReq: get_req(d, &out->emplace<Req>()); return MadError::kOk;
    case kAttrMra: get_mra(d, &out->emplace<Mra>()); return MadError::kOk;
    case kAttrRej: return get_rej(d, &out->emplace<Rej>()) ? MadError::kOk : MadError::kField;
    case kAttrRep: get_rep(d, &out->emplace<Rep>()); return MadError::kOk;
    case kAttrRtu: get_rtu(d, &out->emplace<Rtu>()); return MadError::kOk;
    case kAttrDreq: get_dreq(d, &out->emplace<Dreq>()); return MadError::kOk;
    case kAttrDrep: get_drep(d, &out->emplace<Drep>()); return MadError::kOk;
    case kAttrSidrReq: get_sidr_req(d, &out->emplace<SidrReq>()); return MadError::kOk;
    case kAttrSidrRep:
      return get_sidr_rep(d, &out->emplace<SidrRep>()) ? MadError::kOk : MadError::kField;
  }
  return MadError::kAttribute;
}

}  // namespace

uint16_t attr_id_of(const CmMsg& m) { return std::visit(AttrOf{}, m); }

MadError decode_mad_hdr(std::span<const uint8_t> mad, MadHdr* out) {
  if (mad.size() < kMadHdrLen) return MadError::kTruncated;
  const uint8_t* p = mad.data();
  out->base_version = p[0];
  out->mgmt_class = p[1];
  out->class_version = p[2];
  out->method = p[3];
  out->status = get_be16(p + 4);
  out->class_specific = get_be16(p + 6);
  out->tid = get_be64(p + 8);
  out->attr_id = get_be16(p + 16);
  out->reserved = get_be16(p + 18);
  out->attr_mod = get_be32(p + 20);
  if (out->base_version != kMadBaseVersion) return MadError::kBaseVersion;
  if (out->mgmt_class != kMgmtClassCm) return MadError::kClass;
  if (out->class_version != kCmClassVersion) return MadError::kClassVersion;
  if (out->method != kMadMethodSend) return MadError::kMethod;
  return MadError::kOk;
}

void encode_mad_hdr(const MadHdr& h, uint8_t* p) {
  p[0] = h.base_version;
  p[1] = h.mgmt_class;
  p[2] = h.class_version;
  p[3] = h.method;
  put_be16(p + 4, h.status);
  put_be16(p + 6, h.class_specific);
  put_be64(p + 8, h.tid);
  put_be16(p + 16, h.attr_id);
  put_be16(p + 18, h.reserved);
  put_be32(p + 20, h.attr_mod);
}

MadError decode_cm_mad(std::span<const uint8_t> mad, CmMad* out) {
  if (mad.size() < kMadLen) return MadError::kTruncated;
  if (mad.size() > kMadLen) return MadError::kLength;
  const MadError e = decode_mad_hdr(mad, &out->hdr);
  if (e != MadError::kOk) return e;
  return get_msg(out->hdr.attr_id, mad.data() + kMadHdrLen, &out->msg);
}

void encode_cm_mad(const CmMad& m, std::span<uint8_t, kMadLen> out) {
  std::fill(out.begin(), out.end(), uint8_t(0));
  MadHdr h = m.hdr;
  h.attr_id = attr_id_of(m.msg);
  encode_mad_hdr(h, out.data());
  std::visit(PutMsg{out.data() + kMadHdrLen}, m.msg);
}

}  // namespace droce::cm
