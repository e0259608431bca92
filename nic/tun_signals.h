// Where DPDK's net_tap sends its per-frame signal.
//
// net_tap (DPDK 22.11) asks the kernel to raise a real-time signal
// (F_SETSIG) for every frame a tap queue receives, owned by the whole
// process (F_SETOWN getpid()), to skip empty receive bursts. A signal sent to
// a process goes to the main thread first, so an application's select, poll
// or epoll_wait on its own descriptors fails with EINTR whenever a frame
// arrives (those calls are never restarted, SA_RESTART or not), and a
// blocking call is interrupted once per frame. Only the thread that polls the
// port needs to know: direct_tun_signals makes that thread the owner of the
// port's tun descriptors (F_SETOWN_EX, F_OWNER_TID), and gives them back to
// the process when it stops.
#pragma once

#include <sys/types.h>

#include <cstdint>

namespace droce::nic {

// For the ethdev port_id: when it is a tap (its dev_info names a kernel
// interface), every descriptor of this process open on /dev/net/tun for that
// interface and owned by the process or a thread of it gets owner tid (a
// thread id; 0: the process again). Returns how many descriptors it moved;
// 0 for ports that are not taps. Any thread; no frame is lost (the signal
// only skips empty bursts, which the poller still makes).
int direct_tun_signals(uint16_t port_id, pid_t tid);

}  // namespace droce::nic
