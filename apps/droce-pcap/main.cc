// droce-pcap [--json] FILE...: reports the RoCEv2 traffic in pcap/pcapng
// captures (frames, opcodes, ICRC good/bad, malformed frames; RoCEv2 annex A17).
// Exit status: 0 all RoCEv2 frames clean, 1 some bad, 2 a file unreadable or a usage error.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "apps/droce-pcap/capture_report.h"

namespace {

constexpr int kExitClean = 0;
constexpr int kExitUnreadable = 2;

void print_usage(std::FILE* out) {
  std::fputs(
      "usage: droce-pcap [--json] FILE...\n"
      "\n"
      "Reads pcap and pcapng captures of Ethernet frames (DLT_EN10MB) and reports, per file:\n"
      "frames, RoCEv2 frames (UDP destination port 4791), RoCEv2 frames per BTH opcode, ICRC\n"
      "good / bad, and malformed RoCEv2 frames with the reason. Other traffic (ARP, TCP, other\n"
      "UDP ports ...) is counted under \"other\" and is not an error. A RoCEv2 frame cut short\n"
      "by the capture's snaplen counts as malformed.\n"
      "\n"
      "  --json   one JSON object per file, one line each, with keys file, frames, rocev2,\n"
      "           icrc_ok, icrc_bad, malformed, other, opcodes, malformed_reasons,\n"
      "           other_kinds, problems, complete, exit_status (and error when unreadable)\n"
      "  FILE     a capture; \"-\" reads standard input\n"
      "\n"
      "Exit status: 0 if every RoCEv2 frame in every file parsed and had a good ICRC;\n"
      "1 if some RoCEv2 frame was malformed or had a bad ICRC; 2 if a file could not be\n"
      "read to its end (missing, not a capture, unsupported link type, or cut in the middle\n"
      "of a record: the frames before the cut are still reported) or on a usage error.\n",
      out);
}

}  // namespace

int main(int argc, char** argv) {
  bool json = false;
  std::vector<std::string> files;
  bool options_done = false;
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    if (!options_done && std::strcmp(a, "--") == 0) {
      options_done = true;
    } else if (!options_done && std::strcmp(a, "--json") == 0) {
      json = true;
    } else if (!options_done && (std::strcmp(a, "-h") == 0 || std::strcmp(a, "--help") == 0)) {
      print_usage(stdout);
      return kExitClean;
    } else if (!options_done && a[0] == '-' && a[1] != '\0') {
      std::fprintf(stderr, "droce-pcap: unknown option '%s'\n", a);
      print_usage(stderr);
      return kExitUnreadable;
    } else {
      files.emplace_back(a);
    }
  }
  if (files.empty()) {
    std::fputs("droce-pcap: no capture file given\n", stderr);
    print_usage(stderr);
    return kExitUnreadable;
  }

  int status = kExitClean;
  for (size_t i = 0; i < files.size(); ++i) {
    const droce::apps::CaptureReport r = droce::apps::read_capture(files[i]);
    if (json) {
      std::printf("%s\n", droce::apps::to_json(r).c_str());
    } else {
      if (i != 0) std::fputc('\n', stdout);
      std::fputs(droce::apps::to_text(r).c_str(), stdout);
    }
    std::fflush(stdout);
    if (!r.error.empty()) std::fprintf(stderr, "droce-pcap: %s: %s\n", r.file.c_str(), r.error.c_str());
    if (r.exit_status() > status) status = r.exit_status();
  }
  return status;
}
