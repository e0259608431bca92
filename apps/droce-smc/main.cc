// droce-smc: SMC-R server, client and stat tool on droce's SMC-R (smc/smc.h),
// with the same exchanges over kernel TCP for comparison.
//
//   droce-smc server --port P [--bind ADDR] [--transport smc|tcp] [--count K]
//                    [--protocol droce|smcbench|sink|echo] [--expect eof|reset]
//                    [--send-first N] [--json]
//   droce-smc client --connect HOST:P --mode stream|pingpong|echo --bytes N --size S
//                    [--transport smc|tcp] [--protocol droce|raw] [--close orderly|abort]
//                    [--pause-ms MS] [--json]
//   droce-smc stat [--json]
//   droce-smc run CMD ARGS...   (CMD with libdroce-smc-preload.so: SMC-R for its TCP sockets)
//
// The client opens each connection with a 24-byte request (magic, mode,
// size, bytes); the server then sinks (stream: and answers the byte count at
// the end), echoes each message (pingpong) or echoes the stream (echo).
//
// For peers that are not droce-smc (the Linux kernel's AF_SMC programs of
// ../shared/kernel-peer, smcbench) there is no request: `--protocol raw` on
// the client, and on the server `sink` (read to the end, check the pattern
// byte i = i % 251), `echo` (write back every byte) or `smcbench` (smcbench's
// 12-byte header: 'S' counts a stream and answers the total, 'P' echoes one
// byte at a time).
#include <arpa/inet.h>
#include <dirent.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "smc/runtime.h"
#include "smc/smc.h"
#include "smc/socket.h"

namespace {

using Clock = std::chrono::steady_clock;

constexpr uint32_t kMagic = 0x44534D43;  // "DSMC"
enum Mode : uint32_t { kStream = 1, kPingpong = 2, kEcho = 3 };

struct Request {
  uint32_t magic;
  uint32_t mode;
  uint32_t size;
  uint32_t reserved;
  uint64_t bytes;
};
static_assert(sizeof(Request) == 24);

[[noreturn]] void usage(const char* why) {
  if (why != nullptr) std::fprintf(stderr, "droce-smc: %s\n", why);
  std::fprintf(stderr,
               "usage: droce-smc server --port P [--bind ADDR] [--transport smc|tcp] [--count K]\n"
               "                        [--protocol droce|smcbench|sink|echo] [--expect eof|reset]\n"
               "                        [--send-first N] [--json]\n"
               "       droce-smc client --connect HOST:P --mode stream|pingpong|echo --bytes N --size S\n"
               "                        [--transport smc|tcp] [--protocol droce|raw] [--close orderly|abort]\n"
               "                        [--pause-ms MS] [--json]\n"
               "       droce-smc stat [--json]\n"
               "       droce-smc run CMD [ARGS...]\n");
  std::exit(2);
}

// One connection through either API.
struct Conn {
  int fd = -1;
  bool smc = false;
  long send(const void* b, size_t n) {
    return smc ? long(smc_send(fd, b, n, MSG_NOSIGNAL)) : long(::send(fd, b, n, MSG_NOSIGNAL));
  }
  long recv(void* b, size_t n) { return smc ? long(smc_recv(fd, b, n, 0)) : long(::recv(fd, b, n, 0)); }
  void close() {
    if (fd < 0) return;
    if (smc) {
      smc_close(fd);
    } else {
      ::close(fd);
    }
    fd = -1;
  }
  bool send_all(const void* b, size_t n) {
    const auto* p = static_cast<const uint8_t*>(b);
    while (n > 0) {
      const long r = send(p, n);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return false;
      p += r;
      n -= size_t(r);
    }
    return true;
  }
  bool recv_all(void* b, size_t n) {
    auto* p = static_cast<uint8_t*>(b);
    while (n > 0) {
      const long r = recv(p, n);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return false;
      p += r;
      n -= size_t(r);
    }
    return true;
  }
};

uint64_t parse_size(const char* s, const char* what) {
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(s, &end);
  if (errno != 0 || end == s || v < 0) usage((std::string("bad ") + what + ": " + s).c_str());
  switch (*end) {
    case 'k': case 'K': v *= 1024; ++end; break;
    case 'm': case 'M': v *= 1024 * 1024; ++end; break;
    case 'g': case 'G': v *= 1024.0 * 1024 * 1024; ++end; break;
    default: break;
  }
  if (*end != '\0') usage((std::string("bad ") + what + ": " + s).c_str());
  return uint64_t(v);
}

// --- server ------------------------------------------------------------------

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop.store(true); }

// smcbench's pattern (../shared/kernel-peer/src/smcbench.c): the byte at
// stream offset i is i % 251, a prime, so a chunk lost or repeated at any
// power-of-two size or offset shows.
constexpr unsigned kPatMod = 251;

// pat[j] = j % 251 for j < chunk + 251: any chunk of the stream is a slice.
std::vector<uint8_t> pattern_buffer(size_t chunk) {
  std::vector<uint8_t> p(chunk + kPatMod);
  for (size_t j = 0; j < p.size(); ++j) p[j] = uint8_t(j % kPatMod);
  return p;
}

const char* end_name(long n, int err, char* b, size_t bn) {
  if (n == 0) return "eof";
  if (err == ECONNRESET) return "reset";
  std::snprintf(b, bn, "error(%s)", std::strerror(err));
  return b;
}

enum class Protocol { kDroce, kSmcbench, kSink, kEcho };

struct ServerOpts {
  Protocol protocol = Protocol::kDroce;
  std::string expect = "eof";  // sink: how the stream must end
  uint64_t send_first = 0;     // sink: bytes written to the peer before reading
  bool json = false;
};

std::atomic<int> g_failed{0};
std::mutex g_out_mu;

// How the connection runs: SMC-R (version) or TCP (reason, peer diagnosis).
std::string transport_fields(const Conn& c) {
  if (!c.smc) return "\"transport\":\"tcp\"";
  smc_info info{};
  smc_get_info(c.fd, &info);
  char b[256];
  if (info.transport == SMC_TRANSPORT_SMC) {
    std::snprintf(b, sizeof(b), "\"transport\":\"smc\",\"version\":%d,\"first_contact\":%s,\"token\":%u",
                  info.version, info.first_contact ? "true" : "false", info.token);
  } else {
    std::snprintf(b, sizeof(b), "\"transport\":\"tcp\",\"fallback_reason\":\"%08x\",\"peer_diagnosis\":\"%08x\"",
                  info.fallback_reason, info.peer_diagnosis);
  }
  return b;
}

void report(const ServerOpts& o, const std::string& fields, bool ok) {
  if (!ok) g_failed.fetch_add(1);
  std::lock_guard<std::mutex> lk(g_out_mu);
  if (o.json) {
    std::printf("{%s,\"ok\":%s}\n", fields.c_str(), ok ? "true" : "false");
  } else {
    std::printf("droce-smc server: %s%s\n", fields.c_str(), ok ? "" : "  FAILED");
  }
  std::fflush(stdout);
}

void serve_sink(Conn c, const ServerOpts& o) {
  const std::string tf = transport_fields(c);
  const size_t sz = 65536;
  const std::vector<uint8_t> pat = pattern_buffer(sz);
  bool sent_ok = true;
  if (o.send_first > 0) {
    // Data the peer does not read: its close then is an abort (Linux's
    // smc_close_final with bytes_to_rcv).
    std::vector<uint8_t> b(size_t(std::min<uint64_t>(o.send_first, 1u << 20)), 0x5a);
    for (uint64_t left = o.send_first; left > 0 && sent_ok;) {
      const size_t n = size_t(std::min<uint64_t>(left, b.size()));
      sent_ok = c.send_all(b.data(), n);
      left -= n;
    }
  }
  std::vector<uint8_t> buf(sz);
  uint64_t total = 0, bad_at = UINT64_MAX;
  long n;
  int err = 0;
  const auto t0 = Clock::now();
  for (;;) {
    n = c.recv(buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      err = errno;
      break;
    }
    if (bad_at == UINT64_MAX && std::memcmp(buf.data(), pat.data() + total % kPatMod, size_t(n)) != 0) {
      for (long j = 0; j < n; ++j) {
        if (buf[size_t(j)] != pat[(total + uint64_t(j)) % kPatMod]) {
          bad_at = total + uint64_t(j);
          break;
        }
      }
    }
    total += uint64_t(n);
  }
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  char eb[96];
  const char* end = end_name(n, err, eb, sizeof(eb));
  char f[512];
  char pb[64];
  if (bad_at == UINT64_MAX) {
    std::snprintf(pb, sizeof(pb), "ok");
  } else {
    std::snprintf(pb, sizeof(pb), "BAD(first_bad_offset=%" PRIu64 ")", bad_at);
  }
  std::snprintf(f, sizeof(f),
                "\"protocol\":\"sink\",%s,\"bytes\":%" PRIu64 ",\"seconds\":%.3f,\"MBps\":%.1f,\"pattern\":\"%s\","
                "\"end\":\"%s\",\"sent_first\":%" PRIu64,
                tf.c_str(), total, s, s > 0 ? double(total) / 1e6 / s : 0.0, pb, end, sent_ok ? o.send_first : 0);
  report(o, f, bad_at == UINT64_MAX && std::strncmp(end, o.expect.c_str(), o.expect.size()) == 0);
  c.close();
}

void serve_echo(Conn c, const ServerOpts& o) {
  const std::string tf = transport_fields(c);
  std::vector<uint8_t> buf(65536);
  uint64_t total = 0;
  long n;
  int err = 0;
  for (;;) {
    n = c.recv(buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      err = errno;
      break;
    }
    if (!c.send_all(buf.data(), size_t(n))) {
      n = -1;
      err = errno;
      break;
    }
    total += uint64_t(n);
  }
  char eb[96];
  const char* end = end_name(n, err, eb, sizeof(eb));
  char f[512];
  std::snprintf(f, sizeof(f), "\"protocol\":\"echo\",%s,\"bytes\":%" PRIu64 ",\"end\":\"%s\"", tf.c_str(), total, end);
  report(o, f, std::strncmp(end, o.expect.c_str(), o.expect.size()) == 0);
  c.close();
}

// smcbench's server (smcbench.c server()): a 12-byte header {mode 'S'|'P',
// pad[3], u32 msg, u32 iters}, then 'S': count to EOF and answer the 8-byte
// total; 'P': echo one byte at a time until EOF.
void serve_smcbench(Conn c, const ServerOpts& o) {
  const std::string tf = transport_fields(c);
  struct {
    char mode;
    char pad[3];
    uint32_t msg;
    uint32_t iters;
  } h{};
  static_assert(sizeof(h) == 12);
  char f[512];
  if (!c.recv_all(&h, sizeof(h))) {
    std::snprintf(f, sizeof(f), "\"protocol\":\"smcbench\",%s,\"error\":\"short header\"", tf.c_str());
    report(o, f, false);
    c.close();
    return;
  }
  uint64_t total = 0;
  if (h.mode == 'S') {
    std::vector<uint8_t> buf(65536);
    for (;;) {
      const long n = c.recv(buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      total += uint64_t(n);
    }
    const bool ok = c.send_all(&total, sizeof(total));
    std::snprintf(f, sizeof(f), "\"protocol\":\"smcbench\",\"mode\":\"stream\",%s,\"bytes\":%" PRIu64, tf.c_str(),
                  total);
    report(o, f, ok);
  } else if (h.mode == 'P') {
    uint8_t b;
    while (c.recv_all(&b, 1) && c.send_all(&b, 1)) ++total;
    std::snprintf(f, sizeof(f), "\"protocol\":\"smcbench\",\"mode\":\"pingpong\",%s,\"echoed\":%" PRIu64,
                  tf.c_str(), total);
    report(o, f, total > 0);
  } else {
    std::snprintf(f, sizeof(f), "\"protocol\":\"smcbench\",%s,\"error\":\"unknown mode\"", tf.c_str());
    report(o, f, false);
  }
  c.close();
}

void serve(Conn c) {
  Request rq{};
  if (!c.recv_all(&rq, sizeof(rq)) || rq.magic != kMagic || rq.size == 0 || rq.size > (64u << 20)) {
    c.close();
    return;
  }
  std::vector<uint8_t> buf(std::max<uint32_t>(rq.size, 65536));
  switch (rq.mode) {
    case kStream: {
      uint64_t got = 0;
      while (got < rq.bytes) {
        const long n = c.recv(buf.data(), std::min<uint64_t>(buf.size(), rq.bytes - got));
        if (n <= 0) break;
        got += uint64_t(n);
      }
      c.send_all(&got, sizeof(got));
      break;
    }
    case kPingpong:
      while (c.recv_all(buf.data(), rq.size) && c.send_all(buf.data(), rq.size)) {
      }
      break;
    case kEcho:
      for (;;) {
        const long n = c.recv(buf.data(), buf.size());
        if (n <= 0 || !c.send_all(buf.data(), size_t(n))) break;
      }
      break;
    default:
      break;
  }
  // Wait for the client's close, so that the close is the client's (active).
  uint8_t b;
  while (c.recv(&b, 1) > 0) {
  }
  c.close();
}

void serve_with(Conn c, const ServerOpts& o) {
  switch (o.protocol) {
    case Protocol::kDroce:
      serve(c);
      break;
    case Protocol::kSmcbench:
      serve_smcbench(c, o);
      break;
    case Protocol::kSink:
      serve_sink(c, o);
      break;
    case Protocol::kEcho:
      serve_echo(c, o);
      break;
  }
}

int run_server(int argc, char** argv) {
  int port = -1;
  long count = -1;
  bool smc = true;
  std::string bind_addr = "127.0.0.1";
  ServerOpts o;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--port" && i + 1 < argc) {
      port = std::atoi(argv[++i]);
    } else if (a == "--bind" && i + 1 < argc) {
      bind_addr = argv[++i];
    } else if (a == "--transport" && i + 1 < argc) {
      const std::string t = argv[++i];
      if (t != "smc" && t != "tcp") usage("--transport is smc or tcp");
      smc = t == "smc";
    } else if (a == "--count" && i + 1 < argc) {
      count = std::atol(argv[++i]);
    } else if (a == "--protocol" && i + 1 < argc) {
      const std::string p = argv[++i];
      if (p == "droce") {
        o.protocol = Protocol::kDroce;
      } else if (p == "smcbench") {
        o.protocol = Protocol::kSmcbench;
      } else if (p == "sink") {
        o.protocol = Protocol::kSink;
      } else if (p == "echo") {
        o.protocol = Protocol::kEcho;
      } else {
        usage("--protocol is droce, smcbench, sink or echo");
      }
    } else if (a == "--expect" && i + 1 < argc) {
      o.expect = argv[++i];
      if (o.expect != "eof" && o.expect != "reset") usage("--expect is eof or reset");
    } else if (a == "--send-first" && i + 1 < argc) {
      o.send_first = parse_size(argv[++i], "--send-first");
    } else if (a == "--json") {
      o.json = true;
    } else {
      usage(("unknown server argument " + a).c_str());
    }
  }
  if (port < 0 || port > 65535) usage("server needs --port P");
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa{};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(uint16_t(port));
  if (inet_pton(AF_INET, bind_addr.c_str(), &addr.sin_addr) != 1) usage("--bind needs an IPv4 address");
  int one = 1;
  int lfd;
  if (smc) {
    lfd = smc_socket(0);
    if (lfd < 0 || smc_setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        smc_bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || smc_listen(lfd, 64) != 0) {
      std::fprintf(stderr, "droce-smc: listen on %s:%d: %s\n", bind_addr.c_str(), port, std::strerror(errno));
      return 1;
    }
  } else {
    lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(lfd, 64) != 0) {
      std::fprintf(stderr, "droce-smc: listen on %s:%d: %s\n", bind_addr.c_str(), port, std::strerror(errno));
      return 1;
    }
  }
  if (!o.json) {
    std::printf("droce-smc server: listening on %s:%d (%s)\n", bind_addr.c_str(), port, smc ? "smc" : "tcp");
    std::fflush(stdout);
  }
  std::vector<std::thread> workers;
  while (!g_stop.load() && count != 0) {
    pollfd p{lfd, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    Conn c;
    c.smc = smc;
    c.fd = smc ? smc_accept(lfd, nullptr, nullptr, SOCK_CLOEXEC) : ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c.fd < 0) continue;
    if (!smc) ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (smc) {
      smc_info info{};
      smc_get_info(c.fd, &info);
      if (info.transport == SMC_TRANSPORT_TCP) {
        // Data over the fallback TCP socket: the descriptor is the socket.
        ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      }
    }
    workers.emplace_back(serve_with, c, o);
    if (count > 0) --count;
  }
  for (auto& t : workers) t.join();
  if (smc) {
    smc_close(lfd);
  } else {
    ::close(lfd);
  }
  return g_failed.load() == 0 ? 0 : 1;
}

// --- client ------------------------------------------------------------------

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, size_t(p / 100.0 * double(v.size())));
  return v[i];
}

int run_client(int argc, char** argv) {
  std::string target, mode_s;
  uint64_t bytes = 0, size = 0;
  bool smc = true, json = false, raw = false, abort_close = false;
  long pause_ms = 0;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--pause-ms" && i + 1 < argc) {
      pause_ms = std::atol(argv[++i]);
    } else if (a == "--protocol" && i + 1 < argc) {
      const std::string p = argv[++i];
      if (p != "droce" && p != "raw") usage("client --protocol is droce or raw");
      raw = p == "raw";
    } else if (a == "--close" && i + 1 < argc) {
      const std::string p = argv[++i];
      if (p != "orderly" && p != "abort") usage("--close is orderly or abort");
      abort_close = p == "abort";
    } else if (a == "--connect" && i + 1 < argc) {
      target = argv[++i];
    } else if (a == "--mode" && i + 1 < argc) {
      mode_s = argv[++i];
    } else if (a == "--bytes" && i + 1 < argc) {
      bytes = parse_size(argv[++i], "--bytes");
    } else if (a == "--size" && i + 1 < argc) {
      size = parse_size(argv[++i], "--size");
    } else if (a == "--transport" && i + 1 < argc) {
      const std::string t = argv[++i];
      if (t != "smc" && t != "tcp") usage("--transport is smc or tcp");
      smc = t == "smc";
    } else if (a == "--json") {
      json = true;
    } else {
      usage(("unknown client argument " + a).c_str());
    }
  }
  Mode mode;
  if (mode_s == "stream") {
    mode = kStream;
  } else if (mode_s == "pingpong") {
    mode = kPingpong;
  } else if (mode_s == "echo") {
    mode = kEcho;
  } else {
    usage("--mode is stream, pingpong or echo");
  }
  if (size == 0 || size > (64u << 20)) usage("--size must be 1 .. 64M");
  if (bytes == 0) usage("--bytes must be > 0");
  if (!raw && abort_close) usage("--close abort needs --protocol raw --mode stream");
  if (abort_close && mode != kStream) usage("--close abort needs --mode stream");
  const size_t colon = target.rfind(':');
  if (colon == std::string::npos) usage("--connect HOST:PORT");
  addrinfo hints{}, *ai = nullptr;
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(target.substr(0, colon).c_str(), target.substr(colon + 1).c_str(), &hints, &ai) != 0 ||
      ai == nullptr) {
    usage(("cannot resolve " + target).c_str());
  }
  signal(SIGPIPE, SIG_IGN);
  Conn c;
  c.smc = smc;
  int one = 1;
  const auto t_connect = Clock::now();
  if (smc) {
    c.fd = smc_socket(SOCK_CLOEXEC);
    if (c.fd < 0 || smc_connect(c.fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      std::fprintf(stderr, "droce-smc: connect %s: %s\n", target.c_str(), std::strerror(errno));
      return 1;
    }
  } else {
    c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (::connect(c.fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      std::fprintf(stderr, "droce-smc: connect %s: %s\n", target.c_str(), std::strerror(errno));
      return 1;
    }
  }
  const double connect_ms = std::chrono::duration<double, std::milli>(Clock::now() - t_connect).count();
  freeaddrinfo(ai);
  std::string transport = "tcp";
  std::string extra;
  if (smc) {
    smc_info info{};
    smc_get_info(c.fd, &info);
    if (info.transport == SMC_TRANSPORT_SMC) {
      transport = "smc";
      extra = ",\"version\":" + std::to_string(info.version) +
              ",\"first_contact\":" + (info.first_contact ? "true" : "false");
    } else {
      char code[16];
      std::snprintf(code, sizeof(code), "%08x", info.fallback_reason);
      extra = std::string(",\"fallback_reason\":\"") + code + "\",\"fallback_text\":\"" +
              smc_reason_text(info.fallback_reason) + "\"";
      if (info.peer_diagnosis != 0) {
        std::snprintf(code, sizeof(code), "%08x", info.peer_diagnosis);
        extra += std::string(",\"peer_diagnosis\":\"") + code + "\",\"peer_text\":\"" +
                 smc_reason_text(info.peer_diagnosis) + "\"";
      }
      if (!json) {
        std::fprintf(stderr, "droce-smc: using TCP: %s (%08x)\n", smc_reason_text(info.fallback_reason),
                     info.fallback_reason);
      }
      ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
  } else {
    ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  Request rq{kMagic, mode, uint32_t(size), 0, bytes};
  if (!raw && !c.send_all(&rq, sizeof(rq))) {
    std::fprintf(stderr, "droce-smc: sending the request failed: %s\n", std::strerror(errno));
    return 1;
  }
  std::vector<uint8_t> buf(size), back(size);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = uint8_t(i * 131 + 7);
  char out[1024];
  bool ok = true;
  if (mode == kStream && raw) {
    // smcbench's pattern (i % 251), then an orderly close (shutdown, wait for
    // the peer's EOF) or an abort: close while the peer's bytes lie unread,
    // which Linux's smc_close_final and droce's close turn into an abort.
    const std::vector<uint8_t> pat = pattern_buffer(size);
    const auto t0 = Clock::now();
    uint64_t sent = 0;
    while (sent < bytes && ok) {
      const size_t n = size_t(std::min<uint64_t>(size, bytes - sent));
      ok = c.send_all(pat.data() + sent % kPatMod, n);
      sent += n;
    }
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    std::string how;
    if (!ok) {
      how = std::string("error(") + std::strerror(errno) + ")";
    } else if (abort_close) {
      // Bounded wait (10 s) for something unread from the peer (an echo).
      uint8_t b;
      long n = -1;
      for (int i = 0; i < 1000; ++i) {
        n = c.smc ? long(smc_recv(c.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT))
                  : long(::recv(c.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT));
        if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) break;
        pollfd p{c.fd, POLLIN, 0};
        ::poll(&p, 1, 10);
      }
      how = n > 0 ? "abort" : "abort(nothing unread: orderly)";
      ok = n > 0;
    } else {
      c.smc ? smc_shutdown(c.fd, SHUT_WR) : ::shutdown(c.fd, SHUT_WR);
      uint8_t b[256];
      long n;
      while ((n = c.recv(b, sizeof(b))) > 0 || (n < 0 && errno == EINTR)) {
      }
      how = n == 0 ? "orderly(peer eof)" : std::string("orderly(peer error: ") + std::strerror(errno) + ")";
      ok = n == 0;
    }
    const double mbps = double(sent) / 1e6 / s;
    if (json) {
      std::snprintf(out, sizeof(out),
                    "{\"transport\":\"%s\"%s,\"mode\":\"stream\",\"protocol\":\"raw\",\"bytes\":%" PRIu64
                    ",\"size\":%" PRIu64 ",\"seconds\":%.6f,\"MBps\":%.1f,\"close\":\"%s\",\"connect_ms\":%.3f,"
                    "\"ok\":%s}\n",
                    transport.c_str(), extra.c_str(), sent, size, s, mbps, how.c_str(), connect_ms,
                    ok ? "true" : "false");
    } else {
      std::snprintf(out, sizeof(out), "%s stream: %" PRIu64 " bytes in %.3f s = %.1f MB/s, close=%s%s\n",
                    transport.c_str(), sent, s, mbps, how.c_str(), ok ? "" : "  FAILED");
    }
  } else if (mode == kStream) {
    const auto t0 = Clock::now();
    uint64_t sent = 0;
    while (sent < bytes && ok) {
      const size_t n = size_t(std::min<uint64_t>(size, bytes - sent));
      ok = c.send_all(buf.data(), n);
      sent += n;
    }
    uint64_t got = 0;
    ok = ok && c.recv_all(&got, sizeof(got)) && got == bytes;
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    const double mbps = double(bytes) / 1e6 / s;
    if (json) {
      std::snprintf(out, sizeof(out),
                    "{\"transport\":\"%s\"%s,\"mode\":\"stream\",\"bytes\":%" PRIu64 ",\"size\":%" PRIu64
                    ",\"seconds\":%.6f,\"MBps\":%.1f,\"connect_ms\":%.3f,\"ok\":%s}\n",
                    transport.c_str(), extra.c_str(), bytes, size, s, mbps, connect_ms, ok ? "true" : "false");
    } else {
      std::snprintf(out, sizeof(out), "%s stream: %" PRIu64 " bytes in %.3f s = %.1f MB/s (writes of %" PRIu64 ")%s\n",
                    transport.c_str(), bytes, s, mbps, size, ok ? "" : "  FAILED");
    }
  } else if (mode == kPingpong) {
    const uint64_t iters = std::max<uint64_t>(1, bytes / size);
    std::vector<double> us;
    us.reserve(iters);
    // A few untimed round trips first (first-touch of buffers, caches).
    for (int w = 0; w < 10 && ok; ++w) ok = c.send_all(buf.data(), size) && c.recv_all(back.data(), size);
    for (uint64_t i = 0; i < iters && ok; ++i) {
      // --pause-ms: the connection idles halfway, long enough for the
      // peers' keepalives (TEST LINK after SMC_TESTLINK_MS / Linux's
      // smcr_testlink_time without receives) to run.
      if (pause_ms > 0 && i == iters / 2) std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
      const auto t0 = Clock::now();
      ok = c.send_all(buf.data(), size) && c.recv_all(back.data(), size);
      us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
    ok = ok && back == buf;
    double sum = 0;
    for (double v : us) sum += v;
    const double avg = us.empty() ? 0 : sum / double(us.size());
    const double p50 = percentile(us, 50), p99 = percentile(us, 99);
    const double mn = us.empty() ? 0 : us.front(), mx = us.empty() ? 0 : us.back();
    if (json) {
      std::snprintf(out, sizeof(out),
                    "{\"transport\":\"%s\"%s,\"mode\":\"pingpong\",\"iterations\":%zu,\"size\":%" PRIu64
                    ",\"p50_us\":%.2f,\"p99_us\":%.2f,\"avg_us\":%.2f,\"min_us\":%.2f,\"max_us\":%.2f,"
                    "\"connect_ms\":%.3f,\"ok\":%s}\n",
                    transport.c_str(), extra.c_str(), us.size(), size, p50, p99, avg, mn, mx, connect_ms,
                    ok ? "true" : "false");
    } else {
      std::snprintf(out, sizeof(out),
                    "%s pingpong: %zu round trips of %" PRIu64 " bytes: p50 %.2f us, p99 %.2f us, avg %.2f us%s\n",
                    transport.c_str(), us.size(), size, p50, p99, avg, ok ? "" : "  FAILED");
    }
  } else {
    // Echo: a writer thread sends a known pattern, this thread reads it
    // back and checks every byte.
    const auto t0 = Clock::now();
    std::atomic<bool> wok{true};
    std::thread writer([&] {
      std::vector<uint8_t> chunk(size);
      uint64_t sent = 0;
      while (sent < bytes) {
        const size_t n = size_t(std::min<uint64_t>(size, bytes - sent));
        for (size_t i = 0; i < n; ++i) chunk[i] = uint8_t((sent + i) * 2654435761u >> 13);
        if (!c.send_all(chunk.data(), n)) {
          wok.store(false);
          return;
        }
        sent += n;
      }
    });
    uint64_t got = 0;
    std::vector<uint8_t> in(std::max<uint64_t>(size, 65536));
    while (got < bytes && ok) {
      const long n = c.recv(in.data(), size_t(std::min<uint64_t>(in.size(), bytes - got)));
      if (n <= 0) {
        ok = false;
        break;
      }
      for (long i = 0; i < n; ++i) {
        if (in[size_t(i)] != uint8_t((got + uint64_t(i)) * 2654435761u >> 13)) ok = false;
      }
      got += uint64_t(n);
    }
    writer.join();
    ok = ok && wok.load();
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (json) {
      std::snprintf(out, sizeof(out),
                    "{\"transport\":\"%s\"%s,\"mode\":\"echo\",\"bytes\":%" PRIu64 ",\"size\":%" PRIu64
                    ",\"seconds\":%.6f,\"MBps\":%.1f,\"verified\":%s,\"connect_ms\":%.3f,\"ok\":%s}\n",
                    transport.c_str(), extra.c_str(), got, size, s, double(got) / 1e6 / s, ok ? "true" : "false",
                    connect_ms, ok ? "true" : "false");
    } else {
      std::snprintf(out, sizeof(out), "%s echo: %" PRIu64 " bytes verified in %.3f s = %.1f MB/s%s\n",
                    transport.c_str(), got, s, double(got) / 1e6 / s, ok ? "" : "  FAILED (data differs)");
    }
  }
  std::fputs(out, stdout);
  std::fflush(stdout);
  c.close();
  return ok ? 0 : 1;
}

// --- stat --------------------------------------------------------------------

int run_stat(int argc, char** argv) {
  bool json = false;
  for (int i = 0; i < argc; ++i) {
    if (std::string(argv[i]) == "--json") {
      json = true;
    } else {
      usage((std::string("unknown stat argument ") + argv[i]).c_str());
    }
  }
  const std::string dir = droce::smc::Runtime::stat_dir();
  std::vector<std::string> socks;
  if (DIR* d = opendir(dir.c_str()); d != nullptr) {
    while (dirent* e = readdir(d)) {
      const std::string n = e->d_name;
      if (n.size() > 5 && n.compare(n.size() - 5, 5, ".sock") == 0) socks.push_back(dir + "/" + n);
    }
    closedir(d);
  }
  std::sort(socks.begin(), socks.end());
  std::string all = json ? "{\"processes\":[" : "";
  bool first = true;
  int found = 0;
  for (const std::string& path : socks) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path.c_str());
    timeval tv{2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
      if (errno == ECONNREFUSED) ::unlink(path.c_str());  // its process is gone
      ::close(fd);
      continue;
    }
    const char* req = json ? "json" : "text";
    (void)!::write(fd, req, 4);
    std::string reply;
    char b[4096];
    ssize_t n;
    while ((n = ::read(fd, b, sizeof(b))) > 0) reply.append(b, size_t(n));
    ::close(fd);
    if (reply.empty()) continue;
    ++found;
    if (json) {
      while (!reply.empty() && (reply.back() == '\n')) reply.pop_back();
      if (!first) all += ",";
      all += reply;
    } else {
      all += reply;
    }
    first = false;
  }
  if (json) {
    all += "]}\n";
  } else if (found == 0) {
    all = "no running droce-smc process (" + dir + ")\n";
  }
  std::fputs(all.c_str(), stdout);
  return 0;
}

// --- run -----------------------------------------------------------------------

// As Linux's smc_run: the program runs with the preload library, found next
// to this binary (../lib/libdroce-smc-preload.so), in front of LD_PRELOAD.
int run_program(int argc, char** argv) {
  if (argc < 1) usage("run needs a program");
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) usage("cannot find droce-smc's own path");
  self[n] = '\0';
  std::string dir(self);
  dir = dir.substr(0, dir.rfind('/'));
  const std::string lib = dir + "/../lib/libdroce-smc-preload.so";
  if (access(lib.c_str(), R_OK) != 0) {
    std::fprintf(stderr, "droce-smc: %s: %s\n", lib.c_str(), std::strerror(errno));
    return 127;
  }
  std::string preload = lib;
  if (const char* old = std::getenv("LD_PRELOAD"); old != nullptr && *old != '\0') preload += std::string(":") + old;
  setenv("LD_PRELOAD", preload.c_str(), 1);
  execvp(argv[0], argv);
  std::fprintf(stderr, "droce-smc: run %s: %s\n", argv[0], std::strerror(errno));
  return 127;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) usage(nullptr);
  const std::string cmd = argv[1];
  if (cmd == "server") return run_server(argc - 2, argv + 2);
  if (cmd == "client") return run_client(argc - 2, argv + 2);
  if (cmd == "stat") return run_stat(argc - 2, argv + 2);
  if (cmd == "run") return run_program(argc - 2, argv + 2);
  usage(("unknown command " + cmd).c_str());
}
