// ThreadSanitizer annotations for the happens-before edges that DPDK gives
// and TSan cannot see: DPDK is not built with -fsanitize=thread, so an mbuf
// that one engine thread fills and hands to the PMD (net_ring's rte_ring
// between the two ports of a pair), or frees to its mempool (the ring driver
// of librte_mempool_ring), and that another thread then receives or
// allocates, looks to TSan like two unordered accesses. The rings order them
// (enqueue is a release, dequeue an acquire); these calls tell TSan so, keyed
// by the mbuf's address. They compile to nothing outside a TSan build.
#pragma once

#include <cstddef>
#include <cstring>

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
extern "C" void AnnotateIgnoreWritesBegin(const char* file, int line);
extern "C" void AnnotateIgnoreWritesEnd(const char* file, int line);
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

// An RDMA WRITE's payload landing in registered memory: a NIC's DMA, which
// no program can order against its own reads but through the protocol it
// runs (a completion, a flag, SMC-R's CDC cursors). Copies that land the same
// bytes twice are part of such protocols: SMC-R sends again after a link
// failover what the peer had not confirmed (as Linux's smc_switch_cursor),
// while the peer may be reading those bytes, and the old link's last frames
// may still land beside the new link's; ThreadSanitizer reported both
// (SmcFailover.BothPortsDownEndsTheGroupWithEconnresetAndNoHang, 1 run in
// 5). So, like a DMA, this copy is not instrumented; the engine's own data
// and every other copy are.
inline void dma_write(void* dst, const void* src, std::size_t n) {
#if defined(__SANITIZE_THREAD__)
  AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
#endif
  std::memmove(dst, src, n);
#if defined(__SANITIZE_THREAD__)
  AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
#endif
}

}  // namespace droce
