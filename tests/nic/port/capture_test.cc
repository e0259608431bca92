// DROCE_CAPTURE: frames a port pair sends and receives land in a pcapng file
// (rte_pcapng) that tshark reads and decodes as RoCEv2 (InfiniBand over UDP 4791).
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <rte_mbuf.h>

#include "nic/eal.h"
#include "nic/port.h"
#include "tests/nic/port/eal_env.h"
#include "tests/nic/port/test_frames.h"

namespace droce::nic {
namespace {

using test::frame_mbuf;
using test::receive_frames;
using test::send_spec;
using test::test_config;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/droce-capture-XXXXXX";
    path_ = mkdtemp(tmpl) ? tmpl : "";
  }
  ~TempDir() {
    if (!path_.empty()) std::system(("rm -rf '" + path_ + "'").c_str());
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

bool have_tshark() { return std::system("command -v tshark >/dev/null 2>&1") == 0; }

std::string run(const std::string& cmd) {
  std::string out;
  FILE* f = popen(cmd.c_str(), "r");
  if (f == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  pclose(f);
  return out;
}

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) {
    if (!l.empty()) out.push_back(l);
  }
  return out;
}

uint32_t file_magic(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  uint8_t b[4] = {};
  f.read(reinterpret_cast<char*>(b), 4);
  return uint32_t(b[0]) << 24 | uint32_t(b[1]) << 16 | uint32_t(b[2]) << 8 | b[3];
}

TEST(PortCaptureTest, PairTrafficLandsInOnePcapngThatTsharkDecodes) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string file = dir.path() + "/pair.pcapng";
  std::string if_a, if_b;  // rte_pcapng names interfaces dpdk:<port id>
  {
    PortConfig ca = test_config("10.77.0.1"), cb = test_config("10.77.0.2");
    ca.capture_path = cb.capture_path = file;
    auto pair = make_port_pair(ca, cb);
    ASSERT_TRUE(pair.is_ok()) << pair.status().message();
    Port& a = pair->a();
    Port& b = pair->b();
    ASSERT_NE(a.capture(), nullptr);
    EXPECT_EQ(a.capture(), b.capture()) << "same path: one shared file";
    if_a = "dpdk:" + std::to_string(a.port_id());
    if_b = "dpdk:" + std::to_string(b.port_id());

    // ARP request a -> b, reply b -> a.
    wire::MacAddr mac{};
    a.resolve(b.ipv4(), &mac, 0);
    receive_frames(b, 1, nullptr, 10);
    receive_frames(a, 1, nullptr, 10);
    ASSERT_EQ(a.resolve(b.ipv4(), &mac, 0), ArpResult::kResolved);
    // Five RoCEv2 packets a -> b (PSN 100..104), two b -> a (PSN 200, 201).
    for (uint32_t i = 0; i < 5; ++i) {
      rte_mbuf* m = frame_mbuf(a, send_spec(a, b, 100 + i, 10 * i), nullptr);
      ASSERT_EQ(a.transmit(&m, 1), 1);
    }
    ASSERT_EQ(receive_frames(b, 5, nullptr), 5u);
    for (uint32_t i = 0; i < 2; ++i) {
      rte_mbuf* m = frame_mbuf(b, send_spec(b, a, 200 + i, 4), nullptr);
      ASSERT_EQ(b.transmit(&m, 1), 1);
    }
    ASSERT_EQ(receive_frames(a, 2, nullptr), 2u);
    EXPECT_EQ(a.capture()->frames(), 18u);  // (2 ARP + 7 RoCEv2) x (sent + received)
    EXPECT_EQ(a.capture()->errors(), 0u);
  }  // closes the file

  EXPECT_EQ(file_magic(file), 0x0A0D0D0Au) << "pcapng section header block";
  if (!have_tshark()) GTEST_SKIP() << "tshark not installed: file written but not decoded";

  // Interface, direction (EPB flags: 0x2 outbound, 0x1 inbound), ARP opcode, BTH PSN.
  const auto out = lines(run("tshark -r '" + file +
                             "' -T fields -E separator=, -e frame.interface_name"
                             " -e frame.packet_flags_direction -e arp.opcode -e infiniband.bth.psn"
                             " 2>/dev/null"));
  ASSERT_EQ(out.size(), 18u) << run("tshark -r '" + file + "' 2>&1");
  std::map<std::string, int> seen;
  for (const auto& l : out) ++seen[l];
  const std::string sent_a = if_a + ",0x00000002,", recv_a = if_a + ",0x00000001,";
  const std::string sent_b = if_b + ",0x00000002,", recv_b = if_b + ",0x00000001,";
  EXPECT_EQ(seen[sent_a + "1,"], 1) << "ARP request sent by a";
  EXPECT_EQ(seen[recv_b + "1,"], 1) << "ARP request received by b";
  EXPECT_EQ(seen[sent_b + "2,"], 1) << "ARP reply sent by b";
  EXPECT_EQ(seen[recv_a + "2,"], 1) << "ARP reply received by a";
  for (int psn : {100, 101, 102, 103, 104}) {
    EXPECT_EQ(seen[sent_a + "," + std::to_string(psn)], 1) << "a sent PSN " << psn;
    EXPECT_EQ(seen[recv_b + "," + std::to_string(psn)], 1) << "b received PSN " << psn;
  }
  for (int psn : {200, 201}) {
    EXPECT_EQ(seen[sent_b + "," + std::to_string(psn)], 1) << "b sent PSN " << psn;
    EXPECT_EQ(seen[recv_a + "," + std::to_string(psn)], 1) << "a received PSN " << psn;
  }
  // tshark decodes RoCEv2 on UDP 4791 by default as InfiniBand.
  const auto roce = lines(run("tshark -r '" + file + "' -Y infiniband 2>/dev/null"));
  EXPECT_EQ(roce.size(), 14u);
}

TEST(PortCaptureTest, PortOpenedWithCapturePathRecordsItsFrames) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string file = dir.path() + "/loop.pcapng";
  {
    PortConfig cfg = test_config("10.77.0.9");
    cfg.capture_path = file;
    auto port = Port::open_by_name(kDefaultLoopbackVdev, cfg);
    if (!port.is_ok() && eal_args() != default_eal_args()) {
      GTEST_SKIP() << "DROCE_EAL_ARGS has no " << kDefaultLoopbackVdev;
    }
    ASSERT_TRUE(port.is_ok()) << port.status().message();
    Port& p = *port.value();
    ASSERT_NE(p.capture(), nullptr);
    for (uint32_t i = 0; i < 3; ++i) {
      rte_mbuf* m = frame_mbuf(p, send_spec(p, p, i, 8), nullptr);
      ASSERT_EQ(p.transmit(&m, 1), 1);
    }
    ASSERT_EQ(receive_frames(p, 3, nullptr), 3u);
    EXPECT_EQ(p.capture()->frames(), 6u);
  }
  EXPECT_EQ(file_magic(file), 0x0A0D0D0Au);
  if (!have_tshark()) GTEST_SKIP() << "tshark not installed: file written but not decoded";
  EXPECT_EQ(lines(run("tshark -r '" + file + "' -Y infiniband 2>/dev/null")).size(), 6u);
}

TEST(PortCaptureTest, UnwritableCapturePathIsAnError) {
  PortConfig ca = test_config("10.77.0.1"), cb = test_config("10.77.0.2");
  ca.capture_path = "/nonexistent-dir/x.pcapng";
  auto pair = make_port_pair(ca, cb);
  ASSERT_FALSE(pair.is_ok());
  EXPECT_NE(pair.status().message().find("DROCE_CAPTURE"), std::string::npos)
      << pair.status().message();
}

}  // namespace
}  // namespace droce::nic
