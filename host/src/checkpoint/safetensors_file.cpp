// SafetensorsFile: one .safetensors file mapped read-only (MAP_PRIVATE, PROT_READ), validated
// whole by parse_safetensors_header before any view is handed out. Views point into the mapping
// (zero-copy) and hold the file alive; see docs/safetensors.md for what truncating a mapped file
// does (SIGBUS) and why replacing it by rename is safe.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "checkpoint/posix_io.hpp"
#include "qforge/checkpoint.hpp"

namespace qforge {

struct SafetensorsFile::Impl {
  std::filesystem::path path;
  void* base = nullptr;
  size_t length = 0;
  SafetensorsHeader header;
  std::vector<size_t> by_name;  // indices into header.tensors, sorted by name

  ~Impl() {
    if (base != nullptr) ::munmap(base, length);
  }
};

namespace {

Error with_file(const std::filesystem::path& path, const Error& e) {
  return Error(e.code(), e.exit_code(), path.string() + ": " + e.summary(), e.why(), e.fix());
}

}  // namespace

SafetensorsFile::SafetensorsFile(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SafetensorsFile::~SafetensorsFile() = default;

Result<std::shared_ptr<const SafetensorsFile>> SafetensorsFile::open(
    const std::filesystem::path& path, const SafetensorsLimits& limits) {
  checkpoint::Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    const int err = errno;
    return bad_input("cannot open safetensors file '" + path.string() + "'",
                     std::strerror(err) + std::string(" (errno ") + std::to_string(err) + ")",
                     "check that the file exists and is readable");
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return checkpoint::io_error("stat", path, errno);
  if (!S_ISREG(st.st_mode)) {
    return bad_input("'" + path.string() + "' is not a regular file",
                     "safetensors weights must be regular files (not folders, pipes or devices)",
                     "point qforge at the model folder or a .safetensors file");
  }
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  const auto file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < 8) {
    // Too small to map usefully; the parser produces the "header too small" error.
    uint8_t prefix[8] = {};
    const ssize_t got = ::pread(fd.get(), prefix, sizeof prefix, 0);
    const size_t have = got > 0 ? static_cast<size_t>(got) : 0;
    auto header =
        parse_safetensors_header(prefix, have, std::min<uint64_t>(file_size, have), limits);
    if (!header.ok()) return with_file(path, header.error());
    return internal_error("safetensors parser accepted a file below 8 bytes", path.string());
  }
  if (file_size > static_cast<uint64_t>(SIZE_MAX)) {
    return bad_input("'" + path.string() + "' is too large to map",
                     std::to_string(file_size) + " bytes", "use a 64-bit build");
  }
  impl->length = static_cast<size_t>(file_size);
  void* base = ::mmap(nullptr, impl->length, PROT_READ, MAP_PRIVATE, fd.get(), 0);
  if (base == MAP_FAILED) return checkpoint::io_error("mmap", path, errno);
  impl->base = base;
  // The size from fstat is the size we validate against; a file truncated after this point is
  // documented behaviour (SIGBUS on access), not silent wrong data.
  auto header =
      parse_safetensors_header(static_cast<const uint8_t*>(base), impl->length, file_size, limits);
  if (!header.ok()) return with_file(path, header.error());
  impl->header = std::move(header).value();
  for (TensorInfo& t : impl->header.tensors) t.file = path;
  impl->by_name.resize(impl->header.tensors.size());
  for (size_t i = 0; i < impl->by_name.size(); ++i) impl->by_name[i] = i;
  const auto& tensors = impl->header.tensors;
  std::sort(impl->by_name.begin(), impl->by_name.end(),
            [&](size_t a, size_t b) { return tensors[a].name < tensors[b].name; });
  return std::shared_ptr<const SafetensorsFile>(new SafetensorsFile(std::move(impl)));
}

const std::filesystem::path& SafetensorsFile::path() const noexcept { return impl_->path; }

const std::vector<TensorInfo>& SafetensorsFile::tensors() const noexcept {
  return impl_->header.tensors;
}

const std::map<std::string, std::string>& SafetensorsFile::metadata() const noexcept {
  return impl_->header.metadata;
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const noexcept {
  const auto& tensors = impl_->header.tensors;
  const auto it = std::lower_bound(
      impl_->by_name.begin(), impl_->by_name.end(), name,
      [&](size_t index, const std::string& key) { return tensors[index].name < key; });
  if (it == impl_->by_name.end() || tensors[*it].name != name) return nullptr;
  return &tensors[*it];
}

Result<TensorView> SafetensorsFile::view(const std::string& name) const {
  const TensorInfo* info = find(name);
  if (info == nullptr) {
    return bad_input("tensor '" + name + "' is not in '" + impl_->path.string() + "'",
                     "the file holds " + std::to_string(impl_->header.tensors.size()) + " tensors",
                     "check the tensor name");
  }
  const auto* data = static_cast<const uint8_t*>(impl_->base) + info->file_offset;
  const size_t elem = dtype_size(info->dtype);
  if (reinterpret_cast<uintptr_t>(data) % elem == 0) {
    return TensorView(info->dtype, info->shape, data, shared_from_this());
  }
  // A header whose length is not a multiple of 8 leaves data misaligned for its dtype; kernels
  // read it as typed pointers, so such a tensor is copied once into aligned memory (ST16).
  auto copy = Tensor::zeros(info->dtype, info->shape);
  if (!copy.ok()) return copy.error();
  auto owned = std::make_shared<Tensor>(std::move(copy).value());
  if (info->nbytes != 0) std::memcpy(owned->data(), data, static_cast<size_t>(info->nbytes));
  const void* aligned = owned->data();
  return TensorView(info->dtype, info->shape, aligned, std::shared_ptr<const void>(owned, aligned));
}

void SafetensorsFile::release(const std::string& name) const noexcept {
  const TensorInfo* info = find(name);
  if (info == nullptr || info->nbytes == 0) return;
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<uintptr_t>(impl_->base) + info->file_offset;
  const uintptr_t first = begin / page * page;
  const uintptr_t last = begin + info->nbytes;
  // Pages shared with a neighbour tensor are dropped too; they fault back in if used.
  (void)::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

}  // namespace qforge
