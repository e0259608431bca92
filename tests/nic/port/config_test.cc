// DROCE_IPV4 / DROCE_MTU / DROCE_CAPTURE parsing, path MTU and the RoCEv2 GID
// (issue 3 section 3). No EAL needed.
#include <gtest/gtest.h>

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

TEST(PortConfigTest, GidIsIpv4Mapped) {
  uint8_t gid[16];
  std::memset(gid, 0xAA, sizeof(gid));
  ipv4_to_gid(0x0A4D0001u, gid);
  const uint8_t want[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 10, 77, 0, 1};
  EXPECT_EQ(std::memcmp(gid, want, 16), 0);
}

}  // namespace
}  // namespace droce::nic
