# nic/ port layer (issue 3 section 3): EAL, configuration, ARP, pcapng capture, Port.
set(NIC_PORT_SRCS
  eal.cc
  config.cc
  arp.cc
  capture.cc
  port.cc
)
