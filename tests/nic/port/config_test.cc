// DROCE_IPV4 / DROCE_MTU / DROCE_CAPTURE parsing, path MTU and the RoCEv2 GID
// (issue 3 section 3). No EAL needed.
#include <gtest/gtest.h>
#include <sched.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "nic/config.h"

namespace droce::nic {
namespace {

// Sets or clears one environment variable for the life of the object.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) {
      had_ = true;
      old_ = old;
    }
    if (value != nullptr) {
      setenv(name, value, 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (had_) {
      setenv(name_, old_.c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }

 private:
  const char* name_;
  bool had_ = false;
  std::string old_;
};

TEST(PortConfigTest, ParsesAndFormatsIpv4) {
  auto ip = parse_ipv4("10.77.0.1");
  ASSERT_TRUE(ip.is_ok());
  EXPECT_EQ(*ip, 0x0A4D0001u);
  EXPECT_EQ(format_ipv4(0x0A4D0001u), "10.77.0.1");
  EXPECT_EQ(*parse_ipv4("255.255.255.255"), 0xFFFFFFFFu);
  EXPECT_EQ(*parse_ipv4("0.0.0.0"), 0u);
  EXPECT_EQ(format_ipv4(0xC0A80102u), "192.168.1.2");
}

TEST(PortConfigTest, RejectsBadIpv4Text) {
  for (const char* bad : {"", "10.77.0", "10.77.0.1.2", "256.1.1.1", "1.2.3.4x", "a.b.c.d",
                          "1..2.3", "1.2.3.", " 1.2.3.4", "1.2.3.0004", "-1.2.3.4", "010.1.1.1"}) {
    EXPECT_FALSE(parse_ipv4(bad).is_ok()) << "'" << bad << "'";
  }
}

TEST(PortConfigTest, DefaultsWithEmptyEnvironment) {
  ScopedEnv ip("DROCE_IPV4", nullptr), mtu("DROCE_MTU", nullptr), cap("DROCE_CAPTURE", nullptr);
  auto cfg = port_config_from_env();
  ASSERT_TRUE(cfg.is_ok()) << cfg.status().message();
  EXPECT_EQ(cfg->ipv4, *parse_ipv4(kDefaultIpv4));
  EXPECT_EQ(cfg->mtu, kDefaultMtu);
  EXPECT_TRUE(cfg->capture_path.empty());
}

TEST(PortConfigTest, ReadsEnvironment) {
  ScopedEnv ip("DROCE_IPV4", "192.168.7.9"), mtu("DROCE_MTU", "9000"),
      cap("DROCE_CAPTURE", "/tmp/x.pcapng");
  auto cfg = port_config_from_env();
  ASSERT_TRUE(cfg.is_ok()) << cfg.status().message();
  EXPECT_EQ(cfg->ipv4, 0xC0A80709u);
  EXPECT_EQ(cfg->mtu, 9000);
  EXPECT_EQ(cfg->capture_path, "/tmp/x.pcapng");
}

TEST(PortConfigTest, BadIpv4NamesTheVariable) {
  for (const char* bad : {"10.77.0.256", "hello", "0.0.0.0", "255.255.255.255", "224.0.0.1"}) {
    ScopedEnv ip("DROCE_IPV4", bad);
    auto cfg = port_config_from_env();
    ASSERT_FALSE(cfg.is_ok()) << bad;
    EXPECT_EQ(cfg.status().code(), Errc::kBadConfig);
    EXPECT_NE(cfg.status().message().find("DROCE_IPV4"), std::string::npos)
        << cfg.status().message();
  }
}

TEST(PortConfigTest, BadMtuNamesTheVariable) {
  ScopedEnv ip("DROCE_IPV4", nullptr);
  for (const char* bad : {"575", "9001", "0", "-1500", "1500x", "abc", "99999999999999999999"}) {
    ScopedEnv mtu("DROCE_MTU", bad);
    auto cfg = port_config_from_env();
    ASSERT_FALSE(cfg.is_ok()) << bad;
    EXPECT_EQ(cfg.status().code(), Errc::kBadConfig);
    EXPECT_NE(cfg.status().message().find("DROCE_MTU"), std::string::npos)
        << cfg.status().message();
  }
  ScopedEnv lo("DROCE_MTU", "576");
  EXPECT_EQ(port_config_from_env()->mtu, kMinMtu);
}

TEST(PortConfigTest, ZeroCopyIsOnUnlessTurnedOff) {
  ScopedEnv ip("DROCE_IPV4", nullptr);
  {
    ScopedEnv zc("DROCE_ZERO_COPY", nullptr);
    EXPECT_TRUE(port_config_from_env()->zero_copy);
  }
  {
    ScopedEnv zc("DROCE_ZERO_COPY", "0");
    EXPECT_FALSE(port_config_from_env()->zero_copy);
  }
  {
    ScopedEnv zc("DROCE_ZERO_COPY", "1");
    EXPECT_TRUE(port_config_from_env()->zero_copy);
  }
  for (const char* bad : {"yes", "2", "00", "-1"}) {
    ScopedEnv zc("DROCE_ZERO_COPY", bad);
    auto cfg = port_config_from_env();
    ASSERT_FALSE(cfg.is_ok()) << bad;
    EXPECT_NE(cfg.status().message().find("DROCE_ZERO_COPY"), std::string::npos);
  }
}

TEST(PortConfigTest, PathMtuFollowsRxe) {
  EXPECT_EQ(path_mtu_for(1500), 1024u);  // rxe on standard Ethernet
  EXPECT_EQ(path_mtu_for(9000), 4096u);
  EXPECT_EQ(path_mtu_for(576), 256u);
  EXPECT_EQ(path_mtu_for(1103), 512u);   // 1024 + 80 headers does not fit
  EXPECT_EQ(path_mtu_for(1104), 1024u);
  EXPECT_EQ(path_mtu_for(2127), 1024u);
  EXPECT_EQ(path_mtu_for(2128), 2048u);
  EXPECT_EQ(path_mtu_for(4176), 4096u);
}

// The frame limits DPDK 22.11's PMDs report (rte_eth_dev_info_get).
PmdFrameLimits pmd(const char* driver, uint32_t max_rx_pktlen, uint16_t max_mtu = UINT16_MAX) {
  PmdFrameLimits p;
  p.driver = driver;
  p.min_mtu = 46;
  p.max_mtu = max_mtu;
  p.max_rx_pktlen = max_rx_pktlen;
  return p;
}

TEST(PortConfigTest, PmdMaxMtuFollowsEthdevsOverheadRule) {
  EXPECT_EQ(pmd_max_mtu(pmd("net_ring", UINT32_MAX)), 65535u);
  EXPECT_EQ(pmd_max_mtu(pmd("net_tap", 1522)), 1504u);   // header + FCS taken off
  EXPECT_EQ(pmd_max_mtu(pmd("net_memif", 1518)), 1500u);
  EXPECT_EQ(pmd_max_mtu(pmd("net_ice", 9728, 9702)), 9702u);  // both given: max_mtu
  EXPECT_EQ(pmd_max_mtu(pmd("odd", 10)), 0u);
}

TEST(PortConfigTest, JumboMtuOnAPmdThatTakesIt) {
  auto mtu = ethdev_mtu_for(9000, pmd("net_ring", UINT32_MAX), "net_ring0");
  ASSERT_TRUE(mtu.is_ok()) << mtu.status().message();
  EXPECT_EQ(*mtu, 9000);
  mtu = ethdev_mtu_for(9000, pmd("net_ice", 9728, 9702), "0000:3b:00.0");
  ASSERT_TRUE(mtu.is_ok());
  EXPECT_EQ(*mtu, 9000);
}

// memif reports 1518-byte frames but checks no length: the ethdev is
// configured at the MTU it reports, and the port carries 9000-byte frames when
// each fits one memif buffer (bsize).
TEST(PortConfigTest, MemifIsConfiguredAtItsReportedMtuAndCarriesJumboFrames) {
  PmdFrameLimits memif = pmd("net_memif", 1518);
  memif.memif_bsize = 9216;
  auto mtu = ethdev_mtu_for(9000, memif, "net_memif0");
  ASSERT_TRUE(mtu.is_ok()) << mtu.status().message();
  EXPECT_EQ(*mtu, 1500);
  memif.memif_bsize = 9018;  // 9000 + Ethernet header + a VLAN tag
  EXPECT_TRUE(ethdev_mtu_for(9000, memif, "net_memif0").is_ok());
  memif.memif_bsize = kMemifDefaultBsize;
  mtu = ethdev_mtu_for(1500, memif, "net_memif0");
  ASSERT_TRUE(mtu.is_ok());
  EXPECT_EQ(*mtu, 1500);
  mtu = ethdev_mtu_for(1000, memif, "net_memif0");
  ASSERT_TRUE(mtu.is_ok());
  EXPECT_EQ(*mtu, 1000);
}

// A frame spread over several memif buffers can be joined to the next ones by
// DPDK 22.11's memif: refused, with the bsize that makes it work.
TEST(PortConfigTest, MemifJumboWithoutBigEnoughBuffersIsAClearError) {
  PmdFrameLimits memif = pmd("net_memif", 1518);
  memif.memif_bsize = kMemifDefaultBsize;
  auto mtu = ethdev_mtu_for(9000, memif, "net_memif0");
  ASSERT_FALSE(mtu.is_ok());
  EXPECT_EQ(mtu.status().code(), Errc::kBadConfig);
  const std::string& m = mtu.status().message();
  for (const char* part : {"DROCE_MTU 9000", "net_memif0", "at least 9018 bytes", "bsize=9216",
                           "both peers", "it has 2048"}) {
    EXPECT_NE(m.find(part), std::string::npos) << part << " in: " << m;
  }
  memif.memif_bsize = 9017;
  EXPECT_FALSE(ethdev_mtu_for(9000, memif, "net_memif0").is_ok());
  memif.memif_bsize = 2048;
  EXPECT_TRUE(ethdev_mtu_for(2030, memif, "net_memif0").is_ok());
  EXPECT_FALSE(ethdev_mtu_for(2031, memif, "net_memif0").is_ok());
  memif.memif_bsize = 1024;  // too small for the standard MTU too
  EXPECT_FALSE(ethdev_mtu_for(1500, memif, "net_memif0").is_ok());
  EXPECT_TRUE(ethdev_mtu_for(1006, memif, "net_memif0").is_ok());
}

TEST(PortConfigTest, MemifBsizeFromVdevArguments) {
  EXPECT_EQ(memif_bsize_from_args(""), kMemifDefaultBsize);
  EXPECT_EQ(memif_bsize_from_args("role=server,socket=/tmp/m.sock"), kMemifDefaultBsize);
  EXPECT_EQ(memif_bsize_from_args("bsize=9216"), 9216u);
  EXPECT_EQ(memif_bsize_from_args("role=client,bsize=10240,socket=/tmp/x"), 10240u);
  EXPECT_EQ(memif_bsize_from_args("socket=/tmp/bsize=1,bsize=4096"), 4096u);
  EXPECT_EQ(memif_bsize_from_args("bsize=12k"), 0u);
  EXPECT_EQ(memif_bsize_from_args("nobsize=4096"), kMemifDefaultBsize);
}

TEST(PortConfigTest, PmdThatRefusesTheMtuIsAClearError) {
  auto mtu = ethdev_mtu_for(9000, pmd("net_tap", 1522), "net_tap0");
  ASSERT_FALSE(mtu.is_ok());
  EXPECT_EQ(mtu.status().code(), Errc::kBadConfig);
  const std::string& m = mtu.status().message();
  for (const char* part : {"DROCE_MTU 9000", "net_tap0", "driver net_tap", "at most 1504",
                           "frames up to 1522 bytes"}) {
    EXPECT_NE(m.find(part), std::string::npos) << part << " in: " << m;
  }
  PmdFrameLimits high_floor = pmd("net_x", UINT32_MAX);
  high_floor.min_mtu = 1280;
  mtu = ethdev_mtu_for(576, high_floor, "x0");
  ASSERT_FALSE(mtu.is_ok());
  EXPECT_NE(mtu.status().message().find("at least 1280"), std::string::npos)
      << mtu.status().message();
  EXPECT_TRUE(ethdev_mtu_for(1504, pmd("net_tap", 1522), "net_tap0").is_ok());
  EXPECT_FALSE(ethdev_mtu_for(1505, pmd("net_tap", 1522), "net_tap0").is_ok());
}

TEST(PortConfigTest, EngineCpuFromEnv) {
  {
    ScopedEnv unset("DROCE_ENGINE_CPU", nullptr);
    EXPECT_EQ(*engine_cpu_from_env(), -1);
  }
  cpu_set_t allowed;
  ASSERT_EQ(sched_getaffinity(0, sizeof(allowed), &allowed), 0);
  int cpu = 0;
  while (!CPU_ISSET(cpu, &allowed)) ++cpu;
  {
    ScopedEnv ok("DROCE_ENGINE_CPU", std::to_string(cpu).c_str());
    auto v = engine_cpu_from_env();
    ASSERT_TRUE(v.is_ok()) << v.status().message();
    EXPECT_EQ(*v, cpu);
  }
  for (const char* bad : {"x", "-1", "1.5", "4096", "99999999999"}) {
    ScopedEnv e("DROCE_ENGINE_CPU", bad);
    auto v = engine_cpu_from_env();
    ASSERT_FALSE(v.is_ok()) << bad;
    EXPECT_EQ(v.status().code(), Errc::kBadConfig);
    EXPECT_NE(v.status().message().find("DROCE_ENGINE_CPU"), std::string::npos);
    EXPECT_NE(v.status().message().find(std::to_string(cpu)), std::string::npos)
        << "names the CPUs it may use: " << v.status().message();
  }
  // A CPU outside this thread's affinity mask.
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof(one), &one), 0);
  {
    ScopedEnv other("DROCE_ENGINE_CPU", std::to_string(cpu + 1).c_str());
    EXPECT_FALSE(engine_cpu_from_env().is_ok());
  }
  ASSERT_EQ(sched_setaffinity(0, sizeof(allowed), &allowed), 0);
}

TEST(PortConfigTest, GidIsIpv4Mapped) {
  uint8_t gid[16];
  std::memset(gid, 0xAA, sizeof(gid));
  ipv4_to_gid(0x0A4D0001u, gid);
  const uint8_t want[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 10, 77, 0, 1};
  EXPECT_EQ(std::memcmp(gid, want, 16), 0);
}

}  // namespace
}  // namespace droce::nic
