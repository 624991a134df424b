// The CPU: architecture, model, logical CPUs, instruction-set features and host memory.
#pragma once

#include <string>
#include <vector>

#include "qforge/environment.hpp"

namespace qforge {

// Fills env.cpu_arch, cpu_model, logical_cpus, cpu_features (sorted) and host_memory. On x86
// the features come from cpuid, filtered by what the OS enables in XCR0 (and, for AMX, by the
// kernel granting tile-data permission); elsewhere from /proc/cpuinfo "Features". Never throws.
void probe_cpu(Environment& env);

// /proc/cpuinfo helpers (first "model name" / "Hardware" line; the "Features" or "flags" list,
// sorted and de-duplicated).
std::string cpuinfo_model(const std::string& cpuinfo);
std::vector<std::string> cpuinfo_features(const std::string& cpuinfo);

// The cpuid-based feature names on this x86 machine (empty elsewhere).
std::vector<std::string> x86_cpu_features();

}  // namespace qforge
