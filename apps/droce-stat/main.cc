// droce-stat: the counters of a running droce process, read from outside it
// through DPDK's telemetry socket (the /droce/ports, /droce/qps and
// /droce/qp,<qpn> commands of nic/telemetry.h).
//
//   droce-stat [--json] [--file-prefix P | --pid N]
//
// Which process: --file-prefix P reads <runtime dir>/dpdk/P; --pid N the
// default prefix droce gives process N (droce-N-<time>). Without either,
// DPDK's default prefix "rte" when a process listens there (DROCE_EAL_ARGS
// without --file-prefix), else the one process with a telemetry socket
// (droce's embedded default EAL arguments); with several, they are listed.
#include <sys/types.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "apps/droce-stat/json.h"
#include "apps/droce-stat/telemetry_client.h"

namespace {

using droce::stat::Json;
using droce::stat::TelemetryClient;

[[noreturn]] void usage(const char* why) {
  if (why != nullptr) std::fprintf(stderr, "droce-stat: %s\n", why);
  std::fprintf(stderr,
               "usage: droce-stat [--json] [--file-prefix P | --pid N]\n"
               "  --json           one JSON object: pid, file_prefix, socket, ports, qps\n"
               "  --file-prefix P  the process started with DPDK's --file-prefix P\n"
               "                   (default: \"rte\" if a process runs there, else the only\n"
               "                   DPDK process with a telemetry socket)\n"
               "  --pid N          the process N, started with droce's default EAL arguments\n");
  std::exit(2);
}

int fail(const std::string& what) {
  std::fprintf(stderr, "droce-stat: %s\n", what.c_str());
  return 1;
}

struct Target {
  std::string prefix;
  std::string path;
};

// Picks the socket to read (see the file comment); false with *error.
bool choose_target(const std::string& prefix, long pid, Target* t, std::string* error) {
  if (!prefix.empty()) {
    *t = {prefix, droce::stat::socket_path(prefix)};
    return true;
  }
  const std::vector<droce::stat::Candidate> live = droce::stat::live_sockets();
  if (pid > 0) {
    const std::string want = "droce-" + std::to_string(pid) + "-";
    for (const auto& c : live) {
      if (c.prefix.compare(0, want.size(), want) == 0 || c.pid == pid) {
        *t = {c.prefix, c.path};
        return true;
      }
    }
    *error = "no DPDK telemetry socket of process " + std::to_string(pid) + " under " +
             droce::stat::dpdk_runtime_base() +
             " (was it started with --no-telemetry, or with another user's runtime directory?)";
    return false;
  }
  const std::string rte = droce::stat::socket_path(droce::stat::kDefaultFilePrefix);
  for (const auto& c : live) {
    if (c.prefix == droce::stat::kDefaultFilePrefix) {
      *t = {c.prefix, c.path};
      return true;
    }
  }
  if (live.size() == 1) {
    *t = {live[0].prefix, live[0].path};
    return true;
  }
  if (live.empty()) {
    *error = "no droce process found: nothing listens at " + rte +
             " (DPDK's default file prefix), and no other DPDK telemetry socket under " +
             droce::stat::dpdk_runtime_base() +
             " accepts a connection. Is the process running, with telemetry on (no "
             "--no-telemetry in DROCE_EAL_ARGS), as this user?";
    return false;
  }
  *error = "nothing listens at " + rte + ", and " + std::to_string(live.size()) +
           " DPDK processes have telemetry sockets; choose one with --file-prefix P or --pid N:";
  for (const auto& c : live) {
    *error += "\n  --file-prefix " + c.prefix + "   (pid " + std::to_string(c.pid) + ", " +
              (c.app.empty() ? std::string("?") : c.app) + ")";
  }
  return false;
}

// Sends command; the value under the command's own name in the reply ({"/droce/ports": ...}).
bool query(TelemetryClient& client, const std::string& command, Json* out, std::string* error) {
  std::string reply;
  if (!client.query(command, &reply, error)) return false;
  Json j;
  std::string perr;
  if (!droce::stat::parse_json(reply, &j, &perr) || !j.is_object()) {
    *error = command + ": reply is not JSON (" + perr + "): " + reply.substr(0, 200);
    return false;
  }
  const std::string name = command.substr(0, command.find(','));
  const Json* v = j.find(name);
  if (v == nullptr) {
    *error = command + ": unexpected reply " + reply.substr(0, 200);
    return false;
  }
  *out = *v;
  return true;
}

// "name value" pairs of the non-zero counters of an object, wrapped.
void print_counters(const char* title, const Json* counters) {
  if (counters == nullptr || !counters->is_object()) return;
  std::string line = std::string("    ") + title + ":";
  const size_t indent = line.size();
  bool any = false;
  std::string out;
  for (const auto& [k, v] : counters->obj) {
    if (v.kind != Json::Kind::kNumber || v.num == "0") continue;
    const std::string item = " " + k + " " + v.num;
    if (any && line.size() + item.size() > 100) {
      out += line + "\n";
      line = std::string(indent, ' ');
    }
    line += item;
    any = true;
  }
  if (!any) line += " (all 0)";
  std::printf("%s%s\n", out.c_str(), line.c_str());
}

void print_human(const Target& t, pid_t pid, const Json& ports, const Json& qps) {
  std::printf("droce process %d (file prefix %s, %s)\n", int(pid), t.prefix.c_str(),
              t.path.c_str());
  if (ports.obj.empty()) std::printf("  no droce device is open in this process\n");
  for (const auto& [port_id, p] : ports.obj) {
    const std::string dev = p.string_at("device");
    std::printf("\nport %s: %s%s%s  %s  %s  link %s%s  %llu QPs\n", port_id.c_str(),
                dev.empty() ? "" : dev.c_str(), dev.empty() ? "" : " on ",
                p.string_at("ethdev").c_str(), p.string_at("mac").c_str(),
                p.string_at("ipv4").c_str(), p.u64("link_up") ? "up" : "down",
                p.u64("removed") ? ", removed" : "", (unsigned long long)p.u64("qps"));
    print_counters("port", p.find("port"));
    print_counters("engine", p.find("engine"));
    print_counters("parse_drops", p.find("parse_drops"));
    print_counters("port_drops", p.find("port_drops"));
    print_counters("faults", p.find("faults"));
    print_counters("gsi", p.find("gsi"));
    const Json* port_qps = qps.find(port_id);
    if (port_qps == nullptr) continue;
    for (const auto& [qpn, q] : port_qps->obj) {
      std::printf("  qp %s: %s %s", qpn.c_str(), q.string_at("type").c_str(),
                  q.string_at("state").c_str());
      if (q.string_at("type") != "UD") {
        std::printf(" -> qp %llu at %s", (unsigned long long)q.u64("dest_qpn"),
                    q.string_at("peer_ipv4").c_str());
      }
      std::printf("\n");
      print_counters("counters", q.find("counters"));
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  bool json = false;
  std::string prefix;
  long pid = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--json") {
      json = true;
    } else if (a == "--file-prefix" && i + 1 < argc) {
      prefix = argv[++i];
      if (prefix.empty()) usage("--file-prefix needs a name");
    } else if (a.rfind("--file-prefix=", 0) == 0) {
      prefix = a.substr(14);
      if (prefix.empty()) usage("--file-prefix needs a name");
    } else if (a == "--pid" && i + 1 < argc) {
      char* end = nullptr;
      pid = std::strtol(argv[++i], &end, 10);
      if (*end != '\0' || pid <= 0) usage("--pid needs a process id");
    } else if (a == "-h" || a == "--help") {
      usage(nullptr);
    } else {
      usage(("unknown argument " + a).c_str());
    }
  }
  if (!prefix.empty() && pid > 0) usage("--file-prefix and --pid choose the same thing: give one");

  Target t;
  std::string error;
  if (!choose_target(prefix, pid, &t, &error)) return fail(error);
  TelemetryClient client;
  if (!client.connect(t.path, &error)) return fail(error);

  Json ports, qp_lists;
  if (!query(client, "/droce/ports", &ports, &error)) return fail(error);
  if (!query(client, "/droce/qps", &qp_lists, &error)) return fail(error);
  if (!ports.is_object() || !qp_lists.is_object()) {
    return fail("process " + std::to_string(client.pid()) + " (" + t.path +
                ") does not answer /droce/ports: it is a DPDK process, but not droce's, or a "
                "droce older than its telemetry commands");
  }
  // Every QP's counters: /droce/qp,<qpn> answers for each device with that
  // number, so each number is asked once. A QP destroyed meanwhile is left out.
  Json qps = Json::object();
  std::map<uint64_t, bool> asked;
  for (const auto& [port_id, list] : qp_lists.obj) qps.set(port_id, Json::object());
  for (const auto& [port_id, list] : qp_lists.obj) {
    const Json* qpns = list.find("qpns");
    if (qpns == nullptr) continue;
    for (const Json& n : qpns->arr) {
      const uint64_t qpn = std::strtoull(n.num.c_str(), nullptr, 10);
      if (asked[qpn]) continue;
      asked[qpn] = true;
      Json per_port;
      if (!query(client, "/droce/qp," + std::to_string(qpn), &per_port, &error)) {
        return fail(error);
      }
      for (const auto& [pid_key, q] : per_port.obj) {
        Json* dst = nullptr;
        for (auto& [k, v] : qps.obj) {
          if (k == pid_key) dst = &v;
        }
        if (dst == nullptr) {
          qps.set(pid_key, Json::object());
          dst = &qps.obj.back().second;
        }
        dst->set(std::to_string(qpn), q);
      }
    }
  }

  if (json) {
    Json out = Json::object();
    out.set("pid", Json::number(uint64_t(client.pid())));
    out.set("file_prefix", Json::string(t.prefix));
    out.set("socket", Json::string(t.path));
    out.set("dpdk_version", Json::string(client.version()));
    out.set("ports", ports);
    out.set("qps", qps);
    std::printf("%s\n", droce::stat::to_json(out, 2).c_str());
  } else {
    print_human(t, client.pid(), ports, qps);
  }
  return 0;
}
