// Linear layers: dense (at::linear on the float32 weight) or quantized (the method plugin's
// linear_forward through the C ABI; dequantize once + at::linear when the plugin has none).
#include <qforge/qf_plugin.h>

#include "runtime/runtime_internal.hpp"

namespace qforge::runtime::detail {
namespace {

std::string dims(int64_t out, int64_t in) {
  return "[" + std::to_string(out) + ", " + std::to_string(in) + "]";
}

ModuleInfo module_info_of(const ModuleEntry& module) {
  // As pipeline::module_info builds it, so the plugin sees what plan/quantize/inspect showed it.
  ModuleInfo info;
  info.name = module.name;
  info.kind = module.role == ModuleRole::kConv1D ? QF_MODULE_CONV1D : QF_MODULE_LINEAR;
  info.has_bias = module.bias.has_value();
  info.in_features = module.in_features;
  info.out_features = module.out_features;
  info.weight_dtype = module.weight_dtype;
  info.extra = module.extra();
  return info;
}

at::Tensor weight_named(std::vector<NamedTensor>& tensors, const std::string& module) {
  for (auto& t : tensors) {
    if (t.name == "weight") return to_float_tensor(TensorView::of(t.tensor), module + ".weight");
  }
  throw plugin_error("dequantize of '" + module + "' returned no 'weight'",
                     "the plugin's dequantize must return the dense weight as 'weight'",
                     "report to the plugin vendor");
}

}  // namespace

Linear Linear::load(const WeightSource& source, const std::string& module_name, int64_t out,
                    int64_t in) {
  const ModuleEntry& module = source.module(module_name);
  Linear layer;
  layer.name_ = module_name;
  layer.num_threads_ = source.num_threads();
  if (module.role == ModuleRole::kConv1D) {
    throw bad_input("module '" + module_name + "' is a Conv1D", "the runtime runs nn.Linear layers",
                    "use a Llama-family or BERT checkpoint");
  }
  if (module.bias) layer.bias_ = source.tensor(*module.bias, {out});

  if (!looks_quantized(module)) {
    layer.weight_ = source.tensor(module_name + ".weight", {out, in});
    return layer;
  }
  if (source.quantizer() == nullptr) {
    throw bad_input("module '" + module_name + "' is not stored as a dense weight",
                    "its tensors are not a float weight (+ bias) and config.json has no "
                    "quantization_config saying how to read them",
                    "run `qforge inspect` on the checkpoint; re-create it");
  }
  if (module.out_features != out || module.in_features != in) {
    throw bad_input("quantized module '" + module_name + "' has the wrong shape",
                    "it is " + dims(module.out_features, module.in_features) +
                        ", the model expects " + dims(out, in) + " from config.json",
                    "check that config.json belongs to these weights");
  }
  layer.quantizer_ = source.quantizer();
  layer.info_ = module_info_of(module);
  for (const auto& name : module.tensors) {
    auto view = source.checkpoint().view(name);
    if (!view.ok()) throw view.error();
    if (module.bias && name == *module.bias) layer.bias_view_ = view.value();
    layer.views_.push_back(NamedView{name.substr(module.name.size() + 1), std::move(view).value()});
  }
  // A probe call on one zero row decides the path: plugins without linear_forward answer
  // UNIMPLEMENTED without looking at the input.
  auto x = Tensor::zeros(DLDataType{kDLFloat, 32, 1}, {1, in});
  auto y = Tensor::zeros(DLDataType{kDLFloat, 32, 1}, {1, out});
  if (!x.ok()) throw x.error();
  if (!y.ok()) throw y.error();
  const Status probe = layer.quantizer_->linear_forward(
      layer.info_, layer.views_, TensorView::of(x.value()),
      layer.bias_view_ ? &*layer.bias_view_ : nullptr, y.value(), layer.num_threads_);
  if (!probe.ok()) {
    if (probe.error().code() != ErrorCode::kUnimplemented) throw probe.error();
    layer.use_dequantized();
  }
  return layer;
}

at::Tensor Linear::dequantized_weight() const {
  if (quantizer_ == nullptr) return weight_;
  // weight_dtype is the dtype dequantize writes; as stored it is the packed dtype (U8 for bnb).
  ModuleInfo info = info_;
  info.weight_dtype = DLDataType{kDLFloat, 32, 1};
  auto dense = quantizer_->dequantize(info, views_, num_threads_);
  if (!dense.ok()) throw dense.error();
  at::Tensor w = weight_named(dense.value(), name_);
  if (w.dim() != 2 || w.size(0) != info_.out_features || w.size(1) != info_.in_features) {
    throw plugin_error("dequantize of '" + name_ + "' returned a weight of the wrong shape",
                       "expected " + dims(info_.out_features, info_.in_features),
                       "report to the plugin vendor");
  }
  return w;
}

void Linear::use_dequantized() {
  if (quantizer_ != nullptr && !weight_.defined()) weight_ = dequantized_weight();
}

at::Tensor Linear::operator()(const at::Tensor& x) const {
  if (weight_.defined())
    return bias_.defined() ? at::linear(x, weight_, bias_) : at::linear(x, weight_);
  const at::Tensor xc = x.to(at::kFloat).contiguous();
  std::vector<int64_t> out_shape(xc.sizes().begin(), xc.sizes().end());
  out_shape.back() = info_.out_features;
  auto y = Tensor::zeros(DLDataType{kDLFloat, 32, 1}, out_shape);
  if (!y.ok()) throw y.error();
  const TensorView xv(DLDataType{kDLFloat, 32, 1},
                      std::vector<int64_t>(xc.sizes().begin(), xc.sizes().end()), xc.data_ptr());
  const Status done = quantizer_->linear_forward(
      info_, views_, xv, bias_view_ ? &*bias_view_ : nullptr, y.value(), num_threads_);
  if (!done.ok()) throw done.error();
  // The at::Tensor takes ownership of the output buffer.
  auto* owned = new Tensor(std::move(y).value());
  return at::from_blob(
      owned->data(), out_shape, [owned](void*) { delete owned; }, at::TensorOptions(at::kFloat));
}

}  // namespace qforge::runtime::detail
