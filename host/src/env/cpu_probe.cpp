#include "env/cpu_probe.hpp"

#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <sstream>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define QFORGE_X86 1
#endif

#if defined(QFORGE_X86) && defined(__linux__)
#include <sys/syscall.h>
#endif

namespace qforge {
namespace {

std::string read_text_file(const char* path) {
  std::ifstream in(path);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::string trim(const std::string& s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  const auto last = s.find_last_not_of(" \t\r\n");
  return s.substr(first, last - first + 1);
}

// The value of the first "key : value" line whose key is `key`.
std::string cpuinfo_value(const std::string& cpuinfo, const std::string& key) {
  std::istringstream lines(cpuinfo);
  std::string line;
  while (std::getline(lines, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    if (trim(line.substr(0, colon)) == key) return trim(line.substr(colon + 1));
  }
  return "";
}

#ifdef QFORGE_X86

bool bit(uint32_t reg, int n) { return ((reg >> n) & 1u) != 0; }

uint64_t read_xcr0() {
  uint32_t eax = 0, edx = 0;
  // xgetbv with ecx = 0 reads XCR0; only valid when cpuid says OSXSAVE (checked by the caller).
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

// Linux refuses AMX tile data to a process until it asks (kernel 5.16+); asking is how a
// process gets to use AMX at all, so the probe asks on behalf of the plugins it will load.
bool amx_permitted() {
#ifdef __linux__
  constexpr int kArchReqXcompPerm = 0x1023;
  constexpr int kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return true;
#endif
}

#endif  // QFORGE_X86

}  // namespace

std::string cpuinfo_model(const std::string& cpuinfo) {
  std::string model = cpuinfo_value(cpuinfo, "model name");
  if (model.empty()) model = cpuinfo_value(cpuinfo, "Hardware");
  return model;
}

std::vector<std::string> cpuinfo_features(const std::string& cpuinfo) {
  std::string list = cpuinfo_value(cpuinfo, "Features");
  if (list.empty()) list = cpuinfo_value(cpuinfo, "flags");
  std::vector<std::string> features;
  std::istringstream words(list);
  std::string word;
  while (words >> word) features.push_back(word);
  std::sort(features.begin(), features.end());
  features.erase(std::unique(features.begin(), features.end()), features.end());
  return features;
}

std::vector<std::string> x86_cpu_features() {
  std::vector<std::string> features;
#ifdef QFORGE_X86
  unsigned max_leaf = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(0, &max_leaf, &ebx, &ecx, &edx) == 0) return features;
  unsigned eax1 = 0, ebx1 = 0, ecx1 = 0, edx1 = 0;
  __get_cpuid(1, &eax1, &ebx1, &ecx1, &edx1);
  unsigned eax7 = 0, ebx7 = 0, ecx7 = 0, edx7 = 0;
  unsigned eax71 = 0, ebx71 = 0, ecx71 = 0, edx71 = 0;
  if (max_leaf >= 7) {
    __get_cpuid_count(7, 0, &eax7, &ebx7, &ecx7, &edx7);
    if (eax7 >= 1) __get_cpuid_count(7, 1, &eax71, &ebx71, &ecx71, &edx71);
  }
  // A feature is usable only if the OS saves its register state: XCR0 bits 1-2 (SSE, AVX),
  // 5-7 (opmask, ZMM upper halves, ZMM16-31) and 17-18 (AMX tile config and data).
  const uint64_t xcr0 = bit(ecx1, 27) ? read_xcr0() : 0;  // 27 = OSXSAVE
  const bool os_avx = (xcr0 & 0x6) == 0x6;
  const bool os_avx512 = os_avx && (xcr0 & 0xE0) == 0xE0;
  const bool os_amx = (xcr0 & 0x60000) == 0x60000;

  auto add = [&features](bool present, const char* name) {
    if (present) features.emplace_back(name);
  };
  add(bit(ecx1, 20), "sse4_2");
  add(os_avx && bit(ecx1, 28), "avx");
  add(os_avx && bit(ecx1, 12), "fma");
  add(os_avx && bit(ecx1, 29), "f16c");
  add(os_avx && bit(ebx7, 5), "avx2");
  add(os_avx512 && bit(ebx7, 16), "avx512f");
  add(os_avx512 && bit(ebx7, 17), "avx512dq");
  add(os_avx512 && bit(ebx7, 30), "avx512bw");
  add(os_avx512 && bit(ebx7, 31), "avx512vl");
  add(os_avx512 && bit(ecx7, 11), "avx512_vnni");
  add(os_avx512 && bit(eax71, 5), "avx512_bf16");
  add(os_avx512 && bit(edx7, 23), "avx512_fp16");
  const bool any_amx = bit(edx7, 22) || bit(edx7, 24) || bit(edx7, 25);
  const bool amx_usable = os_amx && any_amx && amx_permitted();
  add(amx_usable && bit(edx7, 24), "amx_tile");
  add(amx_usable && bit(edx7, 25), "amx_int8");
  add(amx_usable && bit(edx7, 22), "amx_bf16");
  std::sort(features.begin(), features.end());
#endif
  return features;
}

void probe_cpu(Environment& env) {
  struct utsname names {};
  if (uname(&names) == 0) env.cpu_arch = names.machine;

  const std::string cpuinfo = read_text_file("/proc/cpuinfo");
  env.cpu_model = cpuinfo_model(cpuinfo);
  const long online = sysconf(_SC_NPROCESSORS_ONLN);
  env.logical_cpus = online > 0 ? static_cast<int>(online) : 0;
#ifdef QFORGE_X86
  env.cpu_features = x86_cpu_features();
#else
  env.cpu_features = cpuinfo_features(cpuinfo);
#endif
  struct sysinfo info {};
  if (sysinfo(&info) == 0) {
    env.host_memory = static_cast<uint64_t>(info.totalram) * info.mem_unit;
  }
}

}  // namespace qforge
