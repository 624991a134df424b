#include "env/cuda_probe.hpp"

#include <dlfcn.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace qforge {
namespace {

// The driver API subset we use, declared by hand: CUresult is an int enum, CUdevice an int,
// CUcontext an opaque pointer. These signatures are stable since CUDA 4 (the _v2 ones since
// CUDA 3.2 / 11 for cuDevicePrimaryCtxRelease_v2).
using CuResult = int;
using CuDevice = int;
using CuContext = void*;
using CuInitFn = CuResult (*)(unsigned int);
using CuDriverGetVersionFn = CuResult (*)(int*);
using CuDeviceGetCountFn = CuResult (*)(int*);
using CuDeviceGetFn = CuResult (*)(CuDevice*, int);
using CuDeviceGetNameFn = CuResult (*)(char*, int, CuDevice);
using CuDeviceGetAttributeFn = CuResult (*)(int*, int, CuDevice);
using CuDeviceTotalMemFn = CuResult (*)(std::size_t*, CuDevice);
using CuGetErrorNameFn = CuResult (*)(CuResult, const char**);
using CuDevicePrimaryCtxRetainFn = CuResult (*)(CuContext*, CuDevice);
using CuDevicePrimaryCtxReleaseFn = CuResult (*)(CuDevice);
using CuCtxPushCurrentFn = CuResult (*)(CuContext);
using CuCtxPopCurrentFn = CuResult (*)(CuContext*);
using CuMemGetInfoFn = CuResult (*)(std::size_t*, std::size_t*);

constexpr int kAttrComputeCapabilityMajor = 75;
constexpr int kAttrComputeCapabilityMinor = 76;

template <class Fn>
Fn lookup(void* lib, const char* name) {
  // POSIX guarantees object and function pointers convert through dlsym's void*.
  return reinterpret_cast<Fn>(dlsym(lib, name));
}

struct Driver {
  void* lib = nullptr;
  CuGetErrorNameFn get_error_name = nullptr;

  std::string describe(const char* call, CuResult rc) const {
    const char* name = nullptr;
    if (get_error_name == nullptr || get_error_name(rc, &name) != 0 || name == nullptr) {
      name = cuda_error_fallback_name(rc);
    }
    return std::string(call) + " failed: error " + std::to_string(rc) + " (" + name + ")";
  }
};

std::string dl_error() {
  const char* e = dlerror();
  return e != nullptr ? e : "unknown dlopen error";
}

}  // namespace

const char* cuda_error_fallback_name(int code) {
  switch (code) {
    case 0:
      return "CUDA_SUCCESS";
    case 1:
      return "CUDA_ERROR_INVALID_VALUE";
    case 2:
      return "CUDA_ERROR_OUT_OF_MEMORY";
    case 3:
      return "CUDA_ERROR_NOT_INITIALIZED";
    case 4:
      return "CUDA_ERROR_DEINITIALIZED";
    case 34:
      return "CUDA_ERROR_STUB_LIBRARY";
    case 46:
      return "CUDA_ERROR_DEVICE_UNAVAILABLE";
    case 100:
      return "CUDA_ERROR_NO_DEVICE";
    case 101:
      return "CUDA_ERROR_INVALID_DEVICE";
    case 201:
      return "CUDA_ERROR_INVALID_CONTEXT";
    case 216:
      return "CUDA_ERROR_CONTEXT_ALREADY_IN_USE";
    case 303:
      return "CUDA_ERROR_SHARED_OBJECT_INIT_FAILED";
    case 304:
      return "CUDA_ERROR_OPERATING_SYSTEM";
    case 802:
      return "CUDA_ERROR_SYSTEM_NOT_READY";
    case 803:
      return "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH";
    case 804:
      return "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE";
    case 999:
      return "CUDA_ERROR_UNKNOWN";
    default:
      return "unrecognised CUresult";
  }
}

GpuBackendProbe probe_cuda(const char* libname, bool query_free_memory) {
  GpuBackendProbe out;
  dlerror();
  Driver drv;
  // RTLD_LOCAL keeps the driver's symbols out of the global namespace; it stays loaded for the
  // life of the process (the CUDA runtime would load it again anyway).
  drv.lib = dlopen(libname, RTLD_NOW | RTLD_LOCAL);
  if (drv.lib == nullptr) {
    out.status = std::string(libname) + " not found: " + dl_error();
    return out;
  }
  drv.get_error_name = lookup<CuGetErrorNameFn>(drv.lib, "cuGetErrorName");

  const auto init = lookup<CuInitFn>(drv.lib, "cuInit");
  const auto get_version = lookup<CuDriverGetVersionFn>(drv.lib, "cuDriverGetVersion");
  const auto get_count = lookup<CuDeviceGetCountFn>(drv.lib, "cuDeviceGetCount");
  const auto get_device = lookup<CuDeviceGetFn>(drv.lib, "cuDeviceGet");
  const auto get_name = lookup<CuDeviceGetNameFn>(drv.lib, "cuDeviceGetName");
  const auto get_attribute = lookup<CuDeviceGetAttributeFn>(drv.lib, "cuDeviceGetAttribute");
  const auto total_mem = lookup<CuDeviceTotalMemFn>(drv.lib, "cuDeviceTotalMem_v2");
  const struct {
    const char* name;
    const void* fn;
  } required[] = {{"cuInit", reinterpret_cast<const void*>(init)},
                  {"cuDriverGetVersion", reinterpret_cast<const void*>(get_version)},
                  {"cuDeviceGetCount", reinterpret_cast<const void*>(get_count)},
                  {"cuDeviceGet", reinterpret_cast<const void*>(get_device)},
                  {"cuDeviceGetName", reinterpret_cast<const void*>(get_name)},
                  {"cuDeviceGetAttribute", reinterpret_cast<const void*>(get_attribute)},
                  {"cuDeviceTotalMem_v2", reinterpret_cast<const void*>(total_mem)}};
  for (const auto& r : required) {
    if (r.fn == nullptr) {
      out.status = std::string(libname) + " lacks " + r.name +
                   " (not a CUDA driver library, or older than CUDA 4)";
      return out;
    }
  }

  // The version needs no cuInit, so it is known even when initialisation fails.
  int version = 0;
  if (get_version(&version) == 0) out.version = version;
  if (const CuResult rc = init(0); rc != 0) {
    out.status = drv.describe("cuInit", rc);
    return out;
  }
  out.found = true;
  int count = 0;
  if (const CuResult rc = get_count(&count); rc != 0) {
    out.status = drv.describe("cuDeviceGetCount", rc);
    return out;
  }

  const auto retain = lookup<CuDevicePrimaryCtxRetainFn>(drv.lib, "cuDevicePrimaryCtxRetain");
  auto release = lookup<CuDevicePrimaryCtxReleaseFn>(drv.lib, "cuDevicePrimaryCtxRelease_v2");
  if (release == nullptr) {
    release = lookup<CuDevicePrimaryCtxReleaseFn>(drv.lib, "cuDevicePrimaryCtxRelease");
  }
  const auto push = lookup<CuCtxPushCurrentFn>(drv.lib, "cuCtxPushCurrent_v2");
  const auto pop = lookup<CuCtxPopCurrentFn>(drv.lib, "cuCtxPopCurrent_v2");
  const auto mem_info = lookup<CuMemGetInfoFn>(drv.lib, "cuMemGetInfo_v2");
  const bool can_query_free = query_free_memory && retain != nullptr && release != nullptr &&
                              push != nullptr && pop != nullptr && mem_info != nullptr;

  std::string problems;
  for (int i = 0; i < count; ++i) {
    CuDevice dev = 0;
    if (const CuResult rc = get_device(&dev, i); rc != 0) {
      problems += "; device " + std::to_string(i) + ": " + drv.describe("cuDeviceGet", rc);
      continue;
    }
    GpuDevice d;
    d.backend = "cuda";
    d.index = i;
    char name[256] = {};
    if (const CuResult rc = get_name(name, static_cast<int>(sizeof(name) - 1), dev); rc != 0) {
      problems += "; device " + std::to_string(i) + ": " + drv.describe("cuDeviceGetName", rc);
    }
    d.name = name;
    if (const CuResult rc = get_attribute(&d.cc_major, kAttrComputeCapabilityMajor, dev); rc != 0) {
      problems += "; device " + std::to_string(i) + ": " +
                  drv.describe("cuDeviceGetAttribute(COMPUTE_CAPABILITY_MAJOR)", rc);
    }
    if (const CuResult rc = get_attribute(&d.cc_minor, kAttrComputeCapabilityMinor, dev); rc != 0) {
      problems += "; device " + std::to_string(i) + ": " +
                  drv.describe("cuDeviceGetAttribute(COMPUTE_CAPABILITY_MINOR)", rc);
    }
    std::size_t total = 0;
    if (const CuResult rc = total_mem(&total, dev); rc == 0) {
      d.total_memory = total;
    } else {
      problems += "; device " + std::to_string(i) + ": " + drv.describe("cuDeviceTotalMem", rc);
    }
    if (can_query_free) {
      // The primary context is the one the CUDA runtime shares; retaining it is free when the
      // process already uses the device, and releasing it restores the previous state.
      CuContext ctx = nullptr;
      if (const CuResult rc = retain(&ctx, dev); rc == 0) {
        if (push(ctx) == 0) {
          std::size_t free_bytes = 0, total_bytes = 0;
          if (const CuResult mrc = mem_info(&free_bytes, &total_bytes); mrc == 0) {
            d.free_memory = free_bytes;
          } else {
            problems += "; device " + std::to_string(i) + ": " + drv.describe("cuMemGetInfo", mrc);
          }
          CuContext popped = nullptr;
          pop(&popped);
        }
        release(dev);
      } else {
        problems += "; device " + std::to_string(i) + ": free memory unknown, " +
                    drv.describe("cuDevicePrimaryCtxRetain", rc);
      }
    }
    out.devices.push_back(std::move(d));
  }
  if (count == 0) {
    out.status = "cuDeviceGetCount reported 0 devices";
  } else {
    out.status = "ok: " + std::to_string(out.devices.size()) + " device(s)";
  }
  out.status += problems;
  return out;
}

}  // namespace qforge
