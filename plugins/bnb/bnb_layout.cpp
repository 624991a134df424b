// bitsandbytes tensor sets and quant_state blob (see bnb_layout.hpp).
#include "bnb_layout.hpp"

#include <array>
#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <qforge/qf_plugin.hpp>

namespace qforge::plugins::bnb {
namespace {

using sdk::Error;

// QuantState.valid_qs_type_keys and valid_qs_keys (bitsandbytes functional.py).
constexpr std::array<const char*, 2> kQuantStateTypeKeys = {"bitsandbytes__fp4",
                                                            "bitsandbytes__nf4"};
constexpr std::array<const char*, 12> kQuantStateKeys = {
    "absmax",    "quant_map", "nested_absmax", "nested_quant_map", "quant_state",  "quant_type",
    "blocksize", "dtype",     "shape",         "nested_blocksize", "nested_dtype", "nested_offset"};
// Blocksizes bitsandbytes' quantize_4bit accepts; transformers always uses 64, but checkpoints
// made with bitsandbytes directly may use another.
constexpr std::array<int64_t, 8> kValidBlocksizes = {32, 64, 128, 256, 512, 1024, 2048, 4096};

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::vector<int64_t> shape_of(const DLTensor& t) {
  return std::vector<int64_t>(t.shape, t.shape + (t.ndim > 0 ? t.ndim : 0));
}

// Bytes per element of a quant_storage dtype (bitsandbytes' dtype2bytes).
int64_t storage_itemsize(const std::string& storage) {
  if (storage == "float16" || storage == "bfloat16") return 2;
  if (storage == "float32") return 4;
  if (storage == "float64") return 8;
  return 1;  // uint8, int8
}

// torch's name for a dtype, as transformers' messages print it ("torch.int8").
std::string torch_name_of(DLDataType d) {
  if (d.lanes == 1) {
    if (d.code == kDLFloat && d.bits == 16) return "torch.float16";
    if (d.code == kDLFloat && d.bits == 32) return "torch.float32";
    if (d.code == kDLFloat && d.bits == 64) return "torch.float64";
    if (d.code == kDLBfloat && d.bits == 16) return "torch.bfloat16";
    if (d.code == kDLInt && d.bits == 8) return "torch.int8";
    if (d.code == kDLUInt && d.bits == 8) return "torch.uint8";
  }
  return std::string("safetensors ") + sdk::dtype_name(d);
}

std::string module_name(const qf_module_info& module) {
  return module.name != nullptr ? module.name : "";
}

bool on_host(const DLTensor& t) {
  return t.data != nullptr &&
         (t.device.device_type == kDLCPU || t.device.device_type == kDLCUDAHost);
}

// The host prefixes every status with the plugin, method and hook, so messages do not repeat it.
Error bad_tensor(const std::string& what, const std::string& why, const std::string& fix) {
  return Error(QF_CODE_INVALID_ARGUMENT, what, why, fix);
}

// The module's tensors by name; rejects NULL entries and duplicates.
std::map<std::string, const DLTensor*> index_tensors(const qf_tensor_list& list) {
  std::map<std::string, const DLTensor*> out;
  for (int64_t i = 0; i < list.count; ++i) {
    const qf_named_tensor& item = list.items[i];
    if (item.name == nullptr || item.tensor == nullptr) {
      throw bad_tensor("tensor list entry " + std::to_string(i) + " is NULL",
                       "every entry needs a name and a tensor", "report to the qforge developers");
    }
    if (!out.emplace(item.name, item.tensor).second) {
      throw bad_tensor(std::string("tensor '") + item.name + "' appears twice",
                       "a module has one tensor per name", "fix the checkpoint");
    }
  }
  return out;
}

const DLTensor& require(const std::map<std::string, const DLTensor*>& tensors,
                        const std::string& name, const std::string& what, const std::string& fix) {
  auto it = tensors.find(name);
  if (it == tensors.end()) {
    throw bad_tensor(what, "the module's tensors have no '" + name + "'", fix);
  }
  return *it->second;
}

void expect(const DLTensor& t, const std::string& name, DLDataType dtype,
            const std::vector<int64_t>& shape, const std::string& explain) {
  if (!sdk::same_dtype(t.dtype, dtype)) {
    throw bad_tensor("tensor '" + name + "' has the wrong dtype",
                     std::string("got ") + sdk::dtype_name(t.dtype) + ", expected " +
                         sdk::dtype_name(dtype) + explain,
                     "re-quantize the checkpoint or fix the quantization_config that describes it");
  }
  if (shape_of(t) != shape) {
    throw bad_tensor("tensor '" + name + "' has the wrong shape",
                     "got " + shape_text(shape_of(t)) + ", expected " + shape_text(shape) + explain,
                     "re-quantize the checkpoint or fix the quantization_config that describes it");
  }
}

void check_bias(const std::map<std::string, const DLTensor*>& tensors,
                const qf_module_info& module) {
  auto it = tensors.find("bias");
  if (module.has_bias == 0) {
    if (it != tensors.end()) {
      throw bad_tensor("unexpected tensor 'bias'",
                       "module '" + module_name(module) + "' is described without bias",
                       "fix the checkpoint or the architecture map");
    }
    return;
  }
  // The bias is the host's: it copies it unchanged and quantize never writes it, so a list
  // without one (quantize's own outputs) is complete. One that is present must fit.
  if (it == tensors.end()) return;
  if (shape_of(*it->second) != std::vector<int64_t>{module.out_features}) {
    throw bad_tensor("tensor 'bias' has the wrong shape",
                     "got " + shape_text(shape_of(*it->second)) + ", expected [" +
                         std::to_string(module.out_features) + "] (out_features)",
                     "fix the checkpoint");
  }
}

}  // namespace

std::string torch_float_name(DLDataType dtype, const std::string& what) {
  if (dtype.lanes == 1) {
    if (dtype.code == kDLFloat && dtype.bits == 16) return "float16";
    if (dtype.code == kDLFloat && dtype.bits == 32) return "float32";
    if (dtype.code == kDLFloat && dtype.bits == 64) return "float64";
    if (dtype.code == kDLBfloat && dtype.bits == 16) return "bfloat16";
  }
  throw Error(QF_CODE_INVALID_ARGUMENT, what + " is not a floating-point weight",
              std::string("its dtype is ") + sdk::dtype_name(dtype) +
                  "; bitsandbytes quantizes F16, BF16, F32 and F64 weights",
              "exclude the module from quantization (llm_int8_skip_modules)");
}

DLDataType dtype_of_torch_name(const std::string& name) {
  if (name == "uint8") return sdk::make_dtype(kDLUInt, 8);
  if (name == "int8") return sdk::make_dtype(kDLInt, 8);
  if (name == "float16") return sdk::make_dtype(kDLFloat, 16);
  if (name == "bfloat16") return sdk::make_dtype(kDLBfloat, 16);
  if (name == "float32") return sdk::make_dtype(kDLFloat, 32);
  if (name == "float64") return sdk::make_dtype(kDLFloat, 64);
  throw Error(QF_CODE_INTERNAL, "unknown storage dtype '" + name + "'",
              "parse_bnb_config lets only the six bitsandbytes storage dtypes through",
              "report to the qforge developers");
}

int64_t weight_numel(const qf_module_info& module) {
  const int64_t out = module.out_features, in = module.in_features;
  if (out <= 0 || in <= 0 || out > std::numeric_limits<int64_t>::max() / in) {
    throw Error(QF_CODE_INVALID_ARGUMENT,
                "module '" + module_name(module) + "' has an impossible weight shape",
                "out_features " + std::to_string(out) + ", in_features " + std::to_string(in) +
                    "; both must be positive and their product fit in 64 bits",
                "fix the checkpoint or the architecture map");
  }
  return out * in;
}

std::string quant_state_json(const QuantStateFields& fields) {
  // json.dumps' default separators are ", " and ": ".
  std::string s = "{\"quant_type\": \"" + fields.quant_type +
                  "\", \"blocksize\": " + std::to_string(fields.blocksize) + ", \"dtype\": \"" +
                  fields.dtype + "\", \"shape\": [" + std::to_string(fields.out_features) + ", " +
                  std::to_string(fields.in_features) + "]";
  if (fields.nested_offset) {
    const double offset = static_cast<double>(*fields.nested_offset);
    if (!std::isfinite(offset)) {
      throw Error(QF_CODE_INVALID_ARGUMENT, "double quantization produced a non-finite offset",
                  "mean(absmax) is " + std::to_string(offset) + "; the weight holds NaN or Inf",
                  "fix the checkpoint's weights or skip this module");
    }
    // Note [nested_offset width]: 17 significant digits, locale-independent.
    std::array<char, 40> buf{};
    const auto result = std::to_chars(buf.data(), buf.data() + buf.size(), offset,
                                      std::chars_format::scientific, 16);
    s += ", \"nested_blocksize\": " + std::to_string(kNestedBlocksize) +
         ", \"nested_dtype\": \"float32\", \"nested_offset\": " +
         std::string(buf.data(), result.ptr);
  }
  return s + "}";
}

std::vector<TensorSpec> describe_4bit(const BnbConfig& config, const qf_module_info& module) {
  const int64_t n = weight_numel(module);
  const std::string name = module_name(module);
  QuantStateFields fields;
  fields.quant_type = config.bnb_4bit_quant_type;
  fields.dtype = torch_float_name(module.weight_dtype, "module '" + name + "'");
  fields.out_features = module.out_features;
  fields.in_features = module.in_features;
  if (config.bnb_4bit_use_double_quant) fields.nested_offset = 0.0f;  // width only
  const int64_t blocks = ceil_div(n, kBlocksize);
  const DLDataType f32 = sdk::make_dtype(kDLFloat, 32), u8 = sdk::make_dtype(kDLUInt, 8);

  std::vector<TensorSpec> out;
  // bitsandbytes: torch.zeros(((n + 1) // (itemsize * 2), 1), dtype=quant_storage).
  out.push_back({"weight",
                 dtype_of_torch_name(config.bnb_4bit_quant_storage),
                 {(n + 1) / (2 * storage_itemsize(config.bnb_4bit_quant_storage)), 1}});
  out.push_back({"weight.absmax", config.bnb_4bit_use_double_quant ? u8 : f32, {blocks}});
  out.push_back({"weight.quant_map", f32, {kQuantMapSize}});
  if (config.bnb_4bit_use_double_quant) {
    out.push_back({"weight.nested_absmax", f32, {ceil_div(blocks, kNestedBlocksize)}});
    out.push_back({"weight.nested_quant_map", f32, {kNestedQuantMapSize}});
  }
  out.push_back({"weight.quant_state.bitsandbytes__" + config.bnb_4bit_quant_type,
                 u8,
                 {static_cast<int64_t>(quant_state_json(fields).size())}});
  return out;
}

std::vector<TensorSpec> describe_8bit(const qf_module_info& module) {
  (void)weight_numel(module);  // validates the shape
  std::vector<TensorSpec> out;
  out.push_back({"weight", sdk::make_dtype(kDLInt, 8), {module.out_features, module.in_features}});
  out.push_back({"SCB", sdk::make_dtype(kDLFloat, 32), {module.out_features}});
  out.push_back({"weight_format", sdk::make_dtype(kDLUInt, 8), {}});
  return out;
}

std::string describe_json(const std::vector<TensorSpec>& tensors) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& t : tensors) {
    list.push_back({{"name", t.name}, {"dtype", sdk::dtype_name(t.dtype)}, {"shape", t.shape}});
  }
  return nlohmann::json{{"tensors", list}}.dump();
}

void check_4bit(const BnbConfig& config, const qf_module_info& module,
                const qf_tensor_list& tensors) {
  const auto by_name = index_tensors(tensors);
  const int64_t n = weight_numel(module);
  const std::string fix_missing =
      "the checkpoint is not a complete bitsandbytes 4-bit checkpoint; re-save it with qforge "
      "or bitsandbytes >= 0.41.3";

  // Classify companions the way QuantState.from_dict does: the packed quant_state item(s), and
  // the rest by their last dotted component.
  std::vector<std::string> quant_state_keys;
  for (const auto& [name, tensor] : by_name) {
    (void)tensor;
    if (name == "weight" || name == "bias") continue;
    const std::string last = name.substr(name.rfind('.') + 1);
    if (name.compare(0, 7, "weight.") != 0) {
      throw bad_tensor("unexpected tensor '" + name + "'",
                       "a bitsandbytes 4-bit module holds weight, weight.absmax, "
                       "weight.quant_map, weight.quant_state.bitsandbytes__nf4|fp4, optional "
                       "weight.nested_absmax and weight.nested_quant_map, and bias",
                       "check that the checkpoint was quantized with bitsandbytes 4-bit (an "
                       "8-bit checkpoint has SCB)");
    }
    if (name.find("quant_state") != std::string::npos) {
      quant_state_keys.push_back(name);
      continue;
    }
    bool valid = false;
    for (const char* key : kQuantStateKeys) valid = valid || last == key;
    if (!valid) {
      throw bad_tensor("unexpected tensor '" + name + "'",
                       "'" + last +
                           "' is not a QuantState key (absmax, quant_map, "
                           "nested_absmax, nested_quant_map, ...)",
                       "check that the checkpoint was quantized with bitsandbytes 4-bit");
    }
  }

  const DLTensor& weight = require(by_name, "weight", "missing tensor 'weight'", fix_missing);
  const std::string qs_name = quant_state_keys.size() == 1 ? quant_state_keys[0] : "";
  const std::string qs_type = qs_name.substr(qs_name.rfind('.') + 1);
  bool qs_valid = false;
  for (const char* key : kQuantStateTypeKeys) qs_valid = qs_valid || qs_type == key;
  if (!qs_valid) {
    std::string detected = "[";
    for (size_t i = 0; i < quant_state_keys.size(); ++i) {
      detected += (i ? ", '" : "'") + quant_state_keys[i] + "'";
    }
    throw bad_tensor(
        "There should be exactly one `quant_state` item with ending from "
        "['bitsandbytes__fp4', 'bitsandbytes__nf4']",
        "Detected " + detected + "]", fix_missing);
  }
  const std::string blob_type = qs_type.substr(std::string("bitsandbytes__").size());
  if (blob_type != config.bnb_4bit_quant_type) {
    sdk::log(QF_LOG_WARN, "module '" + module_name(module) + "' was quantized as " + blob_type +
                              " but the config says bnb_4bit_quant_type " +
                              config.bnb_4bit_quant_type + "; the tensors' " + blob_type +
                              " wins, as in bitsandbytes");
  }

  const int64_t itemsize = storage_itemsize(config.bnb_4bit_quant_storage);
  const int64_t packed_rows = (n + 1) / (2 * itemsize);
  expect(weight, "weight", dtype_of_torch_name(config.bnb_4bit_quant_storage), {packed_rows, 1},
         " (the flattened [" + std::to_string(module.out_features) + ", " +
             std::to_string(module.in_features) + "] weight packed two 4-bit codes per byte into " +
             config.bnb_4bit_quant_storage + " elements: [(n+1)//" + std::to_string(2 * itemsize) +
             ", 1]; a dense [out, in] weight is not quantized)");

  const bool nested =
      by_name.count("weight.nested_absmax") + by_name.count("weight.nested_quant_map") > 0;
  const DLDataType f32 = sdk::make_dtype(kDLFloat, 32), u8 = sdk::make_dtype(kDLUInt, 8);
  const DLTensor& absmax = require(by_name, "weight.absmax",
                                   "Missing quantization component `weight.absmax`", fix_missing);
  // Any valid blocksize; the message names transformers' 64.
  int64_t blocks = ceil_div(n, kBlocksize);
  if (absmax.ndim == 1) {
    for (int64_t b : kValidBlocksizes) {
      if (absmax.shape[0] == ceil_div(n, b)) blocks = absmax.shape[0];
    }
  }
  expect(absmax, "weight.absmax", nested ? u8 : f32, {blocks},
         nested ? " (double quantization stores 8-bit absmax codes, one per block of " +
                      std::to_string(kBlocksize) + ")"
                : " (one float32 absmax per block of " + std::to_string(kBlocksize) + ")");
  const DLTensor& quant_map =
      require(by_name, "weight.quant_map", "Missing quantization component `weight.quant_map`",
              fix_missing);
  expect(quant_map, "weight.quant_map", f32, {kQuantMapSize}, " (the 16-entry codebook)");
  if (nested) {
    const DLTensor& nested_absmax =
        require(by_name, "weight.nested_absmax",
                "Missing quantization component `weight.nested_absmax`", fix_missing);
    expect(nested_absmax, "weight.nested_absmax", f32, {ceil_div(blocks, kNestedBlocksize)},
           " (one float32 per 256 absmax codes)");
    const DLTensor& nested_map =
        require(by_name, "weight.nested_quant_map",
                "Missing quantization component `weight.nested_quant_map`", fix_missing);
    expect(nested_map, "weight.nested_quant_map", f32, {kNestedQuantMapSize},
           " (the 256-entry dynamic map)");
  }
  const DLTensor& blob = *by_name.at(qs_name);
  if (!sdk::same_dtype(blob.dtype, u8) || blob.ndim != 1 || blob.shape[0] <= 0) {
    throw bad_tensor("tensor '" + qs_name + "' is malformed",
                     std::string("got ") + sdk::dtype_name(blob.dtype) + " " +
                         shape_text(shape_of(blob)) + ", expected non-empty U8 [len] (JSON bytes)",
                     fix_missing);
  }
  check_bias(by_name, module);
}

void check_8bit(const qf_module_info& module, const qf_tensor_list& tensors) {
  const auto by_name = index_tensors(tensors);
  for (const auto& [name, tensor] : by_name) {
    (void)tensor;
    if (name != "weight" && name != "SCB" && name != "weight_format" && name != "bias") {
      throw bad_tensor("unexpected tensor '" + name + "'",
                       "a bitsandbytes 8-bit module holds weight, SCB, weight_format and bias",
                       "check that the checkpoint was quantized with bitsandbytes 8-bit (a "
                       "4-bit checkpoint has weight.absmax and weight.quant_state.*)");
    }
  }
  const std::string fix = "re-save the checkpoint with qforge or bitsandbytes > 0.37.2";
  const DLTensor& weight = require(by_name, "weight", "missing tensor 'weight'", fix);
  if (!sdk::same_dtype(weight.dtype, sdk::make_dtype(kDLInt, 8))) {
    throw bad_tensor("Incompatible dtype `" + torch_name_of(weight.dtype) +
                         "` when loading 8-bit prequantized weight. Expected `torch.int8`.",
                     "a pre-quantized LLM.int8 weight is stored as int8 codes",
                     "check that the checkpoint is an 8-bit one, or load it without "
                     "quantization_config");
  }
  const int64_t out = module.out_features;
  (void)weight_numel(module);
  expect(weight, "weight", weight.dtype, {out, module.in_features},
         " ([out_features, in_features], row-major)");
  const DLTensor& scb = require(by_name, "SCB", "Missing quantization component `SCB`", fix);
  expect(scb, "SCB", sdk::make_dtype(kDLFloat, 32), {out},
         " (one float32 row absmax per output feature)");
  if (auto it = by_name.find("weight_format"); it != by_name.end()) {
    const DLTensor& format = *it->second;
    if (!sdk::same_dtype(format.dtype, sdk::make_dtype(kDLUInt, 8)) || sdk::numel(format) != 1) {
      throw bad_tensor("tensor 'weight_format' is malformed",
                       std::string("got ") + sdk::dtype_name(format.dtype) + " " +
                           shape_text(shape_of(format)) + ", expected a U8 scalar",
                       fix);
    }
    if (on_host(format)) {
      const uint8_t value = *(static_cast<const uint8_t*>(format.data) + format.byte_offset);
      if (value != 0) {
        static const char* const kNames[] = {"row", "col32", "col_turing", "col_ampere"};
        throw bad_tensor("Only 'row' weight format is supported",
                         "weight_format is " + std::to_string(value) +
                             (value < 4 ? std::string(" ('") + kNames[value] + "')" : "") +
                             ", expected 0 ('row')",
                         "re-save the checkpoint with bitsandbytes >= 0.41, which writes 'row'");
      }
    }
  }
  check_bias(by_name, module);
}

}  // namespace qforge::plugins::bnb
