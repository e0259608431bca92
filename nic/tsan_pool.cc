#include "nic/tsan_pool.h"

#include "nic/base/tsan.h"

#if defined(__SANITIZE_THREAD__)
#include <rte_mbuf_pool_ops.h>
#include <rte_mempool.h>

#include <cstdio>
#include <cstring>
#endif

namespace droce::nic {

#if defined(__SANITIZE_THREAD__)
namespace {

constexpr char kOpsName[] = "droce_tsan_mbuf";
rte_mempool_ops g_base;  // the default ops, as registered by DPDK

int enqueue(rte_mempool* mp, void* const* objs, unsigned n) {
  tsan_release_all(objs, n);
  return g_base.enqueue(mp, objs, n);
}

int dequeue(rte_mempool* mp, void** objs, unsigned n) {
  const int rc = g_base.dequeue(mp, objs, n);
  if (rc == 0) tsan_acquire_all(objs, n);
  return rc;
}

const char* register_ops() {
  const char* base = rte_mbuf_best_mempool_ops();
  for (uint32_t i = 0; i < rte_mempool_ops_table.num_ops; ++i) {
    if (std::strcmp(rte_mempool_ops_table.ops[i].name, base) != 0) continue;
    g_base = rte_mempool_ops_table.ops[i];
    rte_mempool_ops ops = g_base;
    std::snprintf(ops.name, sizeof(ops.name), "%s", kOpsName);
    ops.enqueue = enqueue;
    ops.dequeue = dequeue;
    // Contiguous blocks bypass dequeue; mbuf pools never use them.
    ops.dequeue_contig_blocks = nullptr;
    if (rte_mempool_register_ops(&ops) < 0) break;
    return kOpsName;
  }
  std::fprintf(stderr, "droce: TSan build: mempool ops %s not found, mbuf hand-offs unannotated\n",
               base);
  return nullptr;
}

}  // namespace

const char* mbuf_pool_ops() {
  static const char* name = register_ops();
  return name;
}
#else
const char* mbuf_pool_ops() { return nullptr; }
#endif

}  // namespace droce::nic
