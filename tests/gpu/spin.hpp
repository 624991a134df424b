// Holds a stream busy for a while, so the host can enqueue many short calls that then run
// back to back: their events time the GPU work without the host's per-call overhead.
#pragma once

#include <cuda_runtime.h>

namespace qforge::gpu_harness {

void spin(cudaStream_t stream, double milliseconds);

}  // namespace qforge::gpu_harness
