// Where DPDK's net_tap sends its per-frame signal (see tun_signals.h).
#include "nic/tun_signals.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <rte_ethdev.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace droce::nic {

namespace {

// True when fd is open on /dev/net/tun and attached to interface ifname.
bool tun_fd_of(int fd, const char* ifname) {
  char link[64];
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  const ssize_t n = readlink(path.c_str(), link, sizeof(link) - 1);
  if (n <= 0) return false;
  link[n] = '\0';
  if (std::strcmp(link, "/dev/net/tun") != 0) return false;
  ifreq ifr{};
  if (ioctl(fd, TUNGETIFF, &ifr) != 0) return false;
  return std::strncmp(ifr.ifr_name, ifname, IFNAMSIZ) == 0;
}

// The descriptor's signal owner is this process or one of its threads.
bool owned_here(int fd) {
  f_owner_ex owner{};
  if (fcntl(fd, F_GETOWN_EX, &owner) != 0) return false;
  if (owner.type == F_OWNER_PID) return owner.pid == getpid();
  if (owner.type == F_OWNER_TID) {
    const std::string task = "/proc/self/task/" + std::to_string(owner.pid);
    return access(task.c_str(), F_OK) == 0;
  }
  return false;
}

}  // namespace

int direct_tun_signals(uint16_t port_id, pid_t tid) {
  rte_eth_dev_info info{};
  if (rte_eth_dev_info_get(port_id, &info) != 0 || info.if_index == 0) return 0;
  char ifname[IF_NAMESIZE];
  if (if_indextoname(info.if_index, ifname) == nullptr) return 0;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return 0;
  const int dir_fd = dirfd(dir);
  int moved = 0;
  while (const dirent* e = readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || fd == dir_fd) continue;
    if (!tun_fd_of(int(fd), ifname) || !owned_here(int(fd))) continue;
    f_owner_ex owner{tid != 0 ? F_OWNER_TID : F_OWNER_PID, tid != 0 ? tid : getpid()};
    if (fcntl(int(fd), F_SETOWN_EX, &owner) == 0) ++moved;
  }
  closedir(dir);
  return moved;
}

}  // namespace droce::nic
