#include "env/hip_probe.hpp"

#include <dlfcn.h>

#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace qforge {
namespace {

// The HIP runtime subset we use, declared by hand: hipError_t is an int enum, hipDevice_t an
// int. hipGetDeviceProperties is avoided on purpose: hipDeviceProp_t's layout differs between
// ROCm releases, so a struct declared here would be read wrongly by some runtime.
using HipError = int;
using HipInitFn = HipError (*)(unsigned int);
using HipRuntimeGetVersionFn = HipError (*)(int*);
using HipGetDeviceCountFn = HipError (*)(int*);
using HipDeviceGetFn = HipError (*)(int*, int);
using HipDeviceGetNameFn = HipError (*)(char*, int, int);
using HipDeviceTotalMemFn = HipError (*)(std::size_t*, int);
using HipDeviceGetPciBusIdFn = HipError (*)(char*, int, int);
using HipGetErrorNameFn = const char* (*)(HipError);

template <class Fn>
Fn lookup(void* lib, const char* name) {
  return reinterpret_cast<Fn>(dlsym(lib, name));
}

std::string describe(HipGetErrorNameFn get_error_name, const char* call, HipError rc) {
  const char* name = get_error_name != nullptr ? get_error_name(rc) : nullptr;
  if (name == nullptr) name = rc == 100 ? "hipErrorNoDevice" : "unrecognised hipError_t";
  return std::string(call) + " failed: error " + std::to_string(rc) + " (" + name + ")";
}

// "key value" lines of a KFD node's properties file.
bool read_property(const std::string& properties, const std::string& key, unsigned long* value) {
  std::istringstream lines(properties);
  std::string k;
  unsigned long v = 0;
  while (lines >> k >> v) {
    if (k == key) {
      *value = v;
      return true;
    }
  }
  return false;
}

}  // namespace

std::string gfx_arch_from_target_version(unsigned long version) {
  if (version == 0) return "";
  const unsigned long major = version / 10000;
  const unsigned long minor = (version / 100) % 100;
  const unsigned long stepping = version % 100;
  // Minor and stepping print as one hex digit each: 90010 -> gfx90a, 90402 -> gfx942.
  char buf[32];
  std::snprintf(buf, sizeof(buf), "gfx%lu%lx%lx", major, minor, stepping);
  return buf;
}

std::string find_gfx_arch(const std::string& topology_root, const std::string& pci_bus_id) {
  unsigned domain = 0, bus = 0, device = 0, function = 0;
  if (std::sscanf(pci_bus_id.c_str(), "%x:%x:%x.%x", &domain, &bus, &device, &function) != 4) {
    return "";
  }
  // KFD's location_id is the PCI bus/device/function packed as in the kernel's pci_dev_id().
  const unsigned long location = (bus << 8) | (device << 3) | function;
  std::error_code ec;
  for (const auto& node : std::filesystem::directory_iterator(topology_root, ec)) {
    std::ifstream in(node.path() / "properties");
    if (!in) continue;
    std::ostringstream text;
    text << in.rdbuf();
    unsigned long node_location = 0, node_domain = 0, target = 0;
    if (!read_property(text.str(), "gfx_target_version", &target) || target == 0) continue;
    if (!read_property(text.str(), "location_id", &node_location)) continue;
    read_property(text.str(), "domain", &node_domain);  // absent on old kernels: domain 0
    if (node_location == location && node_domain == domain) {
      return gfx_arch_from_target_version(target);
    }
  }
  return "";
}

GpuBackendProbe probe_hip(const std::vector<std::string>& libnames,
                          const std::string& topology_root) {
  GpuBackendProbe out;
  void* lib = nullptr;
  std::string first_error;
  std::string loaded;
  for (const std::string& name : libnames) {
    dlerror();
    lib = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib != nullptr) {
      loaded = name;
      break;
    }
    if (first_error.empty()) {
      const char* e = dlerror();
      first_error = name + " not found: " + (e != nullptr ? e : "unknown dlopen error");
    }
  }
  if (lib == nullptr) {
    out.status = first_error.empty() ? "no HIP runtime library name to try" : first_error;
    return out;
  }
  const auto get_error_name = lookup<HipGetErrorNameFn>(lib, "hipGetErrorName");
  const auto init = lookup<HipInitFn>(lib, "hipInit");
  const auto get_version = lookup<HipRuntimeGetVersionFn>(lib, "hipRuntimeGetVersion");
  const auto get_count = lookup<HipGetDeviceCountFn>(lib, "hipGetDeviceCount");
  const auto get_device = lookup<HipDeviceGetFn>(lib, "hipDeviceGet");
  const auto get_name = lookup<HipDeviceGetNameFn>(lib, "hipDeviceGetName");
  const auto total_mem = lookup<HipDeviceTotalMemFn>(lib, "hipDeviceTotalMem");
  const auto get_pci = lookup<HipDeviceGetPciBusIdFn>(lib, "hipDeviceGetPCIBusId");
  if (init == nullptr || get_version == nullptr || get_count == nullptr || get_device == nullptr ||
      get_name == nullptr || total_mem == nullptr) {
    out.status = loaded +
                 " lacks hipInit/hipRuntimeGetVersion/hipGetDeviceCount/hipDeviceGet/"
                 "hipDeviceGetName/hipDeviceTotalMem (not a HIP runtime library?)";
    return out;
  }
  if (const HipError rc = init(0); rc != 0) {
    out.status = describe(get_error_name, "hipInit", rc);
    return out;
  }
  out.found = true;
  int version = 0;
  if (get_version(&version) == 0) out.version = version;
  int count = 0;
  if (const HipError rc = get_count(&count); rc != 0) {
    out.status = describe(get_error_name, "hipGetDeviceCount", rc);
    return out;
  }
  std::string problems;
  for (int i = 0; i < count; ++i) {
    int dev = 0;
    if (const HipError rc = get_device(&dev, i); rc != 0) {
      problems +=
          "; device " + std::to_string(i) + ": " + describe(get_error_name, "hipDeviceGet", rc);
      continue;
    }
    GpuDevice d;
    d.backend = "rocm";
    d.index = i;
    char name[256] = {};
    if (const HipError rc = get_name(name, static_cast<int>(sizeof(name) - 1), dev); rc != 0) {
      problems +=
          "; device " + std::to_string(i) + ": " + describe(get_error_name, "hipDeviceGetName", rc);
    }
    d.name = name;
    std::size_t total = 0;
    if (total_mem(&total, dev) == 0) d.total_memory = total;
    char pci[64] = {};
    if (get_pci != nullptr && get_pci(pci, static_cast<int>(sizeof(pci) - 1), dev) == 0) {
      d.gcn_arch = find_gfx_arch(topology_root, pci);
    }
    if (d.gcn_arch.empty()) {
      problems += "; device " + std::to_string(i) + ": gfx arch unknown (no KFD topology node " +
                  "under " + topology_root + " matches PCI address '" + pci + "')";
    }
    out.devices.push_back(std::move(d));
  }
  out.status = count == 0 ? "hipGetDeviceCount reported 0 devices"
                          : "ok: " + std::to_string(out.devices.size()) + " device(s)";
  out.status += problems;
  return out;
}

}  // namespace qforge
