// The drop-in librdmacm.so.1's ABI: SONAME and the export set of rdma-core
// v44's librdmacm.so.1 (Debian 12), symbol by symbol and version by version,
// and Debian's rdma_cm programs (all BIND_NOW) resolving every symbol on it.
#include <gtest/gtest.h>
#include <unistd.h>

#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/common/process.h"

namespace droce::test {
namespace {

constexpr int kToolTimeoutMs = 30000;

bool have(const char* path) { return access(path, X_OK) == 0; }

std::string run(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                int* rc) {
  TempDir dir;
  Process p;
  *rc = -1;
  if (!start(argv, env, dir.path() + "/out.txt", &p) || !wait_for(&p, kToolTimeoutMs)) return "";
  *rc = p.exit_code;
  return read_file(p.output_path);
}

// "VERSION name" for each symbol objdump -T lists as defined in path under an
// RDMACM_* version (the version definitions themselves left out).
std::set<std::string> exported(const std::string& path, std::string* soname) {
  int rc;
  const std::string out = run({"/usr/bin/objdump", "-T", "-p", path}, {}, &rc);
  std::set<std::string> syms;
  if (rc != 0) return syms;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream w(line);
    std::vector<std::string> f;
    for (std::string x; w >> x;) f.push_back(x);
    if (f.size() == 2 && f[0] == "SONAME") *soname = f[1];
    if (f.size() < 4 || line.find("*UND*") != std::string::npos) continue;
    if (line.find(" DF ") == std::string::npos && line.find(" DO ") == std::string::npos) continue;
    const std::string& version = f[f.size() - 2];
    const std::string& name = f.back();
    if (version.rfind("RDMACM", 0) == 0 && version != name) syms.insert(version + " " + name);
  }
  return syms;
}

TEST(RdmacmAbi, ExportsWhatRdmaCoreExports) {
  const char* system_lib = "/usr/lib/x86_64-linux-gnu/librdmacm.so.1";
  if (!have("/usr/bin/objdump")) GTEST_SKIP() << "objdump (binutils) is not installed";
  if (access(system_lib, R_OK) != 0) GTEST_SKIP() << system_lib << " is not installed (librdmacm1)";
  ASSERT_FALSE(dropin_lib_dir().empty()) << "DROCE_BUILD_DIR is not set";
  std::string theirs_soname, ours_soname;
  const std::set<std::string> theirs = exported(system_lib, &theirs_soname);
  const std::set<std::string> ours = exported(dropin_lib_dir() + "/librdmacm.so.1", &ours_soname);
  // rdma-core v44: 68 symbols, 41 rdma_* and 27 rsocket calls, in RDMACM_1.0 .. 1.3.
  ASSERT_EQ(theirs.size(), 68u);
  EXPECT_EQ(theirs_soname, "librdmacm.so.1");
  EXPECT_EQ(ours_soname, "librdmacm.so.1");
  std::string missing, extra;
  for (const std::string& s : theirs) {
    if (ours.count(s) == 0) missing += s + "\n";
  }
  for (const std::string& s : ours) {
    if (theirs.count(s) == 0) extra += s + "\n";
  }
  EXPECT_TRUE(missing.empty()) << "not exported by the drop-in:\n" << missing;
  EXPECT_TRUE(extra.empty()) << "exported by the drop-in only:\n" << extra;
  EXPECT_TRUE(ours.count("RDMACM_1.2 rdma_establish"));
  EXPECT_TRUE(ours.count("RDMACM_1.1 rdma_join_multicast_ex"));
  EXPECT_TRUE(ours.count("RDMACM_1.0 rpoll"));
}

// Every Debian program of rdmacm-utils, qperf and perftest that imports
// librdmacm resolves all its symbols (ldd -r) with the drop-ins first.
TEST(RdmacmAbi, DebianProgramsResolveEverySymbol) {
  if (sanitized_build()) GTEST_SKIP() << "sanitizer build: the ASan drop-in cannot be loaded by Debian's programs";
  if (!have("/usr/bin/ldd")) GTEST_SKIP() << "ldd (libc-bin) is not installed";
  const char* programs[] = {"rping",     "ucmatose",     "udaddy",       "cmtime",   "mckey",
                            "rdma_server", "rdma_client", "rdma_xserver", "rdma_xclient", "rstream",
                            "riostream", "rcopy",        "udpong",       "qperf"};
  int checked = 0;
  for (const char* prog : programs) {
    const std::string path = std::string("/usr/bin/") + prog;
    if (!have(path.c_str())) continue;  // rdmacm-utils or qperf not installed: nothing to load
    int rc;
    const std::string out = run({"/usr/bin/ldd", "-r", path}, {{"LD_LIBRARY_PATH", dropin_lib_dir()}}, &rc);
    EXPECT_EQ(rc, 0) << prog << ":\n" << out;
    EXPECT_EQ(out.find("undefined"), std::string::npos) << prog << ":\n" << out;
    EXPECT_EQ(out.find("not found"), std::string::npos) << prog << ":\n" << out;
    EXPECT_NE(out.find(dropin_lib_dir() + "/librdmacm.so.1"), std::string::npos) << prog << ":\n" << out;
    ++checked;
  }
  if (checked == 0) GTEST_SKIP() << "none of rdmacm-utils' programs or qperf is installed";
}

}  // namespace
}  // namespace droce::test
