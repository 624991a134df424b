#include "qforge/tensor.hpp"

#include <qforge/qf_plugin.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

namespace qforge {
namespace {

struct DtypeRow {
  uint8_t code;
  uint8_t bits;
  const char* safetensors;
  const char* torch;
};

// One row per dtype a safetensors file may hold (plus U16..U64 that newer writers emit).
constexpr DtypeRow kDtypes[] = {
    {kDLFloat, 64, "F64", "float64"},
    {kDLFloat, 32, "F32", "float32"},
    {kDLFloat, 16, "F16", "float16"},
    {kDLBfloat, 16, "BF16", "bfloat16"},
    {QF_DL_FLOAT8_E4M3FN, 8, "F8_E4M3", "float8_e4m3fn"},
    {QF_DL_FLOAT8_E5M2, 8, "F8_E5M2", "float8_e5m2"},
    {kDLInt, 64, "I64", "int64"},
    {kDLInt, 32, "I32", "int32"},
    {kDLInt, 16, "I16", "int16"},
    {kDLInt, 8, "I8", "int8"},
    {kDLUInt, 64, "U64", "uint64"},
    {kDLUInt, 32, "U32", "uint32"},
    {kDLUInt, 16, "U16", "uint16"},
    {kDLUInt, 8, "U8", "uint8"},
    {QF_DL_BOOL, 8, "BOOL", "bool"},
};

// Note [tensor storage]: every buffer is preceded by a 64-byte header saying how to free it.
// Small buffers come from aligned_alloc and are memset. Large ones (>= kMapBytes) are private
// anonymous mappings whose data starts on a 2 MiB boundary, advised MADV_HUGEPAGE. Faulting
// fresh pages in is the expensive part on the machines we measured (a first touch of 256 MiB
// took 350 ms with 4 KiB pages and ~110 ms with 2 MiB pages, against ~30 ms to memset memory
// already mapped: on a VM each new page is also a host fault). So:
//  - a fresh mapping is already zero (no memset; its pages fault in where they are first
//    written, typically in a plugin's parallel_for workers);
//  - a freed mapping is kept in a small cache (kCacheBytes, kCacheEntries) and handed to the
//    next allocation it fits (capacity at most twice the request), memset to zero there.
//    Layers of one model repeat their shapes, so quantize / dequantize reuse the same few
//    buffers instead of faulting in new memory for every tensor. The cache is bounded so peak
//    RSS grows by at most kCacheBytes.
constexpr size_t kHeader = 64;
constexpr size_t kMapBytes = size_t{4} << 20;
constexpr size_t kHugePage = size_t{2} << 20;
constexpr size_t kCacheBytes = size_t{768} << 20;
constexpr size_t kCacheEntries = 8;
constexpr uint64_t kHeapMagic = 0x7166686561703031ull;  // "qfheap01"
constexpr uint64_t kMapMagic = 0x71666d6d61703031ull;   // "qfmmap01"

struct AllocHeader {
  uint64_t magic;
  void* base;
  size_t length;
};
static_assert(sizeof(AllocHeader) <= kHeader, "the header fits before the data");

size_t round_up(size_t v, size_t to) { return (v + to - 1) / to * to; }

// A freed mapping: its data pointer and how many bytes from there it holds.
struct CachedMap {
  unsigned char* data;
  size_t capacity;
  size_t length;
};

struct MapCache {
  std::mutex mutex;
  std::vector<CachedMap> entries;  // oldest first
  size_t bytes = 0;
};

MapCache& map_cache() {
  static auto* cache = new MapCache();  // never freed: tensors may outlive static destructors
  return *cache;
}

unsigned char* take_cached(size_t bytes) {
  MapCache& cache = map_cache();
  std::lock_guard<std::mutex> lock(cache.mutex);
  size_t best = cache.entries.size();
  for (size_t i = 0; i < cache.entries.size(); ++i) {
    const CachedMap& e = cache.entries[i];
    if (e.capacity >= bytes && e.capacity <= 2 * bytes &&
        (best == cache.entries.size() || e.capacity < cache.entries[best].capacity)) {
      best = i;
    }
  }
  if (best == cache.entries.size()) return nullptr;
  unsigned char* data = cache.entries[best].data;
  cache.bytes -= cache.entries[best].length;
  cache.entries.erase(cache.entries.begin() + static_cast<std::ptrdiff_t>(best));
  return data;
}

void release_mapping(unsigned char* data, const AllocHeader& h) {
  const auto* end = static_cast<unsigned char*>(h.base) + h.length;
  const CachedMap freed{data, static_cast<size_t>(end - data), h.length};
  std::vector<CachedMap> evicted;
  {
    MapCache& cache = map_cache();
    std::lock_guard<std::mutex> lock(cache.mutex);
    if (freed.length <= kCacheBytes) {
      cache.entries.push_back(freed);
      cache.bytes += freed.length;
    } else {
      evicted.push_back(freed);
    }
    while (cache.bytes > kCacheBytes || cache.entries.size() > kCacheEntries) {
      evicted.push_back(cache.entries.front());
      cache.bytes -= cache.entries.front().length;
      cache.entries.erase(cache.entries.begin());
    }
  }
  for (const CachedMap& e : evicted) {
    AllocHeader eh;
    std::memcpy(&eh, e.data - kHeader, sizeof eh);
    munmap(eh.base, eh.length);
  }
}

// memset of a reused buffer, split over the cores when it is large: one thread cannot keep
// the memory bus busy, and a reused 256 MiB output is zeroed on every dequantize.
void zero_large(unsigned char* data, size_t bytes) {
  constexpr size_t kSplit = size_t{64} << 20;
  const size_t threads = std::min<size_t>(std::max(1u, std::thread::hardware_concurrency()), 8);
  if (bytes < kSplit || threads < 2) {
    std::memset(data, 0, bytes);
    return;
  }
  const size_t chunk = round_up((bytes + threads - 1) / threads, 4096);
  std::vector<std::thread> helpers;
  try {
    for (size_t off = chunk; off < bytes; off += chunk) {
      helpers.emplace_back([=] { std::memset(data + off, 0, std::min(chunk, bytes - off)); });
    }
  } catch (const std::system_error&) {
    // No thread: zero what no helper took here.
    const size_t taken = chunk * (helpers.size() + 1);
    if (taken < bytes) std::memset(data + taken, 0, bytes - taken);
  }
  std::memset(data, 0, std::min(chunk, bytes));
  for (auto& t : helpers) t.join();
}

// Zero-filled, 64-byte aligned storage for `bytes` (> 0), or nullptr.
void* allocate_zeroed(size_t bytes) {
  if (bytes >= kMapBytes && bytes <= std::numeric_limits<size_t>::max() / 4) {
    if (unsigned char* reused = take_cached(bytes)) {
      zero_large(reused, bytes);
      return reused;
    }
    const size_t length = round_up(bytes, kHugePage) + kHugePage;
    void* base = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base != MAP_FAILED) {
      auto* data = reinterpret_cast<unsigned char*>(
          round_up(reinterpret_cast<uintptr_t>(base) + kHeader, kHugePage));
      // Advisory only: without transparent huge pages the mapping still works with 4 KiB pages.
      (void)madvise(data, round_up(bytes, kHugePage), MADV_HUGEPAGE);
      AllocHeader h{kMapMagic, base, length};
      std::memcpy(data - kHeader, &h, sizeof h);
      return data;
    }
    // No mapping (address space limits): the heap may still have room.
  }
  auto* base = static_cast<unsigned char*>(std::aligned_alloc(64, round_up(bytes, 64) + kHeader));
  if (base == nullptr) return nullptr;
  std::memset(base + kHeader, 0, round_up(bytes, 64));
  AllocHeader h{kHeapMagic, base, 0};
  std::memcpy(base, &h, sizeof h);
  return base + kHeader;
}

}  // namespace

bool dtype_equal(DLDataType a, DLDataType b) noexcept {
  return a.code == b.code && a.bits == b.bits && a.lanes == b.lanes;
}

size_t dtype_size(DLDataType dtype) noexcept {
  if (dtype.lanes != 1) return 0;
  for (const auto& row : kDtypes) {
    if (row.code == dtype.code && row.bits == dtype.bits) return row.bits / 8;
  }
  return 0;
}

std::string dtype_to_string(DLDataType dtype) {
  if (dtype.lanes == 1) {
    for (const auto& row : kDtypes) {
      if (row.code == dtype.code && row.bits == dtype.bits) return row.safetensors;
    }
  }
  return "?";
}

Result<DLDataType> dtype_from_string(const std::string& name) {
  std::string bare = name.rfind("torch.", 0) == 0 ? name.substr(6) : name;
  for (const auto& row : kDtypes) {
    if (bare == row.safetensors || bare == row.torch) return DLDataType{row.code, row.bits, 1};
  }
  if (bare == "half") return DLDataType{kDLFloat, 16, 1};
  if (bare == "float") return DLDataType{kDLFloat, 32, 1};
  return bad_input("unknown dtype '" + name + "'",
                   "it is neither a safetensors dtype (F32, BF16, U8, ...) nor a torch dtype name",
                   "use one of float32, float16, bfloat16, int8, uint8, ...");
}

Result<int64_t> checked_numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    const int64_t d = shape[i];
    if (d < 0) {
      return bad_input("negative dimension in tensor shape",
                       "dimension " + std::to_string(i) + " is " + std::to_string(d),
                       "shapes must be non-negative");
    }
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d) {
      return bad_input("tensor shape overflows",
                       "the element count exceeds 2^63-1 at dimension " + std::to_string(i),
                       "check the shape");
    }
    n *= d;
  }
  return n;
}

void Tensor::FreeDeleter::operator()(void* p) const noexcept {
  if (p == nullptr) return;
  AllocHeader h;
  std::memcpy(&h, static_cast<unsigned char*>(p) - kHeader, sizeof h);
  if (h.magic == kMapMagic) {
    release_mapping(static_cast<unsigned char*>(p), h);
  } else {
    std::free(h.base);
  }
}

Result<Tensor> Tensor::zeros(DLDataType dtype, std::vector<int64_t> shape, DLDevice device) {
  if (device.device_type != kDLCPU) {
    return bad_input("host tensors live on the CPU",
                     "device type " + std::to_string(device.device_type) + " was requested",
                     "use a CPU device; device buffers come from a CUDA-enabled build");
  }
  const size_t elem = dtype_size(dtype);
  if (elem == 0) {
    return bad_input("unsupported tensor dtype",
                     "code " + std::to_string(dtype.code) + " bits " + std::to_string(dtype.bits) +
                         " lanes " + std::to_string(dtype.lanes),
                     "use a safetensors dtype");
  }
  auto numel = checked_numel(shape);
  if (!numel.ok()) return numel.error();
  const auto n = static_cast<uint64_t>(numel.value());
  if (n > std::numeric_limits<size_t>::max() / elem - 256) {  // room for the header
    return bad_input("tensor too large", std::to_string(n) + " elements", "check the shape");
  }
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.numel_ = numel.value();
  t.nbytes_ = static_cast<size_t>(n) * elem;
  const size_t alloc = t.nbytes_ == 0 ? 64 : round_up(t.nbytes_, 64);
  void* p = allocate_zeroed(alloc);
  if (p == nullptr) {
    return Error(ErrorCode::kResourceExhausted, ExitCode::kInternal, "out of host memory",
                 "could not allocate " + std::to_string(alloc) + " bytes",
                 "free memory or use a smaller model");
  }
  t.data_.reset(p);
  t.view_.data = p;
  t.view_.device = device;
  t.view_.ndim = static_cast<int32_t>(t.shape_.size());
  t.view_.dtype = dtype;
  t.view_.shape = t.shape_.data();
  t.view_.strides = nullptr;
  t.view_.byte_offset = 0;
  return t;
}

TensorView::TensorView(DLDataType dtype, std::vector<int64_t> shape, const void* data,
                       std::shared_ptr<const void> keepalive)
    : shape_(std::move(shape)), keepalive_(std::move(keepalive)) {
  // Callers build views from validated headers or existing Tensors, so the numel is known to
  // fit; a failure here is our bug, not bad input.
  auto numel = checked_numel(shape_);
  QF_ASSERT(numel.ok());
  numel_ = numel.value();
  nbytes_ = static_cast<size_t>(numel_) * dtype_size(dtype);
  view_.data = const_cast<void*>(data);  // DLTensor has no const data; views are read-only
  view_.device = DLDevice{kDLCPU, 0};
  view_.dtype = dtype;
  view_.strides = nullptr;
  view_.byte_offset = 0;
  rebind();
}

TensorView TensorView::of(const Tensor& tensor) {
  return TensorView(tensor.dtype(), tensor.shape(), tensor.data());
}

void TensorView::rebind() noexcept {
  view_.ndim = static_cast<int32_t>(shape_.size());
  view_.shape = shape_.empty() ? nullptr : shape_.data();
}

TensorView::TensorView(const TensorView& other)
    : shape_(other.shape_),
      numel_(other.numel_),
      nbytes_(other.nbytes_),
      keepalive_(other.keepalive_),
      view_(other.view_) {
  rebind();
}

TensorView& TensorView::operator=(const TensorView& other) {
  if (this != &other) {
    shape_ = other.shape_;
    numel_ = other.numel_;
    nbytes_ = other.nbytes_;
    keepalive_ = other.keepalive_;
    view_ = other.view_;
    rebind();
  }
  return *this;
}

TensorView::TensorView(TensorView&& other) noexcept
    : shape_(std::move(other.shape_)),
      numel_(other.numel_),
      nbytes_(other.nbytes_),
      keepalive_(std::move(other.keepalive_)),
      view_(other.view_) {
  rebind();
}

TensorView& TensorView::operator=(TensorView&& other) noexcept {
  if (this != &other) {
    shape_ = std::move(other.shape_);
    numel_ = other.numel_;
    nbytes_ = other.nbytes_;
    keepalive_ = std::move(other.keepalive_);
    view_ = other.view_;
    rebind();
  }
  return *this;
}

Result<Tensor> TensorView::copy() const {
  auto t = Tensor::zeros(dtype(), shape_);
  if (!t.ok()) return t.error();
  if (nbytes_ != 0) std::memcpy(t.value().data(), data(), nbytes_);
  return std::move(t).value();
}

}  // namespace qforge
