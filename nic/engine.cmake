# Engine (issue 4). droce::transport: the DPDK-free transport model (QP state
# table, ...), usable by verbs/ and by unit tests without DPDK.
droce_library(transport SRCS qp_state.cc DEPS droce::base)
set(NIC_ENGINE_SRCS)
