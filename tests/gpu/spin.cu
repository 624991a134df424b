// One-thread kernel that waits on the global nanosecond timer (see spin.hpp).
#include "spin.hpp"

namespace qforge::gpu_harness {
namespace {

__device__ unsigned long long now_ns() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

__global__ void spin_kernel(unsigned long long ns) {
  const unsigned long long start = now_ns();
  while (now_ns() - start < ns) {
  }
}

}  // namespace

void spin(cudaStream_t stream, double milliseconds) {
  spin_kernel<<<1, 1, 0, stream>>>(static_cast<unsigned long long>(milliseconds * 1e6));
}

}  // namespace qforge::gpu_harness
