// Test helper: one EAL per test binary, initialised in a GoogleTest Environment.
#pragma once

#include <cstdint>
#include <string>

#include "nic/config.h"

namespace droce::nic::test {

// A PortConfig for tests: ip a.b.c.d, default MTU, fast ARP timing.
PortConfig test_config(const char* ip);

}  // namespace droce::nic::test
