/* droce's private interface to QP1 (the GSI QP) of a device, for the drop-in
 * librdmacm's CM agent: exported by the drop-in libibverbs.so.1 under the
 * version DROCE_PRIVATE_1, which no rdma-core program imports. */
#ifndef DROCE_VERBS_DROCE_GSI_H_
#define DROCE_VERBS_DROCE_GSI_H_

#include <infiniband/verbs.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Called on the device's engine thread for each 256-byte CM MAD that reaches
 * QP1, src_ip in host order; it must not call back into the device. */
typedef void (*droce_gsi_handler)(void* arg, uint32_t src_ip, const uint8_t* mad, size_t len);

/* Sets (or with fn NULL, clears) the handler. 0, or EINVAL. */
int droce_gsi_set_handler(struct ibv_context* ctx, droce_gsi_handler fn, void* arg);
/* Queues one 256-byte MAD from QP1 to QPN 1 at dst_ip (host order); the
 * engine sends it once ARP knows dst_ip. 0, EINVAL, or ENOBUFS (queue full,
 * device gone). */
int droce_gsi_send(struct ibv_context* ctx, uint32_t dst_ip, const uint8_t* mad, size_t len, uint8_t tos);

#ifdef __cplusplus
}
#endif

#endif /* DROCE_VERBS_DROCE_GSI_H_ */
