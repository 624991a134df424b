// libFuzzer target for the GGUF header reader and dequantizers (RELIABILITY.md 6.2 and 6.7).
// Built only with -DQFORGE_FUZZ=ON and clang; tests/fuzz/run_short.sh runs it briefly with a
// fixed seed.
#include <cstdio>
#include <cstdlib>

#include "gguf_fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (const char* broken = qforge::fuzz::check_gguf_input(data, size)) {
    std::fprintf(stderr, "gguf_fuzz: property violated: %s\n", broken);
    std::abort();  // libFuzzer saves the input as a crash-* artifact
  }
  return 0;
}
