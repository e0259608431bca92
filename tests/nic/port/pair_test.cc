// In-process port pair (net_ring via rte_eth_from_rings): frames arrive intact
// and in order with exact counters, junk is counted by reason and not
// delivered, ARP resolves across the pair and fails cleanly with no peer.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "nic/eal.h"
#include "nic/port.h"
#include "nic/wire/builder.h"
#include "nic/wire/udp.h"
#include "tests/nic/port/eal_env.h"
#include "tests/nic/port/test_frames.h"

namespace droce::nic {
namespace {

using test::frame_mbuf;
using test::raw_mbuf;
using test::receive_frames;
using test::send_spec;
using test::test_config;
using wire::ParseError;

PortPair make_pair_or_die(PortConfig a = test_config("10.77.0.1"),
                          PortConfig b = test_config("10.77.0.2")) {
  auto pair = make_port_pair(a, b);
  EXPECT_TRUE(pair.is_ok()) << pair.status().message();
  return std::move(pair.value());
}

std::vector<uint8_t> payload_for(uint32_t i, uint32_t len) {
  std::vector<uint8_t> p(len);
  for (uint32_t k = 0; k < len; ++k) p[k] = uint8_t(i * 7 + k);
  return p;
}

TEST(PortPairTest, PortsHaveAddressesAndLinkUp) {
  auto pair = make_pair_or_die();
  Port& a = pair.a();
  Port& b = pair.b();
  EXPECT_TRUE(a.link_up());
  EXPECT_TRUE(b.link_up());
  EXPECT_NE(a.mac(), b.mac());
  EXPECT_EQ(a.mac()[0] & 1, 0) << "unicast MAC";
  EXPECT_EQ(a.ipv4(), 0x0A4D0001u);
  EXPECT_EQ(a.mtu(), 1500);
  EXPECT_EQ(a.path_mtu(), 1024u);
  const uint8_t gid[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 10, 77, 0, 2};
  EXPECT_EQ(std::memcmp(b.gid().data(), gid, 16), 0);
  EXPECT_NE(a.port_id(), b.port_id());
}

TEST(PortPairTest, FramesArriveIntactAndInOrderWithExactCounters) {
  auto pair = make_pair_or_die();
  Port& a = pair.a();
  Port& b = pair.b();
  constexpr uint32_t kFrames = 1000;
  std::vector<std::vector<uint8_t>> sent;
  uint64_t sent_bytes = 0;
  for (uint32_t i = 0; i < kFrames;) {
    rte_mbuf* burst[32];
    uint16_t n = 0;
    for (; n < 32 && i < kFrames; ++n, ++i) {
      const uint32_t len = (i * 37) % 1025;  // 0 .. path MTU, all pad counts
      auto spec = send_spec(a, b, i, len);
      burst[n] = frame_mbuf(a, spec, payload_for(i, len).data());
      ASSERT_NE(burst[n], nullptr);
      sent.push_back(test::mbuf_bytes(burst[n]));
      sent_bytes += burst[n]->pkt_len;
    }
    ASSERT_EQ(a.transmit(burst, n), n);
    // Receive as we go so the ring never fills.
    std::vector<std::vector<uint8_t>> got;
    ASSERT_EQ(receive_frames(b, n, &got), n);
    for (uint16_t k = 0; k < n; ++k) {
      ASSERT_EQ(got[k], sent[sent.size() - n + k]) << "frame " << (sent.size() - n + k);
    }
  }
  const PortCounters& ca = a.counters();
  const PortCounters& cb = b.counters();
  EXPECT_EQ(ca.tx_packets, kFrames);
  EXPECT_EQ(ca.tx_bytes, sent_bytes);
  EXPECT_EQ(ca.tx_dropped(), 0u);
  EXPECT_EQ(cb.rx_packets, kFrames);
  EXPECT_EQ(cb.rx_bytes, sent_bytes);
  EXPECT_EQ(cb.rx_roce, kFrames);
  EXPECT_EQ(cb.rx_dropped(), 0u);
  EXPECT_EQ(ca.rx_packets, 0u);
  EXPECT_EQ(cb.tx_packets, 0u);
}

TEST(PortPairTest, DeliveredViewsDescribeThePacket) {
  auto pair = make_pair_or_die();
  Port& a = pair.a();
  Port& b = pair.b();
  auto spec = send_spec(a, b, 0x123456, 13);
  auto payload = payload_for(5, 13);
  rte_mbuf* m = frame_mbuf(a, spec, payload.data());
  ASSERT_EQ(a.transmit(&m, 1), 1);
  rte_mbuf* got[4];
  wire::PacketView views[4];
  uint16_t n = 0;
  for (int i = 0; i < 100 && n == 0; ++i) n = b.receive(got, views, 4, monotonic_now());
  ASSERT_EQ(n, 1);
  const wire::PacketView& v = views[0];
  EXPECT_EQ(v.frame, rte_pktmbuf_mtod(got[0], uint8_t*));
  EXPECT_EQ(v.bth().psn(), 0x123456u);
  EXPECT_EQ(v.bth().dest_qp(), 0x22u);
  EXPECT_EQ(v.payload_len, 13u);
  EXPECT_EQ(v.pad, 3);
  EXPECT_EQ(std::memcmp(v.payload(), payload.data(), 13), 0);
  EXPECT_EQ(v.ipv4().src.get(), a.ipv4());
  rte_pktmbuf_free(got[0]);
}

// Junk a tap or a switch delivers, and malformed RoCEv2: each is counted
// under its own reason, none is delivered, and the good frame behind them is
// (so are the good frames among the chained ones).
TEST(PortPairTest, JunkIsCountedByReasonAndNotDelivered) {
  auto pair = make_pair_or_die();
  Port& a = pair.a();
  Port& b = pair.b();
  std::vector<rte_mbuf*> frames;
  const std::vector<uint8_t> g = test::frame_bytes(send_spec(a, b, 7, 64), nullptr);
  ASSERT_FALSE(g.empty());
  auto add = [&](std::vector<uint8_t> bytes) { frames.push_back(raw_mbuf(a, bytes)); };

  // LLDP to the nearest-bridge group address.
  std::vector<uint8_t> lldp(60, 0);
  const uint8_t lldp_dst[6] = {0x01, 0x80, 0xC2, 0x00, 0x00, 0x0E};
  std::memcpy(lldp.data(), lldp_dst, 6);
  std::memcpy(lldp.data() + 6, a.mac().data(), 6);
  lldp[12] = 0x88;
  lldp[13] = 0xCC;
  add(lldp);
  // IPv6 router solicitation (ICMPv6 type 133) to all-routers.
  std::vector<uint8_t> rs(14 + 40 + 8, 0);
  const uint8_t rs_dst[6] = {0x33, 0x33, 0, 0, 0, 2};
  std::memcpy(rs.data(), rs_dst, 6);
  std::memcpy(rs.data() + 6, a.mac().data(), 6);
  rs[12] = 0x86;
  rs[13] = 0xDD;
  rs[14] = 0x60;
  rs[14 + 5] = 8;    // payload length
  rs[14 + 6] = 58;   // next header ICMPv6
  rs[14 + 7] = 255;  // hop limit
  rs[14 + 40] = 133;
  add(rs);
  // Truncations: inside Ethernet, inside the IPv4 header, and IP length beyond the frame.
  add(std::vector<uint8_t>(g.begin(), g.begin() + 10));
  add(std::vector<uint8_t>(g.begin(), g.begin() + 30));
  add(std::vector<uint8_t>(g.begin(), g.end() - 8));
  // Bad ICRC: one payload bit flipped.
  {
    auto bad = g;
    bad[bad.size() - 10] ^= 0x01;
    add(bad);
  }
  // Another host's MAC (a bridge flooding unknown unicast).
  {
    auto other = g;
    other[5] ^= 0x55;
    add(other);
  }
  // Another IP address (frame rebuilt so its ICRC is right).
  {
    auto spec = send_spec(a, b, 8, 64);
    spec.dst_ip = 0x0A4D0063;
    frames.push_back(frame_mbuf(a, spec, nullptr));
  }
  // UDP to another port.
  {
    auto other = g;
    other[14 + 20 + 3] = 0xB8;  // 4792
    add(other);
  }
  // TTL changed and the IPv4 checksum not (both outside the ICRC, which
  // stays right): the header checksum drops it.
  {
    auto ttl = g;
    ttl[14 + 8] ^= 0x01;
    add(ttl);
  }
  // ARP request for another address, and a broken ARP frame.
  {
    std::vector<uint8_t> arp(kArpFrameLen);
    write_arp_frame(arp.data(), kArpOpRequest, kBroadcastMac, a.mac(), a.ipv4(), {}, 0x0A4D0099);
    add(arp);
    add(std::vector<uint8_t>(arp.begin(), arp.begin() + 30));
  }
  // Chained frames. The layout a zero-copy sender uses (headers, payload,
  // pad + ICRC in three mbufs) is delivered as it is, its ICRC verified over
  // the segments; with one payload bit flipped it is a bad ICRC.
  wire::PacketView gv;
  ASSERT_EQ(wire::parse_frame(const_cast<uint8_t*>(g.data()), g.size(), &gv,
                              wire::ParseOptions{false}),
            ParseError::kOk);
  auto chain3 = [&](std::vector<uint8_t> f) {
    rte_mbuf* head = raw_mbuf(a, std::vector<uint8_t>(f.begin(), f.begin() + gv.payload_off));
    rte_mbuf* mid = raw_mbuf(a, std::vector<uint8_t>(f.begin() + gv.payload_off,
                                                     f.begin() + gv.payload_off + gv.payload_len));
    rte_mbuf* tail =
        raw_mbuf(a, std::vector<uint8_t>(f.begin() + gv.payload_off + gv.payload_len, f.end()));
    EXPECT_EQ(rte_pktmbuf_chain(head, mid), 0);
    EXPECT_EQ(rte_pktmbuf_chain(head, tail), 0);
    frames.push_back(head);
  };
  chain3(g);
  {
    auto bad = g;
    bad[gv.payload_off + 5] ^= 0x10;
    chain3(bad);
  }
  // Split inside its headers: copied into one buffer, then delivered.
  {
    rte_mbuf* head = raw_mbuf(a, std::vector<uint8_t>(g.begin(), g.begin() + 40));
    rte_mbuf* tail = raw_mbuf(a, std::vector<uint8_t>(g.begin() + 40, g.end()));
    ASSERT_EQ(rte_pktmbuf_chain(head, tail), 0);
    frames.push_back(head);
  }
  // Split inside its headers and longer than one buffer of the pool: dropped.
  {
    rte_mbuf* head = raw_mbuf(a, std::vector<uint8_t>(g.begin(), g.begin() + 40));
    rte_mbuf* tail = raw_mbuf(a, std::vector<uint8_t>(g.begin() + 40, g.end()));
    ASSERT_EQ(rte_pktmbuf_chain(head, tail), 0);
    for (int i = 0; i < 2; ++i) {
      ASSERT_EQ(rte_pktmbuf_chain(head, raw_mbuf(a, std::vector<uint8_t>(1200, 0))), 0);
    }
    frames.push_back(head);
  }
  // And finally a good one.
  add(g);
  for (rte_mbuf* m : frames) ASSERT_NE(m, nullptr);

  const auto n = uint16_t(frames.size());
  ASSERT_EQ(a.transmit(frames.data(), n), n);
  std::vector<std::vector<uint8_t>> got;
  EXPECT_EQ(receive_frames(b, 3, &got), 3u);
  EXPECT_EQ(receive_frames(b, 1, &got, 20), 0u) << "nothing else is delivered";
  ASSERT_EQ(got.size(), 3u);
  for (const auto& f : got) EXPECT_EQ(f, g);

  const PortCounters& c = b.counters();
  EXPECT_EQ(c.rx_packets, n);
  EXPECT_EQ(c.rx_roce, 3u);
  EXPECT_EQ(c.rx_chained, 2u);  // the good and the bad three-segment frames
  EXPECT_EQ(c.rx_linearised, 1u);  // split inside its headers; the long one is dropped
  EXPECT_EQ(c.parse_drop(ParseError::kNotIp), 1u);  // LLDP
  EXPECT_EQ(c.parse_drop(ParseError::kNotUdp), 1u);  // ICMPv6 RS
  EXPECT_EQ(c.parse_drop(ParseError::kTooShortEth), 1u);
  EXPECT_EQ(c.parse_drop(ParseError::kTooShortIp), 1u);
  EXPECT_EQ(c.parse_drop(ParseError::kBadIpLength), 1u);
  EXPECT_EQ(c.parse_drop(ParseError::kBadIcrc), 2u);
  EXPECT_EQ(c.parse_drop(ParseError::kBadIpChecksum), 1u);
  EXPECT_EQ(c.parse_drop(ParseError::kNotRocePort), 1u);
  EXPECT_EQ(c.drop(PortDrop::kNotOurMac), 1u);
  EXPECT_EQ(c.drop(PortDrop::kNotOurIp), 1u);
  EXPECT_EQ(c.drop(PortDrop::kArpNotForUs), 1u);
  EXPECT_EQ(c.drop(PortDrop::kArpMalformed), 1u);
  EXPECT_EQ(c.drop(PortDrop::kMultiSegment), 1u);
  EXPECT_EQ(c.rx_dropped(), uint64_t(n) - 3);
  EXPECT_EQ(c.arp_rx, 0u);
  EXPECT_EQ(c.arp_tx, 0u) << "no reply to a request for another address";
  EXPECT_EQ(c.rx_packets, c.rx_roce + c.arp_rx + c.rx_dropped());
}

TEST(PortPairTest, ArpResolvesAcrossThePair) {
  auto pair = make_pair_or_die();
  Port& a = pair.a();
  Port& b = pair.b();
  wire::MacAddr mac{};
  Nanos now = 1000;
  ArpResult r = a.resolve(b.ipv4(), &mac, now);
  EXPECT_EQ(r, ArpResult::kPending);
  for (int i = 0; i < 100 && r != ArpResult::kResolved; ++i) {
    now += kNanosPerMs;
    a.poll(now);
    b.poll(now);
    receive_frames(b, 1, nullptr, 1);
    receive_frames(a, 1, nullptr, 1);
    r = a.resolve(b.ipv4(), &mac, now);
  }
  ASSERT_EQ(r, ArpResult::kResolved);
  EXPECT_EQ(mac, b.mac());
  // b learned a from the request aimed at it, without asking.
  ASSERT_NE(b.neighbors().find(a.ipv4()), nullptr);
  EXPECT_EQ(b.neighbors().find(a.ipv4())->mac, a.mac());
  EXPECT_EQ(b.resolve(a.ipv4(), &mac, now), ArpResult::kResolved);
  EXPECT_EQ(mac, a.mac());
  EXPECT_EQ(a.counters().arp_tx, 1u);
  EXPECT_EQ(b.counters().arp_rx, 1u);
  EXPECT_EQ(b.counters().arp_tx, 1u);
  EXPECT_EQ(a.counters().arp_rx, 1u);
  EXPECT_EQ(a.counters().rx_roce + b.counters().rx_roce, 0u);
  // Own address resolves locally.
  EXPECT_EQ(a.resolve(a.ipv4(), &mac, now), ArpResult::kResolved);
  EXPECT_EQ(mac, a.mac());
  EXPECT_EQ(a.resolve(0xFFFFFFFF, &mac, now), ArpResult::kFailed);
}

TEST(PortPairTest, ArpWithoutPeerFailsAfterBoundedRetries) {
  PortConfig ca = test_config("10.77.0.1");
  ca.arp.max_requests = 4;
  ca.arp.retry_interval = 10 * kNanosPerMs;
  auto pair = make_pair_or_die(ca);
  Port& a = pair.a();  // b is never polled: nobody answers
  wire::MacAddr mac{};
  Nanos now = 0;
  ArpResult r = a.resolve(0x0A4D0042, &mac, now);
  int steps = 0;
  for (; steps < 1000 && r == ArpResult::kPending; ++steps) {
    now += kNanosPerMs;
    a.poll(now);
    r = a.resolve(0x0A4D0042, &mac, now);
  }
  EXPECT_EQ(r, ArpResult::kFailed);
  EXPECT_EQ(now, 40 * kNanosPerMs) << "fails after max_requests * retry_interval";
  EXPECT_EQ(a.counters().arp_tx, 4u);
  EXPECT_EQ(a.counters().arp_failed, 1u);
  // The failure is retrievable and stays until the hold ends.
  ASSERT_NE(a.neighbors().find(0x0A4D0042), nullptr);
  EXPECT_EQ(a.neighbors().find(0x0A4D0042)->state, Neighbor::State::kFailed);
  a.poll(now + kNanosPerMs);
  EXPECT_EQ(a.resolve(0x0A4D0042, &mac, now + kNanosPerMs), ArpResult::kFailed);
  EXPECT_EQ(a.counters().arp_tx, 4u) << "no requests while failed";
}

TEST(PortPairTest, ArpReplyToUsIsLearnedAndOthersAreNot) {
  auto pair = make_pair_or_die();
  Port& a = pair.a();
  Port& b = pair.b();
  const wire::MacAddr third = {0x02, 0x33, 0x33, 0x33, 0x33, 0x33};
  std::vector<uint8_t> reply(kArpFrameLen), gossip(kArpFrameLen);
  write_arp_frame(reply.data(), kArpOpReply, b.mac(), third, 0x0A4D0033, b.mac(), b.ipv4());
  write_arp_frame(gossip.data(), kArpOpReply, kBroadcastMac, third, 0x0A4D0034,
                  wire::MacAddr{}, 0x0A4D0035);
  rte_mbuf* m[2] = {raw_mbuf(a, reply), raw_mbuf(a, gossip)};
  ASSERT_EQ(a.transmit(m, 2), 2);
  receive_frames(b, 1, nullptr, 10);
  ASSERT_NE(b.neighbors().find(0x0A4D0033), nullptr);
  EXPECT_EQ(b.neighbors().find(0x0A4D0033)->mac, third);
  EXPECT_EQ(b.neighbors().find(0x0A4D0034), nullptr);
  EXPECT_EQ(b.counters().arp_rx, 1u);
  EXPECT_EQ(b.counters().drop(PortDrop::kArpNotForUs), 1u);
  wire::MacAddr mac{};
  EXPECT_EQ(b.resolve(0x0A4D0033, &mac, monotonic_now()), ArpResult::kResolved);
  EXPECT_EQ(mac, third);
}

// A request for b's address, short (42 bytes, unpadded) or long (with a
// trailer), gets a 60-byte reply with the RFC 826 fields swapped.
TEST(PortPairTest, ArpRequestsGetWellFormedReplies) {
  auto pair = make_pair_or_die();
  Port& a = pair.a();
  Port& b = pair.b();
  const wire::MacAddr asker = {0x02, 0x44, 0x44, 0x44, 0x44, 0x44};
  const uint32_t asker_ip = 0x0A4D0044;
  for (size_t len : {size_t(42), size_t(60), size_t(90)}) {
    std::vector<uint8_t> req(kArpFrameLen);
    write_arp_frame(req.data(), kArpOpRequest, kBroadcastMac, asker, asker_ip, {}, b.ipv4());
    req.resize(len, 0xEE);
    rte_mbuf* m = raw_mbuf(a, req);
    ASSERT_EQ(a.transmit(&m, 1), 1);
    receive_frames(b, 1, nullptr, 5);
    // Take b's answer off the ring raw, without a's classification.
    rte_mbuf* got[4];
    uint16_t n = 0;
    for (int i = 0; i < 100 && n == 0; ++i) n = rte_eth_rx_burst(a.port_id(), 0, got, 4);
    ASSERT_EQ(n, 1) << len;
    const auto bytes = test::mbuf_bytes(got[0]);
    rte_pktmbuf_free(got[0]);
    ASSERT_EQ(bytes.size(), kArpFrameLen) << len;
    const ArpHdr* r = parse_arp_frame(bytes.data(), bytes.size());
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(std::memcmp(bytes.data(), asker.data(), 6), 0) << "unicast to the asker";
    EXPECT_EQ(std::memcmp(bytes.data() + 6, b.mac().data(), 6), 0);
    EXPECT_EQ(r->oper.get(), kArpOpReply);
    EXPECT_EQ(r->sha, b.mac());
    EXPECT_EQ(r->spa.get(), b.ipv4());
    EXPECT_EQ(r->tha, asker);
    EXPECT_EQ(r->tpa.get(), asker_ip);
  }
  EXPECT_EQ(b.counters().arp_rx, 3u);
  EXPECT_EQ(b.counters().arp_tx, 3u);
  ASSERT_NE(b.neighbors().find(asker_ip), nullptr) << "the asker was learned";
  EXPECT_EQ(b.neighbors().find(asker_ip)->mac, asker);
}

TEST(PortPairTest, FullTxRingDropsAndCountsWithoutBlocking) {
  PortConfig ca = test_config("10.77.0.1"), cb = test_config("10.77.0.2");
  ca.rx_desc = cb.rx_desc = 64;  // rings of 64 slots (63 usable)
  auto pair = make_pair_or_die(ca, cb);
  Port& a = pair.a();
  Port& b = pair.b();
  const unsigned before = rte_mempool_avail_count(a.mempool());
  rte_mbuf* burst[100];
  for (int i = 0; i < 100; ++i) {
    burst[i] = frame_mbuf(a, send_spec(a, b, uint32_t(i), 32), nullptr);
    ASSERT_NE(burst[i], nullptr);
  }
  EXPECT_EQ(a.transmit(burst, 100), 63);
  EXPECT_EQ(a.counters().tx_packets, 63u);
  EXPECT_EQ(a.counters().drop(PortDrop::kTxRingFull), 37u);
  EXPECT_EQ(rte_mempool_avail_count(a.mempool()), before - 63) << "unsent frames were freed";
  EXPECT_EQ(receive_frames(b, 63, nullptr), 63u);
  EXPECT_EQ(rte_mempool_avail_count(a.mempool()), before);
}

TEST(PortPairTest, JumboMtuCarriesFourKiBPayload) {
  PortConfig ca = test_config("10.77.0.1"), cb = test_config("10.77.0.2");
  ca.mtu = cb.mtu = 9000;
  ca.mbufs = cb.mbufs = 511;
  auto pair = make_pair_or_die(ca, cb);
  Port& a = pair.a();
  Port& b = pair.b();
  EXPECT_EQ(a.path_mtu(), 4096u);
  auto payload = payload_for(3, 4096);
  rte_mbuf* m = frame_mbuf(a, send_spec(a, b, 1, 4096), payload.data());
  ASSERT_NE(m, nullptr);
  auto sent = test::mbuf_bytes(m);
  ASSERT_EQ(a.transmit(&m, 1), 1);
  std::vector<std::vector<uint8_t>> got;
  ASSERT_EQ(receive_frames(b, 1, &got), 1u);
  EXPECT_EQ(got[0], sent);
}

TEST(PortPairTest, ManyPairsCoexistAndAreReleased) {
  const uint16_t ports_before = rte_eth_dev_count_avail();
  for (int round = 0; round < 3; ++round) {
    std::vector<PortPair> pairs;
    for (int i = 0; i < 4; ++i) {
      PortConfig ca = test_config("10.77.0.1"), cb = test_config("10.77.0.2");
      ca.mbufs = cb.mbufs = 511;
      pairs.push_back(make_pair_or_die(ca, cb));
    }
    for (auto& p : pairs) {
      rte_mbuf* m = frame_mbuf(p.a(), send_spec(p.a(), p.b(), 1, 8), nullptr);
      ASSERT_EQ(p.a().transmit(&m, 1), 1);
    }
    for (auto& p : pairs) {
      EXPECT_EQ(receive_frames(p.b(), 1, nullptr), 1u);
      EXPECT_EQ(p.a().counters().rx_packets, 0u) << "no cross-talk";
    }
    // Frames left in flight are freed by the pair's destructor.
    for (auto& p : pairs) {
      rte_mbuf* m = frame_mbuf(p.b(), send_spec(p.b(), p.a(), 2, 8), nullptr);
      ASSERT_EQ(p.b().transmit(&m, 1), 1);
    }
  }
  EXPECT_EQ(rte_eth_dev_count_avail(), ports_before) << "every pair's ports were released";
}

TEST(PortPairTest, LoopbackVdevReceivesWhatItSends) {
  auto port = Port::open_by_name(kDefaultLoopbackVdev, test_config("10.77.0.9"));
  if (!port.is_ok() && eal_args() != default_eal_args() &&
      port.status().code() == Errc::kNotFound) {
    GTEST_SKIP() << "DROCE_EAL_ARGS has no " << kDefaultLoopbackVdev;
  }
  ASSERT_TRUE(port.is_ok()) << port.status().message();
  Port& p = *port.value();
  rte_mbuf* m = frame_mbuf(p, send_spec(p, p, 9, 100), nullptr);
  auto sent = test::mbuf_bytes(m);
  ASSERT_EQ(p.transmit(&m, 1), 1);
  std::vector<std::vector<uint8_t>> got;
  ASSERT_EQ(receive_frames(p, 1, &got), 1u);
  EXPECT_EQ(got[0], sent);
}

TEST(PortPairTest, OpenRejectsBadArguments) {
  auto r = Port::open_by_name("net_no_such_device", test_config("10.77.0.1"));
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Errc::kNotFound);
  EXPECT_NE(r.status().message().find("net_no_such_device"), std::string::npos);
  auto bad = Port::open(uint16_t(RTE_MAX_ETHPORTS - 1), test_config("10.77.0.1"));
  EXPECT_FALSE(bad.is_ok());
  PortConfig zero;
  auto pair = make_port_pair(zero, test_config("10.77.0.2"));
  EXPECT_FALSE(pair.is_ok()) << "IPv4 address 0.0.0.0 is refused";
}

}  // namespace
}  // namespace droce::nic
