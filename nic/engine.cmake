# Engine (IBTA vol. 1 ch. 9-11 transport). droce::transport: the DPDK-free transport model (QP state
# table, MR table), usable by verbs/ and by unit tests without DPDK. The
# engine proper (device, QPs) works on mbufs and lives in droce::nic.
droce_library(transport SRCS qp_state.cc mr.cc DEPS droce::base)
set(NIC_ENGINE_SRCS
  device.cc
  device_stats.cc
  telemetry.cc
  engine.cc
  gsi.cc
  qp.cc
  qp_requester.cc
  qp_responder.cc
  qp_completer.cc
  srq.cc
  fault.cc
  zero_copy.cc
)
