// Event channels: a semaphore eventfd per channel (pollable, EAGAIN when the
// program made it non-blocking, one event per rdma_get_cm_event) and the
// event accounting rdma_destroy_id waits on (reference/rdma-cm.md 1.3).
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "rdmacm/internal.h"

namespace droce::rdmacm {

Channel* new_channel() {
  const int fd = eventfd(0, EFD_SEMAPHORE | EFD_CLOEXEC);
  if (fd < 0) return nullptr;
  Channel* c = new Channel;
  c->ch.fd = fd;
  return c;
}

void free_channel(Channel* c) {
  for (Event* e : c->queue) delete e;
  close(c->ch.fd);
  delete c;
}

void post_event(IdPriv* id, rdma_cm_event_type type, int status, const void* pd, size_t len,
                uint8_t reported_len, rdma_cm_id* listen_id, const EventParam* param, Channel* via) {
  Event* e = new Event;
  e->owner = id;
  e->event.id = &id->id;
  e->event.listen_id = listen_id;
  e->event.event = type;
  e->event.status = status;
  if (param != nullptr) e->event.param = *param;
  if (len > kEventPrivateMax) len = kEventPrivateMax;
  if (pd != nullptr && len > 0) std::memcpy(e->private_data, pd, len);
  e->event.param.conn.private_data = reported_len > 0 ? e->private_data : nullptr;
  e->event.param.conn.private_data_len = reported_len;
  Channel* c = via != nullptr ? via : chan(id->id.channel);
  std::lock_guard<std::mutex> lock(c->mu);
  c->queue.push_back(e);
  const uint64_t one = 1;
  // Cannot fail short of 2^64-2 queued events.
  (void)!write(c->ch.fd, &one, sizeof(one));
}

int kill_events(Channel* c, IdPriv* id) {
  std::lock_guard<std::mutex> lock(c->mu);
  int n = 0;
  for (Event* e : c->queue) {
    if (e->owner == id && !e->dead) {
      e->dead = true;
      ++n;
    }
  }
  return n;
}

int complete(IdPriv* id) {
  if (id->id.event != nullptr) {
    rdma_ack_cm_event(id->id.event);
    id->id.event = nullptr;
  }
  rdma_cm_event* ev = nullptr;
  if (rdma_get_cm_event(id->id.channel, &ev) != 0) return -1;
  // rdma_get_cm_event stored it in id->event (sync id).
  const int status = ev->status;
  if (status == 0) return 0;
  if (ev->event == RDMA_CM_EVENT_REJECTED) return fail(ECONNREFUSED);
  return fail(status < 0 ? -status : status);
}

}  // namespace droce::rdmacm

using namespace droce::rdmacm;  // NOLINT: the C entry points below

extern "C" {

rdma_event_channel* rdma_create_event_channel(void) {
  Library* lib;
  if (Library::get(&lib) != 0) return nullptr;
  Channel* c = new_channel();
  return c != nullptr ? &c->ch : nullptr;
}

// A program's other thread may be about to read the channel when it is
// destroyed (rping's cm_thread is: it loops back into rdma_get_cm_event
// after the ack that let rdma_destroy_id return). With the kernel's fd that
// thread stays blocked in read until the process ends; here too: the channel
// and its eventfd are kept, empty, for the next kKeptChannels destroys.
void rdma_destroy_event_channel(rdma_event_channel* channel) {
  if (channel == nullptr) return;
  constexpr size_t kKeptChannels = 64;
  static std::mutex kept_mu;
  // Never destroyed: the channels stay reachable to the end of the process.
  static auto* kept = new std::deque<Channel*>;
  Channel* c = chan(channel);
  {
    std::lock_guard<std::mutex> lock(c->mu);
    for (Event* e : c->queue) delete e;
    c->queue.clear();
  }
  Channel* oldest = nullptr;
  {
    std::lock_guard<std::mutex> lock(kept_mu);
    kept->push_back(c);
    if (kept->size() > kKeptChannels) {
      oldest = kept->front();
      kept->pop_front();
    }
  }
  if (oldest != nullptr) free_channel(oldest);
}

int rdma_get_cm_event(rdma_event_channel* channel, rdma_cm_event** event) {
  if (channel == nullptr || event == nullptr) return fail(EINVAL);
  Channel* c = chan(channel);
  for (;;) {
    uint64_t n;
    // read(2) honours the fd's own O_NONBLOCK (EAGAIN), as the kernel's fd does.
    if (read(c->ch.fd, &n, sizeof(n)) != sizeof(n)) return -1;
    Event* e;
    {
      std::lock_guard<std::mutex> lock(c->mu);
      if (c->queue.empty()) continue;
      e = c->queue.front();
      c->queue.pop_front();
    }
    if (e->dead) {
      delete e;
      continue;
    }
    IdPriv* id = e->owner;
    {
      std::lock_guard<std::mutex> lock(id->mu);
      ++id->events_reported;
    }
    if (id->sync) id->id.event = &e->event;
    *event = &e->event;
    return 0;
  }
}

int rdma_ack_cm_event(rdma_cm_event* event) {
  if (event == nullptr) return fail(EINVAL);
  Event* e = reinterpret_cast<Event*>(event);
  IdPriv* id = e->owner;
  if (id->sync && id->id.event == event) id->id.event = nullptr;
  {
    // Notified under the lock: the destroying thread may free the id as soon
    // as it sees the count, so nothing touches id after the unlock.
    std::lock_guard<std::mutex> lock(id->mu);
    ++id->events_completed;
    id->cv.notify_all();
  }
  delete e;
  return 0;
}

}  // extern "C"
