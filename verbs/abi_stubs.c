/* Symbols libibverbs.so.1 exports for its providers and sister libraries
 * (IBVERBS_PRIVATE_34, and the historic kernel-ABI helpers of IBVERBS_1.0/1.1).
 * Providers such as libmlx5 and libefa, and DPDK's mlx PMDs, are loaded with
 * BIND_NOW into processes that use the drop-in, so every symbol they import
 * must resolve. droce has no kernel device: the command wrappers fail with
 * EOPNOTSUPP, driver registration is accepted and ignored.
 * Written in C so the prototypes need not match rdma-core's private driver.h:
 * the callers' arguments are ignored and every return type is int, a pointer
 * or void as in rdma-core. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DROCE_EXPORT __attribute__((visibility("default")))

/* ---- IBVERBS_PRIVATE_34: the kernel command layer ---- */
#define DROCE_CMD_STUB(name) \
  DROCE_EXPORT int name(void) { return EOPNOTSUPP; }

DROCE_CMD_STUB(ibv_cmd_advise_mr)
DROCE_CMD_STUB(ibv_cmd_alloc_dm)
DROCE_CMD_STUB(ibv_cmd_alloc_mw)
DROCE_CMD_STUB(ibv_cmd_alloc_pd)
DROCE_CMD_STUB(ibv_cmd_attach_mcast)
DROCE_CMD_STUB(ibv_cmd_close_xrcd)
DROCE_CMD_STUB(ibv_cmd_create_ah)
DROCE_CMD_STUB(ibv_cmd_create_counters)
DROCE_CMD_STUB(ibv_cmd_create_cq)
DROCE_CMD_STUB(ibv_cmd_create_cq_ex)
DROCE_CMD_STUB(ibv_cmd_create_flow)
DROCE_CMD_STUB(ibv_cmd_create_flow_action_esp)
DROCE_CMD_STUB(ibv_cmd_create_qp)
DROCE_CMD_STUB(ibv_cmd_create_qp_ex)
DROCE_CMD_STUB(ibv_cmd_create_qp_ex2)
DROCE_CMD_STUB(ibv_cmd_create_rwq_ind_table)
DROCE_CMD_STUB(ibv_cmd_create_srq)
DROCE_CMD_STUB(ibv_cmd_create_srq_ex)
DROCE_CMD_STUB(ibv_cmd_create_wq)
DROCE_CMD_STUB(ibv_cmd_dealloc_mw)
DROCE_CMD_STUB(ibv_cmd_dealloc_pd)
DROCE_CMD_STUB(ibv_cmd_dereg_mr)
DROCE_CMD_STUB(ibv_cmd_destroy_ah)
DROCE_CMD_STUB(ibv_cmd_destroy_counters)
DROCE_CMD_STUB(ibv_cmd_destroy_cq)
DROCE_CMD_STUB(ibv_cmd_destroy_flow)
DROCE_CMD_STUB(ibv_cmd_destroy_flow_action)
DROCE_CMD_STUB(ibv_cmd_destroy_qp)
DROCE_CMD_STUB(ibv_cmd_destroy_rwq_ind_table)
DROCE_CMD_STUB(ibv_cmd_destroy_srq)
DROCE_CMD_STUB(ibv_cmd_destroy_wq)
DROCE_CMD_STUB(ibv_cmd_detach_mcast)
DROCE_CMD_STUB(ibv_cmd_free_dm)
DROCE_CMD_STUB(ibv_cmd_get_context)
DROCE_CMD_STUB(ibv_cmd_modify_cq)
DROCE_CMD_STUB(ibv_cmd_modify_flow_action_esp)
DROCE_CMD_STUB(ibv_cmd_modify_qp)
DROCE_CMD_STUB(ibv_cmd_modify_qp_ex)
DROCE_CMD_STUB(ibv_cmd_modify_srq)
DROCE_CMD_STUB(ibv_cmd_modify_wq)
DROCE_CMD_STUB(ibv_cmd_open_qp)
DROCE_CMD_STUB(ibv_cmd_open_xrcd)
DROCE_CMD_STUB(ibv_cmd_poll_cq)
DROCE_CMD_STUB(ibv_cmd_post_recv)
DROCE_CMD_STUB(ibv_cmd_post_send)
DROCE_CMD_STUB(ibv_cmd_post_srq_recv)
DROCE_CMD_STUB(ibv_cmd_query_context)
DROCE_CMD_STUB(ibv_cmd_query_device_any)
DROCE_CMD_STUB(ibv_cmd_query_mr)
DROCE_CMD_STUB(ibv_cmd_query_port)
DROCE_CMD_STUB(ibv_cmd_query_qp)
DROCE_CMD_STUB(ibv_cmd_query_srq)
DROCE_CMD_STUB(ibv_cmd_read_counters)
DROCE_CMD_STUB(ibv_cmd_reg_dm_mr)
DROCE_CMD_STUB(ibv_cmd_reg_dmabuf_mr)
DROCE_CMD_STUB(ibv_cmd_reg_mr)
DROCE_CMD_STUB(ibv_cmd_req_notify_cq)
DROCE_CMD_STUB(ibv_cmd_rereg_mr)
DROCE_CMD_STUB(ibv_cmd_resize_cq)
DROCE_CMD_STUB(execute_ioctl)

/* A provider library registers itself from a constructor when it loads. */
DROCE_EXPORT void verbs_register_driver_34(void) {}
DROCE_EXPORT void ibv_register_driver(void) {}

DROCE_EXPORT bool verbs_allow_disassociate_destroy;

DROCE_EXPORT unsigned int __ioctl_final_num_attrs(void) { return 0; }
DROCE_EXPORT void __verbs_log(void) {}
DROCE_EXPORT void* _verbs_init_and_alloc_context(void) {
  errno = EOPNOTSUPP;
  return NULL;
}
DROCE_EXPORT void* verbs_open_device(void) {
  errno = EOPNOTSUPP;
  return NULL;
}
DROCE_EXPORT void verbs_set_ops(void) {}
DROCE_EXPORT void verbs_uninit_context(void) {}
DROCE_EXPORT void verbs_init_cq(void) {}
DROCE_EXPORT int ibv_read_ibdev_sysfs_file(void) {
  errno = ENOENT;
  return -1;
}

/* ---- IBVERBS_1.0 / 1.1 historic helpers between kernel and user structs ---- */
DROCE_EXPORT void ibv_copy_path_rec_from_kern(void) {}
DROCE_EXPORT void ibv_copy_path_rec_to_kern(void) {}
DROCE_EXPORT void ibv_copy_qp_attr_from_kern(void) {}
DROCE_EXPORT void ibv_copy_ah_attr_from_kern(void) {}

/* ---- IBVERBS_1.0 sysfs helpers (real files; droce devices have none) ---- */
DROCE_EXPORT const char* ibv_get_sysfs_path(void) {
  const char* env = getenv("SYSFS_PATH");
  return env != NULL && *env != '\0' ? env : "/sys";
}

DROCE_EXPORT int ibv_read_sysfs_file(const char* dir, const char* file, char* buf, size_t size) {
  char path[512];
  if (size == 0 || snprintf(path, sizeof(path), "%s/%s", dir, file) >= (int)sizeof(path)) {
    errno = EINVAL;
    return -1;
  }
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  const ssize_t n = read(fd, buf, size);
  close(fd);
  if (n <= 0) return -1;
  size_t len = (size_t)n;
  if (len == size) --len;
  buf[len] = '\0';
  if (len > 0 && buf[len - 1] == '\n') buf[--len] = '\0';
  return (int)len;
}
