// What one GPU backend probe found. Every failure is a fact in `status`, never an exception.
#pragma once

#include <string>
#include <vector>

#include "qforge/environment.hpp"

namespace qforge {

struct GpuBackendProbe {
  bool found = false;  // library loaded and initialised (cuInit / hipInit succeeded)
  int version = 0;     // driver (CUDA) or runtime (HIP) version; 0 when unknown
  std::string status;  // "ok: 1 device(s)" or why there are none
  std::vector<GpuDevice> devices;
};

}  // namespace qforge
