// droce-smc: SMC-R server, client and stat tool on droce's SMC-R (smc/smc.h),
// with the same exchanges over kernel TCP for comparison.
//
//   droce-smc server --port P [--transport smc|tcp] [--count K]
//   droce-smc client --connect HOST:P --mode stream|pingpong|echo --bytes N --size S
//                    [--transport smc|tcp] [--json]
//   droce-smc stat [--json]
//   droce-smc run CMD ARGS...   (CMD with libdroce-smc-preload.so: SMC-R for its TCP sockets)
//
// The client opens each connection with a 24-byte request (magic, mode,
// size, bytes); the server then sinks (stream: and answers the byte count at
// the end), echoes each message (pingpong) or echoes the stream (echo).
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
               "usage: droce-smc server --port P [--transport smc|tcp] [--count K]\n"
               "       droce-smc client --connect HOST:P --mode stream|pingpong|echo --bytes N --size S\n"
               "                        [--transport smc|tcp] [--json]\n"
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

int run_server(int argc, char** argv) {
  int port = -1;
  long count = -1;
  bool smc = true;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--port" && i + 1 < argc) {
      port = std::atoi(argv[++i]);
    } else if (a == "--transport" && i + 1 < argc) {
      const std::string t = argv[++i];
      if (t != "smc" && t != "tcp") usage("--transport is smc or tcp");
      smc = t == "smc";
    } else if (a == "--count" && i + 1 < argc) {
      count = std::atol(argv[++i]);
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
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int one = 1;
  int lfd;
  if (smc) {
    lfd = smc_socket(0);
    if (lfd < 0 || smc_setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        smc_bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || smc_listen(lfd, 64) != 0) {
      std::fprintf(stderr, "droce-smc: listen on 127.0.0.1:%d: %s\n", port, std::strerror(errno));
      return 1;
    }
  } else {
    lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(lfd, 64) != 0) {
      std::fprintf(stderr, "droce-smc: listen on 127.0.0.1:%d: %s\n", port, std::strerror(errno));
      return 1;
    }
  }
  std::printf("droce-smc server: listening on 127.0.0.1:%d (%s)\n", port, smc ? "smc" : "tcp");
  std::fflush(stdout);
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
    workers.emplace_back(serve, c);
    if (count > 0) --count;
  }
  for (auto& t : workers) t.join();
  if (smc) {
    smc_close(lfd);
  } else {
    ::close(lfd);
  }
  return 0;
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
  bool smc = true, json = false;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--connect" && i + 1 < argc) {
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
  if (!c.send_all(&rq, sizeof(rq))) {
    std::fprintf(stderr, "droce-smc: sending the request failed: %s\n", std::strerror(errno));
    return 1;
  }
  std::vector<uint8_t> buf(size), back(size);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = uint8_t(i * 131 + 7);
  char out[1024];
  bool ok = true;
  if (mode == kStream) {
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
