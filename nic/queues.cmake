# Work queues (SQ / RQ / SRQ rings) and completion queues: where the engine
# and the verbs driver meet (DESIGN.md section 2). No DPDK.
droce_library(queues SRCS cq.cc work_queue.cc DEPS droce::base Threads::Threads)
