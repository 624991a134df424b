// Loading checkpoint tensors as float32 at::Tensors, and the config values the models read.
#include "runtime/runtime_internal.hpp"

namespace qforge::runtime::detail {
namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

bool is_float(DLDataType d) { return d.code == kDLFloat || d.code == kDLBfloat; }

}  // namespace

at::Tensor to_float_tensor(const TensorView& view, const std::string& name) {
  const DLDataType d = view.dtype();
  at::ScalarType type;
  if (d.code == kDLFloat && d.bits == 32) {
    type = at::kFloat;
  } else if (d.code == kDLFloat && d.bits == 16) {
    type = at::kHalf;
  } else if (d.code == kDLBfloat && d.bits == 16) {
    type = at::kBFloat16;
  } else {
    throw bad_input(
        "tensor '" + name + "' cannot be used as a dense weight",
        "it is stored as " + dtype_to_string(d) + "; the runtime reads F32, F16 and BF16",
        "convert the checkpoint's dense tensors to a float dtype");
  }
  // from_blob borrows the mapping; the copy owns float32 memory that outlives it. Widening to
  // float32 is exact, so the model computes on precisely the stored values.
  const at::Tensor borrowed =
      at::from_blob(const_cast<void*>(view.data()), view.shape(), at::TensorOptions(type));
  return borrowed.to(at::kFloat, /*non_blocking=*/false, /*copy=*/true);
}

bool looks_quantized(const ModuleEntry& module) {
  if (!module.weight) return !module.tensors.empty();
  if (!is_float(module.weight_dtype)) return true;
  for (const auto& name : module.tensors) {
    if (name != *module.weight && (!module.bias || name != *module.bias)) return true;
  }
  return false;
}

WeightSource::WeightSource(const Checkpoint& checkpoint, const ModelLayout& layout,
                           std::shared_ptr<Quantizer> quantizer, int num_threads)
    : checkpoint_(checkpoint),
      layout_(layout),
      quantizer_(std::move(quantizer)),
      num_threads_(num_threads) {
  for (const auto& m : layout_.modules) by_name_[m.name] = &m;
}

const std::string& WeightSource::family() const { return layout_.map->family; }

const ModuleEntry* WeightSource::find_module(const std::string& name) const {
  const auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

const ModuleEntry& WeightSource::module(const std::string& name) const {
  const ModuleEntry* m = find_module(name);
  if (m == nullptr) {
    throw bad_input("the checkpoint has no module '" + name + "'",
                    "the " + family() + " model needs '" + name + "' and no tensor '" + name +
                        ".*' is stored in " + checkpoint_.root().string(),
                    "use a complete checkpoint (a missing shard?)");
  }
  return *m;
}

at::Tensor WeightSource::tensor(const std::string& name, const std::vector<int64_t>& shape) const {
  auto view = checkpoint_.view(name);
  if (!view.ok()) {
    if (checkpoint_.find(name) == nullptr) {
      throw bad_input("the checkpoint has no tensor '" + name + "'",
                      "the " + family() + " model needs it and " + checkpoint_.root().string() +
                          " does not store it",
                      "use a complete checkpoint (a missing shard?)");
    }
    throw view.error();
  }
  if (!shape.empty() && view.value().shape() != shape) {
    throw bad_input("tensor '" + name + "' has the wrong shape",
                    "stored " + shape_text(view.value().shape()) + ", the model expects " +
                        shape_text(shape) + " from config.json",
                    "check that config.json belongs to these weights");
  }
  return to_float_tensor(view.value(), name);
}

at::Tensor WeightSource::tensor_any(const std::vector<std::string>& names,
                                    const std::vector<int64_t>& shape) const {
  for (const auto& n : names) {
    if (has_tensor(n)) return tensor(n, shape);
  }
  std::string list;
  for (const auto& n : names) list += (list.empty() ? "'" : " or '") + n + "'";
  throw bad_input("the checkpoint has no tensor " + list,
                  "the " + family() + " model needs it and " + checkpoint_.root().string() +
                      " does not store it",
                  "use a complete checkpoint (a missing shard?)");
}

int64_t WeightSource::config_int(const std::string& key) const {
  const auto& c = config();
  if (!c.contains(key) || c[key].is_null()) {
    throw bad_input("config.json has no '" + key + "'",
                    "the " + family() + " runtime needs it to build the model",
                    "add '" + key + "' to config.json (transformers writes it)");
  }
  return config_int(key, 0);
}

int64_t WeightSource::config_int(const std::string& key, int64_t fallback) const {
  const auto& c = config();
  if (!c.contains(key) || c[key].is_null()) return fallback;
  if (!c[key].is_number_integer() || c[key].get<int64_t>() <= 0) {
    throw bad_input("config.json '" + key + "' is not a positive integer", "it is " + c[key].dump(),
                    "fix config.json");
  }
  return c[key].get<int64_t>();
}

double WeightSource::config_double(const std::string& key, double fallback) const {
  const auto& c = config();
  if (!c.contains(key) || c[key].is_null()) return fallback;
  if (!c[key].is_number()) {
    throw bad_input("config.json '" + key + "' is not a number", "it is " + c[key].dump(),
                    "fix config.json");
  }
  return c[key].get<double>();
}

}  // namespace qforge::runtime::detail
