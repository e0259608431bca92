// Tests for build/bin/droce-pcap (issue 3 sections 4 and 5): runs the built
// tool as a subprocess on the rxe captures (tests/data) and on damaged copies, and
// checks exit codes, stderr and the parsed --json output.
#include <fcntl.h>
#include <pcap/pcap.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "nic/wire/packet.h"
#include "tests/apps/mini_json.h"
#include "tests/common/test_data.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using droce::test::Json;
using droce::test::JsonParser;
using droce::test::valid_utf8;

// ---------------------------------------------------------------------------
// Running the tool.

struct RunResult {
  int exit_status = -1;  // -1: did not exit normally
  std::string out;
  std::string err;
  std::vector<Json> objects;  // one per stdout line (with --json)
  std::string json_error;     // first line that did not parse, and why
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A per-test temporary directory (mkdtemp), removed with its contents.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "droce_pcap_test.XXXXXX").string();
    if (mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

// Spawns argv[0] (searched in PATH when search_path), stdout and stderr into
// files of `dir`, and waits. Returns false if the program could not be started.
bool spawn_wait(const std::vector<std::string>& args, const fs::path& dir, bool search_path,
                RunResult* r) {
  const fs::path out = dir / "stdout.txt", err = dir / "stderr.txt";
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid;
  const int rc = search_path ? posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ)
                             : posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return false;
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return false;
  r->exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r->out = slurp(out);
  r->err = slurp(err);
  fs::remove(out);
  fs::remove(err);
  return true;
}

std::string tool_path() {
  if (const char* p = std::getenv("DROCE_PCAP_BIN"); p != nullptr && *p != '\0') return p;
  if (const char* b = std::getenv("DROCE_BUILD_DIR"); b != nullptr && *b != '\0') {
    return std::string(b) + "/bin/droce-pcap";
  }
  // Without DROCE_BUILD_DIR: this test runs from BUILD/tests/, the tool is BUILD/bin/droce-pcap.
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : (self.parent_path().parent_path() / "bin" / "droce-pcap").string();
}

// Runs droce-pcap with `args`; with --json every stdout line must be one valid JSON object.
RunResult run_tool(const TempDir& dir, const std::vector<std::string>& args) {
  RunResult r;
  std::vector<std::string> argv = {tool_path()};
  argv.insert(argv.end(), args.begin(), args.end());
  if (!spawn_wait(argv, dir.path(), false, &r)) {
    ADD_FAILURE() << "cannot run " << argv[0] << " (set DROCE_BUILD_DIR or DROCE_PCAP_BIN)";
    return r;
  }
  std::istringstream lines(r.out);
  std::string line;
  while (std::getline(lines, line)) {
    if (args.empty() || args[0] != "--json") break;
    Json j;
    JsonParser p(line);
    if (!valid_utf8(line)) {
      r.json_error = "invalid UTF-8 in: " + line;
      break;
    }
    if (!p.parse(&j) || j.kind != Json::Kind::kObject) {
      r.json_error = (p.error().empty() ? std::string("not an object") : p.error()) + " in: " + line;
      break;
    }
    r.objects.push_back(std::move(j));
  }
  return r;
}

// ---------------------------------------------------------------------------
// Captures.

// tests/data/rxe-captures of the checkout, or $DROCE_TEST_DATA/rxe-captures.
fs::path captures_dir() { return ::droce::test::rxe_captures_dir(); }

// The captures are part of the repository: without them the test fails.
#define REQUIRE_CAPTURES()                                                        \
  ASSERT_TRUE(fs::is_directory(captures_dir()))                                   \
      << "no rxe captures at " << captures_dir() << " (tests/data/README.md)"

struct Packet {
  pcap_pkthdr hdr;
  std::vector<uint8_t> data;
};

std::vector<Packet> read_packets(const fs::path& file) {
  std::vector<Packet> pkts;
  char errbuf[PCAP_ERRBUF_SIZE] = {};
  pcap_t* p = pcap_open_offline(file.c_str(), errbuf);
  if (p == nullptr) {
    ADD_FAILURE() << errbuf;
    return pkts;
  }
  pcap_pkthdr* h;
  const u_char* d;
  while (pcap_next_ex(p, &h, &d) == 1) pkts.push_back({*h, std::vector<uint8_t>(d, d + h->caplen)});
  pcap_close(p);
  return pkts;
}

// Writes a classic pcap with link type `dlt` (libpcap's own writer).
void write_packets(const fs::path& file, const std::vector<Packet>& pkts, int dlt = DLT_EN10MB,
                   int snaplen = 262144) {
  pcap_t* dead = pcap_open_dead(dlt, snaplen);
  ASSERT_NE(dead, nullptr);
  pcap_dumper_t* dumper = pcap_dump_open(dead, file.c_str());
  ASSERT_NE(dumper, nullptr) << pcap_geterr(dead);
  for (const auto& pk : pkts) pcap_dump(reinterpret_cast<u_char*>(dumper), &pk.hdr, pk.data.data());
  pcap_dump_close(dumper);
  pcap_close(dead);
}

Packet make_packet(std::vector<uint8_t> bytes) {
  Packet p{};
  p.hdr.caplen = p.hdr.len = uint32_t(bytes.size());
  p.data = std::move(bytes);
  return p;
}

uint16_t be16(const std::vector<uint8_t>& d, size_t off) { return uint16_t(d[off] << 8 | d[off + 1]); }

// Plain Ethernet/IPv4 (no VLAN, no options) UDP 4791 frame with BTH opcode `opcode`.
bool is_rocev2_ipv4(const std::vector<uint8_t>& d, int opcode = -1) {
  if (d.size() < 14 + 20 + 8 + 12 || be16(d, 12) != 0x0800 || d[14] != 0x45 || d[23] != 17) return false;
  if (be16(d, 36) != 4791) return false;
  return opcode < 0 || d[42] == opcode;
}

const char* const kCaptureNames[] = {
    "nccl_write_imm.pcap", "pingpong_rc.pcap",  "pingpong_uc.pcap",    "pingpong_ud.pcap",
    "rdma_atomic_bw.pcap", "rdma_cm.pcap",      "rdma_read_bw.pcap",   "rdma_read_lat.pcap",
    "rdma_send_bw.pcap",   "rdma_write_bw.pcap", "rdma_write_lat.pcap", "rping.pcap"};

// Expected counts, obtained independently with tshark 4.0.17:
//   capinfos -c FILE                                    (frames)
//   tshark -r FILE -Y 'udp.dstport==4791' -T fields -e infiniband.bth.opcode | sort | uniq -c
// (opcode numbers translated to IBTA names by hand).
struct Expected {
  const char* file;
  uint64_t frames;
  uint64_t rocev2;
  std::map<std::string, uint64_t> opcodes;
};

const std::vector<Expected>& expected_counts() {
  static const std::vector<Expected> kExpected = {
      {"nccl_write_imm.pcap", 110, 62,
       {{"RC_RDMA_WRITE_FIRST", 2}, {"RC_RDMA_WRITE_MIDDLE", 44},
        {"RC_RDMA_WRITE_LAST_WITH_IMMEDIATE", 2}, {"RC_RDMA_WRITE_ONLY", 4},
        {"RC_RDMA_WRITE_ONLY_WITH_IMMEDIATE", 2}, {"RC_ACKNOWLEDGE", 8}}},
      {"pingpong_rc.pcap", 31, 20, {{"RC_SEND_ONLY", 10}, {"RC_ACKNOWLEDGE", 10}}},
      {"pingpong_uc.pcap", 21, 10, {{"UC_SEND_ONLY", 10}}},
      {"pingpong_ud.pcap", 21, 10, {{"UD_SEND_ONLY", 10}}},
      {"rdma_atomic_bw.pcap", 48, 10, {{"RC_FETCH_ADD", 5}, {"RC_ATOMIC_ACKNOWLEDGE", 5}}},
      {"rdma_cm.pcap", 96, 96,
       {{"RC_SEND_ONLY", 32}, {"RC_RDMA_WRITE_FIRST", 5}, {"RC_RDMA_WRITE_MIDDLE", 5},
        {"RC_RDMA_WRITE_LAST", 5}, {"RC_ACKNOWLEDGE", 37}, {"UD_SEND_ONLY", 12}}},
      {"rdma_read_bw.pcap", 60, 20,
       {{"RC_RDMA_READ_REQUEST", 5}, {"RC_RDMA_READ_RESPONSE_FIRST", 5},
        {"RC_RDMA_READ_RESPONSE_MIDDLE", 5}, {"RC_RDMA_READ_RESPONSE_LAST", 5}}},
      {"rdma_read_lat.pcap", 38, 10, {{"RC_RDMA_READ_REQUEST", 5}, {"RC_RDMA_READ_RESPONSE_ONLY", 5}}},
      {"rdma_send_bw.pcap", 50, 20,
       {{"RC_SEND_FIRST", 5}, {"RC_SEND_MIDDLE", 5}, {"RC_SEND_LAST", 5}, {"RC_ACKNOWLEDGE", 5}}},
      {"rdma_write_bw.pcap", 60, 20,
       {{"RC_RDMA_WRITE_FIRST", 5}, {"RC_RDMA_WRITE_MIDDLE", 5}, {"RC_RDMA_WRITE_LAST", 5},
        {"RC_ACKNOWLEDGE", 5}}},
      {"rdma_write_lat.pcap", 45, 20, {{"RC_RDMA_WRITE_ONLY", 10}, {"RC_ACKNOWLEDGE", 10}}},
      {"rping.pcap", 65, 65,
       {{"RC_SEND_ONLY", 20}, {"RC_RDMA_WRITE_ONLY", 5}, {"RC_RDMA_READ_REQUEST", 5},
        {"RC_RDMA_READ_RESPONSE_ONLY", 5}, {"RC_ACKNOWLEDGE", 25}, {"UD_SEND_ONLY", 5}}},
  };
  return kExpected;
}

std::map<std::string, uint64_t> counts_of(const Json& obj) {
  std::map<std::string, uint64_t> m;
  for (const auto& [k, v] : obj.obj) m[k] = v.u64();
  return m;
}

// The counts a clean file must show, with the required keys all present.
void expect_clean(const Json& o) {
  for (const char* k : {"file", "frames", "rocev2", "icrc_ok", "icrc_bad", "malformed", "opcodes"}) {
    EXPECT_TRUE(o.has(k)) << "missing key " << k;
  }
  EXPECT_GT(o.at("rocev2").u64(), 0u);
  EXPECT_EQ(o.at("icrc_ok").u64(), o.at("rocev2").u64());
  EXPECT_EQ(o.at("icrc_bad").u64(), 0u);
  EXPECT_EQ(o.at("malformed").u64(), 0u);
  EXPECT_EQ(o.at("opcodes").kind, Json::Kind::kObject);
  EXPECT_FALSE(o.has("error"));
}

// ---------------------------------------------------------------------------

TEST(DrocePcap, UsageErrorWithoutFiles) {
  TempDir dir;
  RunResult r = run_tool(dir, {});
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_NE(r.err.find("usage: droce-pcap"), std::string::npos) << r.err;
}

// (a) Every shared rxe capture reports clean, one file per run.
TEST(DrocePcap, EverySharedCaptureIsClean) {
  REQUIRE_CAPTURES();
  TempDir dir;
  for (const char* name : kCaptureNames) {
    SCOPED_TRACE(name);
    const fs::path f = captures_dir() / name;
    ASSERT_TRUE(fs::exists(f)) << f << " is missing from the shared captures";
    RunResult r = run_tool(dir, {"--json", f.string()});
    EXPECT_EQ(r.exit_status, 0) << r.err;
    EXPECT_EQ(r.err, "");
    ASSERT_EQ(r.json_error, "");
    ASSERT_EQ(r.objects.size(), 1u) << r.out;
    const Json& o = r.objects[0];
    EXPECT_EQ(o.at("file").str, f.string());
    expect_clean(o);
  }
}

// All twelve in one run: twelve lines, exit 0; counts match tshark's.
TEST(DrocePcap, OpcodeCountsMatchTshark) {
  REQUIRE_CAPTURES();
  TempDir dir;
  std::vector<std::string> args = {"--json"};
  for (const auto& e : expected_counts()) args.push_back((captures_dir() / e.file).string());
  RunResult r = run_tool(dir, args);
  EXPECT_EQ(r.exit_status, 0) << r.err;
  ASSERT_EQ(r.json_error, "");
  ASSERT_EQ(r.objects.size(), expected_counts().size()) << r.out;
  for (size_t i = 0; i < r.objects.size(); ++i) {
    const Expected& e = expected_counts()[i];
    const Json& o = r.objects[i];
    SCOPED_TRACE(e.file);
    EXPECT_EQ(o.at("file").str, (captures_dir() / e.file).string());
    EXPECT_EQ(o.at("frames").u64(), e.frames);
    EXPECT_EQ(o.at("rocev2").u64(), e.rocev2);
    EXPECT_EQ(o.at("other").u64(), e.frames - e.rocev2);
    EXPECT_EQ(counts_of(o.at("opcodes")), e.opcodes);
    expect_clean(o);
  }
}

// (b) One bit flipped inside the payload of one RC SEND ONLY -> that frame has a bad ICRC.
TEST(DrocePcap, FlippedPayloadBitIsBadIcrc) {
  REQUIRE_CAPTURES();
  TempDir dir;
  std::vector<Packet> pkts = read_packets(captures_dir() / "pingpong_rc.pcap");
  size_t victim = pkts.size();
  for (size_t i = 0; i < pkts.size() && victim == pkts.size(); ++i) {
    const auto& d = pkts[i].data;
    // RC_SEND_ONLY with at least 16 payload bytes (IP total = 20 + 8 + 12 + payload + pad + 4).
    if (is_rocev2_ipv4(d, 0x04) && be16(d, 16) >= 20 + 8 + 12 + 16 + 4) victim = i;
  }
  ASSERT_LT(victim, pkts.size()) << "no RC_SEND_ONLY with payload in pingpong_rc.pcap";
  auto& d = pkts[victim].data;
  const size_t payload_off = 14 + 20 + 8 + 12;
  const size_t payload_end = 14 + be16(d, 16) - 4 - ((d[43] >> 4) & 3);
  d[(payload_off + payload_end) / 2] ^= 0x10;
  const fs::path f = dir / "flipped.pcap";
  write_packets(f, pkts);

  RunResult r = run_tool(dir, {"--json", f.string()});
  EXPECT_EQ(r.exit_status, 1) << r.err;
  ASSERT_EQ(r.json_error, "");
  ASSERT_EQ(r.objects.size(), 1u);
  const Json& o = r.objects[0];
  EXPECT_EQ(o.at("frames").u64(), 31u);
  EXPECT_EQ(o.at("rocev2").u64(), 20u);
  EXPECT_EQ(o.at("icrc_bad").u64(), 1u);
  EXPECT_EQ(o.at("icrc_ok").u64(), 19u);
  EXPECT_EQ(o.at("malformed").u64(), 0u);
  EXPECT_EQ(counts_of(o.at("opcodes")),
            (std::map<std::string, uint64_t>{{"RC_SEND_ONLY", 10}, {"RC_ACKNOWLEDGE", 10}}));
  ASSERT_EQ(o.at("problems").arr.size(), 1u);
  EXPECT_EQ(o.at("problems").arr[0].at("frame").u64(), victim + 1);
  EXPECT_EQ(o.at("problems").arr[0].at("reason").str,
            droce::wire::parse_error_name(droce::wire::ParseError::kBadIcrc));

  // The text report says the same and exits the same way.
  RunResult t = run_tool(dir, {f.string()});
  EXPECT_EQ(t.exit_status, 1);
  EXPECT_NE(t.out.find("ICRC bad 1"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("NOT CLEAN"), std::string::npos) << t.out;
}

// (c) A file cut in the middle of its last record: the frames before the cut
// are reported, the file counts as unreadable (exit 2) with a clear message.
TEST(DrocePcap, FileCutMidRecord) {
  REQUIRE_CAPTURES();
  TempDir dir;
  const fs::path good = captures_dir() / "rping.pcap";
  std::string bytes = slurp(good);
  ASSERT_GT(bytes.size(), 100u);
  const fs::path f = dir / "cut.pcap";
  std::ofstream(f, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size() - 10));

  RunResult r = run_tool(dir, {"--json", f.string()});
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_NE(r.err.find(f.string()), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("truncated"), std::string::npos) << r.err;
  ASSERT_EQ(r.json_error, "");
  ASSERT_EQ(r.objects.size(), 1u);
  const Json& o = r.objects[0];
  EXPECT_EQ(o.at("frames").u64(), 64u);  // rping.pcap has 65 frames; the last one is cut
  EXPECT_EQ(o.at("icrc_ok").u64(), 64u);
  EXPECT_FALSE(o.at("complete").b);
  EXPECT_NE(o.at("error").str.find("truncated"), std::string::npos);

  // Cut inside the 24-byte file header: not a capture at all.
  const fs::path h = dir / "header.pcap";
  std::ofstream(h, std::ios::binary).write(bytes.data(), 12);
  RunResult rh = run_tool(dir, {"--json", h.string()});
  EXPECT_EQ(rh.exit_status, 2);
  EXPECT_NE(rh.err.find(h.string()), std::string::npos) << rh.err;
  ASSERT_EQ(rh.objects.size(), 1u);
  EXPECT_EQ(rh.objects[0].at("frames").u64(), 0u);
}

// (d) A missing file: exit 2 and a message naming it; the other files are still reported.
TEST(DrocePcap, MissingFileIsExit2AndOthersStillReported) {
  REQUIRE_CAPTURES();
  TempDir dir;
  const fs::path missing = dir / "no-such-capture.pcap";
  const fs::path good = captures_dir() / "pingpong_ud.pcap";
  RunResult r = run_tool(dir, {"--json", missing.string(), good.string()});
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_NE(r.err.find(missing.string()), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("No such file"), std::string::npos) << r.err;
  ASSERT_EQ(r.json_error, "");
  ASSERT_EQ(r.objects.size(), 2u);
  EXPECT_EQ(r.objects[0].at("file").str, missing.string());
  EXPECT_TRUE(r.objects[0].has("error"));
  EXPECT_EQ(r.objects[1].at("file").str, good.string());
  expect_clean(r.objects[1]);

  // A file that is not a capture at all.
  const fs::path junk = dir / "junk.txt";
  std::ofstream(junk) << "this is not a capture\n";
  RunResult rj = run_tool(dir, {junk.string()});
  EXPECT_EQ(rj.exit_status, 2);
  EXPECT_NE(rj.err.find(junk.string()), std::string::npos) << rj.err;
}

// (e) Only Ethernet captures are supported.
TEST(DrocePcap, NonEthernetLinkTypeIsExit2) {
  REQUIRE_CAPTURES();
  TempDir dir;
  // The same RoCEv2 packets as raw IP (Ethernet header stripped).
  std::vector<Packet> pkts = read_packets(captures_dir() / "pingpong_rc.pcap");
  for (auto& p : pkts) {
    p.data.erase(p.data.begin(), p.data.begin() + 14);
    p.hdr.caplen -= 14;
    p.hdr.len -= 14;
  }
  const fs::path f = dir / "raw.pcap";
  write_packets(f, pkts, DLT_RAW);
  RunResult r = run_tool(dir, {"--json", f.string()});
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_NE(r.err.find(f.string()), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("link type"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("Ethernet"), std::string::npos) << r.err;
}

// (f) A pcapng copy reads exactly like the pcap.
TEST(DrocePcap, PcapngReadsSameAsPcap) {
  REQUIRE_CAPTURES();
  TempDir dir;
  const fs::path pcap = captures_dir() / "rdma_cm.pcap";
  const fs::path ng = dir / "rdma_cm.pcapng";
  RunResult conv;
  // editcap, else tshark (both from Wireshark; scripts/install-deps installs tshark).
  bool started = spawn_wait({"editcap", "-F", "pcapng", pcap.string(), ng.string()}, dir.path(), true,
                            &conv);
  if (!started) {
    started = spawn_wait({"tshark", "-F", "pcapng", "-r", pcap.string(), "-w", ng.string()}, dir.path(),
                         true, &conv);
  }
  if (!started) GTEST_SKIP() << "neither editcap nor tshark is installed (package tshark): no pcapng copy";
  ASSERT_EQ(conv.exit_status, 0) << "writing the pcapng copy failed: " << conv.err;
  // Make sure it really is pcapng (Section Header Block type 0x0A0D0D0A).
  const std::string head = slurp(ng).substr(0, 4);
  ASSERT_EQ(head, std::string("\x0a\x0d\x0d\x0a", 4));

  RunResult a = run_tool(dir, {"--json", pcap.string()});
  RunResult b = run_tool(dir, {"--json", ng.string()});
  EXPECT_EQ(a.exit_status, 0);
  EXPECT_EQ(b.exit_status, 0) << b.err;
  ASSERT_EQ(a.objects.size(), 1u);
  ASSERT_EQ(b.objects.size(), 1u) << b.json_error;
  Json oa = a.objects[0], ob = b.objects[0];
  EXPECT_EQ(ob.at("file").str, ng.string());
  oa.obj.erase("file");
  ob.obj.erase("file");
  // Compare everything else by re-serialising the numbers we care about.
  for (const char* k : {"frames", "rocev2", "icrc_ok", "icrc_bad", "malformed", "other"}) {
    EXPECT_EQ(oa.at(k).u64(), ob.at(k).u64()) << k;
  }
  EXPECT_EQ(counts_of(oa.at("opcodes")), counts_of(ob.at("opcodes")));
  EXPECT_EQ(counts_of(oa.at("other_kinds")), counts_of(ob.at("other_kinds")));
  EXPECT_EQ(ob.at("frames").u64(), 96u);
  expect_clean(b.objects[0]);
}

// RoCEv2 frames cut by the capture's snaplen are malformed, with that reason;
// a TCP frame cut the same way is still just "other".
TEST(DrocePcap, SnaplenTruncatedRoceFramesAreMalformed) {
  REQUIRE_CAPTURES();
  TempDir dir;
  std::vector<Packet> pkts = read_packets(captures_dir() / "pingpong_rc.pcap");
  constexpr uint32_t kSnap = 60;  // keeps Ethernet, IPv4, UDP, BTH; drops the ICRC
  uint64_t cut_roce = 0;
  for (auto& p : pkts) {
    if (p.hdr.caplen > kSnap) {
      if (is_rocev2_ipv4(p.data)) ++cut_roce;
      p.hdr.caplen = kSnap;
      p.data.resize(kSnap);
    }
  }
  ASSERT_GT(cut_roce, 0u);
  const fs::path f = dir / "snap60.pcap";
  write_packets(f, pkts, DLT_EN10MB, int(kSnap));
  RunResult r = run_tool(dir, {"--json", f.string()});
  EXPECT_EQ(r.exit_status, 1) << r.err;
  ASSERT_EQ(r.objects.size(), 1u) << r.json_error;
  const Json& o = r.objects[0];
  EXPECT_EQ(o.at("frames").u64(), 31u);
  EXPECT_EQ(o.at("rocev2").u64(), 20u);
  EXPECT_EQ(o.at("malformed").u64(), cut_roce);
  EXPECT_EQ(o.at("icrc_ok").u64(), 20u - cut_roce);
  EXPECT_EQ(o.at("other").u64(), 11u);
  const auto reasons = counts_of(o.at("malformed_reasons"));
  ASSERT_EQ(reasons.size(), 1u);
  EXPECT_NE(reasons.begin()->first.find("snaplen"), std::string::npos);
  EXPECT_EQ(reasons.begin()->second, cut_roce);
  // The opcode byte was captured, so the opcodes are still counted.
  EXPECT_EQ(counts_of(o.at("opcodes")),
            (std::map<std::string, uint64_t>{{"RC_SEND_ONLY", 10}, {"RC_ACKNOWLEDGE", 10}}));
}

// A RoCEv2 frame with an opcode outside the table is malformed, with the parser's reason.
TEST(DrocePcap, UnknownOpcodeIsMalformed) {
  REQUIRE_CAPTURES();
  TempDir dir;
  std::vector<Packet> pkts = read_packets(captures_dir() / "pingpong_rc.pcap");
  size_t victim = pkts.size();
  for (size_t i = 0; i < pkts.size() && victim == pkts.size(); ++i) {
    if (is_rocev2_ipv4(pkts[i].data, 0x11)) victim = i;  // an RC_ACKNOWLEDGE
  }
  ASSERT_LT(victim, pkts.size());
  pkts[victim].data[42] = 0x15;  // reserved opcode
  const fs::path f = dir / "opcode.pcap";
  write_packets(f, pkts);
  RunResult r = run_tool(dir, {"--json", f.string()});
  EXPECT_EQ(r.exit_status, 1);
  ASSERT_EQ(r.objects.size(), 1u) << r.json_error;
  const Json& o = r.objects[0];
  EXPECT_EQ(o.at("malformed").u64(), 1u);
  EXPECT_EQ(o.at("icrc_ok").u64(), 19u);
  EXPECT_EQ(counts_of(o.at("malformed_reasons")),
            (std::map<std::string, uint64_t>{
                {droce::wire::parse_error_name(droce::wire::ParseError::kUnknownOpcode), 1}}));
  EXPECT_EQ(counts_of(o.at("opcodes")),
            (std::map<std::string, uint64_t>{{"RC_SEND_ONLY", 10}, {"RC_ACKNOWLEDGE", 9}, {"UNKNOWN_0x15", 1}}));
}

// ARP, IPv6 junk, TCP, UDP to other ports (e.g. a MAD-like datagram on 4792)
// and runts are counted as other traffic, never as errors.
TEST(DrocePcap, NonRoceFramesAreCountedNotErrors) {
  REQUIRE_CAPTURES();
  TempDir dir;
  std::vector<uint8_t> eth = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1};
  auto with_type = [&](uint16_t type, std::vector<uint8_t> body) {
    std::vector<uint8_t> f = eth;
    f.push_back(uint8_t(type >> 8));
    f.push_back(uint8_t(type));
    f.insert(f.end(), body.begin(), body.end());
    return f;
  };
  std::vector<Packet> pkts;
  pkts.push_back(make_packet(with_type(0x0806, std::vector<uint8_t>(28, 0))));  // ARP
  std::vector<uint8_t> v6(48, 0);                                              // IPv6 / ICMPv6
  v6[0] = 0x60;
  v6[5] = 8;
  v6[6] = 58;
  pkts.push_back(make_packet(with_type(0x86DD, v6)));
  std::vector<uint8_t> v6bad(10, 0xEE);  // IPv6 EtherType, junk shorter than a header
  pkts.push_back(make_packet(with_type(0x86DD, v6bad)));
  std::vector<uint8_t> udp(20 + 8 + 24, 0);  // IPv4 UDP to port 4792
  udp[0] = 0x45;
  udp[3] = uint8_t(udp.size());
  udp[9] = 17;
  udp[22] = 0x12;
  udp[23] = 0xB8;
  pkts.push_back(make_packet(with_type(0x0800, udp)));
  std::vector<uint8_t> tcp(40, 0);
  tcp[0] = 0x45;
  tcp[3] = 40;
  tcp[9] = 6;
  pkts.push_back(make_packet(with_type(0x0800, tcp)));
  pkts.push_back(make_packet(with_type(0x88CC, std::vector<uint8_t>(30, 0))));  // LLDP
  pkts.push_back(make_packet(std::vector<uint8_t>(8, 0)));                       // runt
  // And one real RoCEv2 frame, which must still verify.
  for (const auto& p : read_packets(captures_dir() / "pingpong_rc.pcap")) {
    if (is_rocev2_ipv4(p.data)) {
      pkts.push_back(p);
      break;
    }
  }
  const fs::path f = dir / "mixed.pcap";
  write_packets(f, pkts);
  RunResult r = run_tool(dir, {"--json", f.string()});
  EXPECT_EQ(r.exit_status, 0) << r.out << r.err;
  ASSERT_EQ(r.objects.size(), 1u) << r.json_error;
  const Json& o = r.objects[0];
  EXPECT_EQ(o.at("frames").u64(), 8u);
  EXPECT_EQ(o.at("rocev2").u64(), 1u);
  EXPECT_EQ(o.at("icrc_ok").u64(), 1u);
  EXPECT_EQ(o.at("other").u64(), 7u);
  EXPECT_EQ(counts_of(o.at("other_kinds")),
            (std::map<std::string, uint64_t>{{"arp", 1},
                                             {"ipv6_other", 1},
                                             {"too_short", 2},
                                             {"ipv4_udp_other_port", 1},
                                             {"ipv4_tcp", 1},
                                             {"non_ip", 1}}));
}

// File names with quotes, backslashes, control characters and invalid UTF-8
// still give valid JSON, and valid names come back unchanged.
TEST(DrocePcap, JsonEscapesFileNames) {
  REQUIRE_CAPTURES();
  TempDir dir;
  const std::string weird = "we\"ird\\na\tme\x01 \xc3\xa9.pcap";
  const std::string invalid = "bad\xff\xfe.pcap";
  for (const std::string& name : {weird, invalid}) {
    fs::copy_file(captures_dir() / "pingpong_uc.pcap", dir / name);
  }
  RunResult r = run_tool(dir, {"--json", (dir / weird).string(), (dir / invalid).string()});
  EXPECT_EQ(r.exit_status, 0) << r.err;
  ASSERT_EQ(r.json_error, "");
  ASSERT_EQ(r.objects.size(), 2u);
  EXPECT_EQ(r.objects[0].at("file").str, (dir / weird).string());
  EXPECT_NE(r.objects[1].at("file").str.find("bad\xef\xbf\xbd\xef\xbf\xbd.pcap"), std::string::npos)
      << "invalid UTF-8 bytes should become U+FFFD";
  expect_clean(r.objects[0]);
  expect_clean(r.objects[1]);
}

// The text report of a clean file.
TEST(DrocePcap, TextReport) {
  REQUIRE_CAPTURES();
  TempDir dir;
  const fs::path f = captures_dir() / "rdma_read_bw.pcap";
  RunResult r = run_tool(dir, {f.string()});
  EXPECT_EQ(r.exit_status, 0);
  EXPECT_NE(r.out.find(f.string()), std::string::npos);
  EXPECT_NE(r.out.find("frames 60, RoCEv2 20 (ICRC ok 20, ICRC bad 0, malformed 0), other 40"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("RC_RDMA_READ_RESPONSE_MIDDLE"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("result: clean"), std::string::npos) << r.out;
}

}  // namespace
