# nic/ port layer (DESIGN.md section 7, where packets go): EAL, configuration, ARP, pcapng capture, Port.
set(NIC_PORT_SRCS
  eal.cc
  config.cc
  arp.cc
  capture.cc
  port.cc
  tun_signals.cc
  tsan_pool.cc
  port_rx_intr.cc
)
