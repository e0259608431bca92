/* The drop-in librdmacm.so.1 through its public API, as a C program built
 * against rdma-core's <rdma/rdma_cma.h>: event channels (pollable fd, EAGAIN,
 * one event per call, destroy waiting for the ack, migrate), sync ids, the
 * address rules, route synthesis, QPs on ids and their INIT attributes,
 * getaddrinfo / create_ep, and the clean errors of what is not there.
 * droce0 runs on its default port (net_ring0, 10.77.0.1). */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <rdma/rdma_cma.h>
#include <rdma/rdma_verbs.h>
#include <rdma/rsocket.h>
#include <unistd.h>

#include "tests/verbs/verbs_util.h"

static const char* kOwnIp = "10.77.0.1";

static struct sockaddr_in sin_of(const char* ip, uint16_t port) {
  struct sockaddr_in s;
  memset(&s, 0, sizeof(s));
  s.sin_family = AF_INET;
  s.sin_port = htons(port);
  CHECK(inet_pton(AF_INET, ip, &s.sin_addr) == 1);
  return s;
}

static void set_nonblock(struct rdma_event_channel* ch) {
  int flags = fcntl(ch->fd, F_GETFL);
  CHECK(flags >= 0);
  CHECK(fcntl(ch->fd, F_SETFL, flags | O_NONBLOCK) == 0);
}

static void expect_eagain(struct rdma_event_channel* ch) {
  struct rdma_cm_event* ev = NULL;
  errno = 0;
  CHECK(rdma_get_cm_event(ch, &ev) == -1);
  CHECK(errno == EAGAIN);
}

/* Waits (bounded) for the channel's fd to become readable, then takes one event. */
static struct rdma_cm_event* next_event(struct rdma_event_channel* ch, enum rdma_cm_event_type want) {
  CHECK(wait_fd(ch->fd, kWaitMs) == 1);
  struct rdma_cm_event* ev = NULL;
  CHECK(rdma_get_cm_event(ch, &ev) == 0);
  if (ev->event != want) {
    fprintf(stderr, "got %s (status %d), expected %s\n", rdma_event_str(ev->event), ev->status,
            rdma_event_str(want));
    exit(1);
  }
  return ev;
}

/* An async id on ch, resolved (address and route) towards the port's own address. */
static struct rdma_cm_id* resolved_id(struct rdma_event_channel* ch, enum rdma_port_space ps) {
  struct rdma_cm_id* id = NULL;
  CHECK(rdma_create_id(ch, &id, NULL, ps) == 0);
  struct sockaddr_in dst = sin_of(kOwnIp, 7174);
  CHECK(rdma_resolve_addr(id, NULL, (struct sockaddr*)&dst, 2000) == 0);
  struct rdma_cm_event* ev = next_event(ch, RDMA_CM_EVENT_ADDR_RESOLVED);
  CHECK(ev->id == id && ev->status == 0);
  CHECK(rdma_ack_cm_event(ev) == 0);
  CHECK(rdma_resolve_route(id, 2000) == 0);
  ev = next_event(ch, RDMA_CM_EVENT_ROUTE_RESOLVED);
  CHECK(rdma_ack_cm_event(ev) == 0);
  return id;
}

static void case_devices(void) {
  int n = -1;
  struct ibv_context** list = rdma_get_devices(&n);
  CHECK(list != NULL);
  CHECK(n == 1);
  CHECK(list[0] != NULL && list[1] == NULL);
  CHECK(strcmp(ibv_get_device_name(list[0]->device), "droce0") == 0);
  struct ibv_context** again = rdma_get_devices(NULL);
  CHECK(again != NULL && again[0] == list[0]); /* one shared context per device */
  rdma_free_devices(again);
  rdma_free_devices(list);
}

static void case_event_str(void) {
  CHECK(strcmp(rdma_event_str(RDMA_CM_EVENT_REJECTED), "RDMA_CM_EVENT_REJECTED") == 0);
  CHECK(strcmp(rdma_event_str(RDMA_CM_EVENT_ADDR_RESOLVED), "RDMA_CM_EVENT_ADDR_RESOLVED") == 0);
  CHECK(strcmp(rdma_event_str(RDMA_CM_EVENT_TIMEWAIT_EXIT), "RDMA_CM_EVENT_TIMEWAIT_EXIT") == 0);
  CHECK(strcmp(rdma_event_str((enum rdma_cm_event_type)16), "UNKNOWN EVENT") == 0);
}

/* Non-blocking: EAGAIN and no POLLIN when nothing is queued; one event per
 * call; the fd is readable exactly while something is queued. */
static void case_channel(void) {
  struct rdma_event_channel* ch = rdma_create_event_channel();
  CHECK(ch != NULL && ch->fd >= 0);
  set_nonblock(ch);
  expect_eagain(ch);
  CHECK(wait_fd(ch->fd, 0) == 0);

  struct rdma_cm_id* a = NULL;
  struct rdma_cm_id* b = NULL;
  CHECK(rdma_create_id(ch, &a, (void*)0x1234, RDMA_PS_TCP) == 0);
  CHECK(rdma_create_id(ch, &b, NULL, RDMA_PS_TCP) == 0);
  CHECK(a->context == (void*)0x1234 && a->channel == ch && a->ps == RDMA_PS_TCP);
  struct sockaddr_in dst = sin_of(kOwnIp, 9000);
  CHECK(rdma_resolve_addr(a, NULL, (struct sockaddr*)&dst, 2000) == 0);
  CHECK(rdma_resolve_addr(b, NULL, (struct sockaddr*)&dst, 2000) == 0);
  /* Both events arrive; each call returns exactly one. */
  struct rdma_cm_event* e1 = next_event(ch, RDMA_CM_EVENT_ADDR_RESOLVED);
  struct rdma_cm_event* e2 = next_event(ch, RDMA_CM_EVENT_ADDR_RESOLVED);
  CHECK(e1 != e2 && e1->id != e2->id);
  CHECK((e1->id == a || e1->id == b) && (e2->id == a || e2->id == b));
  expect_eagain(ch);
  CHECK(wait_fd(ch->fd, 0) == 0);
  CHECK(rdma_ack_cm_event(e1) == 0);
  CHECK(rdma_ack_cm_event(e2) == 0);
  CHECK(rdma_destroy_id(a) == 0);
  CHECK(rdma_destroy_id(b) == 0);
  rdma_destroy_event_channel(ch);
}

/* What resolution fills in: device, port, addresses, GIDs, the synthesised path. */
static void case_resolve(void) {
  struct rdma_event_channel* ch = rdma_create_event_channel();
  CHECK(ch != NULL);
  struct rdma_cm_id* id = resolved_id(ch, RDMA_PS_TCP);
  CHECK(id->verbs != NULL && id->pd != NULL && id->pd->context == id->verbs);
  CHECK(id->port_num == 1);
  const struct sockaddr_in* src = &id->route.addr.src_sin;
  const struct sockaddr_in* dst = &id->route.addr.dst_sin;
  CHECK(src->sin_family == AF_INET && dst->sin_family == AF_INET);
  char ip[INET_ADDRSTRLEN];
  CHECK(strcmp(inet_ntop(AF_INET, &src->sin_addr, ip, sizeof(ip)), kOwnIp) == 0);
  const uint16_t sport = ntohs(src->sin_port);
  CHECK(sport >= 32768 && sport <= 60999); /* ephemeral, as the kernel's range */
  CHECK(rdma_get_src_port(id) == src->sin_port);
  CHECK(rdma_get_dst_port(id) == htons(7174));
  const uint8_t gid[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 10, 77, 0, 1};
  CHECK(memcmp(id->route.addr.addr.ibaddr.sgid.raw, gid, 16) == 0);
  CHECK(memcmp(id->route.addr.addr.ibaddr.dgid.raw, gid, 16) == 0);
  CHECK(id->route.num_paths == 1 && id->route.path_rec != NULL);
  const struct ibv_sa_path_rec* r = id->route.path_rec;
  CHECK(memcmp(r->dgid.raw, gid, 16) == 0 && memcmp(r->sgid.raw, gid, 16) == 0);
  CHECK(r->mtu == IBV_MTU_1024);
  CHECK(r->pkey == htons(0xFFFF));
  CHECK(r->hop_limit == 64);
  CHECK(r->packet_life_time == 18);
  CHECK(ntohl(r->flow_label) == (((uint32_t)sport * 31 + 7174) & 0xFFFFF));
  /* Resolving again from a resolved state is refused. */
  struct sockaddr_in d2 = sin_of(kOwnIp, 1);
  errno = 0;
  CHECK(rdma_resolve_addr(id, NULL, (struct sockaddr*)&d2, 100) == -1 && errno == EINVAL);
  CHECK(rdma_destroy_id(id) == 0);
  rdma_destroy_event_channel(ch);
}

/* An address nobody answers ARP for: ADDR_ERROR with -ETIMEDOUT, never a hang. */
static void case_addr_error(void) {
  struct rdma_event_channel* ch = rdma_create_event_channel();
  CHECK(ch != NULL);
  struct rdma_cm_id* id = NULL;
  CHECK(rdma_create_id(ch, &id, NULL, RDMA_PS_TCP) == 0);
  struct sockaddr_in dst = sin_of("10.77.0.99", 7174);
  CHECK(rdma_resolve_addr(id, NULL, (struct sockaddr*)&dst, 2000) == 0);
  struct rdma_cm_event* ev = next_event(ch, RDMA_CM_EVENT_ADDR_ERROR);
  CHECK(ev->status == -ETIMEDOUT);
  CHECK(rdma_ack_cm_event(ev) == 0);
  /* Not resolved: no route. */
  errno = 0;
  CHECK(rdma_resolve_route(id, 100) == -1 && errno == EINVAL);
  CHECK(rdma_destroy_id(id) == 0);
  rdma_destroy_event_channel(ch);
}

struct destroyer {
  struct rdma_cm_id* id;
  volatile int done;
};

static void* destroy_thread(void* arg) {
  struct destroyer* d = arg;
  CHECK(rdma_destroy_id(d->id) == 0);
  __atomic_store_n(&d->done, 1, __ATOMIC_SEQ_CST);
  return NULL;
}

/* rdma_destroy_id blocks until the delivered event is acked. */
static void case_destroy_waits(void) {
  struct rdma_event_channel* ch = rdma_create_event_channel();
  CHECK(ch != NULL);
  struct rdma_cm_id* id = NULL;
  CHECK(rdma_create_id(ch, &id, NULL, RDMA_PS_TCP) == 0);
  struct sockaddr_in dst = sin_of(kOwnIp, 7174);
  CHECK(rdma_resolve_addr(id, NULL, (struct sockaddr*)&dst, 2000) == 0);
  struct rdma_cm_event* ev = next_event(ch, RDMA_CM_EVENT_ADDR_RESOLVED);
  struct destroyer d = {id, 0};
  pthread_t t;
  CHECK(pthread_create(&t, NULL, destroy_thread, &d) == 0);
  usleep(200 * 1000);
  CHECK(__atomic_load_n(&d.done, __ATOMIC_SEQ_CST) == 0); /* still waiting for the ack */
  CHECK(rdma_ack_cm_event(ev) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  CHECK(d.done == 1);
  rdma_destroy_event_channel(ch);
}

/* Events queued but not delivered when the id is destroyed are discarded. */
static void case_destroy_discards(void) {
  struct rdma_event_channel* ch = rdma_create_event_channel();
  CHECK(ch != NULL);
  set_nonblock(ch);
  struct rdma_cm_id* id = NULL;
  CHECK(rdma_create_id(ch, &id, NULL, RDMA_PS_TCP) == 0);
  struct sockaddr_in dst = sin_of(kOwnIp, 7174);
  CHECK(rdma_resolve_addr(id, NULL, (struct sockaddr*)&dst, 2000) == 0);
  CHECK(rdma_destroy_id(id) == 0); /* waits for the resolution, then drops its event */
  expect_eagain(ch);
  rdma_destroy_event_channel(ch);
}

/* A queued event moves with its id to the new channel. */
static void case_migrate(void) {
  struct rdma_event_channel* a = rdma_create_event_channel();
  struct rdma_event_channel* b = rdma_create_event_channel();
  CHECK(a != NULL && b != NULL);
  set_nonblock(a);
  set_nonblock(b);
  struct rdma_cm_id* id = NULL;
  CHECK(rdma_create_id(a, &id, NULL, RDMA_PS_TCP) == 0);
  struct sockaddr_in dst = sin_of(kOwnIp, 7174);
  CHECK(rdma_resolve_addr(id, NULL, (struct sockaddr*)&dst, 2000) == 0);
  CHECK(wait_fd(a->fd, kWaitMs) == 1);
  CHECK(rdma_migrate_id(id, b) == 0);
  CHECK(id->channel == b);
  expect_eagain(a);
  struct rdma_cm_event* ev = next_event(b, RDMA_CM_EVENT_ADDR_RESOLVED);
  CHECK(ev->id == id);
  CHECK(rdma_ack_cm_event(ev) == 0);
  /* To a private channel (NULL): the id becomes synchronous. */
  CHECK(rdma_migrate_id(id, NULL) == 0);
  CHECK(id->channel != NULL && id->channel != a && id->channel != b);
  CHECK(rdma_resolve_route(id, 2000) == 0); /* blocks for its own event */
  CHECK(id->event != NULL && id->event->event == RDMA_CM_EVENT_ROUTE_RESOLVED);
  CHECK(rdma_destroy_id(id) == 0);
  rdma_destroy_event_channel(a);
  rdma_destroy_event_channel(b);
}

/* A NULL channel makes a sync id: calls return once their event is in. */
static void case_sync(void) {
  struct rdma_cm_id* id = NULL;
  CHECK(rdma_create_id(NULL, &id, NULL, RDMA_PS_TCP) == 0);
  CHECK(id->channel != NULL);
  struct sockaddr_in dst = sin_of(kOwnIp, 7174);
  CHECK(rdma_resolve_addr(id, NULL, (struct sockaddr*)&dst, 2000) == 0);
  CHECK(id->event != NULL && id->event->event == RDMA_CM_EVENT_ADDR_RESOLVED);
  CHECK(rdma_resolve_route(id, 2000) == 0);
  CHECK(id->event != NULL && id->event->event == RDMA_CM_EVENT_ROUTE_RESOLVED);
  CHECK(rdma_destroy_id(id) == 0);

  /* A failed resolution returns its status as errno. */
  CHECK(rdma_create_id(NULL, &id, NULL, RDMA_PS_TCP) == 0);
  struct sockaddr_in nobody = sin_of("10.77.0.98", 7174);
  errno = 0;
  CHECK(rdma_resolve_addr(id, NULL, (struct sockaddr*)&nobody, 500) == -1);
  CHECK(errno == ETIMEDOUT);
  CHECK(rdma_destroy_id(id) == 0);
}

/* Addresses: only the port's own (or any); ports per port space; REUSEADDR. */
static void case_bind(void) {
  struct rdma_event_channel* ch = rdma_create_event_channel();
  CHECK(ch != NULL);
  struct rdma_cm_id *a, *b, *c, *u;
  CHECK(rdma_create_id(ch, &a, NULL, RDMA_PS_TCP) == 0);
  CHECK(rdma_create_id(ch, &b, NULL, RDMA_PS_TCP) == 0);
  CHECK(rdma_create_id(ch, &c, NULL, RDMA_PS_TCP) == 0);
  CHECK(rdma_create_id(ch, &u, NULL, RDMA_PS_UDP) == 0);
  struct sockaddr_in other = sin_of("10.77.0.9", 5000);
  errno = 0;
  CHECK(rdma_bind_addr(a, (struct sockaddr*)&other) == -1 && errno == EADDRNOTAVAIL);
  struct sockaddr_in own = sin_of(kOwnIp, 5000);
  CHECK(rdma_bind_addr(a, (struct sockaddr*)&own) == 0);
  CHECK(a->verbs != NULL && a->port_num == 1);
  CHECK(rdma_get_src_port(a) == htons(5000));
  errno = 0;
  CHECK(rdma_bind_addr(a, (struct sockaddr*)&own) == -1 && errno == EINVAL); /* bound already */
  errno = 0;
  CHECK(rdma_bind_addr(b, (struct sockaddr*)&own) == -1 && errno == EADDRINUSE);
  CHECK(rdma_bind_addr(u, (struct sockaddr*)&own) == 0); /* another port space */
  CHECK(u->qp_type == IBV_QPT_UD);
  struct sockaddr_in any = sin_of("0.0.0.0", 0);
  CHECK(rdma_bind_addr(b, (struct sockaddr*)&any) == 0);
  CHECK(b->verbs == NULL); /* INADDR_ANY binds no device */
  CHECK(ntohs(rdma_get_src_port(b)) >= 32768);
  CHECK(rdma_listen(b, 0) == 0);
  CHECK(rdma_destroy_id(a) == 0);
  CHECK(rdma_bind_addr(c, (struct sockaddr*)&own) == 0); /* released by the destroy */
  CHECK(rdma_destroy_id(b) == 0);
  CHECK(rdma_destroy_id(c) == 0);
  CHECK(rdma_destroy_id(u) == 0);

  /* REUSEADDR on both lets two ids share a port until one listens. */
  int on = 1;
  CHECK(rdma_create_id(ch, &a, NULL, RDMA_PS_TCP) == 0);
  CHECK(rdma_create_id(ch, &b, NULL, RDMA_PS_TCP) == 0);
  CHECK(rdma_set_option(a, RDMA_OPTION_ID, RDMA_OPTION_ID_REUSEADDR, &on, sizeof(on)) == 0);
  CHECK(rdma_set_option(b, RDMA_OPTION_ID, RDMA_OPTION_ID_REUSEADDR, &on, sizeof(on)) == 0);
  CHECK(rdma_bind_addr(a, (struct sockaddr*)&own) == 0);
  CHECK(rdma_bind_addr(b, (struct sockaddr*)&own) == 0);
  CHECK(rdma_listen(a, 10) == 0);
  errno = 0;
  CHECK(rdma_listen(b, 10) == -1 && errno == EADDRINUSE);
  errno = 0;
  CHECK(rdma_set_option(a, RDMA_OPTION_ID, RDMA_OPTION_ID_REUSEADDR, &on, sizeof(on)) == -1 && errno == EINVAL);
  CHECK(rdma_destroy_id(a) == 0);
  CHECK(rdma_destroy_id(b) == 0);

  /* AF_IB and plain IPv6 are not droce addresses. */
  CHECK(rdma_create_id(ch, &a, NULL, RDMA_PS_TCP) == 0);
  struct sockaddr_in6 v6;
  memset(&v6, 0, sizeof(v6));
  v6.sin6_family = AF_INET6;
  CHECK(inet_pton(AF_INET6, "fe80::1", &v6.sin6_addr) == 1);
  errno = 0;
  CHECK(rdma_bind_addr(a, (struct sockaddr*)&v6) == -1 && errno == EADDRNOTAVAIL);
  CHECK(inet_pton(AF_INET6, "::ffff:10.77.0.1", &v6.sin6_addr) == 1);
  CHECK(rdma_bind_addr(a, (struct sockaddr*)&v6) == 0);
  CHECK(a->route.addr.src_addr.sa_family == AF_INET6);
  CHECK(rdma_destroy_id(a) == 0);
  rdma_destroy_event_channel(ch);
}

static void case_options(void) {
  struct rdma_cm_id* id = NULL;
  CHECK(rdma_create_id(NULL, &id, NULL, RDMA_PS_TCP) == 0);
  uint8_t tos = 0x20;
  int on = 1;
  CHECK(rdma_set_option(id, RDMA_OPTION_ID, RDMA_OPTION_ID_TOS, &tos, sizeof(tos)) == 0);
  errno = 0;
  CHECK(rdma_set_option(id, RDMA_OPTION_ID, RDMA_OPTION_ID_TOS, &on, sizeof(on)) == -1 && errno == EINVAL);
  CHECK(rdma_set_option(id, RDMA_OPTION_ID, RDMA_OPTION_ID_AFONLY, &on, sizeof(on)) == 0);
  uint8_t timeout = 14;
  CHECK(rdma_set_option(id, RDMA_OPTION_ID, RDMA_OPTION_ID_ACK_TIMEOUT, &timeout, sizeof(timeout)) == 0);
  errno = 0;
  CHECK(rdma_set_option(id, 7, 0, &on, sizeof(on)) == -1 && errno == EINVAL);
  errno = 0;
  CHECK(rdma_set_option(id, RDMA_OPTION_IB, RDMA_OPTION_IB_PATH, &on, sizeof(on)) == -1 && errno == ENOSYS);
  /* The TOS and ACK timeout reach the route. */
  struct sockaddr_in dst = sin_of(kOwnIp, 7174);
  CHECK(rdma_resolve_addr(id, NULL, (struct sockaddr*)&dst, 2000) == 0);
  CHECK(rdma_resolve_route(id, 2000) == 0);
  CHECK(id->route.path_rec->traffic_class == 0x20);
  CHECK(id->route.path_rec->packet_life_time == 13);
  CHECK(rdma_destroy_id(id) == 0);
}

/* QPs on ids: own CQs with the id as context, INIT at creation, the INIT
 * attributes rdma_init_qp_attr gives; UD goes to RTS with RDMA_UDP_QKEY. */
static void case_qp(void) {
  struct rdma_event_channel* ch = rdma_create_event_channel();
  CHECK(ch != NULL);
  struct rdma_cm_id* id = resolved_id(ch, RDMA_PS_TCP);
  struct ibv_qp_init_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.qp_type = IBV_QPT_RC;
  attr.cap.max_send_wr = attr.cap.max_recv_wr = 8;
  attr.cap.max_send_sge = attr.cap.max_recv_sge = 1;
  struct ibv_pd* foreign = NULL; /* a PD of the same context is fine */
  foreign = ibv_alloc_pd(id->verbs);
  CHECK(foreign != NULL);
  CHECK(rdma_create_qp(id, foreign, &attr) == 0);
  CHECK(id->qp != NULL && qp_state(id->qp) == IBV_QPS_INIT);
  CHECK(id->send_cq != NULL && id->recv_cq != NULL && id->send_cq != id->recv_cq);
  CHECK(id->send_cq->cq_context == id && id->recv_cq->cq_context == id);
  CHECK(id->send_cq_channel != NULL && id->recv_cq_channel != NULL);
  CHECK(attr.send_cq == id->send_cq && attr.recv_cq == id->recv_cq);
  errno = 0;
  CHECK(rdma_create_qp(id, NULL, &attr) == -1 && errno == EINVAL); /* one QP per id */

  struct ibv_qp_attr qa;
  int mask = 0;
  memset(&qa, 0, sizeof(qa));
  qa.qp_state = IBV_QPS_INIT;
  CHECK(rdma_init_qp_attr(id, &qa, &mask) == 0);
  CHECK(mask == (IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS));
  CHECK(qa.port_num == 1 && qa.pkey_index == 0 && qa.qp_access_flags == 0);
  qa.qp_state = IBV_QPS_RTR; /* no connection yet */
  errno = 0;
  CHECK(rdma_init_qp_attr(id, &qa, &mask) == -1 && errno == EINVAL);
  rdma_destroy_qp(id);
  CHECK(id->qp == NULL && id->send_cq == NULL && id->recv_cq == NULL);
  rdma_destroy_qp(id); /* no QP: nothing (qperf 0.4.11 does this on its listener) */
  CHECK(ibv_dealloc_pd(foreign) == 0);
  CHECK(rdma_destroy_id(id) == 0);

  id = resolved_id(ch, RDMA_PS_UDP);
  CHECK(id->qp_type == IBV_QPT_UD);
  memset(&attr, 0, sizeof(attr));
  attr.qp_type = IBV_QPT_UD;
  attr.cap.max_send_wr = attr.cap.max_recv_wr = 4;
  attr.cap.max_send_sge = attr.cap.max_recv_sge = 1;
  CHECK(rdma_create_qp(id, NULL, &attr) == 0);
  CHECK(qp_state(id->qp) == IBV_QPS_RTS);
  struct ibv_qp_init_attr init;
  CHECK_RC(ibv_query_qp(id->qp, &qa, IBV_QP_QKEY, &init), 0);
  CHECK(qa.qkey == RDMA_UDP_QKEY);
  rdma_destroy_qp(id);
  CHECK(rdma_destroy_id(id) == 0);
  rdma_destroy_event_channel(ch);
}

static void case_getaddrinfo(void) {
  struct rdma_addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof(hints));
  hints.ai_flags = RAI_PASSIVE;
  CHECK(rdma_getaddrinfo(kOwnIp, "7174", &hints, &res) == 0);
  CHECK(res != NULL && res->ai_family == AF_INET);
  CHECK(res->ai_port_space == RDMA_PS_TCP && res->ai_qp_type == IBV_QPT_RC);
  CHECK(res->ai_src_addr != NULL && res->ai_dst_addr == NULL);
  CHECK(((struct sockaddr_in*)res->ai_src_addr)->sin_port == htons(7174));
  rdma_freeaddrinfo(res);

  memset(&hints, 0, sizeof(hints));
  hints.ai_port_space = RDMA_PS_UDP;
  hints.ai_qp_type = IBV_QPT_UD;
  CHECK(rdma_getaddrinfo(kOwnIp, "4000", &hints, &res) == 0);
  CHECK(res->ai_dst_addr != NULL && res->ai_src_addr == NULL);
  CHECK(res->ai_port_space == RDMA_PS_UDP && res->ai_qp_type == IBV_QPT_UD);
  rdma_freeaddrinfo(res);

  memset(&hints, 0, sizeof(hints));
  hints.ai_flags = RAI_NUMERICHOST;
  CHECK(rdma_getaddrinfo("not-an-address", "1", &hints, &res) != 0);
  hints.ai_family = AF_IB;
  CHECK(rdma_getaddrinfo(kOwnIp, "1", &hints, &res) != 0);
}

static void case_create_ep(void) {
  struct rdma_addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof(hints));
  hints.ai_flags = RAI_PASSIVE;
  CHECK(rdma_getaddrinfo(kOwnIp, "7471", &hints, &res) == 0);
  struct ibv_qp_init_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.cap.max_send_wr = attr.cap.max_recv_wr = 4;
  attr.cap.max_send_sge = attr.cap.max_recv_sge = 1;
  attr.qp_type = IBV_QPT_RC;
  struct rdma_cm_id* listen_id = NULL;
  CHECK(rdma_create_ep(&listen_id, res, NULL, &attr) == 0);
  CHECK(listen_id->qp == NULL); /* a passive endpoint gets its QPs per request */
  CHECK(rdma_listen(listen_id, 0) == 0);
  rdma_freeaddrinfo(res);

  memset(&hints, 0, sizeof(hints));
  CHECK(rdma_getaddrinfo(kOwnIp, "7471", &hints, &res) == 0);
  struct rdma_cm_id* id = NULL;
  CHECK(rdma_create_ep(&id, res, NULL, &attr) == 0);
  CHECK(id->qp != NULL && qp_state(id->qp) == IBV_QPS_INIT);
  CHECK(id->verbs != NULL && id->route.num_paths == 1);
  rdma_destroy_ep(id);
  rdma_freeaddrinfo(res);
  rdma_destroy_ep(listen_id);

  /* An endpoint towards an address nobody has fails with the resolution's error. */
  memset(&hints, 0, sizeof(hints));
  CHECK(rdma_getaddrinfo("10.77.0.97", "7471", &hints, &res) == 0);
  errno = 0;
  CHECK(rdma_create_ep(&id, res, NULL, NULL) == -1 && errno == ETIMEDOUT);
  rdma_freeaddrinfo(res);
}

/* What droce does not have fails cleanly: multicast, rsocket, ECE (reported as
 * unsupported). rpoll on ordinary descriptors is poll. */
static void case_refused(void) {
  struct rdma_cm_id* id = NULL;
  CHECK(rdma_create_id(NULL, &id, NULL, RDMA_PS_UDP) == 0);
  struct sockaddr_in mc = sin_of("239.1.1.1", 0);
  errno = 0;
  CHECK(rdma_join_multicast(id, (struct sockaddr*)&mc, NULL) == -1 && errno == ENOSYS);
  struct ibv_ece ece;
  memset(&ece, 0xAB, sizeof(ece));
  CHECK(rdma_get_remote_ece(id, &ece) == 0);
  CHECK(ece.vendor_id == 0 && ece.options == 0);
  CHECK(rdma_destroy_id(id) == 0);

  errno = 0;
  CHECK(rsocket(AF_INET, SOCK_STREAM, 0) == -1 && errno == ENOSYS);
  errno = 0;
  CHECK(rclose(0) == -1 && errno == EBADF);
  int p[2];
  CHECK(pipe(p) == 0);
  CHECK(write(p[1], "x", 1) == 1);
  struct pollfd pfd = {p[0], POLLIN, 0};
  CHECK(rpoll(&pfd, 1, 1000) == 1 && (pfd.revents & POLLIN));
  close(p[0]);
  close(p[1]);
  errno = 0;
  CHECK(rdma_create_id(NULL, NULL, NULL, RDMA_PS_TCP) == -1 && errno == EINVAL);
  errno = 0;
  CHECK(rdma_create_id(NULL, &id, NULL, (enum rdma_port_space)0x42) == -1 && errno == EINVAL);
}

/* A connection to the port's own address (the default port loops frames
 * back): REQ private data of 57 bytes is refused, 56 arrive intact at
 * offset 0 of CONNECT_REQUEST, whose length is 56 (cma.c reports the
 * maximum); accept, ESTABLISHED on both ids, disconnect, DISCONNECTED on both. */
static void case_connect_self(void) {
  struct rdma_event_channel* ch = rdma_create_event_channel();
  CHECK(ch != NULL);
  struct rdma_cm_id* listener = NULL;
  CHECK(rdma_create_id(ch, &listener, (void*)0x11, RDMA_PS_TCP) == 0);
  struct sockaddr_in own = sin_of(kOwnIp, 7300);
  CHECK(rdma_bind_addr(listener, (struct sockaddr*)&own) == 0);
  CHECK(rdma_listen(listener, 4) == 0);

  struct rdma_cm_id* id = resolved_id(ch, RDMA_PS_TCP);
  struct ibv_qp_init_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.qp_type = IBV_QPT_RC;
  attr.cap.max_send_wr = attr.cap.max_recv_wr = 4;
  attr.cap.max_send_sge = attr.cap.max_recv_sge = 1;
  CHECK(rdma_create_qp(id, NULL, &attr) == 0);
  /* resolved_id resolved port 7174; this connection goes to 7300. */
  ((struct sockaddr_in*)&id->route.addr.dst_addr)->sin_port = htons(7300);
  uint8_t pd[57];
  for (int i = 0; i < 57; ++i) pd[i] = (uint8_t)(0xA0 + i);
  struct rdma_conn_param cp;
  memset(&cp, 0, sizeof(cp));
  cp.private_data = pd;
  cp.private_data_len = 57;
  cp.responder_resources = 1;
  cp.initiator_depth = 1;
  cp.retry_count = 7;
  cp.rnr_retry_count = 7;
  errno = 0;
  CHECK(rdma_connect(id, &cp) == -1 && errno == EINVAL);
  cp.private_data_len = 56;
  CHECK(rdma_connect(id, &cp) == 0);

  struct rdma_cm_event* ev = next_event(ch, RDMA_CM_EVENT_CONNECT_REQUEST);
  CHECK(ev->listen_id == listener);
  struct rdma_cm_id* child = ev->id;
  CHECK(child != listener && child != id);
  CHECK(child->context == (void*)0x11 && child->channel == ch && child->verbs != NULL);
  CHECK(ev->param.conn.private_data_len == 56);
  CHECK(memcmp(ev->param.conn.private_data, pd, 56) == 0);
  CHECK(ev->param.conn.qp_num == id->qp->qp_num);
  CHECK(ev->param.conn.responder_resources == 1 && ev->param.conn.initiator_depth == 1);
  CHECK(rdma_get_dst_port(child) == rdma_get_src_port(id));
  CHECK(rdma_get_src_port(child) == htons(7300));
  CHECK(rdma_ack_cm_event(ev) == 0);

  /* The child's QP attributes follow the REQ: INIT with remote access. */
  struct ibv_qp_attr qa;
  int mask = 0;
  memset(&qa, 0, sizeof(qa));
  qa.qp_state = IBV_QPS_INIT;
  CHECK(rdma_init_qp_attr(child, &qa, &mask) == 0);
  CHECK(qa.qp_access_flags == (IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC));
  qa.qp_state = IBV_QPS_RTR;
  CHECK(rdma_init_qp_attr(child, &qa, &mask) == 0);
  CHECK(qa.dest_qp_num == id->qp->qp_num && qa.path_mtu == IBV_MTU_1024 && qa.min_rnr_timer == 0);
  CHECK(qa.ah_attr.is_global == 1 && qa.max_dest_rd_atomic == 1);

  CHECK(rdma_create_qp(child, NULL, &attr) == 0);
  const uint8_t reply[3] = {7, 8, 9};
  memset(&cp, 0, sizeof(cp));
  cp.private_data = reply;
  cp.private_data_len = sizeof(reply);
  cp.responder_resources = 1;
  cp.initiator_depth = 1;
  cp.rnr_retry_count = 7;
  CHECK(rdma_accept(child, &cp) == 0);
  CHECK(qp_state(child->qp) == IBV_QPS_RTS); /* RTR and RTS before the REP */
  int established = 0;
  for (int i = 0; i < 2; ++i) {
    ev = next_event(ch, RDMA_CM_EVENT_ESTABLISHED);
    if (ev->id == id) {
      CHECK(ev->param.conn.private_data_len == 196);
      CHECK(memcmp(ev->param.conn.private_data, reply, sizeof(reply)) == 0);
      CHECK(ev->param.conn.qp_num == child->qp->qp_num);
      CHECK(qp_state(id->qp) == IBV_QPS_RTS);
    } else {
      CHECK(ev->id == child);
    }
    established |= ev->id == id ? 1 : 2;
    CHECK(rdma_ack_cm_event(ev) == 0);
  }
  CHECK(established == 3);

  CHECK(rdma_disconnect(id) == 0);
  int disconnected = 0;
  for (int i = 0; i < 2; ++i) {
    ev = next_event(ch, RDMA_CM_EVENT_DISCONNECTED);
    disconnected |= ev->id == id ? 1 : ev->id == child ? 2 : 4;
    CHECK(rdma_ack_cm_event(ev) == 0);
  }
  CHECK(disconnected == 3);
  CHECK(qp_state(id->qp) == IBV_QPS_ERR && qp_state(child->qp) == IBV_QPS_ERR);
  CHECK(rdma_disconnect(child) == 0); /* the peer's DREQ came first: nothing more */
  rdma_destroy_qp(child);
  rdma_destroy_qp(id);
  CHECK(rdma_destroy_id(child) == 0);
  CHECK(rdma_destroy_id(id) == 0);
  CHECK(rdma_destroy_id(listener) == 0);
  rdma_destroy_event_channel(ch);
}

/* A port nobody listens on: REJECTED with status 8 (invalid service ID). */
static void case_connect_nobody(void) {
  struct rdma_event_channel* ch = rdma_create_event_channel();
  CHECK(ch != NULL);
  struct rdma_cm_id* id = resolved_id(ch, RDMA_PS_TCP);
  struct ibv_qp_init_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.qp_type = IBV_QPT_RC;
  attr.cap.max_send_wr = attr.cap.max_recv_wr = 1;
  attr.cap.max_send_sge = attr.cap.max_recv_sge = 1;
  CHECK(rdma_create_qp(id, NULL, &attr) == 0);
  CHECK(rdma_connect(id, NULL) == 0);
  struct rdma_cm_event* ev = next_event(ch, RDMA_CM_EVENT_REJECTED);
  CHECK(ev->status == 8);
  CHECK(ev->param.conn.private_data_len == 148);
  CHECK(rdma_ack_cm_event(ev) == 0);
  CHECK(qp_state(id->qp) == IBV_QPS_ERR);
  rdma_destroy_qp(id);
  CHECK(rdma_destroy_id(id) == 0);
  rdma_destroy_event_channel(ch);
}

static const struct test_case kCases[] = {
    {"connect_self", case_connect_self},
    {"connect_nobody", case_connect_nobody},
    {"devices", case_devices},
    {"event_str", case_event_str},
    {"channel", case_channel},
    {"resolve", case_resolve},
    {"addr_error", case_addr_error},
    {"destroy_waits", case_destroy_waits},
    {"destroy_discards", case_destroy_discards},
    {"migrate", case_migrate},
    {"sync", case_sync},
    {"bind", case_bind},
    {"options", case_options},
    {"qp", case_qp},
    {"getaddrinfo", case_getaddrinfo},
    {"create_ep", case_create_ep},
    {"refused", case_refused},
    {NULL, NULL},
};

int main(int argc, char** argv) { return run_case(kCases, argc, argv); }
