// FP8 quantize and dequantize on the GPU (fp8_cuda.hpp), one code for the three granularities
// (128x128 tiles, per tensor, FBGEMM per row), which differ only in their Grid.
//
// Quantize runs in two launches around a host step (fp8_device.cpp): tile_amax, then the host
// computes every tile's multiplier with the CPU's own arithmetic, then quantize_tiles. The maxima
// are exact (a max does not depend on order), and each code is one product and the integer e4m3
// encoder, so the bytes equal the CPU's.
#include "cuda/device_common.cuh"

namespace qforge::plugins::fp8::gpu {
namespace {

constexpr int kCta = 256;
constexpr int kWarps = kCta / 32;
// Rows of one tile a CTA reduces: a 128x128 tile is split over 8 CTAs, a per-tensor scale over
// rows / 16, an FBGEMM row takes one CTA.
constexpr int64_t kChunkRows = 16;

__global__ void tile_amax_kernel(const void* w, Float kind, Grid g, uint32_t* amax_bits) {
  __shared__ uint32_t partial[kWarps];
  const int64_t chunks = (g.bm + kChunkRows - 1) / kChunkRows;
  const int64_t tc_count = g.tile_cols();
  const int64_t items = g.tile_rows() * chunks * tc_count;
  for (int64_t item = blockIdx.x; item < items; item += gridDim.x) {
    const int64_t tc = item % tc_count;
    const int64_t chunk = (item / tc_count) % chunks;
    const int64_t tr = item / (tc_count * chunks);
    const int64_t tile_end = (tr + 1) * g.bm < g.rows ? (tr + 1) * g.bm : g.rows;
    const int64_t r0 = tr * g.bm + chunk * kChunkRows;
    const int64_t r1 = r0 + kChunkRows < tile_end ? r0 + kChunkRows : tile_end;
    const int64_t c0 = tc * g.bn;
    const int64_t c1 = c0 + g.bn < g.cols ? c0 + g.bn : g.cols;
    const int64_t width = c1 - c0;
    uint32_t m = 0;
    if (r0 < r1) {
      const int64_t n = (r1 - r0) * width;
      for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        const int64_t r = r0 + i / width, c = c0 + i % width;
        m = max(m, magnitude_bits(load_float(w, r * g.cols + c, kind)));
      }
    }
    m = warp_max_bits(m);
    if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = m;
    __syncthreads();
    if (threadIdx.x == 0) {
      uint32_t t = 0;
      for (int i = 0; i < kWarps; ++i) t = max(t, partial[i]);
      // Non-negative floats order like their bits, so an integer max is the float max.
      if (t != 0) atomicMax(&amax_bits[tr * tc_count + tc], t);
    }
    __syncthreads();  // partial is reused by the next item
  }
}

__global__ void quantize_kernel(const void* w, Float kind, Grid g, const float* scale,
                                uint8_t* codes) {
  const int64_t tc_count = g.tile_cols();
  for (int64_t r = blockIdx.x; r < g.rows; r += gridDim.x) {
    const float* srow = scale + (r / g.bm) * tc_count;
    for (int64_t c = threadIdx.x; c < g.cols; c += blockDim.x) {
      const int64_t e = r * g.cols + c;
      codes[e] = e4m3_from_float(load_float(w, e, kind) * srow[c / g.bn]);
    }
  }
}

__global__ void dequantize_kernel(const uint8_t* codes, const float* inv, Grid g, Float kind,
                                  void* out) {
  const int64_t tc_count = g.tile_cols();
  for (int64_t r = blockIdx.x; r < g.rows; r += gridDim.x) {
    const float* srow = inv + (r / g.bm) * tc_count;
    for (int64_t c = threadIdx.x; c < g.cols; c += blockDim.x) {
      const int64_t e = r * g.cols + c;
      store_float(out, e, kind, e4m3_to_float(codes[e]) * srow[c / g.bn]);
    }
  }
}

}  // namespace

std::string tile_amax(const void* w, Float kind, const Grid& grid, float* amax, void* stream) {
  const int64_t tiles = grid.tiles();
  if (tiles == 0) return "";
  std::string err =
      gpu_error(cudaMemsetAsync(amax, 0, static_cast<size_t>(tiles) * 4, as_stream(stream)),
                "cudaMemsetAsync");
  if (!err.empty()) return err;
  const int64_t chunks = (grid.bm + kChunkRows - 1) / kChunkRows;
  tile_amax_kernel<<<grid_for(tiles * chunks, 1), kCta, 0, as_stream(stream)>>>(
      w, kind, grid, reinterpret_cast<uint32_t*>(amax));
  return launch_error("tile_amax_kernel");
}

std::string quantize_tiles(const void* w, Float kind, const Grid& grid, const float* scale,
                           uint8_t* codes, void* stream) {
  if (grid.rows * grid.cols == 0) return "";
  quantize_kernel<<<grid_for(grid.rows, 1), kCta, 0, as_stream(stream)>>>(w, kind, grid, scale,
                                                                          codes);
  return launch_error("quantize_kernel");
}

std::string dequantize_tiles(const uint8_t* codes, const float* inv, const Grid& grid,
                             Float out_kind, void* out, void* stream) {
  if (grid.rows * grid.cols == 0) return "";
  dequantize_kernel<<<grid_for(grid.rows, 1), kCta, 0, as_stream(stream)>>>(codes, inv, grid,
                                                                            out_kind, out);
  return launch_error("dequantize_kernel");
}

}  // namespace qforge::plugins::fp8::gpu
