// warn_if_blas_is_generic (runtime_internal.hpp): OpenBLAS names the kernels it chose; on a CPU
// it does not know it falls back to SSE3 ones while the CPU has AVX2 or AVX-512, and every GEMM
// of the runtime (calibration, verify) runs at about half speed. docs/runtime.md "BLAS kernels".
#include <dlfcn.h>

#include <cstring>
#include <mutex>
#include <string>

#include "qforge/logging.hpp"
#include "runtime/runtime_internal.hpp"

namespace qforge::runtime::detail {

void warn_if_blas_is_generic() {
  static std::once_flag once;
  std::call_once(once, [] {
    // Looked up, not linked: LibTorch may use another BLAS, and then there is nothing to say.
    using CoreName = char* (*)();
    const auto corename = reinterpret_cast<CoreName>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
    if (corename == nullptr) return;
    const char* core = corename();
    if (core == nullptr) return;
    const std::string name(core);
    const bool generic = name == "Prescott" || name == "Core2" || name == "Nehalem" ||
                         name == "Penryn" || name == "Dunnington" || name == "Atom";
    const char* better =
        __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")
            ? "SkylakeX"
        : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? "Haswell"
                                                                          : nullptr;
    if (!generic || better == nullptr) return;
    get_logger("runtime")->warn(
        "OpenBLAS chose its generic '{}' kernels on a CPU with {}: matrix products run at about "
        "half speed. Set OPENBLAS_CORETYPE={} before starting qforge (tools/blas-env.sh does)",
        name, std::strcmp(better, "SkylakeX") == 0 ? "AVX-512" : "AVX2", better);
  });
}

}  // namespace qforge::runtime::detail
