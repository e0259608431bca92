// Test helper: RoCEv2 and junk frames in mbufs of a port's pool.
#pragma once

#include <cstdint>
#include <vector>

#include "nic/port.h"
#include "nic/wire/builder.h"

struct rte_mbuf;

namespace droce::nic::test {

// A RoCEv2 RC SEND_ONLY spec from `from` to `to` with the given PSN and payload length.
wire::PacketSpec send_spec(const Port& from, const Port& to, uint32_t psn, uint32_t payload_len);

// Builds spec + payload (zeroes when nullptr) into a byte vector.
std::vector<uint8_t> frame_bytes(const wire::PacketSpec& spec, const void* payload);
// Builds spec + payload into an mbuf of from's pool.
rte_mbuf* frame_mbuf(Port& from, const wire::PacketSpec& spec, const void* payload);
// Copies raw bytes into an mbuf of from's pool.
rte_mbuf* raw_mbuf(Port& from, const std::vector<uint8_t>& bytes);
std::vector<uint8_t> mbuf_bytes(const rte_mbuf* m);

// Receives on p until `want` packets were delivered or `max_polls` polls
// went by; appends the frames' bytes and frees the mbufs. Returns the count.
size_t receive_frames(Port& p, size_t want, std::vector<std::vector<uint8_t>>* out,
                      int max_polls = 1000);

}  // namespace droce::nic::test
