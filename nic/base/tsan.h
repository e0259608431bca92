// ThreadSanitizer annotations for the happens-before edges that DPDK gives
// and TSan cannot see: DPDK is not built with -fsanitize=thread, so an mbuf
// that one engine thread fills and hands to the PMD (net_ring's rte_ring
// between the two ports of a pair), or frees to its mempool (the ring driver
// of librte_mempool_ring), and that another thread then receives or
// allocates, looks to TSan like two unordered accesses. The rings order them
// (enqueue is a release, dequeue an acquire); these calls tell TSan so, keyed
// by the mbuf's address. They compile to nothing outside a TSan build.
#pragma once

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#endif

namespace droce {

#if defined(__SANITIZE_THREAD__)
inline constexpr bool kTsan = true;
// Everything this thread did before is ordered before what a thread does
// after tsan_acquire(obj) of the same object.
inline void tsan_release(const void* obj) { __tsan_release(const_cast<void*>(obj)); }
inline void tsan_acquire(const void* obj) { __tsan_acquire(const_cast<void*>(obj)); }
#else
inline constexpr bool kTsan = false;
inline void tsan_release(const void*) {}
inline void tsan_acquire(const void*) {}
#endif

// The same for a burst of objects (mbufs).
template <typename T>
inline void tsan_release_all(T* const* objs, unsigned n) {
  if constexpr (kTsan) {
    for (unsigned i = 0; i < n; ++i) tsan_release(objs[i]);
  }
}
template <typename T>
inline void tsan_acquire_all(T* const* objs, unsigned n) {
  if constexpr (kTsan) {
    for (unsigned i = 0; i < n; ++i) tsan_acquire(objs[i]);
  }
}

}  // namespace droce
