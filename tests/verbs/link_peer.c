/* Peer for link_test: opens droce0 (configured by DROCE_EAL_ARGS, e.g. a
 * net_memif client), prints "peer up" once its port is ACTIVE, then stays
 * until it is killed (at most 60 s). Exit codes name what failed. */
#include <errno.h>
#include <infiniband/verbs.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(void) {
  int n = 0;
  struct ibv_device** list = ibv_get_device_list(&n);
  if (list == NULL) {
    printf("ibv_get_device_list: %s\n", strerror(errno));
    return 2;
  }
  if (n < 1) {
    printf("no device\n");
    return 3;
  }
  struct ibv_context* ctx = ibv_open_device(list[0]);
  if (ctx == NULL) {
    printf("ibv_open_device: %s\n", strerror(errno));
    return 4;
  }
  struct ibv_port_attr attr;
  for (int i = 0; i < 1000; ++i) { /* 10 s */
    if (ibv_query_port(ctx, 1, &attr) != 0) return 5;
    if (attr.state == IBV_PORT_ACTIVE) break;
    usleep(10000);
  }
  printf("peer %s\n", attr.state == IBV_PORT_ACTIVE ? "up" : "down");
  fflush(stdout);
  if (attr.state != IBV_PORT_ACTIVE) return 6;
  sleep(60);
  ibv_close_device(ctx);
  ibv_free_device_list(list);
  return 0;
}
