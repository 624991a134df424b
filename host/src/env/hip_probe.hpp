// HIP (ROCm) devices through libamdhip64, loaded at run time like libcuda. The gfx arch comes
// from the KFD topology in sysfs (matched by PCI address), because hipDeviceProp_t's layout and
// hipDeviceAttribute_t's numbering change between ROCm releases.
#pragma once

#include <string>
#include <vector>

#include "env/gpu_probe.hpp"

namespace qforge {

// Library names tried in order: the development symlink first, then the runtime sonames.
inline const std::vector<std::string> kHipRuntimeLibraries = {"libamdhip64.so", "libamdhip64.so.6",
                                                              "libamdhip64.so.5"};
inline constexpr const char* kKfdTopologyRoot = "/sys/class/kfd/kfd/topology/nodes";

// Tries each library until one loads, then lists devices (name, total memory, gfx arch).
// free_memory stays 0: querying it would create a HIP context per device. Never throws.
GpuBackendProbe probe_hip(const std::vector<std::string>& libnames,
                          const std::string& topology_root = kKfdTopologyRoot);

// KFD's gfx_target_version (major*10000 + minor*100 + stepping) -> "gfx90a"; "" for 0.
std::string gfx_arch_from_target_version(unsigned long version);

// The gfx arch of the KFD node at PCI address `pci_bus_id` ("0000:03:00.0"), or "" when no
// node under `topology_root` matches.
std::string find_gfx_arch(const std::string& topology_root, const std::string& pci_bus_id);

}  // namespace qforge
