// What `droce-smc stat` shows of a running process (in the spirit of Linux's
// smcss and smc_diag): link groups, links, connections with their state and
// counters, and why connections fell back to TCP. Served as JSON on a Unix
// socket per process in Runtime::stat_dir().
#include <arpa/inet.h>
#include <sys/socket.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "smc/clc.h"
#include "smc/log.h"
#include "smc/runtime.h"

namespace droce::smc {
namespace {

std::string quote(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      o += '\\';
      o += c;
    } else if (uint8_t(c) < 0x20) {
      char b[8];
      std::snprintf(b, sizeof(b), "\\u%04x", c);
      o += b;
    } else {
      o += c;
    }
  }
  return o + "\"";
}

std::string hex(const uint8_t* p, size_t n) {
  std::string s;
  char b[3];
  for (size_t i = 0; i < n; ++i) {
    std::snprintf(b, sizeof(b), "%02x", p[i]);
    s += b;
  }
  return s;
}

std::string gid_text(const wire::Gid& g) {
  uint32_t v4 = 0;
  if (wire::gid_to_ipv4(g, &v4)) {
    in_addr a{htonl(v4)};
    char b[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &a, b, sizeof(b));
    return std::string("::ffff:") + b;
  }
  char b[INET6_ADDRSTRLEN];
  inet_ntop(AF_INET6, g.data(), b, sizeof(b));
  return b;
}

std::string code_hex(uint32_t c) {
  char b[12];
  std::snprintf(b, sizeof(b), "%08x", c);
  return b;
}

void field(std::string& s, const char* k, uint64_t v, bool comma = true) {
  s += quote(k) + ":" + std::to_string(v);
  if (comma) s += ",";
}

}  // namespace

std::string Runtime::stat_dir() {
  if (const char* d = std::getenv("SMC_STAT_DIR"); d != nullptr && *d != '\0') return d;
  return "/tmp/droce-smc-" + std::to_string(getuid());
}

std::string Runtime::stat_json() {
  std::string s = "{";
  field(s, "pid", uint64_t(getpid()));
  s += "\"device\":" + quote(device()->name) + ",\"gid\":" + quote(gid_text(device()->gid)) + ",\"devices\":[";
  for (size_t i = 0; i < devs_.size(); ++i) {
    const IbDevice& d = *devs_[i];
    const bool fatal = d.fatal.load(std::memory_order_acquire);
    s += std::string(i ? "," : "") + "{\"name\":" + quote(d.name) + ",\"gid\":" + quote(gid_text(d.gid)) +
         ",\"state\":" + quote(fatal ? "fatal" : devs_[i]->port_active() ? "active" : "down") + "}";
  }
  s += std::string("]") +
       ",\"system_id\":" + quote(hex(system_id_.data(), system_id_.size())) +
       ",\"ueid\":" + quote(wire::eid_text(cfg_.ueid)) +
       // How SMC capability is signalled: TCP option 254 ("tcp-option") or
       // peeking at the first bytes ("peek").
       ",\"capability_mode\":" + quote(capability_mode()) + ",";
  s += "\"counters\":{";
  field(s, "smc_connections", counters_.smc_connections.load());
  field(s, "first_contacts", counters_.first_contacts.load());
  field(s, "clc_malformed", counters_.clc_malformed.load());
  field(s, "declines_sent", counters_.declines_sent.load());
  field(s, "declines_received", counters_.declines_received.load());
  field(s, "lgr_terminated", counters_.lgr_terminated.load());
  field(s, "conn_aborted", counters_.conn_aborted.load());
  field(s, "links_added", counters_.links_added.load());
  field(s, "links_lost", counters_.links_lost.load());
  field(s, "failovers", counters_.failovers.load(), false);
  s += "},\"link_groups\":[";
  bool first_g = true;
  for_each_lgr([&](LinkGroup* g) {
    if (!first_g) s += ",";
    first_g = false;
    s += "{";
    field(s, "id", g->id());
    s += "\"role\":" + quote(role_name(g->role())) + ",";
    field(s, "version", g->v2() ? 2 : 1);
    s += "\"state\":" + quote(g->terminating() ? "terminating" : "active") +
         ",\"peer_system_id\":" + quote(hex(g->peer_id.data(), g->peer_id.size())) +
         ",\"peer_gid\":" + quote(gid_text(g->peer_gid)) + ",";
    field(s, "failovers", g->failovers());
    s += "\"links\":[";
    bool first_l = true;
    for (int i = 0; i < kMaxLinks; ++i) {
      Link* l = g->link(i);
      if (l == nullptr) continue;
      if (!first_l) s += ",";
      first_l = false;
      LinkCounters& c = l->counters();
      s += "{";
      field(s, "link_id", l->link_id());
      s += "\"device\":" + quote(l->device()->name) + ",\"state\":" + quote(link_state_name(l->state())) + ",";
      field(s, "qpn", l->qpn());
      field(s, "peer_qpn", l->peer_qpn());
      field(s, "mtu", l->mtu());
      s += "\"local_gid\":" + quote(gid_text(l->device()->gid)) + ",\"peer_link_gid\":" + quote(gid_text(l->peer_gid())) + ",";
      field(s, "cdc_sent", c.cdc_sent.load());
      field(s, "cdc_received", c.cdc_received.load());
      field(s, "llc_sent", c.llc_sent.load());
      field(s, "llc_received", c.llc_received.load());
      field(s, "writes_posted", c.writes_posted.load());
      field(s, "wc_errors", c.wc_errors.load());
      field(s, "flushed", c.flushed.load());
      field(s, "rx_bad_msg", c.rx_bad_msg.load());
      field(s, "rx_unknown_token", c.rx_unknown_token.load(), false);
      s += "}";
    }
    s += "],\"connections\":[";
    bool first_c = true;
    g->for_each_connection([&](Connection* c) {
      if (!first_c) s += ",";
      first_c = false;
      ConnStats& st = c->stats();
      s += "{\"token\":" + quote(code_hex(c->token())) + ",\"tcp\":" + quote(c->label()) +
           ",\"state\":" + quote(c->state_name()) + ",\"mode\":" + quote(g->v2() ? "SMCR-v2" : "SMCR-v1") + ",";
      field(s, "link_id", c->link() ? c->link()->link_id() : 0);
      field(s, "rmb_size", c->rmb() ? c->rmb()->size : 0);
      field(s, "peer_rmb_size", c->peer_rmb_size());
      field(s, "bytes_sent", st.bytes_sent.load());
      field(s, "bytes_received", st.bytes_received.load());
      field(s, "cdc_sent", st.cdc_sent.load());
      field(s, "cdc_received", st.cdc_received.load());
      field(s, "write_blocked", st.write_blocked.load());
      field(s, "cdc_in_flight", c->cdc_pending(), false);
      s += "}";
    });
    s += "]}";
  });
  s += "],\"fallbacks\":{";
  {
    std::lock_guard<std::mutex> lk(fallbacks_.mu);
    bool first = true;
    for (auto& [code, n] : fallbacks_.by_reason) {
      if (!first) s += ",";
      first = false;
      s += quote(code_hex(code)) + ":{\"count\":" + std::to_string(n) +
           ",\"reason\":" + quote(fallback_reason_text(code)) + "}";
    }
    s += "},\"recent_fallbacks\":[";
    first = true;
    for (const FallbackEvent& e : fallbacks_.recent) {
      if (!first) s += ",";
      first = false;
      s += "{\"time_ms\":" + std::to_string(e.when_ms) + ",\"tcp\":" + quote(e.label) +
           ",\"fallback_reason\":" + quote(code_hex(e.reason)) +
           ",\"reason\":" + quote(fallback_reason_text(e.reason));
      if (e.peer_diagnosis != 0) {
        s += ",\"peer_diagnosis\":" + quote(code_hex(e.peer_diagnosis)) +
             ",\"peer_reason\":" + quote(fallback_reason_text(e.peer_diagnosis));
      }
      s += "}";
    }
  }
  s += "]}";
  return s;
}

std::string Runtime::stat_text() {
  std::string s;
  char line[512];
  std::snprintf(line, sizeof(line), "pid %d  device %s  gid %s  ueid %s  capability: %s\n", int(getpid()),
                device()->name.c_str(), gid_text(device()->gid).c_str(), wire::eid_text(cfg_.ueid).c_str(), capability_mode());
  s += line;
  for (auto& d : devs_) {
    std::snprintf(line, sizeof(line), "  device %s  gid %s  %s\n", d->name.c_str(), gid_text(d->gid).c_str(),
                  d->fatal.load() ? "fatal" : d->port_active() ? "active" : "down");
    s += line;
  }
  std::snprintf(line, sizeof(line), "  links added %" PRIu64 "  links lost %" PRIu64 "  failovers %" PRIu64 "\n",
                counters_.links_added.load(), counters_.links_lost.load(), counters_.failovers.load());
  s += line;
  for_each_lgr([&](LinkGroup* g) {
    std::snprintf(line, sizeof(line), "  link group %u  %s  SMC-Rv%d  %s  peer %s\n", g->id(), role_name(g->role()),
                  g->v2() ? 2 : 1, g->terminating() ? "terminating" : "active", gid_text(g->peer_gid).c_str());
    s += line;
    for (int i = 0; i < kMaxLinks; ++i) {
      Link* l = g->link(i);
      if (l == nullptr) continue;
      std::snprintf(line, sizeof(line),
                    "    link %u  %s  QP %u -> %u  %s  cdc %" PRIu64 "/%" PRIu64 "  llc %" PRIu64 "/%" PRIu64
                    "  errors %" PRIu64 "\n",
                    l->link_id(), l->device()->name.c_str(), l->qpn(), l->peer_qpn(), link_state_name(l->state()),
                    l->counters().cdc_sent.load(), l->counters().cdc_received.load(), l->counters().llc_sent.load(),
                    l->counters().llc_received.load(), l->counters().wc_errors.load());
      s += line;
    }
    g->for_each_connection([&](Connection* c) {
      const Link* on = c->link();
      std::snprintf(line, sizeof(line), "    conn %08x  %s  SMC-Rv%d  link %u  %s  sent %" PRIu64 "  received %" PRIu64 "\n",
                    c->token(), c->label().c_str(), g->v2() ? 2 : 1, on != nullptr ? unsigned(on->link_id()) : 0u,
                    c->state_name().c_str(), c->stats().bytes_sent.load(), c->stats().bytes_received.load());
      s += line;
    });
  });
  std::lock_guard<std::mutex> lk(fallbacks_.mu);
  for (auto& [code, n] : fallbacks_.by_reason) {
    std::snprintf(line, sizeof(line), "  fallback %08x  %s: %" PRIu64 "\n", code, fallback_reason_text(code), n);
    s += line;
  }
  for (const FallbackEvent& e : fallbacks_.recent) {
    std::snprintf(line, sizeof(line), "    %s  TCP  %08x %s", e.label.c_str(), e.reason, fallback_reason_text(e.reason));
    s += line;
    if (e.peer_diagnosis != 0) {
      std::snprintf(line, sizeof(line), "  (peer: %08x %s)", e.peer_diagnosis, fallback_reason_text(e.peer_diagnosis));
      s += line;
    }
    s += "\n";
  }
  return s;
}

namespace {

// This process's network namespace (the inode of /proc/self/ns/net).
std::string netns_id() {
  struct stat st {};
  if (stat("/proc/self/ns/net", &st) != 0) return "0";
  return std::to_string(uint64_t(st.st_ino));
}

std::string listen_dir() { return Runtime::stat_dir() + "/listen"; }

}  // namespace

void Runtime::register_listener(uint16_t port) {
  const std::string dir = stat_dir();
  mkdir(dir.c_str(), 0700);
  mkdir(listen_dir().c_str(), 0700);
  const std::string f =
      listen_dir() + "/" + netns_id() + "-" + std::to_string(port) + "-" + std::to_string(getpid());
  const int fd = open(f.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) {
    SMC_LOG("cannot announce port %u in %s: %s", port, f.c_str(), std::strerror(errno));
    return;
  }
  close(fd);
  std::lock_guard<std::mutex> lk(listen_mu_);
  listen_files_.push_back(f);
}

void Runtime::unregister_listener(uint16_t port) {
  const std::string f =
      listen_dir() + "/" + netns_id() + "-" + std::to_string(port) + "-" + std::to_string(getpid());
  unlink(f.c_str());
  std::lock_guard<std::mutex> lk(listen_mu_);
  std::erase(listen_files_, f);
}

void Runtime::unregister_all_listeners() {
  std::lock_guard<std::mutex> lk(listen_mu_);
  for (const std::string& f : listen_files_) unlink(f.c_str());
  listen_files_.clear();
}

bool Runtime::peer_may_speak_smc(bool capability_local, const sockaddr* dst, socklen_t len) {
  if (!capability_local) return true;
  if (dst->sa_family != AF_INET || len < socklen_t(sizeof(sockaddr_in))) return true;
  const auto* in = reinterpret_cast<const sockaddr_in*>(dst);
  if ((ntohl(in->sin_addr.s_addr) >> 24) != 127) return true;  // another host: cannot know here
  const std::string prefix = netns_id() + "-" + std::to_string(ntohs(in->sin_port)) + "-";
  DIR* d = opendir(listen_dir().c_str());
  if (d == nullptr) return false;
  bool found = false;
  while (dirent* e = readdir(d)) {
    const std::string n = e->d_name;
    if (n.compare(0, prefix.size(), prefix) != 0) continue;
    const long pid = std::strtol(n.c_str() + prefix.size(), nullptr, 10);
    if (pid > 0 && (kill(pid_t(pid), 0) == 0 || errno == EPERM)) {
      found = true;
      break;
    }
    unlinkat(dirfd(d), n.c_str(), 0);  // its process is gone
  }
  closedir(d);
  return found;
}

bool Runtime::enable_stat_socket(std::string* err) {
  const std::string dir = stat_dir();
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    *err = "mkdir " + dir + ": " + std::strerror(errno);
    return false;
  }
  stat_path_ = dir + "/" + std::to_string(getpid()) + ".sock";
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (stat_path_.size() >= sizeof(sa.sun_path)) {
    *err = "stat socket path too long: " + stat_path_;
    return false;
  }
  std::strcpy(sa.sun_path, stat_path_.c_str());
  unlink(stat_path_.c_str());  // a previous process of the same pid
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0 || listen(fd, 8) != 0) {
    *err = "stat socket " + stat_path_ + ": " + std::strerror(errno);
    if (fd >= 0) close(fd);
    return false;
  }
  stat_fd_ = fd;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = &stat_fd_;
  epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev);
  return true;
}

void Runtime::serve_stat() {
  for (;;) {
    const int c = accept4(stat_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) return;
    // The request is one word, "json" or "text"; a reader that stalls gets
    // cut off: never block the progress thread long.
    timeval tv{0, 200000};
    setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char req[8] = {};
    const ssize_t r = recv(c, req, sizeof(req) - 1, 0);
    const std::string js = r >= 4 && std::strncmp(req, "text", 4) == 0 ? stat_text() : stat_json() + "\n";
    size_t off = 0;
    while (off < js.size()) {
      const ssize_t n = send(c, js.data() + off, js.size() - off, MSG_NOSIGNAL);
      if (n <= 0) break;
      off += size_t(n);
    }
    close(c);
  }
}

}  // namespace droce::smc
