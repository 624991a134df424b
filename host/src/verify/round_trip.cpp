// (e) serialization round trip: QUANT is written again with the checkpoint writer into a fresh
// folder under the system temporary folder, read back, and compared tensor by tensor (names,
// dtypes, shapes, bytes) and config by config. The folder is removed afterwards, also on
// failure.
#include <stdlib.h>  // mkdtemp

#include <cstring>
#include <system_error>

#include "verify/verify_internal.hpp"

namespace qforge::verify {
namespace {

namespace fs = std::filesystem;

class TempFolder {
 public:
  TempFolder() {
    std::error_code ec;
    const fs::path base = fs::temp_directory_path(ec);
    std::string pattern = ((ec ? fs::path("/tmp") : base) / "qforge-verify-XXXXXX").string();
    if (::mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TempFolder() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  TempFolder(const TempFolder&) = delete;
  TempFolder& operator=(const TempFolder&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

Status write_again(const Checkpoint& quantized, const fs::path& out) {
  std::vector<OutputTensor> layout;
  for (const TensorInfo& t : quantized.tensors()) layout.push_back({t.name, t.dtype, t.shape});
  auto writer = CheckpointWriter::create(out, layout);
  if (!writer.ok()) return writer.error();
  for (const TensorInfo& t : quantized.tensors()) {
    auto view = quantized.view(t.name);
    if (!view.ok()) return view.error();
    QF_RETURN_IF_ERROR(writer.value()->write(t.name, view.value()));
  }
  if (quantized.has_config_file()) {
    QF_RETURN_IF_ERROR(
        writer.value()->add_file("config.json", dump_config_json(quantized.config())));
  }
  auto committed = writer.value()->commit();
  if (!committed.ok()) return committed.error();
  return ok_status();
}

}  // namespace

void check_round_trip(const Checkpoint& quantized, VerifyCheck& check) {
  TempFolder folder;
  if (folder.path().empty()) {
    fail(check, "cannot create a temporary folder under " + fs::temp_directory_path().string() +
                    " to write QUANT into");
    return;
  }
  const fs::path out = folder.path() / "quant";
  Status written = write_again(quantized, out);
  if (!written.ok()) {
    fail(check, "writing QUANT again failed: " + written.error().to_string());
    return;
  }
  auto again = Checkpoint::open(out);
  if (!again.ok()) {
    fail(check, "the rewritten QUANT does not open: " + again.error().to_string());
    return;
  }
  Problems problems;
  const auto& before = quantized.tensors();
  const auto& after = again.value().tensors();
  if (before.size() != after.size()) {
    problems.add(std::to_string(before.size()) + " tensors before, " +
                 std::to_string(after.size()) + " after");
  }
  uint64_t bytes = 0;
  for (const TensorInfo& t : before) {
    const TensorInfo* u = again.value().find(t.name);
    if (u == nullptr) {
      problems.add("tensor '" + t.name + "' is lost");
      continue;
    }
    if (!dtype_equal(t.dtype, u->dtype) || t.shape != u->shape) {
      problems.add("tensor '" + t.name + "' comes back as " + u->dtype_name + ", was " +
                   t.dtype_name);
      continue;
    }
    auto a = quantized.view(t.name);
    auto b = again.value().view(t.name);
    if (!a.ok() || !b.ok()) {
      problems.add("tensor '" + t.name + "' cannot be read back");
      continue;
    }
    if (a.value().nbytes() != b.value().nbytes() ||
        std::memcmp(a.value().data(), b.value().data(), a.value().nbytes()) != 0) {
      problems.add("tensor '" + t.name + "' bytes differ after the round trip");
    }
    bytes += t.nbytes;
  }
  if (again.value().config() != quantized.config()) {
    problems.add("config.json differs after the round trip");
  }
  if (problems.empty()) {
    check.outcome = CheckOutcome::kPass;
    check.detail =
        std::to_string(before.size()) + " tensors, " + std::to_string(bytes) + " bytes identical";
  } else {
    fail(check, problems.text());
  }
}

}  // namespace qforge::verify
