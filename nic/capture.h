// DROCE_CAPTURE: every frame a port sends and receives, written to a pcapng
// file with DPDK's rte_pcapng (one interface block per ethdev port).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "nic/base/status.h"

struct rte_mbuf;
struct rte_mempool;
struct rte_pcapng;

namespace droce::nic {

// A pcapng writer. rte_pcapng (DPDK 22.11) writes the interface blocks of the
// ethdev ports that exist when the file is opened, so open it after the ports
// it records. Frames are copied into its own mempool (no heap allocation per
// frame) and written with one writev per burst.
// Threading: not thread-safe; one thread records (ports that share a Capture
// are driven by the same thread). rte_pcapng's clock is process-wide and
// unsynchronised, so record from one thread per process.
class Capture {
 public:
  enum class Direction : uint8_t { kIn, kOut };

  // Creates or truncates path. max_frame bounds the bytes kept per frame.
  static Result<std::unique_ptr<Capture>> open(const std::string& path, uint32_t max_frame);
  ~Capture();
  Capture(const Capture&) = delete;
  Capture& operator=(const Capture&) = delete;

  // Copies n frames received on or about to be sent by port_id into copies[]
  // (nullptr where a copy failed, counted in errors()). Does not take the frames.
  void copy(uint16_t port_id, rte_mbuf* const* mbufs, uint16_t n, Direction dir,
            rte_mbuf** copies);
  // Writes copies[0..n) (skipping nullptr) to the file and frees them.
  void write(rte_mbuf** copies, uint16_t n);
  // Frees copies[0..n) without writing (frames the device did not take).
  void discard(rte_mbuf** copies, uint16_t n);
  // copy + write.
  void record(uint16_t port_id, rte_mbuf* const* mbufs, uint16_t n, Direction dir);

  const std::string& path() const { return path_; }
  uint64_t frames() const { return frames_; }  // frames written
  uint64_t errors() const { return errors_; }  // copy or write failures

 private:
  Capture() = default;
  void prime_clock();

  std::string path_;
  rte_pcapng* writer_ = nullptr;
  rte_mempool* pool_ = nullptr;
  uint32_t max_frame_ = 0;
  uint64_t frames_ = 0;
  uint64_t errors_ = 0;
};

}  // namespace droce::nic
