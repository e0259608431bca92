// Test helper: EAL initialised once per test binary (GoogleTest Environment),
// cleaned up at the end so leak checks see DPDK's memory released.
#include "tests/nic/port/eal_env.h"

#include <gtest/gtest.h>
#include <rte_eal.h>

#include <filesystem>
#include <string>

#include "nic/eal.h"

namespace droce::nic::test {
namespace {

class EalEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    const Status st = eal_init();
    ASSERT_TRUE(st.is_ok()) << st.message();
    runtime_dir_ = rte_eal_get_runtime_dir();
  }
  // eal_cleanup removes a runtime directory droce named; one of a file
  // prefix the test gave in DROCE_EAL_ARGS is the test's to remove.
  void TearDown() override {
    eal_cleanup();
    std::error_code ec;
    if (!runtime_dir_.empty()) std::filesystem::remove_all(runtime_dir_, ec);
  }

 private:
  std::string runtime_dir_;
};

[[maybe_unused]] ::testing::Environment* const g_env =
    ::testing::AddGlobalTestEnvironment(new EalEnvironment);

}  // namespace

PortConfig test_config(const char* ip) {
  PortConfig cfg;
  cfg.ipv4 = parse_ipv4(ip).value();
  cfg.mbufs = 2047;
  cfg.arp.max_requests = 3;
  cfg.arp.retry_interval = 10 * kNanosPerMs;
  cfg.arp.failed_hold = 50 * kNanosPerMs;
  return cfg;
}

}  // namespace droce::nic::test
