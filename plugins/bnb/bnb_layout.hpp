// The serialized bitsandbytes tensor sets (FORMATS.md §2.2 4-bit Linear4bit, §2.3 8-bit
// Linear8bitLt): what describe_quantized announces, what check_quantized accepts, and the exact
// bytes of the 4-bit quant_state blob, shared with quantize so the two can never disagree.
#pragma once

#include <qforge/qf_plugin.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bnb_config.hpp"

namespace qforge::plugins::bnb {

inline constexpr int64_t kBlocksize = 64;         // transformers never changes bnb's default
inline constexpr int64_t kNestedBlocksize = 256;  // double quant (compress_statistics)
inline constexpr int64_t kQuantMapSize = 16;
inline constexpr int64_t kNestedQuantMapSize = 256;

struct TensorSpec {
  std::string name;  // relative to the module: "weight", "weight.absmax", "SCB", ...
  DLDataType dtype{};
  std::vector<int64_t> shape;
};

// The non-tensor fields bitsandbytes packs into weight.quant_state.bitsandbytes__<quant_type>.
struct QuantStateFields {
  std::string quant_type;  // "nf4" or "fp4"
  int64_t blocksize = kBlocksize;
  std::string dtype;  // the weight's torch dtype name, e.g. "bfloat16"
  int64_t out_features = 0;
  int64_t in_features = 0;
  std::optional<float> nested_offset;  // set with double quant: mean(absmax)
};

// The blob's bytes: json.dumps of the fields in QuantState.as_dict's order.
// Note [nested_offset width]: Python writes repr(float), whose length depends on the value, so
// describe_quantized could not know the blob's size before quantizing. We write the offset
// with 17 significant digits in scientific notation instead: it parses to exactly the double
// repr() would give (so bitsandbytes reads the same float32), and its width is fixed. Throws
// INVALID_ARGUMENT for a non-finite offset (a weight holding NaN or Inf).
std::string quant_state_json(const QuantStateFields& fields);

// Torch dtype name of a floating DLDataType ("float16", "bfloat16", "float32", "float64");
// throws INVALID_ARGUMENT naming `what` for other dtypes.
std::string torch_float_name(DLDataType dtype, const std::string& what);
DLDataType dtype_of_torch_name(const std::string& name);  // "uint8" -> U8; throws if unknown

// Element count n = out * in of a module, overflow-checked; throws INVALID_ARGUMENT.
int64_t weight_numel(const qf_module_info& module);

// The tensors quantize writes for a module. The bias is not among them: it is stored unchanged
// and the host copies it, so check_quantized accepts a list with or without it.
std::vector<TensorSpec> describe_4bit(const BnbConfig& config, const qf_module_info& module);
std::vector<TensorSpec> describe_8bit(const qf_module_info& module);
// {"tensors":[{"name","dtype","shape"}]} with safetensors dtype names.
std::string describe_json(const std::vector<TensorSpec>& tensors);

// Pre-quantized checks (names, dtypes, shapes; values only where a rule needs them and the
// tensor is in host memory). Throw INVALID_ARGUMENT with transformers'/bitsandbytes' text.
void check_4bit(const BnbConfig& config, const qf_module_info& module,
                const qf_tensor_list& tensors);
void check_8bit(const qf_module_info& module, const qf_tensor_list& tensors);

}  // namespace qforge::plugins::bnb
