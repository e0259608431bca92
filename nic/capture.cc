// DROCE_CAPTURE pcapng writer on DPDK's rte_pcapng: copies into a private
// mempool, one writev per burst.
#include "nic/capture.h"

#include <fcntl.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_mbuf.h>
#include <rte_pcapng.h>

namespace droce::nic {
namespace {

constexpr unsigned kCapturePoolMbufs = 1023;  // copies live only until written
constexpr unsigned kCapturePoolCache = 32;
constexpr uint16_t kChunk = 64;  // frames per writev

std::atomic<uint32_t> g_capture_seq{0};

}  // namespace

Result<std::unique_ptr<Capture>> Capture::open(const std::string& path, uint32_t max_frame) {
  std::unique_ptr<Capture> c(new Capture);
  c->path_ = path;
  c->max_frame_ = max_frame;

  char name[RTE_MEMPOOL_NAMESIZE];
  std::snprintf(name, sizeof(name), "droce_cap%u", g_capture_seq.fetch_add(1));
  const uint32_t room = rte_pcapng_mbuf_size(max_frame);
  if (room > UINT16_MAX) {
    return Status(Errc::kInvalidArgument, "capture frame size too large");
  }
  c->pool_ = rte_pktmbuf_pool_create(name, kCapturePoolMbufs, kCapturePoolCache, 0,
                                     uint16_t(room), SOCKET_ID_ANY);
  if (c->pool_ == nullptr) {
    return Status(Errc::kNoMemory, std::string("DROCE_CAPTURE: cannot create capture mempool: ") +
                                       rte_strerror(rte_errno));
  }

  c->prime_clock();

  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return Status(Errc::kIo, "DROCE_CAPTURE: cannot open '" + path + "': " + std::strerror(errno));
  }
  utsname u{};
  std::string os = "Linux";
  if (uname(&u) == 0) os = std::string(u.sysname) + " " + u.release;
  c->writer_ = rte_pcapng_fdopen(fd, os.c_str(), nullptr, "droce", nullptr);
  if (c->writer_ == nullptr) {
    const int err = rte_errno;
    ::close(fd);
    return Status(Errc::kIo, "DROCE_CAPTURE: cannot write pcapng header to '" + path +
                                 "': " + rte_strerror(err));
  }
  return c;
}

// rte_pcapng (22.11) converts TSC cycles to time with a process-wide base it
// takes lazily inside the first rte_pcapng_copy(). A timestamp read before
// that base (as every caller's is) wraps around and shifts every later
// timestamp by centuries. One copy stamped slightly in the future sets the
// base first; later stamps are all after it.
void Capture::prime_clock() {
  rte_mbuf* m = rte_pktmbuf_alloc(pool_);
  if (m == nullptr) return;
  if (rte_pktmbuf_append(m, 1) != nullptr) {
    const uint64_t ahead = rte_get_tsc_cycles() + rte_get_tsc_hz() / 100;  // 10 ms
    rte_mbuf* c = rte_pcapng_copy(0, 0, m, pool_, 1, ahead, RTE_PCAPNG_DIRECTION_UNKNOWN);
    rte_pktmbuf_free(c);
  }
  rte_pktmbuf_free(m);
}

Capture::~Capture() {
  if (writer_ != nullptr) rte_pcapng_close(writer_);  // closes the file descriptor
  if (pool_ != nullptr) rte_mempool_free(pool_);
}

void Capture::copy(uint16_t port_id, rte_mbuf* const* mbufs, uint16_t n, Direction dir,
                   rte_mbuf** copies) {
  const uint64_t now = rte_get_tsc_cycles();
  const auto d = dir == Direction::kIn ? RTE_PCAPNG_DIRECTION_IN : RTE_PCAPNG_DIRECTION_OUT;
  for (uint16_t i = 0; i < n; ++i) {
    copies[i] = rte_pcapng_copy(port_id, 0, mbufs[i], pool_, max_frame_, now, d);
    if (copies[i] == nullptr) ++errors_;
  }
}

void Capture::write(rte_mbuf** copies, uint16_t n) {
  rte_mbuf* batch[kChunk];
  uint16_t k = 0;
  auto flush = [&] {
    if (k == 0) return;
    if (rte_pcapng_write_packets(writer_, batch, k) < 0) {
      errors_ += k;
    } else {
      frames_ += k;
    }
    // DPDK 22.11's rte_pcapng_write_packets leaves the mbufs to the caller.
    rte_pktmbuf_free_bulk(batch, k);
    k = 0;
  };
  for (uint16_t i = 0; i < n; ++i) {
    if (copies[i] == nullptr) continue;
    batch[k++] = copies[i];
    if (k == kChunk) flush();
  }
  flush();
}

void Capture::discard(rte_mbuf** copies, uint16_t n) {
  for (uint16_t i = 0; i < n; ++i) rte_pktmbuf_free(copies[i]);  // accepts nullptr
}

void Capture::record(uint16_t port_id, rte_mbuf* const* mbufs, uint16_t n, Direction dir) {
  rte_mbuf* copies[kChunk];
  for (uint16_t done = 0; done < n;) {
    const uint16_t k = uint16_t(n - done < kChunk ? n - done : kChunk);
    copy(port_id, mbufs + done, k, dir, copies);
    write(copies, k);
    done = uint16_t(done + k);
  }
}

}  // namespace droce::nic
