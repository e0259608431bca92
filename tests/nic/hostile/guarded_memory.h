// Memory for the hostile-peer tests: every region is whole pages with an
// inaccessible (PROT_NONE) page right before and right after it, so any read
// or write the engine makes outside it kills the test with SIGSEGV instead of
// going unnoticed; and a snapshot to prove that what is inside but not
// permitted did not change.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace droce::nic::test {

class GuardedRegion {
 public:
  explicit GuardedRegion(size_t pages) : page_(size_t(sysconf(_SC_PAGESIZE))), len_(pages * page_) {
    void* m = mmap(nullptr, len_ + 2 * page_, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return;
    base_ = static_cast<uint8_t*>(m);
    if (mprotect(base_ + page_, len_, PROT_READ | PROT_WRITE) != 0) {
      munmap(base_, len_ + 2 * page_);
      base_ = nullptr;
    }
  }
  ~GuardedRegion() {
    if (base_ != nullptr) munmap(base_, len_ + 2 * page_);
  }
  GuardedRegion(const GuardedRegion&) = delete;
  GuardedRegion& operator=(const GuardedRegion&) = delete;

  bool ok() const { return base_ != nullptr; }
  uint8_t* data() const { return base_ + page_; }  // page aligned; a guard page before
  size_t size() const { return len_; }             // a guard page right after data() + size()
  uint64_t addr() const { return reinterpret_cast<uint64_t>(data()); }

  void fill(uint8_t v) { std::memset(data(), v, len_); }
  std::vector<uint8_t> snapshot() const { return {data(), data() + len_}; }
  bool unchanged_since(const std::vector<uint8_t>& s) const {
    return s.size() == len_ && std::memcmp(s.data(), data(), len_) == 0;
  }

 private:
  size_t page_;
  size_t len_;
  uint8_t* base_ = nullptr;
};

}  // namespace droce::nic::test
