// Shapes, describe and checks of the AWQ tensor set (see awq_layout.hpp).
#include "awq_layout.hpp"

#include <cstring>
#include <nlohmann/json.hpp>
#include <qforge/qf_plugin.hpp>

#include "awq_pack.hpp"
#include "dense_tensor_io.hpp"  // plugins/common

namespace qforge::plugins::awq {
namespace {

using sdk::Error;

std::string shape_text(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i != 0 ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

std::vector<int64_t> shape_of(const DLTensor& t) { return {t.shape, t.shape + t.ndim}; }

DLDataType i32() { return sdk::make_dtype(kDLInt, 32); }

std::string where(const qf_module_info& module, const char* name) {
  return "module '" + module_name(module) + "': tensor '" + name + "'";
}

std::string sizes(const Shapes& s) {
  return "in_features " + std::to_string(s.in) + ", out_features " + std::to_string(s.out) +
         ", group_size " + std::to_string(s.group_size);
}

const DLTensor& require(const qf_module_info& module, const qf_tensor_list& tensors,
                        const char* name) {
  const DLTensor* t = sdk::find_tensor(&tensors, name);
  if (t == nullptr) {
    throw Error(QF_CODE_INVALID_ARGUMENT, where(module, name) + " is missing",
                "an AWQ Linear stores qweight, qzeros and scales",
                "check the checkpoint was written by AutoAWQ (or qforge) with quant_method awq");
  }
  return *t;
}

void expect_i32(const qf_module_info& module, const DLTensor& t, const char* name) {
  if (!sdk::same_dtype(t.dtype, i32())) {
    throw Error(QF_CODE_INVALID_ARGUMENT,
                where(module, name) + " has dtype " + sdk::dtype_name(t.dtype),
                "expected I32: AutoAWQ stores eight 4-bit codes per int32 word",
                "check the checkpoint's quantization_config matches its tensors");
  }
}

// What the version mix-up looks like: a checkpoint in one layout read with the other version.
Shapes other_version(const Shapes& s) {
  Shapes o = s;
  o.version = s.version == AwqVersion::kGemm ? AwqVersion::kGemv : AwqVersion::kGemm;
  o.zeros_width = gemv_zeros_width(s.in, s.group_size);
  return o;
}

void check_qweight(const qf_module_info& module, const Shapes& s, const DLTensor& qweight) {
  expect_i32(module, qweight, "qweight");
  const std::vector<int64_t> want = s.qweight_shape();
  if (shape_of(qweight) == want) return;
  const Shapes other = other_version(s);
  if (shape_of(qweight) == other.qweight_shape()) {
    throw Error(QF_CODE_INVALID_ARGUMENT,
                where(module, "qweight") + " has shape " + shape_text(shape_of(qweight)) +
                    ", the " + version_name(other.version) + " layout",
                std::string("the config says version \"") + version_name(s.version) +
                    "\", whose qweight is " + shape_text(want) + " (" +
                    (s.version == AwqVersion::kGemm ? "[in, out/8], packed along the outputs"
                                                    : "[out, in/8], packed along the inputs") +
                    ")",
                std::string("set version to \"") + version_name(other.version) +
                    "\" in the quantization_config, as the checkpoint was written");
  }
  throw Error(QF_CODE_INVALID_ARGUMENT,
              where(module, "qweight") + " has shape " + shape_text(shape_of(qweight)),
              "expected " + shape_text(want) + " for " + sizes(s) + " (" + version_name(s.version) +
                  ", 4-bit)",
              "check the checkpoint belongs to this model and its quantization_config (bits 4, "
              "version) matches it");
}

// The group count a qzeros / scales tensor implies, when only that dimension is off.
void check_grouped(const qf_module_info& module, const Shapes& s, const DLTensor& t,
                   const char* name, const std::vector<int64_t>& want, int group_dim) {
  const std::vector<int64_t> got = shape_of(t);
  if (got == want) return;
  if (got.size() == 2 && got[1 - group_dim] == want[static_cast<size_t>(1 - group_dim)]) {
    const int64_t n = got[static_cast<size_t>(group_dim)];
    std::string implied;
    if (s.version == AwqVersion::kGemm && n > 0 && s.in % n == 0) {
      implied =
          "; " + std::to_string(n) + " groups would mean group_size " + std::to_string(s.in / n);
    }
    const std::string unit = s.version == AwqVersion::kGemm ? " groups (rows)" : " columns";
    throw Error(QF_CODE_INVALID_ARGUMENT,
                where(module, name) + " has " + std::to_string(n) + unit + ", expected " +
                    std::to_string(want[static_cast<size_t>(group_dim)]),
                (s.version == AwqVersion::kGemm
                     ? std::to_string(s.groups) + " groups = in_features " + std::to_string(s.in) +
                           " / group_size " + std::to_string(s.group_size)
                     : "GEMV stores " + std::to_string(s.groups) +
                           " groups padded to calculate_zeros_width(" + std::to_string(s.in) +
                           ", " + std::to_string(s.group_size) +
                           ") = " + std::to_string(s.zeros_width) + " words") +
                    implied,
                "set group_size in the quantization_config to what the checkpoint was written "
                "with");
  }
  throw Error(
      QF_CODE_INVALID_ARGUMENT, where(module, name) + " has shape " + shape_text(got),
      "expected " + shape_text(want) + " for " + sizes(s) + " (" + version_name(s.version) + ")",
      "check the checkpoint's quantization_config (group_size, version) matches it");
}

}  // namespace

std::string module_name(const qf_module_info& module) {
  return module.name != nullptr ? module.name : "";
}

std::vector<int64_t> Shapes::qweight_shape() const {
  if (version == AwqVersion::kGemv) return {out, in / kPackNum};
  return {in, out / kPackNum};
}

std::vector<int64_t> Shapes::qzeros_shape() const {
  if (version == AwqVersion::kGemv) return {out, zeros_width};
  return {groups, out / kPackNum};
}

std::vector<int64_t> Shapes::scales_shape() const {
  if (version == AwqVersion::kGemv) return {out, zeros_width * kPackNum};
  return {groups, out};
}

Shapes make_shapes(const AwqConfig& config, int64_t in, int64_t out) {
  Shapes s;
  s.in = in;
  s.out = out;
  s.group_size = config.effective_group_size(in);
  s.groups = s.group_size > 0 ? in / s.group_size : 0;
  s.version = config.version;
  if (s.version == AwqVersion::kGemv) s.zeros_width = gemv_zeros_width(in, s.group_size);
  return s;
}

std::string packing_problem(const AwqConfig& config, int64_t in, int64_t out) {
  const Shapes s = make_shapes(config, in, out);
  if (in <= 0 || out <= 0) return "the layer has no inputs or no outputs";
  if (out % kPackNum != 0) {
    return "out_features " + std::to_string(out) +
           " is not a multiple of 8: AutoAWQ packs eight 4-bit values per int32 along the "
           "output dimension (GEMM qweight and qzeros) and asserts out_features % 8 == 0";
  }
  if (in % s.group_size != 0) {
    return "in_features " + std::to_string(in) + " is not a multiple of group_size " +
           std::to_string(s.group_size) +
           ": AutoAWQ asserts in_features % group_size == 0 (every group is whole)";
  }
  if (s.version == AwqVersion::kGemv) {
    if (in % kPackNum != 0) {
      return "in_features " + std::to_string(in) +
             " is not a multiple of 8: GEMV qweight packs eight inputs per int32";
    }
    if (s.zeros_width == 0) {
      return "group_size " + std::to_string(s.group_size) +
             " has no GEMV zeros width: AutoAWQ's calculate_zeros_width knows group sizes >= "
             "128, 64 and 32 only (NotImplementedError otherwise)";
    }
  }
  return "";
}

std::string describe_json(const AwqConfig& config, const qf_module_info& module) {
  const Shapes s = make_shapes(config, module.in_features, module.out_features);
  nlohmann::json tensors = nlohmann::json::array();
  tensors.push_back({{"name", "qweight"}, {"dtype", "I32"}, {"shape", s.qweight_shape()}});
  tensors.push_back({{"name", "qzeros"}, {"dtype", "I32"}, {"shape", s.qzeros_shape()}});
  tensors.push_back({{"name", "scales"}, {"dtype", "F16"}, {"shape", s.scales_shape()}});
  return nlohmann::json{{"tensors", tensors}}.dump();
}

void check_tensors(const AwqConfig& config, const qf_module_info& module,
                   const qf_tensor_list& tensors) {
  const Shapes s = make_shapes(config, module.in_features, module.out_features);
  const std::string problem = packing_problem(config, s.in, s.out);
  if (!problem.empty()) {
    throw Error(QF_CODE_INVALID_ARGUMENT,
                "module '" + module_name(module) + "' cannot hold AWQ " + version_name(s.version) +
                    " tensors",
                problem,
                "check group_size and version in the quantization_config match the "
                "checkpoint");
  }
  check_qweight(module, s, require(module, tensors, "qweight"));
  const DLTensor& qzeros = require(module, tensors, "qzeros");
  expect_i32(module, qzeros, "qzeros");
  const int group_dim = s.version == AwqVersion::kGemm ? 0 : 1;
  check_grouped(module, s, qzeros, "qzeros", s.qzeros_shape(), group_dim);
  const DLTensor& scales = require(module, tensors, "scales");
  const DLDataType sd = scales.dtype;
  const bool float_scales =
      sd.lanes == 1 && ((sd.code == kDLFloat && (sd.bits == 16 || sd.bits == 32)) ||
                        (sd.code == kDLBfloat && sd.bits == 16));
  if (!float_scales) {
    throw Error(QF_CODE_INVALID_ARGUMENT,
                where(module, "scales") + " has dtype " + sdk::dtype_name(sd),
                "expected F16 (AutoAWQ), BF16 or F32",
                "check the checkpoint's quantization_config matches its tensors");
  }
  check_grouped(module, s, scales, "scales", s.scales_shape(), group_dim);
}

PackedView read_packed(const AwqConfig& config, const qf_module_info& module,
                       const qf_tensor_list& tensors) {
  check_tensors(config, module, tensors);
  PackedView p;
  p.shapes = make_shapes(config, module.in_features, module.out_features);
  const Shapes& s = p.shapes;
  const DLTensor& qweight = require(module, tensors, "qweight");
  require_host_contiguous(qweight, "qweight");
  const std::vector<int32_t> qz = read_int32(require(module, tensors, "qzeros"), "qzeros");
  const std::vector<float> sc = read_floats(require(module, tensors, "scales"), "scales");
  p.zeros.resize(static_cast<size_t>(s.groups * s.out));
  p.scales.resize(static_cast<size_t>(s.groups * s.out));
  std::vector<uint8_t> z(p.zeros.size());
  if (s.version == AwqVersion::kGemm) {
    // The largest tensor is read in place, as gptq does: copying it per call cost as much as
    // reading it.
    p.qweight = reinterpret_cast<const int32_t*>(bytes_of(qweight));
    unpack_gemm(qz.data(), s.groups, s.out, z.data());
    p.scales = sc;
  } else {
    p.owned.resize(static_cast<size_t>(s.in * s.out / kPackNum));
    std::vector<int32_t> words(static_cast<size_t>(s.out * s.in / kPackNum));
    if (!words.empty()) std::memcpy(words.data(), bytes_of(qweight), words.size() * 4);
    gemv_to_gemm_qweight(words.data(), s.in, s.out, p.owned.data());
    p.qweight = p.owned.data();
    unpack_gemv_qzeros(qz.data(), s.groups, s.out, s.zeros_width, z.data());
    const int64_t ld = s.zeros_width * kPackNum;
    for (int64_t g = 0; g < s.groups; ++g) {
      for (int64_t o = 0; o < s.out; ++o) {
        p.scales[static_cast<size_t>(g * s.out + o)] = sc[static_cast<size_t>(o * ld + g)];
      }
    }
  }
  for (size_t n = 0; n < z.size(); ++n) p.zeros[n] = z[n];
  return p;
}

Layer unpack(const PackedView& packed) {
  Layer l;
  l.shapes = packed.shapes;
  const Shapes& s = packed.shapes;
  l.codes.resize(static_cast<size_t>(s.in * s.out));
  unpack_gemm(packed.qweight, s.in, s.out, l.codes.data());
  l.zeros.assign(packed.zeros.begin(), packed.zeros.end());
  l.scales = packed.scales;
  return l;
}

}  // namespace qforge::plugins::awq
