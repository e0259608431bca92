// The mempool ops a port creates its mbuf pool with (nic/base/tsan.h says why).
#pragma once

namespace droce::nic {

// Under ThreadSanitizer: the name of a wrapper of DPDK's default mbuf pool
// ops whose enqueue (an mbuf freed) is a release and whose dequeue (an mbuf
// allocated) an acquire of each object, so TSan sees that the thread that
// last used an mbuf is done with it before the next one fills it. Registered
// on first use. Otherwise nullptr: the default ops, nothing wrapped.
const char* mbuf_pool_ops();

}  // namespace droce::nic
