// The CM service of one droce device: the CM agent (nic/cm/agent.h) fed
// with the MADs of the device's QP1 (verbs/droce_gsi.h) and driven by a
// thread of its own, so connections make progress while the program does
// nothing (retransmissions, RTU, DREQ), as the kernel's ib_cm does.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "nic/cm/agent.h"
#include "rdmacm/internal.h"

namespace droce::rdmacm {

// Threading: mu guards the agent and every IdPriv's CM fields; the engine
// thread's MAD handler takes only rx_mu (it holds the engine lock, and calls
// into the device are made with mu held, so it must never wait for mu).
// Lock order: mu, then an IdPriv's mu, then a channel's mu.
class CmService : public cm::AgentOutput {
 public:
  explicit CmService(DeviceEntry* d);
  ~CmService() override;

  std::mutex mu;
  cm::Agent& agent() { return agent_; }
  DeviceEntry* device() { return dev_; }
  static cm::AgentNanos now();

  // With mu held: runs what the agent reported during the calls just made.
  void handle_events();
  // Process exit: no more MADs in, the thread ends (mu not held).
  void stop();

  // cm::AgentOutput (called by the agent, mu held).
  void send_mad(uint32_t dst_ip, const uint8_t* mad) override;
  void on_event(const cm::AgentEvent& ev) override;

 private:
  struct Pending {
    cm::AgentEvent ev;
    cm::CmMsg msg;
  };
  static void on_gsi(void* arg, uint32_t src_ip, const uint8_t* mad, size_t len);
  void run();
  void handle(const cm::AgentEvent& ev, const cm::CmMsg& msg);  // conn.cc

  DeviceEntry* dev_;
  cm::Agent agent_;
  std::vector<Pending> pending_;  // mu

  struct RxMad {
    uint32_t src_ip;
    uint8_t mad[cm::kMadLen];
  };
  std::mutex rx_mu;
  std::condition_variable rx_cv;
  std::deque<RxMad> rx_;          // rx_mu
  bool stop_ = false;             // rx_mu
  std::thread thread_;
};

}  // namespace droce::rdmacm
