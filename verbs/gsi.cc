// The private QP1 interface of verbs/droce_gsi.h over nic::Device's GSI path (nic/gsi.h).
#include "verbs/droce_gsi.h"

#include <cerrno>

#include "verbs/internal.h"

using namespace droce::verbs;  // NOLINT: the C entry points below

extern "C" {

__attribute__((visibility("default"))) int droce_gsi_set_handler(ibv_context* ctx, droce_gsi_handler fn,
                                                                  void* arg) {
  if (ctx == nullptr) return EINVAL;
  return guard(
      [&] {
        dev_of(ctx)->set_gsi_handler(fn, arg);
        return 0;
      },
      ENOMEM);
}

__attribute__((visibility("default"))) int droce_gsi_send(ibv_context* ctx, uint32_t dst_ip, const uint8_t* mad,
                                                           size_t len, uint8_t tos) {
  if (ctx == nullptr || mad == nullptr || len != droce::nic::kGsiMadLen) return EINVAL;
  return guard([&] { return dev_of(ctx)->gsi_send(dst_ip, mad, len, tos) ? 0 : ENOBUFS; }, ENOMEM);
}

}  // extern "C"
