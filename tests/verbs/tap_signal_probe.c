/* Probe for tap_signal_test: opens droce0 (a net_tap port, DROCE_EAL_ARGS),
 * prints "ready" once its port is ACTIVE, then waits in poll(2) with no
 * descriptors for argv[1] milliseconds (default 3000), as an application's
 * event loop would between its own events, and prints how many times that
 * wait failed with EINTR ("eintr N"). poll is never restarted after a
 * signal handler, so every signal the main thread takes shows here. */
#include <errno.h>
#include <infiniband/verbs.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char** argv) {
  const long long wait_ms = argc > 1 ? atoll(argv[1]) : 3000;
  int n = 0;
  struct ibv_device** list = ibv_get_device_list(&n);
  if (list == NULL || n < 1) {
    printf("no device: %s\n", strerror(errno));
    return 2;
  }
  struct ibv_context* ctx = ibv_open_device(list[0]);
  if (ctx == NULL) {
    printf("ibv_open_device: %s\n", strerror(errno));
    return 3;
  }
  struct ibv_port_attr attr;
  for (int i = 0; i < 1000; ++i) { /* 10 s */
    if (ibv_query_port(ctx, 1, &attr) != 0) return 4;
    if (attr.state == IBV_PORT_ACTIVE) break;
    usleep(10000);
  }
  if (attr.state != IBV_PORT_ACTIVE) {
    printf("port down\n");
    return 5;
  }
  printf("ready\n");
  fflush(stdout);
  int eintr = 0;
  const long long end = now_ms() + wait_ms;
  for (long long left = wait_ms; left > 0; left = end - now_ms()) {
    if (poll(NULL, 0, (int)left) < 0) {
      if (errno != EINTR) {
        printf("poll: %s\n", strerror(errno));
        return 6;
      }
      ++eintr;
    }
  }
  printf("eintr %d\n", eintr);
  fflush(stdout);
  ibv_close_device(ctx);
  ibv_free_device_list(list);
  return 0;
}
