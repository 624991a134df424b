// A GGUF file mapped read-only; the header is validated once at open.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "convert/printable.hpp"
#include "qforge/convert.hpp"

namespace qforge {

struct GgufFile::Impl {
  std::filesystem::path path;
  const uint8_t* data = nullptr;
  uint64_t size = 0;
  GgufHeader header;
  ~Impl() {
    if (data != nullptr) munmap(const_cast<uint8_t*>(data), static_cast<size_t>(size));
  }
};

GgufFile::GgufFile(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GgufFile::~GgufFile() = default;
const GgufHeader& GgufFile::header() const noexcept { return impl_->header; }
const std::filesystem::path& GgufFile::path() const noexcept { return impl_->path; }

Result<std::unique_ptr<GgufFile>> GgufFile::open(const std::filesystem::path& path,
                                                 const GgufLimits& limits) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return bad_input("cannot open GGUF file", path.string() + ": " + std::strerror(errno),
                     "check the path and its permissions");
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return bad_input("not a regular file", path.string() + " is not a regular file",
                     "pass a .gguf file");
  }
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->size = static_cast<uint64_t>(st.st_size);
  if (impl->size == 0) {
    ::close(fd);
    return bad_input("not a GGUF file (bad magic)", path.string() + " is empty",
                     "pass a .gguf file written by llama.cpp / gguf-py");
  }
  void* map = mmap(nullptr, static_cast<size_t>(impl->size), PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_errno = errno;
  ::close(fd);
  if (map == MAP_FAILED) {
    return bad_input("cannot map GGUF file", path.string() + ": " + std::strerror(map_errno),
                     "check that the file is readable and fits the address space");
  }
  impl->data = static_cast<const uint8_t*>(map);
  auto header = parse_gguf_header(impl->data, static_cast<size_t>(impl->size), impl->size, limits);
  if (!header.ok()) {
    const Error& e = header.error();
    return bad_input(e.summary(), path.string() + ": " + e.why(), e.fix());
  }
  impl->header = std::move(header.value());
  return std::unique_ptr<GgufFile>(new GgufFile(std::move(impl)));
}

Result<const uint8_t*> GgufFile::tensor_data(const std::string& name) const {
  const GgufTensorInfo* t = impl_->header.find_tensor(name);
  if (t == nullptr) {
    return bad_input("GGUF tensor not found",
                     "'" + printable(name) + "' is not in " + impl_->path.string(),
                     "list the file's tensors");
  }
  if (!gguf_tensor_type_supported(t->type)) {
    return bad_input("GGUF tensor type not supported",
                     "'" + printable(name) + "' has ggml type " + ggml_type_name(t->type) +
                         "; supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1",
                     "re-export the model from llama.cpp with one of the supported types");
  }
  return impl_->data + impl_->header.data_offset + t->offset;
}

Result<std::vector<float>> GgufFile::dequantize(const std::string& name) const {
  auto data = tensor_data(name);
  if (!data.ok()) return data.error();
  const GgufTensorInfo* t = impl_->header.find_tensor(name);
  std::vector<float> out(static_cast<size_t>(t->n_elements));
  QF_RETURN_IF_ERROR(gguf_dequantize(t->type, data.value(), static_cast<size_t>(t->nbytes),
                                     t->n_elements, out.data()));
  return out;
}

}  // namespace qforge
