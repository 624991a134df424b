#include "llama_model.hpp"

#include <cstring>

#include "deterministic_normal.hpp"
#include "float_convert.hpp"
#include "qforge/tensor.hpp"

namespace qforge::make_model {
namespace {

// A transformers release whose LlamaConfig has every key written here (head_dim, mlp_bias)
// and still saves the dtype as "torch_dtype".
constexpr const char* kTransformersVersion = "4.46.3";

// One tensor of at most this many elements; bigger asks are typos, not test models.
constexpr int64_t kMaxElements = int64_t{1} << 34;

Status check_positive(const char* flag, int64_t value) {
  QF_CHECK(value > 0, bad_input(std::string("invalid ") + flag,
                                std::string(flag) + " is " + std::to_string(value) +
                                    "; it must be a positive integer",
                                std::string("pass a positive value to ") + flag));
  return ok_status();
}

Status check_product(const char* what, int64_t a, int64_t b) {
  QF_CHECK(a <= kMaxElements / b,
           bad_input(std::string("model too large: ") + what,
                     std::to_string(a) + " x " + std::to_string(b) + " elements exceed 2^34",
                     "use smaller sizes; this tool makes test models"));
  return ok_status();
}

const char* torch_dtype_name(const std::string& dtype) {
  if (dtype == "bf16") return "bfloat16";
  if (dtype == "fp16") return "float16";
  return "float32";
}

DLDataType dl_dtype(const std::string& dtype) {
  if (dtype == "bf16") return DLDataType{kDLBfloat, 16, 1};
  if (dtype == "fp16") return DLDataType{kDLFloat, 16, 1};
  return DLDataType{kDLFloat, 32, 1};
}

}  // namespace

Status validate(const LlamaSpec& spec) {
  QF_RETURN_IF_ERROR(check_positive("--hidden", spec.hidden));
  QF_RETURN_IF_ERROR(check_positive("--intermediate", spec.intermediate));
  QF_RETURN_IF_ERROR(check_positive("--layers", spec.layers));
  QF_RETURN_IF_ERROR(check_positive("--heads", spec.heads));
  QF_RETURN_IF_ERROR(check_positive("--kv-heads", spec.kv_heads));
  QF_RETURN_IF_ERROR(check_positive("--vocab", spec.vocab));
  QF_CHECK(
      spec.hidden % spec.heads == 0,
      bad_input("--hidden is not a multiple of --heads",
                "hidden " + std::to_string(spec.hidden) + " / heads " + std::to_string(spec.heads) +
                    " leaves a remainder; Llama's head_dim is "
                    "hidden / heads",
                "pick --heads dividing --hidden (e.g. --hidden 512 --heads 8)"));
  QF_CHECK(spec.heads % spec.kv_heads == 0,
           bad_input("--heads is not a multiple of --kv-heads",
                     "heads " + std::to_string(spec.heads) + " / kv-heads " +
                         std::to_string(spec.kv_heads) +
                         " leaves a remainder; grouped-query attention shares each kv head "
                         "among heads / kv-heads query heads",
                     "pick --kv-heads dividing --heads"));
  QF_CHECK(spec.dtype == "bf16" || spec.dtype == "fp16" || spec.dtype == "fp32",
           bad_input("unknown --dtype '" + spec.dtype + "'",
                     "the generator writes bf16, fp16 or fp32", "use --dtype bf16|fp16|fp32"));
  QF_RETURN_IF_ERROR(check_product("--vocab x --hidden", spec.vocab, spec.hidden));
  QF_RETURN_IF_ERROR(check_product("--intermediate x --hidden", spec.intermediate, spec.hidden));
  QF_RETURN_IF_ERROR(check_product("--hidden x --hidden", spec.hidden, spec.hidden));
  QF_CHECK(
      spec.layers <= 4096,
      bad_input("too many layers", "--layers is " + std::to_string(spec.layers) + "; at most 4096",
                "use fewer layers"));
  return ok_status();
}

nlohmann::json llama_config(const LlamaSpec& spec) {
  // The keys LlamaConfig.save_pretrained writes (its diff against PretrainedConfig's defaults
  // plus every Llama-specific key), with LlamaConfig's defaults where no flag sets the value.
  nlohmann::json c = nlohmann::json::object();
  c["architectures"] = nlohmann::json::array({"LlamaForCausalLM"});
  c["attention_bias"] = false;
  c["attention_dropout"] = 0.0;
  c["bos_token_id"] = 1;
  c["eos_token_id"] = 2;
  c["head_dim"] = spec.hidden / spec.heads;
  c["hidden_act"] = "silu";
  c["hidden_size"] = spec.hidden;
  c["initializer_range"] = spec.initializer_range;
  c["intermediate_size"] = spec.intermediate;
  c["max_position_embeddings"] = 2048;
  c["mlp_bias"] = false;
  c["model_type"] = "llama";
  c["num_attention_heads"] = spec.heads;
  c["num_hidden_layers"] = spec.layers;
  c["num_key_value_heads"] = spec.kv_heads;
  c["pretraining_tp"] = 1;
  c["rms_norm_eps"] = 1e-06;
  c["rope_scaling"] = nullptr;
  c["rope_theta"] = 10000.0;
  c["tie_word_embeddings"] = spec.tie_embeddings;
  c["torch_dtype"] = torch_dtype_name(spec.dtype);
  c["transformers_version"] = kTransformersVersion;
  c["use_cache"] = true;
  c["vocab_size"] = spec.vocab;
  return c;
}

std::vector<GeneratedTensor> llama_tensors(const LlamaSpec& spec) {
  const DLDataType dtype = dl_dtype(spec.dtype);
  const int64_t head_dim = spec.hidden / spec.heads;
  const int64_t q_out = spec.heads * head_dim;
  const int64_t kv_out = spec.kv_heads * head_dim;
  std::vector<GeneratedTensor> out;
  auto add = [&](std::string name, std::vector<int64_t> shape, Init init, bool linear) {
    out.push_back(
        GeneratedTensor{OutputTensor{std::move(name), dtype, std::move(shape)}, init, linear});
  };
  add("model.embed_tokens.weight", {spec.vocab, spec.hidden}, Init::kNormal, false);
  for (int64_t i = 0; i < spec.layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    add(p + "self_attn.q_proj.weight", {q_out, spec.hidden}, Init::kNormal, true);
    add(p + "self_attn.k_proj.weight", {kv_out, spec.hidden}, Init::kNormal, true);
    add(p + "self_attn.v_proj.weight", {kv_out, spec.hidden}, Init::kNormal, true);
    add(p + "self_attn.o_proj.weight", {spec.hidden, q_out}, Init::kNormal, true);
    add(p + "mlp.gate_proj.weight", {spec.intermediate, spec.hidden}, Init::kNormal, true);
    add(p + "mlp.up_proj.weight", {spec.intermediate, spec.hidden}, Init::kNormal, true);
    add(p + "mlp.down_proj.weight", {spec.hidden, spec.intermediate}, Init::kNormal, true);
    add(p + "input_layernorm.weight", {spec.hidden}, Init::kOnes, false);
    add(p + "post_attention_layernorm.weight", {spec.hidden}, Init::kOnes, false);
  }
  add("model.norm.weight", {spec.hidden}, Init::kOnes, false);
  if (!spec.tie_embeddings) add("lm_head.weight", {spec.vocab, spec.hidden}, Init::kNormal, false);
  return out;
}

std::vector<uint8_t> generate_tensor(const LlamaSpec& spec, const GeneratedTensor& tensor) {
  int64_t numel = 1;
  for (const int64_t d : tensor.out.shape) numel *= d;
  const size_t elem = spec.dtype == "fp32" ? 4 : 2;
  std::vector<uint8_t> bytes(static_cast<size_t>(numel) * elem);
  NormalStream normal(tensor_seed(spec.seed, tensor.out.name));
  for (int64_t i = 0; i < numel; ++i) {
    // The value is defined in float32 first (as torch initialises a float32 model and then
    // casts), so every dtype holds the rounding of the same number.
    const float v = tensor.init == Init::kOnes
                        ? 1.0f
                        : static_cast<float>(normal.next() * spec.initializer_range);
    uint8_t* dst = bytes.data() + static_cast<size_t>(i) * elem;
    uint32_t bits32 = 0;
    uint16_t bits16 = 0;
    if (spec.dtype == "fp32") {
      std::memcpy(&bits32, &v, 4);
      for (int b = 0; b < 4; ++b) dst[b] = static_cast<uint8_t>(bits32 >> (8 * b));
      continue;
    }
    bits16 = spec.dtype == "bf16" ? float_to_bf16_bits(v) : float_to_fp16_bits(v);
    dst[0] = static_cast<uint8_t>(bits16 & 0xFF);
    dst[1] = static_cast<uint8_t>(bits16 >> 8);
  }
  return bytes;
}

Result<MakeSummary> write_llama_checkpoint(const LlamaSpec& spec, const std::filesystem::path& out,
                                           const WriterOptions& options) {
  QF_RETURN_IF_ERROR(validate(spec));
  const std::vector<GeneratedTensor> tensors = llama_tensors(spec);
  std::vector<OutputTensor> layout;
  MakeSummary summary;
  for (const auto& t : tensors) {
    layout.push_back(t.out);
    int64_t numel = 1;
    for (const int64_t d : t.out.shape) numel *= d;
    summary.parameters += numel;
    if (t.linear) summary.linear_parameters += numel;
  }
  auto created = CheckpointWriter::create(out, std::move(layout), options);
  if (!created.ok()) return created.error();
  CheckpointWriter& writer = *created.value();
  for (const auto& t : tensors) {
    const std::vector<uint8_t> bytes = generate_tensor(spec, t);
    QF_RETURN_IF_ERROR(writer.write(t.out.name, bytes.data(), bytes.size()));
  }
  QF_RETURN_IF_ERROR(writer.add_file("config.json", dump_config_json(llama_config(spec))));
  auto committed = writer.commit();
  if (!committed.ok()) return committed.error();
  summary.written = std::move(committed.value());
  return summary;
}

}  // namespace qforge::make_model
