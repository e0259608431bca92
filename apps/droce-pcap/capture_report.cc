// droce-pcap's model: reading a capture with libpcap, telling RoCEv2 frames
// (UDP dst 4791, RoCEv2 annex A17) from other traffic, and checking each RoCEv2
// frame with wire::parse_frame (headers, lengths, ICRC).
#include "apps/droce-pcap/capture_report.h"

#include <pcap/pcap.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string_view>

#include "nic/wire/eth.h"
#include "nic/wire/ipv4.h"
#include "nic/wire/opcodes.h"
#include "nic/wire/packet.h"
#include "nic/wire/udp.h"

namespace droce::apps {
namespace {

constexpr size_t kEthLen = 14;
constexpr size_t kVlanLen = 4;
constexpr size_t kIpv4MinLen = 20;
constexpr size_t kIpv6Len = 40;
constexpr uint8_t kIpProtoTcp = 6;

uint16_t load_be16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }

// Where a frame goes in the report, decided from the captured bytes alone and
// independently of the parser: a frame is RoCEv2 when its IPv4/IPv6 header
// says UDP and the UDP destination port is 4791. Everything else is "other",
// with a kind. Deliberately lenient about the IP header (a bad IHL or version
// nibble still classifies by port), so that a damaged RoCEv2 frame is reported
// as malformed by the parser instead of vanishing into "other".
struct Classification {
  bool rocev2 = false;
  const char* other_kind = nullptr;  // set when !rocev2
  size_t bth_off = 0;                // when rocev2
};

Classification classify(const uint8_t* p, size_t caplen) {
  Classification c;
  if (caplen < kEthLen) {
    c.other_kind = "too_short";  // not even an Ethernet header was captured
    return c;
  }
  uint16_t ether_type = load_be16(p + 12);
  size_t off = kEthLen;
  if (ether_type == wire::kEtherTypeVlan) {
    if (caplen < kEthLen + kVlanLen) {
      c.other_kind = "too_short";
      return c;
    }
    ether_type = load_be16(p + 16);
    off += kVlanLen;
  }
  size_t udp_off = 0;
  if (ether_type == wire::kEtherTypeIpv4) {
    if (caplen < off + kIpv4MinLen) {
      c.other_kind = "too_short";
      return c;
    }
    size_t ihl = size_t(p[off] & 0x0F) * 4;
    if (ihl < kIpv4MinLen) ihl = kIpv4MinLen;
    const uint8_t proto = p[off + 9];
    if (proto != wire::kIpProtoUdp) {
      c.other_kind = proto == kIpProtoTcp ? "ipv4_tcp" : "ipv4_other";
      return c;
    }
    if ((load_be16(p + off + 6) & wire::kIpv4FragOffsetMask) != 0) {
      c.other_kind = "ipv4_fragment";  // a later fragment carries no UDP header
      return c;
    }
    udp_off = off + ihl;
  } else if (ether_type == wire::kEtherTypeIpv6) {
    if (caplen < off + kIpv6Len) {
      c.other_kind = "too_short";
      return c;
    }
    const uint8_t next_header = p[off + 6];
    if (next_header != wire::kIpProtoUdp) {
      c.other_kind = next_header == kIpProtoTcp ? "ipv6_tcp" : "ipv6_other";
      return c;
    }
    udp_off = off + kIpv6Len;
  } else {
    c.other_kind = ether_type == wire::kEtherTypeArp ? "arp" : "non_ip";
    return c;
  }
  if (caplen < udp_off + 4) {
    c.other_kind = "too_short";  // the UDP destination port was not captured
    return c;
  }
  if (load_be16(p + udp_off + 2) != wire::kRoceV2Port) {
    c.other_kind = ether_type == wire::kEtherTypeIpv4 ? "ipv4_udp_other_port" : "ipv6_udp_other_port";
    return c;
  }
  c.rocev2 = true;
  c.bth_off = udp_off + 8;
  return c;
}

void add_problem(CaptureReport& r, const std::string& reason) {
  ++r.malformed_reasons[reason];
  if (r.problems.size() < CaptureReport::kMaxProblems) r.problems.push_back({r.frames, reason});
}

void count_frame(CaptureReport& r, const pcap_pkthdr& h, const uint8_t* data) {
  ++r.frames;
  const Classification c = classify(data, h.caplen);
  if (!c.rocev2) {
    ++r.other;
    ++r.other_kinds[c.other_kind];
    return;
  }
  ++r.rocev2;
  if (c.bth_off < h.caplen) ++r.opcodes[data[c.bth_off]];
  if (h.caplen < h.len) {
    // The capture kept only the first caplen bytes (snaplen): the ICRC and
    // possibly headers are missing, so the frame cannot be checked.
    ++r.malformed;
    add_problem(r, "truncated by the capture's snaplen (caplen < len)");
    return;
  }
  // parse_frame masks the ICRC variant fields in place: work on a copy sized
  // exactly to the frame so that a sanitizer sees any read past its end.
  std::unique_ptr<uint8_t[]> copy(new uint8_t[h.caplen]);
  std::memcpy(copy.get(), data, h.caplen);
  wire::PacketView view;
  const wire::ParseError e = wire::parse_frame(copy.get(), h.caplen, &view, {.verify_icrc = true});
  if (e == wire::ParseError::kOk) {
    ++r.icrc_ok;
  } else if (e == wire::ParseError::kBadIcrc) {
    ++r.icrc_bad;
    if (r.problems.size() < CaptureReport::kMaxProblems) {
      r.problems.push_back({r.frames, wire::parse_error_name(e)});
    }
  } else {
    // Includes the "not RoCEv2" reasons (e.g. an IPv4 fragment to port 4791):
    // the frame is addressed to RoCEv2 but the parser refuses it.
    ++r.malformed;
    add_problem(r, wire::parse_error_name(e));
  }
}

std::string link_type_text(int dlt) {
  const char* name = pcap_datalink_val_to_name(dlt);
  const char* desc = pcap_datalink_val_to_description(dlt);
  std::string s = "link type " + std::to_string(dlt);
  if (name != nullptr) s += std::string(" (") + name + (desc != nullptr ? std::string(", ") + desc : "") + ")";
  return s;
}

void append_u64(std::string& s, uint64_t v) { s += std::to_string(v); }

template <typename Map, typename KeyFn>
void append_json_counts(std::string& s, const Map& m, KeyFn key) {
  s += '{';
  bool first = true;
  for (const auto& [k, v] : m) {
    if (!first) s += ',';
    first = false;
    s += json_quote(key(k));
    s += ':';
    append_u64(s, v);
  }
  s += '}';
}

template <typename Map, typename KeyFn>
void append_text_counts(std::string& s, const char* title, const Map& m, KeyFn key) {
  if (m.empty()) return;
  s += "  ";
  s += title;
  s += ":\n";
  for (const auto& [k, v] : m) {
    char line[128];
    std::snprintf(line, sizeof(line), "    %-40s %10" PRIu64 "\n", key(k).c_str(), v);
    s += line;
  }
}

// Length of the valid UTF-8 sequence at s[i], or 0 if there is none.
size_t utf8_sequence_len(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return uint8_t(s[k]); };
  const uint8_t c = b(i);
  size_t n;
  uint32_t cp;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
    cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
    cp = cp << 6 | (b(i + k) & 0x3F);
  }
  // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are invalid.
  if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
      (cp >= 0xD800 && cp <= 0xDFFF)) {
    return 0;
  }
  return n;
}

}  // namespace

int CaptureReport::exit_status() const {
  if (!error.empty()) return 2;
  return (icrc_bad != 0 || malformed != 0) ? 1 : 0;
}

std::string opcode_label(uint8_t opcode) {
  if (wire::opcode_info(opcode).valid()) return wire::opcode_name(opcode);
  char buf[24];
  std::snprintf(buf, sizeof(buf), "UNKNOWN_0x%02X", opcode);
  return buf;
}

CaptureReport read_capture(const std::string& path) {
  CaptureReport r;
  r.file = path;
  char errbuf[PCAP_ERRBUF_SIZE] = {};
  pcap_t* pc = pcap_open_offline(path.c_str(), errbuf);
  if (pc == nullptr) {
    r.error = std::string("cannot read as a pcap or pcapng capture: ") + errbuf;
    return r;
  }
  const int dlt = pcap_datalink(pc);
  if (dlt != DLT_EN10MB) {
    r.error = link_type_text(dlt) + " is not supported; droce-pcap reads Ethernet (DLT_EN10MB) captures only";
    pcap_close(pc);
    return r;
  }
  r.opened = true;
  pcap_pkthdr* h = nullptr;
  const u_char* data = nullptr;
  int rc;
  while ((rc = pcap_next_ex(pc, &h, &data)) == 1) count_frame(r, *h, data);
  if (rc == PCAP_ERROR_BREAK) {
    r.complete = true;  // end of file
  } else {
    // libpcap stops at a record it cannot read (file cut in the middle of a
    // record, corrupt record length, pcapng interface with another link type).
    // The frames before it are reported; the file counts as unreadable.
    r.error = "read error after frame " + std::to_string(r.frames) + ": " +
              (rc == PCAP_ERROR ? pcap_geterr(pc) : "unexpected pcap_next_ex result " + std::to_string(rc));
  }
  pcap_close(pc);
  return r;
}

std::string json_quote(const std::string& s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size();) {
    const uint8_t c = uint8_t(s[i]);
    const size_t n = utf8_sequence_len(s, i);
    if (n == 0) {
      out += "\\ufffd";
      ++i;
      continue;
    }
    if (n > 1) {
      out.append(s, i, n);
      i += n;
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7F) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += char(c);
        }
    }
    ++i;
  }
  out += '"';
  return out;
}

std::string to_json(const CaptureReport& r) {
  std::string s = "{\"file\":" + json_quote(r.file);
  const auto field = [&s](const char* key, uint64_t v) {
    s += ",\"";
    s += key;
    s += "\":";
    append_u64(s, v);
  };
  field("frames", r.frames);
  field("rocev2", r.rocev2);
  field("icrc_ok", r.icrc_ok);
  field("icrc_bad", r.icrc_bad);
  field("malformed", r.malformed);
  field("other", r.other);
  s += ",\"opcodes\":";
  append_json_counts(s, r.opcodes, opcode_label);
  s += ",\"malformed_reasons\":";
  append_json_counts(s, r.malformed_reasons, [](const std::string& k) { return k; });
  s += ",\"other_kinds\":";
  append_json_counts(s, r.other_kinds, [](const std::string& k) { return k; });
  s += ",\"problems\":[";
  for (size_t i = 0; i < r.problems.size(); ++i) {
    if (i != 0) s += ',';
    s += "{\"frame\":";
    append_u64(s, r.problems[i].frame);
    s += ",\"reason\":" + json_quote(r.problems[i].reason) + "}";
  }
  s += "],\"complete\":";
  s += r.complete ? "true" : "false";
  if (!r.error.empty()) s += ",\"error\":" + json_quote(r.error);
  s += ",\"exit_status\":";
  append_u64(s, uint64_t(r.exit_status()));
  s += '}';
  return s;
}

std::string to_text(const CaptureReport& r) {
  std::string s = r.file + "\n";
  if (!r.opened) {
    s += "  ERROR: " + r.error + "\n";
    return s;
  }
  char line[256];
  std::snprintf(line, sizeof(line),
                "  frames %" PRIu64 ", RoCEv2 %" PRIu64 " (ICRC ok %" PRIu64 ", ICRC bad %" PRIu64
                ", malformed %" PRIu64 "), other %" PRIu64 "\n",
                r.frames, r.rocev2, r.icrc_ok, r.icrc_bad, r.malformed, r.other);
  s += line;
  append_text_counts(s, "opcodes", r.opcodes, opcode_label);
  append_text_counts(s, "malformed", r.malformed_reasons, [](const std::string& k) { return k; });
  append_text_counts(s, "other", r.other_kinds, [](const std::string& k) { return k; });
  if (!r.problems.empty()) {
    s += "  first problems:\n";
    for (const auto& p : r.problems) s += "    frame " + std::to_string(p.frame) + ": " + p.reason + "\n";
  }
  if (!r.error.empty()) {
    s += "  ERROR: " + r.error + "\n";
  } else {
    s += r.exit_status() == 0 ? "  result: clean\n" : "  result: NOT CLEAN\n";
  }
  return s;
}

}  // namespace droce::apps
