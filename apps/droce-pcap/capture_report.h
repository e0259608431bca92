// droce-pcap's model: reading one pcap/pcapng capture with libpcap and counting
// frames, RoCEv2 frames (UDP dst 4791, RoCEv2 annex A17), opcodes, ICRC results
// and malformed frames. Not a hot path: each frame is copied before parsing.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace droce::apps {

// What happened to one capture file.
struct CaptureReport {
  // One RoCEv2 frame that did not verify (the first kMaxProblems are kept).
  struct Problem {
    uint64_t frame = 0;  // 1-based frame number, as tshark numbers frames
    std::string reason;
  };
  static constexpr size_t kMaxProblems = 10;

  std::string file;
  bool opened = false;     // the file was opened as an Ethernet capture
  bool complete = false;   // every record up to the end of the file was read
  std::string error;       // why the file could not be read (to its end); empty if it was

  uint64_t frames = 0;     // records read
  uint64_t rocev2 = 0;     // frames whose UDP destination port is 4791
  uint64_t icrc_ok = 0;    // RoCEv2 frames that parsed and whose ICRC verified
  uint64_t icrc_bad = 0;   // RoCEv2 frames that parsed but whose ICRC did not verify
  uint64_t malformed = 0;  // other RoCEv2 frames: rejected by the parser or cut by the snaplen
  uint64_t other = 0;      // frames that are not RoCEv2 (ARP, TCP, other UDP ports ...)

  // RoCEv2 frames by BTH opcode (every RoCEv2 frame whose opcode byte was captured).
  std::map<uint8_t, uint64_t> opcodes;
  std::map<std::string, uint64_t> malformed_reasons;  // reason -> count
  std::map<std::string, uint64_t> other_kinds;        // e.g. "arp", "ipv4_tcp" -> count
  std::vector<Problem> problems;

  // Exit status for this file: 0 clean, 1 some RoCEv2 frame bad, 2 file unreadable.
  int exit_status() const;
};

// Reads `path` to its end (or its first read error) and fills the report.
CaptureReport read_capture(const std::string& path);

// Opcode name for the report: wire::opcode_name, or "UNKNOWN_0xNN" for opcodes
// outside the table so that different unknown opcodes stay apart.
std::string opcode_label(uint8_t opcode);

// One JSON object on one line (no trailing newline).
std::string to_json(const CaptureReport& r);

// A readable multi-line report (ends with a newline).
std::string to_text(const CaptureReport& r);

// `s` as a JSON string literal with quotes. Invalid UTF-8 bytes become U+FFFD.
std::string json_quote(const std::string& s);

}  // namespace droce::apps
