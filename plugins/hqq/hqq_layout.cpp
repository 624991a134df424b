// Group geometry, describe and check for the HQQLinear tensor set (see hqq_layout.hpp).
#include "hqq_layout.hpp"

#include <cmath>
#include <nlohmann/json.hpp>
#include <qforge/qf_plugin.hpp>

namespace qforge::plugins::hqq {
namespace {

using sdk::Error;

std::string shape_text(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i != 0 ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

DLDataType u8() { return sdk::make_dtype(kDLUInt, 8); }
DLDataType i32() { return sdk::make_dtype(kDLInt, 32); }

const DLTensor& required(const qf_module_info& module, const qf_tensor_list& tensors,
                         const char* name) {
  const DLTensor* t = sdk::find_tensor(&tensors, name);
  if (t == nullptr) {
    throw Error(QF_CODE_INVALID_ARGUMENT,
                "module '" + module_name(module) + "': tensor '" + name + "' is missing",
                "an HQQLinear stores W_q, scale, zero and its meta fields (shape, nbits, "
                "group_size, axis, packing, ...)",
                "check the checkpoint was written by hqq / transformers' HQQ quantizer");
  }
  return *t;
}

}  // namespace

std::string module_name(const qf_module_info& module) {
  return module.name != nullptr ? module.name : "";
}

DLDataType Geometry::wq_dtype() const { return packed.element_bytes == 4 ? i32() : u8(); }

Geometry make_geometry(double nbits, std::optional<int64_t> group_size, int axis,
                       int64_t out_features, int64_t in_features, const std::string& module) {
  Geometry g;
  g.out_features = out_features;
  g.in_features = in_features;
  g.axis = axis;
  g.nbits = nbits;
  g.max_v = max_code(nbits);
  g.packing = packing_for(nbits);
  // group_size None: HQQLinear.initialize uses in_features (axis 1) or out_features (axis 0).
  g.group = group_size ? *group_size : (axis == 1 ? in_features : out_features);
  if (g.group <= 0 || g.numel() % g.group != 0) {
    throw Error(QF_CODE_INVALID_ARGUMENT,
                "module '" + module +
                    "': group_size should be divisble by the total tensor "
                    "dimensions. shape: torch.Size([" +
                    std::to_string(out_features) + ", " + std::to_string(in_features) +
                    "]), group_size: " + std::to_string(g.group),
                "hqq's Quantizer.quantize asserts that group_size divides out*in",
                "choose a group_size that divides " + std::to_string(g.numel()) +
                    ", or add the module's linear tag to skip_modules");
  }
  g.rows = axis == 1 ? g.numel() / g.group : g.group;
  g.cols = axis == 1 ? g.group : g.numel() / g.group;
  try {
    g.packed = packed_shape(g.packing, g.rows);
  } catch (const Error& e) {
    throw Error(QF_CODE_INVALID_ARGUMENT, "module '" + module + "': " + e.what(), e.why(), e.fix());
  }
  return g;
}

FloatKind compute_kind(const qf_module_info& module) {
  const DLDataType d = module.weight_dtype;
  if (d.lanes == 1 && ((d.code == kDLFloat && (d.bits == 16 || d.bits == 32)) ||
                       (d.code == kDLBfloat && d.bits == 16))) {
    return float_kind(d, "weight");
  }
  return FloatKind::kF32;
}

std::vector<FieldSpec> field_specs(const WeightQuantParams& p, const Geometry& g,
                                   FloatKind compute) {
  const DLDataType cd = dtype_of(compute);
  const std::vector<int64_t> scalar;
  const auto text = [](const std::string& s) {
    return std::vector<int64_t>{static_cast<int64_t>(s.size())};
  };
  const std::string view_dtype = g.packed.element_bytes == 4 ? "torch.int32" : "torch.uint8";
  // An integral nbits is a Python int (I32); 1.58 is a float (F32).
  const DLDataType nbits_dtype =
      std::floor(p.nbits) == p.nbits ? i32() : sdk::make_dtype(kDLFloat, 32);
  return {
      {"W_q", g.wq_dtype(), g.wq_shape()},
      {"scale", cd, g.scale_shape()},
      {"zero", cd, g.scale_shape()},
      {"nbits", nbits_dtype, scalar},
      {"group_size", i32(), scalar},
      {"shape", sdk::make_dtype(kDLInt, 64), {2}},
      {"axis", i32(), scalar},
      {"packing", u8(), text(g.packing)},
      {"unpack_view_dtype", u8(), text(view_dtype)},
      {"view_as_float", u8(), scalar},
      {"quant_scale", u8(), scalar},
      {"quant_zero", u8(), scalar},
      {"compute_dtype", u8(), text(torch_name(compute))},
      {"offload_meta", u8(), scalar},
      {"encoded_state_dict", u8(), scalar},
      {"stores_quant_config", u8(), scalar},
      {"channel_wise", u8(), scalar},
      {"optimize", u8(), scalar},
      {"round_zero", u8(), scalar},
  };
}

std::string describe_json(const WeightQuantParams& p, const qf_module_info& module) {
  const Geometry g = make_geometry(p.nbits, p.group_size, p.axis, module.out_features,
                                   module.in_features, module_name(module));
  nlohmann::json tensors = nlohmann::json::array();
  for (const auto& f : field_specs(p, g, compute_kind(module))) {
    tensors.push_back({{"name", f.name}, {"dtype", sdk::dtype_name(f.dtype)}, {"shape", f.shape}});
  }
  return nlohmann::json{{"tensors", tensors}}.dump();
}

Geometry check_tensors(const qf_module_info& module, const qf_tensor_list& tensors) {
  const std::string name = module_name(module);
  const auto field = [&](const char* n) { return "module '" + name + "': " + n; };
  const std::vector<int64_t> shape =
      decode_size(required(module, tensors, "shape"), field("shape"));
  if (shape.size() != 2) {
    throw Error(QF_CODE_INVALID_ARGUMENT, field("shape") + " is " + shape_text(shape),
                "an HQQLinear weight is 2-D [out_features, in_features]",
                "check the checkpoint's tensors");
  }
  if ((module.out_features > 0 && shape[0] != module.out_features) ||
      (module.in_features > 0 && shape[1] != module.in_features)) {
    throw Error(QF_CODE_INVALID_ARGUMENT, field("shape") + " is " + shape_text(shape),
                "the model's architecture says [" + std::to_string(module.out_features) + ", " +
                    std::to_string(module.in_features) + "]",
                "check the checkpoint belongs to this model");
  }
  const double nbits = decode_number(required(module, tensors, "nbits"), field("nbits"));
  const int64_t group = decode_int(required(module, tensors, "group_size"), field("group_size"));
  const int64_t axis = decode_int(required(module, tensors, "axis"), field("axis"));
  const std::string packing = decode_string(required(module, tensors, "packing"), field("packing"));
  if (axis != 0 && axis != 1) {
    throw Error(QF_CODE_INVALID_ARGUMENT, field("axis") + " is " + std::to_string(axis),
                "Invalid axis value. Only 0 and 1 are allowed.", "check the checkpoint");
  }
  const DLTensor* vaf = sdk::find_tensor(&tensors, "view_as_float");
  if (vaf != nullptr && decode_int(*vaf, field("view_as_float")) != 0) {
    throw Error(QF_CODE_UNIMPLEMENTED, field("view_as_float") + " is true",
                "W_q stored viewed as a float dtype (hqq's FSDP option) is not read yet",
                "re-save the model with view_as_float=False");
  }
  // hqq stores nbits 1.58 as a float but decodes every nbits as int (1); the packing string is
  // what dequantize actually follows, so an integer nbits of 1 with packing 2bit_u8 is 1.58.
  const double effective = packing == "2bit_u8" && nbits < 2 ? 1.58 : nbits;
  Geometry g = make_geometry(effective, group, static_cast<int>(axis), shape[0], shape[1], name);
  if (g.packing != packing) {
    throw Error(QF_CODE_INVALID_ARGUMENT,
                field("packing") + " is '" + packing + "' for nbits " + std::to_string(nbits),
                "hqq packs " + std::to_string(nbits) + "-bit codes as '" + g.packing + "'",
                "check the checkpoint's nbits and packing tensors");
  }
  const DLTensor& wq = required(module, tensors, "W_q");
  const std::vector<int64_t> wq_shape(wq.shape, wq.shape + wq.ndim);
  if (!sdk::same_dtype(wq.dtype, g.wq_dtype()) || wq_shape != g.wq_shape()) {
    throw Error(QF_CODE_INVALID_ARGUMENT,
                field("W_q") + " is " + sdk::dtype_name(wq.dtype) + " " + shape_text(wq_shape),
                std::string("expected ") + sdk::dtype_name(g.wq_dtype()) + " " +
                    shape_text(g.wq_shape()) + " for " + packing + ", group_size " +
                    std::to_string(group) + ", axis " + std::to_string(axis),
                "check the checkpoint's tensors against its meta fields");
  }
  for (const char* n : {"scale", "zero"}) {
    const DLTensor& t = required(module, tensors, n);
    (void)float_kind(t.dtype, field(n));
    const std::vector<int64_t> s(t.shape, t.shape + t.ndim);
    if (s != g.scale_shape()) {
      throw Error(QF_CODE_INVALID_ARGUMENT, field(n) + " has shape " + shape_text(s),
                  "expected " + shape_text(g.scale_shape()) + " (one value per group)",
                  "check the checkpoint's tensors against its meta fields");
    }
  }
  return g;
}

}  // namespace qforge::plugins::hqq
