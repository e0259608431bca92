// The CLC handshake (see clc.h). Message layouts are smc/wire/clc.h's; the
// order of steps, the waits and the decline codes follow Linux 6.1 af_smc.c
// (reference/smc-v2-linux61.md A9, A14, A16, A18, B2-B6).
#include "smc/clc.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <optional>

#include "smc/log.h"
#include "smc/runtime.h"

namespace droce::smc {
namespace {

using Clock = std::chrono::steady_clock;

// --- TCP I/O with deadlines ---------------------------------------------------

enum class Io { kOk, kTimeout, kClosed, kError };

Io wait_readable(int fd, Clock::time_point deadline) {
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left < 0) return Io::kTimeout;
    pollfd p{fd, POLLIN, 0};
    const int n = ::poll(&p, 1, int(std::min<int64_t>(left, 1000)));
    if (n > 0) return Io::kOk;
    if (n < 0 && errno != EINTR) return Io::kError;
  }
}

// Peeks until `want` bytes are queued (or fewer when the peer closed).
Io peek_bytes(int fd, uint8_t* buf, size_t want, size_t* got, Clock::time_point deadline) {
  *got = 0;
  for (;;) {
    const Io w = wait_readable(fd, deadline);
    if (w != Io::kOk) return w;
    const ssize_t n = ::recv(fd, buf, want, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) return Io::kClosed;
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return Io::kError;
    }
    *got = size_t(n);
    if (*got >= want) return Io::kOk;
    // Fewer bytes than wanted: is the peer done? Wait a little for more.
    if (std::memcmp(buf, wire::kEyecatcherSmcr.data(), std::min<size_t>(*got, 4)) != 0 &&
        std::memcmp(buf, wire::kEyecatcherSmcd.data(), std::min<size_t>(*got, 4)) != 0) {
      return Io::kOk;  // not a CLC message: no need to wait for the rest
    }
    pollfd p{fd, POLLIN | POLLRDHUP, 0};
    ::poll(&p, 1, 1);
    if (Clock::now() >= deadline) return Io::kTimeout;
  }
}

Io read_exact(int fd, uint8_t* buf, size_t len, Clock::time_point deadline) {
  size_t have = 0;
  while (have < len) {
    const Io w = wait_readable(fd, deadline);
    if (w != Io::kOk) return w;
    const ssize_t n = ::recv(fd, buf + have, len - have, MSG_DONTWAIT);
    if (n == 0) return Io::kClosed;
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return Io::kError;
    }
    have += size_t(n);
  }
  return Io::kOk;
}

bool write_all(int fd, const uint8_t* buf, size_t len) {
  size_t done = 0;
  while (done < len) {
    const ssize_t n = ::send(fd, buf + done, len - done, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        pollfd p{fd, POLLOUT, 0};
        ::poll(&p, 1, 1000);
        continue;
      }
      return false;
    }
    done += size_t(n);
  }
  return true;
}

// Reads one CLC message: the 8-byte header first (as Linux's MSG_PEEK), then
// the rest. kNotClc: the first bytes are not a CLC header (left unread).
enum class Rx { kOk, kTimeout, kClosed, kNotClc, kMalformed };

Rx read_clc(int fd, uint8_t* buf, size_t* len, wire::ClcHeader* hdr, Clock::time_point deadline) {
  size_t got = 0;
  const Io p = peek_bytes(fd, buf, wire::kClcHeaderLen, &got, deadline);
  if (p == Io::kTimeout) return got > 0 ? Rx::kNotClc : Rx::kTimeout;
  if (p != Io::kOk && got < wire::kClcHeaderLen) return got > 0 ? Rx::kNotClc : Rx::kClosed;
  if (got < wire::kClcHeaderLen) return Rx::kNotClc;
  // Another protocol's bytes are not ours to judge (plain TCP); a CLC
  // eyecatcher with a broken header is a malformed CLC message.
  const wire::ClcError e = wire::peek_header(std::span<const uint8_t>(buf, got), hdr);
  if (e == wire::ClcError::kEyecatcher) return Rx::kNotClc;
  if (e != wire::ClcError::kOk) return Rx::kMalformed;
  if (hdr->length > wire::kClcMaxLen || hdr->length < wire::kClcHeaderLen + wire::kClcTrailerLen) {
    return Rx::kMalformed;
  }
  if (read_exact(fd, buf, hdr->length, deadline) != Io::kOk) return Rx::kClosed;
  *len = hdr->length;
  return Rx::kOk;
}

// --- local facts ------------------------------------------------------------------

std::array<uint8_t, 32> hostname_field() {
  std::array<uint8_t, 32> h;
  h.fill(' ');
  utsname u{};
  if (uname(&u) == 0) {
    const size_t n = std::min(std::strlen(u.nodename), h.size());
    std::memcpy(h.data(), u.nodename, n);
  }
  return h;
}

// The IPv4 subnet of the interface holding the socket's local address
// (smc_clc_prfx_set): address & mask and the prefix length.
bool local_prefix(int fd, uint32_t* prefix, uint8_t* len) {
  sockaddr_in sa{};
  socklen_t sl = sizeof(sa);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &sl) != 0 || sa.sin_family != AF_INET) return false;
  ifaddrs* ifs = nullptr;
  if (getifaddrs(&ifs) != 0) return false;
  bool found = false;
  for (ifaddrs* i = ifs; i != nullptr && !found; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_netmask == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
    const auto* a = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
    const auto* m = reinterpret_cast<const sockaddr_in*>(i->ifa_netmask);
    if (a->sin_addr.s_addr != sa.sin_addr.s_addr) continue;
    const uint32_t mask = ntohl(m->sin_addr.s_addr);
    *prefix = ntohl(a->sin_addr.s_addr) & mask;
    *len = uint8_t(__builtin_popcount(mask));
    found = true;
  }
  freeifaddrs(ifs);
  return found;
}

void send_decline(Runtime& rt, int fd, uint8_t version, uint32_t code, bool out_of_sync = false) {
  wire::ClcDecline d;
  d.version = version >= 2 ? 2 : 1;
  d.out_of_sync = out_of_sync;
  d.peer_id = rt.system_id();
  d.diag = code;
  d.os_type = 2;  // Linux (A18)
  uint8_t buf[wire::kClcDeclineV2Len];
  const size_t n = wire::encode_decline(d, buf);
  if (n != 0 && write_all(fd, buf, n)) rt.counters().declines_sent.fetch_add(1, std::memory_order_relaxed);
  SMC_LOG("declined SMC-R: %s (%08x)", wire::decline_reason_name(code), code);
}

ClcOutcome fallback(Runtime& rt, uint32_t reason, uint32_t peer_diag = 0) {
  ClcOutcome o;
  o.fallback_reason = reason;
  o.peer_diagnosis = peer_diag;
  rt.fallbacks().add(reason);
  if (peer_diag != 0) {
    SMC_LOG("falling back to TCP: %s (%08x); peer's diagnosis %s (%08x)", fallback_reason_text(reason),
            reason, wire::decline_reason_name(peer_diag), peer_diag);
  } else {
    SMC_LOG("falling back to TCP: %s (%08x)", fallback_reason_text(reason), reason);
  }
  return o;
}

ClcOutcome failure(Runtime& rt, int err, const char* why) {
  ClcOutcome o;
  o.error = err;
  rt.counters().clc_malformed.fetch_add(err == EPROTO ? 1 : 0, std::memory_order_relaxed);
  SMC_LOG("closing the connection: %s", why);
  return o;
}

// Undoes a half-built connection: the group too when this was its first
// contact (nothing else uses it yet).
void undo(LinkGroup* lgr, Connection* conn, bool first_contact, const char* why) {
  if (conn != nullptr) conn->release();
  if (lgr != nullptr) {
    if (first_contact) lgr->runtime()->schedule_terminate(lgr, why);
    lgr->unuse();
  }
}

// Buffers for a new connection; registers them (CONFIRM RKEY) on the group's
// link when the group exists already and the RMB is new to the peer.
bool setup_buffers(Runtime& rt, LinkGroup* lgr, Link* link, Connection* conn, bool first_contact,
                   uint32_t* reason) {
  std::string err;
  Buffer* rmb = lgr->get_buffer(rt.config().rmb_size, true, &err);
  Buffer* snd = rmb ? lgr->get_buffer(rt.config().sndbuf_size, false, &err) : nullptr;
  if (rmb == nullptr || snd == nullptr) {
    if (rmb != nullptr) lgr->put_buffer(rmb);
    SMC_LOG("buffers: %s", err.c_str());
    *reason = wire::decline::kMem;
    return false;
  }
  conn->set_buffers(rmb, snd);
  if (!first_contact && !rmb->rkey_confirmed) {
    // Linux registers a new RMB on every link before its Accept/Confirm
    // (smcr_lgr_reg_rmbs -> CONFIRM RKEY), even with one link (B7).
    wire::LlcConfirmRkey req;
    req.hdr.type = wire::LlcType::kConfirmRkey;
    req.hdr.v2 = lgr->v2();
    req.rtoken[0].link_id_or_count = 0;
    if (!lgr->buffer_rkey(*rmb, link->index(), &req.rtoken[0].rkey)) {
      *reason = wire::decline::kErrRegBuf;  // the link went down meanwhile
      return false;
    }
    req.rtoken[0].vaddr = uintptr_t(rmb->data);
    // Its rkeys on the other links too (smc_llc_send_confirm_rkey).
    for (int i = 0; i < kMaxLinks; ++i) {
      Link* o = lgr->link(i);
      uint32_t rkey = 0;
      if (o == nullptr || o == link || !o->active() || !lgr->buffer_rkey(*rmb, uint8_t(i), &rkey)) continue;
      const int n = ++req.rtoken[0].link_id_or_count;
      if (n > 2) break;
      req.rtoken[size_t(n)].link_id_or_count = o->link_id();
      req.rtoken[size_t(n)].rkey = rkey;
      req.rtoken[size_t(n)].vaddr = uintptr_t(rmb->data);
    }
    wire::LlcMsg resp;
    if (!lgr->llc_request(link, req, &resp, rt.config().llc_wait_ms) ||
        (std::get_if<wire::LlcConfirmRkey>(&resp) != nullptr &&
         (std::get<wire::LlcConfirmRkey>(resp).hdr.flags & wire::kLlcConfirmRkeyNegative))) {
      *reason = wire::decline::kErrRegBuf;
      return false;
    }
  }
  rmb->rkey_confirmed = true;
  return true;
}

// rkey: the RMB's on link (LinkGroup::buffer_rkey, read by the caller, which
// fails the handshake when the link was torn down meanwhile).
wire::ClcAcceptConfirm make_accept_confirm(Runtime& rt, wire::ClcType type, uint8_t version, bool first_contact,
                                           Link* link, Connection* conn, uint32_t rkey,
                                           const wire::Eid& eid) {
  // The link's device: a connection on a group's second link names that
  // link's GID, MAC and QP (smc_clc_send_confirm_accept).
  const IbDevice* dev = link->device();
  wire::ClcAcceptConfirm m;
  m.type = type;
  m.version = version;
  m.first_contact = first_contact;
  m.peer_id = rt.system_id();
  m.gid = dev->gid;
  m.mac = dev->mac;
  m.qpn = link->qpn();
  m.rkey = rkey;
  m.rmbe_idx = 1;
  m.rmbe_alert_token = conn->token();
  m.rmbe_size = wire::rmbe_compress(conn->rmb()->size);
  m.mtu = link->mtu();
  m.rmb_vaddr = uintptr_t(conn->rmb()->data);
  m.psn = link->psn();
  if (version >= 2) {
    m.eid = eid;
    if (first_contact) {
      m.fce.v2_direct = true;
      m.fce.os_type = 2;
      m.fce.release = 0;
      m.fce.hostname = hostname_field();
      if (type == wire::ClcType::kConfirm) {
        // The client's GIDs: the server picks the second link's among them.
        m.gids[0] = dev->gid;
        m.gid_cnt = 1;
        for (auto& d : rt.devices()) {
          if (d.get() != dev && d->port_active() && m.gid_cnt < m.gids.size()) m.gids[m.gid_cnt++] = d->gid;
        }
      }
    }
  }
  return m;
}

// Sends the CLC Accept or Confirm for conn on link. On failure the
// half-built connection is undone and the handshake's outcome returned: a
// Decline and TCP fallback when the link was torn down meanwhile (the RMB's
// rkey is gone with it), a reset when the CLC socket failed.
std::optional<ClcOutcome> send_accept_confirm(Runtime& rt, int fd, wire::ClcType type, uint8_t version,
                                              bool first_contact, LinkGroup* lgr, Link* link,
                                              Connection* conn, const wire::Eid& eid) {
  const bool accept = type == wire::ClcType::kAccept;
  uint32_t rkey = 0;
  if (!lgr->buffer_rkey(*conn->rmb(), link->index(), &rkey)) {
    undo(lgr, conn, first_contact, accept ? "link down before the CLC Accept" : "link down before the CLC Confirm");
    send_decline(rt, fd, version, wire::decline::kInterr);
    return fallback(rt, wire::decline::kInterr);
  }
  const wire::ClcAcceptConfirm m = make_accept_confirm(rt, type, version, first_contact, link, conn, rkey, eid);
  uint8_t buf[wire::kClcMaxLen];
  const size_t n = wire::encode_accept_confirm(m, std::span<uint8_t>(buf, sizeof(buf)));
  if (n == 0 || !write_all(fd, buf, n)) {
    undo(lgr, conn, first_contact, accept ? "CLC Accept not sent" : "CLC Confirm not sent");
    return failure(rt, ECONNRESET, accept ? "sending the CLC Accept failed" : "sending the CLC Confirm failed");
  }
  return std::nullopt;
}

wire::LlcConfirmLink make_confirm_link(Runtime& rt, Link* link, bool v2, bool response) {
  wire::LlcConfirmLink c;
  c.hdr.type = wire::LlcType::kConfirmLink;
  c.hdr.v2 = v2;
  c.hdr.flags = wire::kLlcConfirmLinkNoRmbeEyecatcher | (response ? wire::kLlcFlagResp : 0);
  (void)rt;
  c.sender_mac = link->device()->mac;
  c.sender_gid = link->device()->gid;
  c.sender_qpn = link->qpn();
  c.link_num = link->link_id();
  c.link_uid = link->link_uid();
  c.max_links = wire::kLlcMaxLinks;
  return c;
}

// The device CLC names and first contact uses: the first one whose port is
// up (a group whose first device went down starts on the other).
IbDevice* clc_device(Runtime& rt) {
  for (auto& d : rt.devices()) {
    if (d->port_active()) return d.get();
  }
  return rt.device();
}

// The server's ADD LINK when it has no second device: this link's data as
// an asymmetric alternative, which the client rejects; an acceptance is
// answered with DELETE LINK for it (a Linux client waits for an ADD LINK
// after first contact, A16). Its fields as Linux 6.1 fills them
// (smc_llc_fill_ext_v2): the sender's GID for the new link in
// client_target_gid, an rkey triple per RMB of the group (A3).
void offer_asymmetric_link(Runtime& rt, LinkGroup* lgr, Link* link) {
  const Config& cfg = rt.config();
  wire::LlcAddLink add;
  add.hdr.type = wire::LlcType::kAddLink;
  add.hdr.v2 = lgr->v2();
  add.sender_mac = link->device()->mac;
  add.sender_gid = link->device()->gid;
  add.sender_qpn = link->qpn();
  add.link_num = uint8_t(link->link_id() + 1);
  add.mtu = link->mtu();
  add.psn = link->psn();
  if (lgr->v2()) {
    add.has_v2_ext = true;
    add.v2_direct = true;
    add.client_target_gid = link->device()->gid;
    add.rkeys = lgr->rmb_rkeys(link->index(), link->index());
  }
  wire::LlcMsg resp;
  if (lgr->llc_request(link, add, &resp, cfg.llc_wait_ms)) {
    const auto* ar = std::get_if<wire::LlcAddLink>(&resp);
    if (ar != nullptr && !(ar->hdr.flags & wire::kLlcAddLinkRejected)) {
      lgr->send_delete_link(link, add.link_num, wire::kLlcDelNoAsymNeeded);
    }
  }
}

// smc_llc_srv_add_link for SMC-Rv2, after first contact: a second link on
// the other device, announced by ADD LINK with our RMBs' rkeys on it, the
// client's answer with its QP and rkeys, then CONFIRM LINK over the new
// link. Any failure leaves the group with its first link.
void serve_add_link(Runtime& rt, LinkGroup* lgr, Link* first) {
  const Config& cfg = rt.config();
  IbDevice* dev = lgr->v2() ? rt.other_device(first->device()) : nullptr;
  std::string err;
  Link* nl = dev != nullptr ? lgr->add_link(dev, &err) : nullptr;
  if (nl == nullptr) {
    if (dev != nullptr) SMC_LOG("link group %u: second link on %s: %s", lgr->id(), dev->name.c_str(), err.c_str());
    offer_asymmetric_link(rt, lgr, first);
    return;
  }
  nl->set_link_uid(first->link_uid());
  wire::LlcAddLink add;
  add.hdr.type = wire::LlcType::kAddLink;
  add.hdr.v2 = true;
  add.sender_mac = dev->mac;
  add.sender_gid = dev->gid;
  add.sender_qpn = nl->qpn();
  add.link_num = nl->link_id();
  add.mtu = nl->mtu();
  add.psn = nl->psn();
  add.has_v2_ext = true;
  add.v2_direct = true;
  add.client_target_gid = dev->gid;  // the sender's GID for the new link, as Linux 6.1
  add.rkeys = lgr->rmb_rkeys(first->index(), nl->index());
  wire::LlcMsg resp;
  const wire::LlcAddLink* ar = nullptr;
  if (lgr->llc_request(first, add, &resp, cfg.llc_wait_ms)) ar = std::get_if<wire::LlcAddLink>(&resp);
  if (ar == nullptr || (ar->hdr.flags & wire::kLlcAddLinkRejected)) {
    SMC_LOG("link group %u: the client %s the second link", lgr->id(), ar == nullptr ? "did not answer" : "rejected");
    lgr->remove_link(nl);
    return;
  }
  for (const wire::LlcRkeyPair& k : ar->rkeys) {
    lgr->rtoken_add_other(first->index(), k.rkey_existing, nl->index(), k.rkey_new, k.vaddr_new);
  }
  wire::LlcMsg conf;
  const bool up = nl->to_rtr(ar->sender_gid, ar->sender_qpn, ar->psn, ar->mtu, &err) && nl->to_rts(&err) &&
                  lgr->llc_request(nl, make_confirm_link(rt, nl, true, false), &conf, cfg.llc_wait_ms);
  if (!up) {
    SMC_LOG("link group %u: second link not confirmed%s%s", lgr->id(), err.empty() ? "" : ": ", err.c_str());
    lgr->send_delete_link(first, nl->link_id(), wire::kLlcDelLostPath);
    lgr->remove_link(nl);
    return;
  }
  rt.counters().links_added.fetch_add(1, std::memory_order_relaxed);
  SMC_LOG("link group %u: second link %u on %s (QP %u -> %u)", lgr->id(), nl->link_id(), dev->name.c_str(),
          nl->qpn(), nl->peer_qpn());
}

void reject_add_link(Runtime& rt, Link* via, wire::LlcAddLink a) {
  // The 44-byte reject Linux sends (A2).
  a.hdr.flags |= wire::kLlcFlagResp | wire::kLlcAddLinkRejected;
  a.hdr.add_link_rej_rsn = wire::kLlcAddLinkRejNoAltPath;
  a.has_v2_ext = false;
  a.rkeys.clear();
  via->send_llc(a, rt.config().llc_wait_ms);
}

// smc_llc_cli_add_link for SMC-Rv2: a link on our other device (as
// smc_pnet_find_alt_roce: not the one the group's link uses; the request's
// client_target_gid is the server's own GID, which Linux never reads), RTR
// to the server's new QP, our answer with our QP and RMB rkeys, then the
// server's CONFIRM LINK over the new link, RTS and the response. Without a
// second device whose port is up: the reject.
void answer_add_link(Runtime& rt, LinkGroup* lgr, Link* via, const wire::LlcAddLink& req) {
  const Config& cfg = rt.config();
  IbDevice* dev = lgr->v2() && req.has_v2_ext ? rt.other_device(via->device()) : nullptr;
  if (dev != nullptr && !dev->port_active()) dev = nullptr;
  std::string err;
  Link* nl = dev != nullptr ? lgr->add_link(dev, &err, req.link_num) : nullptr;
  if (nl == nullptr || !nl->to_rtr(req.sender_gid, req.sender_qpn, req.psn, req.mtu, &err)) {
    if (nl != nullptr) {
      SMC_LOG("link group %u: second link: %s", lgr->id(), err.c_str());
      lgr->remove_link(nl);
    }
    reject_add_link(rt, via, req);
    return;
  }
  for (const wire::LlcRkeyPair& k : req.rkeys) {
    lgr->rtoken_add_other(via->index(), k.rkey_existing, nl->index(), k.rkey_new, k.vaddr_new);
  }
  wire::LlcAddLink r;
  r.hdr.type = wire::LlcType::kAddLink;
  r.hdr.v2 = true;
  r.hdr.flags = wire::kLlcFlagResp;
  r.sender_mac = dev->mac;
  r.sender_gid = dev->gid;
  r.sender_qpn = nl->qpn();
  r.link_num = req.link_num;
  r.mtu = nl->mtu();
  r.psn = nl->psn();
  r.has_v2_ext = true;
  r.v2_direct = true;
  r.client_target_gid = dev->gid;
  r.rkeys = lgr->rmb_rkeys(via->index(), nl->index());
  wire::LlcMsg m;
  Link* on = nullptr;
  if (!via->send_llc(r, cfg.llc_wait_ms) ||
      !lgr->llc_wait_request(wire::LlcType::kConfirmLink, &m, cfg.llc_wait_ms, &on) || on != nl) {
    SMC_LOG("link group %u: no CONFIRM LINK on the second link", lgr->id());
    lgr->remove_link(nl);
    return;
  }
  nl->set_link_uid(std::get<wire::LlcConfirmLink>(m).link_uid);
  if (!nl->to_rts(&err) || !nl->send_llc(make_confirm_link(rt, nl, true, true), cfg.llc_wait_ms)) {
    SMC_LOG("link group %u: second link: %s", lgr->id(), err.c_str());
    lgr->remove_link(nl);
    return;
  }
  rt.counters().links_added.fetch_add(1, std::memory_order_relaxed);
  SMC_LOG("link group %u: second link %u on %s (QP %u -> %u)", lgr->id(), nl->link_id(), dev->name.c_str(),
          nl->qpn(), nl->peer_qpn());
}

}  // namespace

const char* fallback_reason_text(uint32_t reason) {
  if (reason == wire::decline::kPeerNoSmc) return "peer has not signalled SMC capability";
  return wire::decline_reason_name(reason);
}

// ---------------------------------------------------------------------------
// Client

ClcOutcome clc_connect(Runtime& rt, int fd) {
  const Config& cfg = rt.config();
  IbDevice* dev = clc_device(rt);
  const uint8_t hdr_version = cfg.v2 ? 2 : 1;
  if (!dev->port_active()) {
    // A Linux client without a usable device sends a Decline instead of a
    // Proposal (A18).
    send_decline(rt, fd, 1, wire::decline::kNoSmcRDev);
    return fallback(rt, wire::decline::kNoSmcRDev);
  }
  wire::ClcProposal p;
  p.version = hdr_version;
  p.typev2 = cfg.v2 ? wire::SmcType::kR : wire::SmcType::kNone;
  p.typev1 = cfg.v1 ? wire::SmcType::kR : wire::SmcType::kNone;
  p.peer_id = rt.system_id();
  p.gid = dev->gid;
  p.mac = dev->mac;
  if (cfg.v1 && !local_prefix(fd, &p.ipv4_prefix, &p.ipv4_prefix_len)) {
    if (!cfg.v2) {
      send_decline(rt, fd, 1, wire::decline::kCnfErr);
      return fallback(rt, wire::decline::kCnfErr);
    }
    p.typev1 = wire::SmcType::kNone;  // as Linux when the prefix lookup fails
  }
  if (cfg.v2) {
    p.eid_cnt = 1;
    p.eids[0] = cfg.ueid;
    p.roce_v2_gid = dev->gid;
  }
  uint8_t buf[wire::kClcMaxLen];
  size_t n = wire::encode_proposal(p, std::span<uint8_t>(buf, sizeof(buf)));
  if (n == 0 || !write_all(fd, buf, n)) return failure(rt, ECONNRESET, "sending the CLC Proposal failed");

  // Accept or Decline within CLC_WAIT_TIME.
  const auto deadline = Clock::now() + std::chrono::milliseconds(cfg.clc_wait_ms);
  wire::ClcHeader h;
  size_t len = 0;
  switch (read_clc(fd, buf, &len, &h, deadline)) {
    case Rx::kOk:
      break;
    case Rx::kTimeout:
    case Rx::kNotClc:
      // The server does not speak SMC (peek mode: no TCP option to tell).
      return fallback(rt, wire::decline::kPeerNoSmc);
    case Rx::kClosed:
      // A plain TCP server may read the Proposal as its own protocol and
      // hang up (peek mode has no TCP option 254 to ask first).
      return failure(rt, ECONNRESET,
                     "the server closed the connection during the CLC handshake (a server without SMC-R "
                     "support reads the Proposal as data)");
    case Rx::kMalformed:
      return failure(rt, EPROTO, "malformed CLC message from the server");
  }
  const std::span<const uint8_t> msg(buf, len);
  if (h.type == wire::ClcType::kDecline) {
    wire::ClcDecline d;
    if (wire::decode_decline(msg, &d) != wire::ClcError::kOk) {
      return failure(rt, EPROTO, "malformed CLC Decline from the server");
    }
    rt.counters().declines_received.fetch_add(1, std::memory_order_relaxed);
    if (d.out_of_sync) {
      rt.for_each_lgr([&](LinkGroup* g) {
        if (g->role() == Role::kClient && g->peer_id == d.peer_id) rt.schedule_terminate(g, "peer out of sync");
      });
    }
    return fallback(rt, wire::decline::kPeerDecl, d.diag);
  }
  wire::ClcAcceptConfirm acc;
  if (wire::decode_accept_confirm(msg, wire::ClcType::kAccept, &acc) != wire::ClcError::kOk) {
    return failure(rt, EPROTO, "malformed CLC Accept from the server");
  }
  const bool v2 = acc.version >= 2;
  if ((v2 && !cfg.v2) || (!v2 && !(cfg.v1 && p.typev1 == wire::SmcType::kR))) {
    send_decline(rt, fd, hdr_version, wire::decline::kModeUnsupp);
    return fallback(rt, wire::decline::kModeUnsupp);
  }
  const uint8_t version = v2 ? 2 : 1;
  const bool first_contact = acc.first_contact;

  LinkGroup* lgr = nullptr;
  Link* link = nullptr;
  std::string err;
  if (first_contact) {
    lgr = rt.create_lgr(Role::kClient, v2);
    lgr->peer_id = acc.peer_id;
    lgr->peer_gid = acc.gid;
    lgr->peer_mac = acc.mac;
    lgr->eid = acc.eid;
    link = lgr->add_link(dev, &err);
    if (link == nullptr || !link->to_rtr(acc.gid, acc.qpn, acc.psn, acc.mtu, &err)) {
      SMC_LOG("first-contact link: %s", err.c_str());
      undo(lgr, nullptr, true, "link setup failed");
      send_decline(rt, fd, version, wire::decline::kInterr);
      return fallback(rt, wire::decline::kInterr);
    }
  } else {
    lgr = rt.find_lgr(Role::kClient, acc.peer_id, acc.gid, v2, acc.qpn);
    link = lgr != nullptr ? lgr->link_by_peer_qpn(acc.qpn) : nullptr;
    if (link == nullptr) {
      // The server reuses a link group we do not have (any more).
      if (lgr != nullptr) lgr->unuse();
      send_decline(rt, fd, version, wire::decline::kSyncErr, true);
      return fallback(rt, wire::decline::kSyncErr);
    }
  }
  Connection* conn = lgr->new_connection();
  uint32_t reason = wire::decline::kMem;
  if (conn == nullptr || !setup_buffers(rt, lgr, link, conn, first_contact, &reason)) {
    undo(lgr, conn, first_contact, "no buffers");
    send_decline(rt, fd, version, reason);
    return fallback(rt, reason);
  }
  conn->set_peer(acc.rmbe_alert_token, acc.rkey, acc.rmb_vaddr, wire::rmbe_uncompress(acc.rmbe_size),
                 lgr->rtoken_add(link->index(), acc.rkey, acc.rmb_vaddr));
  // The connection takes CDCs from here on: the server may send as soon as
  // its side is done, before this thread has finished the LLC steps.
  if (!first_contact) conn->activate(link);
  if (auto failed = send_accept_confirm(rt, fd, wire::ClcType::kConfirm, version, first_contact, lgr, link, conn,
                                        acc.eid)) {
    return *failed;
  }
  if (first_contact) {
    // The server confirms the link over it (smcr_clnt_conf_first_link); the
    // client stays in RTR until then. Linux 6.1 waits 2 x SMC_LLC_WAIT_TIME.
    wire::LlcMsg m;
    if (!lgr->llc_wait_request(wire::LlcType::kConfirmLink, &m, 2 * cfg.llc_wait_ms)) {
      undo(lgr, conn, true, "no CONFIRM LINK");
      send_decline(rt, fd, version, wire::decline::kTimeoutCl);
      return fallback(rt, wire::decline::kTimeoutCl);
    }
    const auto& cl = std::get<wire::LlcConfirmLink>(m);
    link->set_link_uid(cl.link_uid);
    link->set_link_id(cl.link_num);  // the server numbers the links
    lgr->expect_add_link(true);
    const bool rts = link->to_rts(&err);
    if (rts) conn->activate(link);
    if (!rts || !link->send_llc(make_confirm_link(rt, link, v2, true), cfg.llc_wait_ms)) {
      lgr->expect_add_link(false);
      SMC_LOG("confirming the link: %s", err.c_str());
      undo(lgr, conn, true, "link not ready");
      send_decline(rt, fd, version, wire::decline::kErrRdyLnk);
      return fallback(rt, wire::decline::kErrRdyLnk);
    }
    // Then the server's ADD LINK (A16): a second link when we have the
    // device it targets, else the reject (A2).
    const bool got_add = lgr->llc_wait_request(wire::LlcType::kAddLink, &m, cfg.llc_wait_ms);
    lgr->expect_add_link(false);
    if (got_add) answer_add_link(rt, lgr, link, std::get<wire::LlcAddLink>(m));
    rt.counters().first_contacts.fetch_add(1, std::memory_order_relaxed);
  }
  lgr->unuse();
  rt.counters().smc_connections.fetch_add(1, std::memory_order_relaxed);
  SMC_LOG("%s: SMC-Rv%u connection %08x in link group %u%s", role_name(lgr->role()), version, conn->token(),
          lgr->id(), first_contact ? " (first contact)" : "");
  ClcOutcome o;
  o.smc = true;
  o.conn = conn;
  o.version = version;
  o.first_contact = first_contact;
  return o;
}

// ---------------------------------------------------------------------------
// Server

ClcOutcome clc_accept(Runtime& rt, int fd, bool peer_signalled) {
  const Config& cfg = rt.config();
  IbDevice* dev = clc_device(rt);
  if (!peer_signalled) return fallback(rt, wire::decline::kPeerNoSmc);
  const auto deadline = Clock::now() + std::chrono::milliseconds(cfg.clc_wait_ms);
  uint8_t buf[wire::kClcMaxLen];
  wire::ClcHeader h;
  size_t len = 0;
  switch (read_clc(fd, buf, &len, &h, deadline)) {
    case Rx::kOk:
      break;
    case Rx::kTimeout:
    case Rx::kNotClc:
      // Anything but a CLC message: a plain TCP client, served as such.
      return fallback(rt, wire::decline::kPeerNoSmc);
    case Rx::kClosed:
      return failure(rt, ECONNRESET, "the client closed the connection during the CLC handshake");
    case Rx::kMalformed:
      return failure(rt, EPROTO, "malformed CLC message from the client");
  }
  const std::span<const uint8_t> msg(buf, len);
  if (h.type == wire::ClcType::kDecline) {
    // A client without a device declines instead of proposing (A18).
    wire::ClcDecline d;
    if (wire::decode_decline(msg, &d) != wire::ClcError::kOk) {
      return failure(rt, EPROTO, "malformed CLC Decline from the client");
    }
    rt.counters().declines_received.fetch_add(1, std::memory_order_relaxed);
    return fallback(rt, wire::decline::kPeerDecl, d.diag);
  }
  wire::ClcProposal p;
  if (h.type != wire::ClcType::kProposal || wire::decode_proposal(msg, &p) != wire::ClcError::kOk) {
    // Linux closes without a Decline (B2).
    return failure(rt, EPROTO, "malformed CLC Proposal from the client");
  }
  const uint8_t decl_version = p.version >= 2 ? 2 : 1;

  // Pick the version: v2 first (UEID, RoCEv2 GID), then v1 (IP prefix).
  bool v2 = false;
  uint32_t reason = wire::decline::kNoSmcDev;
  wire::Gid peer_gid{};
  wire::Eid eid{};
  const bool v2_offered = p.typev2 == wire::SmcType::kR || p.typev2 == wire::SmcType::kBoth;
  const bool v1_offered = p.typev1 == wire::SmcType::kR || p.typev1 == wire::SmcType::kBoth;
  if (v2_offered && cfg.v2) {
    if (p.eid_cnt == 0) {
      reason = wire::decline::kNoUeid;
    } else {
      bool match = false;
      for (int i = 0; i < p.eid_cnt && !match; ++i) match = p.eids[i] == cfg.ueid;
      uint32_t ipv4 = 0;
      if (!match) {
        reason = wire::decline::kNoSmcDev;  // Linux 6.1 reports a UEID miss so (B6)
      } else if (!dev->port_active() || !wire::gid_to_ipv4(p.roce_v2_gid, &ipv4)) {
        reason = wire::decline::kNoSmcRDev;
      } else {
        v2 = true;
        peer_gid = p.roce_v2_gid;
        eid = cfg.ueid;
      }
    }
  }
  if (!v2) {
    bool v1_ok = false;
    if (v1_offered && cfg.v1) {
      uint32_t prefix = 0;
      uint8_t plen = 0;
      if (!local_prefix(fd, &prefix, &plen) || prefix != p.ipv4_prefix || plen != p.ipv4_prefix_len) {
        reason = wire::decline::kDiffPrefix;
      } else if (!dev->port_active()) {
        reason = wire::decline::kNoSmcRDev;
      } else {
        v1_ok = true;
        peer_gid = p.gid;
      }
    } else if (!v2_offered) {
      reason = wire::decline::kNoSmcDev;
    }
    if (!v1_ok) {
      send_decline(rt, fd, decl_version, reason);
      return fallback(rt, reason);
    }
  }
  const uint8_t version = v2 ? 2 : 1;

  // A link group with this client, or a new one (first contact).
  LinkGroup* lgr = rt.find_lgr(Role::kServer, p.peer_id, peer_gid, v2, 0);
  const bool first_contact = lgr == nullptr;
  Link* link = nullptr;
  std::string err;
  if (first_contact) {
    lgr = rt.create_lgr(Role::kServer, v2);
    lgr->peer_id = p.peer_id;
    lgr->peer_gid = peer_gid;
    lgr->peer_mac = p.mac;
    lgr->eid = eid;
    link = lgr->add_link(dev, &err);
    if (link == nullptr) {
      SMC_LOG("first-contact link: %s", err.c_str());
      undo(lgr, nullptr, true, "link setup failed");
      send_decline(rt, fd, version, wire::decline::kInterr);
      return fallback(rt, wire::decline::kInterr);
    }
    std::array<uint8_t, 4> uid;
    const uint32_t id = lgr->id();
    uid = {uint8_t(id >> 24), uint8_t(id >> 16), uint8_t(id >> 8), uint8_t(id)};
    link->set_link_uid(uid);
  } else {
    link = lgr->least_used_link();  // connections spread over the links
  }
  Connection* conn = lgr->new_connection();
  reason = wire::decline::kMem;
  if (conn == nullptr || link == nullptr || !setup_buffers(rt, lgr, link, conn, first_contact, &reason)) {
    undo(lgr, conn, first_contact, "no buffers");
    send_decline(rt, fd, version, reason);
    return fallback(rt, reason);
  }
  if (auto failed = send_accept_confirm(rt, fd, wire::ClcType::kAccept, version, first_contact, lgr, link, conn,
                                        eid)) {
    return *failed;
  }
  // The client's Confirm (or its Decline) within CLC_WAIT_TIME.
  const auto deadline2 = Clock::now() + std::chrono::milliseconds(cfg.clc_wait_ms);
  const Rx r = read_clc(fd, buf, &len, &h, deadline2);
  if (r != Rx::kOk) {
    undo(lgr, conn, first_contact, "no CLC Confirm");
    if (r == Rx::kTimeout) {
      send_decline(rt, fd, version, wire::decline::kInterr);
      return fallback(rt, wire::decline::kInterr);
    }
    return failure(rt, r == Rx::kClosed ? ECONNRESET : EPROTO, "no valid CLC Confirm from the client");
  }
  const std::span<const uint8_t> msg2(buf, len);
  if (h.type == wire::ClcType::kDecline) {
    wire::ClcDecline d;
    undo(lgr, conn, first_contact, "client declined");
    if (wire::decode_decline(msg2, &d) != wire::ClcError::kOk) {
      return failure(rt, EPROTO, "malformed CLC Decline from the client");
    }
    rt.counters().declines_received.fetch_add(1, std::memory_order_relaxed);
    return fallback(rt, wire::decline::kPeerDecl, d.diag);
  }
  wire::ClcAcceptConfirm conf;
  if (wire::decode_accept_confirm(msg2, wire::ClcType::kConfirm, &conf) != wire::ClcError::kOk ||
      (conf.version >= 2) != v2) {
    undo(lgr, conn, first_contact, "malformed Confirm");
    return failure(rt, EPROTO, "malformed CLC Confirm from the client");
  }
  conn->set_peer(conf.rmbe_alert_token, conf.rkey, conf.rmb_vaddr, wire::rmbe_uncompress(conf.rmbe_size),
                 lgr->rtoken_add(link->index(), conf.rkey, conf.rmb_vaddr));
  if (!first_contact) conn->activate(link);
  if (first_contact) {
    // smcr_serv_conf_first_link: RTR + RTS with the client's QP, CONFIRM
    // LINK and its response within SMC_LLC_WAIT_TIME, then ADD LINK.
    wire::LlcMsg resp;
    if (!link->to_rtr(peer_gid, conf.qpn, conf.psn, conf.mtu, &err) || !link->to_rts(&err)) {
      SMC_LOG("first-contact link: %s", err.c_str());
      undo(lgr, conn, true, "link not ready");
      send_decline(rt, fd, version, wire::decline::kErrRdyLnk);
      return fallback(rt, wire::decline::kErrRdyLnk);
    }
    conn->activate(link);
    if (!lgr->llc_request(link, make_confirm_link(rt, link, v2, false), &resp, cfg.llc_wait_ms)) {
      undo(lgr, conn, true, "no CONFIRM LINK response");
      send_decline(rt, fd, version, wire::decline::kTimeoutCl);
      return fallback(rt, wire::decline::kTimeoutCl);
    }
    const auto* cl = std::get_if<wire::LlcConfirmLink>(&resp);
    if (cl == nullptr || (cl->hdr.flags & wire::kLlcConfirmLinkNoRmbeEyecatcher) !=
                             wire::kLlcConfirmLinkNoRmbeEyecatcher) {
      undo(lgr, conn, true, "CONFIRM LINK without the no-eyecatcher flags");
      send_decline(rt, fd, version, wire::decline::kRmbeEc);
      return fallback(rt, wire::decline::kRmbeEc);
    }
    // ADD LINK: Linux always offers a second link after first contact
    // (A16), and a client waits for it.
    serve_add_link(rt, lgr, link);
    rt.counters().first_contacts.fetch_add(1, std::memory_order_relaxed);
  }
  lgr->unuse();
  rt.counters().smc_connections.fetch_add(1, std::memory_order_relaxed);
  SMC_LOG("%s: SMC-Rv%u connection %08x in link group %u%s", role_name(lgr->role()), version, conn->token(),
          lgr->id(), first_contact ? " (first contact)" : "");
  ClcOutcome o;
  o.smc = true;
  o.conn = conn;
  o.version = version;
  o.first_contact = first_contact;
  return o;
}

}  // namespace droce::smc
