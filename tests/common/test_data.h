// Test helper: where the data the tests read lives. By default tests/data/ of
// the source tree (tests/data/README.md says what it holds and where it comes
// from); DROCE_TEST_DATA in the environment points the tests at another
// folder with the same layout.
#pragma once

#include <cstdlib>
#include <filesystem>

// The build defines it for every test program (cmake/droce.cmake).
#ifndef DROCE_TEST_DATA_DIR
#error "DROCE_TEST_DATA_DIR is not defined: declare the test with droce_test()"
#endif

namespace droce::test {

inline std::filesystem::path test_data_dir() {
  const char* env = std::getenv("DROCE_TEST_DATA");
  return std::filesystem::path(env != nullptr && *env != '\0' ? env : DROCE_TEST_DATA_DIR);
}

// The rdma_rxe captures: unmodified pcap files, always part of the checkout.
inline std::filesystem::path rxe_captures_dir() { return test_data_dir() / "rxe-captures"; }

}  // namespace droce::test
