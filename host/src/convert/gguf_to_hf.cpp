// GGUF (llama architecture) -> HF Llama checkpoint: names, rotary permutation, config.json and
// the write through CheckpointWriter. One tensor is dequantized at a time, so memory stays at
// the largest tensor in fp32 (the embedding, for small models).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <regex>
#include <string>
#include <vector>

#include "convert/half.hpp"
#include "convert/printable.hpp"
#include "qforge/convert.hpp"

namespace qforge {
namespace {

std::string gguf_fix() { return "the GGUF file is not a llama.cpp llama-architecture model"; }

bool is_integer(GgufType t) {
  switch (t) {
    case GgufType::kUint8:
    case GgufType::kInt8:
    case GgufType::kUint16:
    case GgufType::kInt16:
    case GgufType::kUint32:
    case GgufType::kInt32:
    case GgufType::kUint64:
    case GgufType::kInt64:
      return true;
    default:
      return false;
  }
}

bool is_signed(GgufType t) {
  return t == GgufType::kInt8 || t == GgufType::kInt16 || t == GgufType::kInt32 ||
         t == GgufType::kInt64;
}

// A positive integer key; `required` false returns `fallback` when absent.
Result<int64_t> get_count(const GgufHeader& h, const std::string& key, bool required,
                          int64_t fallback = 0) {
  const GgufValue* v = h.find(key);
  if (v == nullptr) {
    if (!required) return fallback;
    return bad_input("GGUF metadata key missing", "'" + key + "' is not in the file", gguf_fix());
  }
  if (!is_integer(v->type)) {
    return bad_input("GGUF metadata key has the wrong type",
                     "'" + key + "' is " + gguf_type_name(v->type) + "; expected an integer",
                     "the file is corrupt or was written by an incompatible tool");
  }
  if ((is_signed(v->type) && v->i <= 0) || (!is_signed(v->type) && v->u == 0) ||
      v->u > (1ull << 40)) {
    return bad_input("GGUF metadata value out of range",
                     "'" + key + "' is " +
                         (is_signed(v->type) ? std::to_string(v->i) : std::to_string(v->u)) +
                         "; expected a positive count below 2^40",
                     "the file is corrupt");
  }
  return static_cast<int64_t>(v->u);
}

Result<double> get_float(const GgufHeader& h, const std::string& key, bool required,
                         double fallback) {
  const GgufValue* v = h.find(key);
  if (v == nullptr) {
    if (!required) return fallback;
    return bad_input("GGUF metadata key missing", "'" + key + "' is not in the file", gguf_fix());
  }
  if (v->type != GgufType::kFloat32 && v->type != GgufType::kFloat64) {
    return bad_input("GGUF metadata key has the wrong type",
                     "'" + key + "' is " + gguf_type_name(v->type) + "; expected FLOAT32",
                     "the file is corrupt or was written by an incompatible tool");
  }
  if (!std::isfinite(v->f) || v->f <= 0) {
    return bad_input("GGUF metadata value out of range",
                     "'" + key + "' is " + std::to_string(v->f) + "; expected a positive number",
                     "the file is corrupt");
  }
  // The shortest decimal that reads back as the stored float: 1e-05, not 9.9999997e-06.
  if (v->type == GgufType::kFloat32) {
    char buf[64];
    for (int precision = 1; precision <= 9; ++precision) {
      std::snprintf(buf, sizeof buf, "%.*g", precision, v->f);
      if (static_cast<float>(std::strtod(buf, nullptr)) == static_cast<float>(v->f)) break;
    }
    return std::strtod(buf, nullptr);
  }
  return v->f;
}

struct LlamaShape {
  int64_t hidden = 0, ff = 0, layers = 0, heads = 0, kv_heads = 0, vocab = 0, head_dim = 0;
};

Status check_shape(const GgufTensorInfo& t, const std::vector<int64_t>& expected,
                   const std::string& hf_name) {
  if (t.shape() != expected) {
    auto show = [](const std::vector<int64_t>& s) {
      std::string out = "[";
      for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
      return out + "]";
    };
    return bad_input("GGUF tensor shape disagrees with the metadata",
                     "'" + printable(t.name) + "' (" + hf_name + ") has shape " + show(t.shape()) +
                         ", the llama.* metadata implies " + show(expected),
                     "the file is corrupt or its metadata is inconsistent");
  }
  return ok_status();
}

Result<std::vector<int64_t>> expected_shape(const std::string& hf, const LlamaShape& s) {
  const int64_t q_rows = s.heads * s.head_dim;
  const int64_t kv_rows = s.kv_heads * s.head_dim;
  auto ends = [&](const char* suffix) {
    const std::string x(suffix);
    return hf.size() >= x.size() && hf.compare(hf.size() - x.size(), x.size(), x) == 0;
  };
  if (hf == "model.embed_tokens.weight" || hf == "lm_head.weight") {
    return std::vector<int64_t>{s.vocab, s.hidden};
  }
  if (ends("layernorm.weight") || hf == "model.norm.weight") return std::vector<int64_t>{s.hidden};
  if (ends("q_proj.weight")) return std::vector<int64_t>{q_rows, s.hidden};
  if (ends("k_proj.weight") || ends("v_proj.weight"))
    return std::vector<int64_t>{kv_rows, s.hidden};
  if (ends("o_proj.weight")) return std::vector<int64_t>{s.hidden, q_rows};
  if (ends("gate_proj.weight") || ends("up_proj.weight"))
    return std::vector<int64_t>{s.ff, s.hidden};
  if (ends("down_proj.weight")) return std::vector<int64_t>{s.hidden, s.ff};
  return internal_error("expected_shape", "no shape rule for " + hf);
}

Result<LlamaShape> llama_shape(const GgufHeader& h) {
  const GgufValue* arch = h.find("general.architecture");
  if (arch == nullptr) {
    return bad_input("GGUF metadata key missing", "'general.architecture' is not in the file",
                     gguf_fix());
  }
  if (arch->type != GgufType::kString) {
    return bad_input("GGUF metadata key has the wrong type",
                     std::string("'general.architecture' is ") + gguf_type_name(arch->type) +
                         "; expected STRING",
                     "the file is corrupt");
  }
  if (arch->str != "llama") {
    return bad_input(
        "GGUF architecture not supported",
        "general.architecture is '" + printable(arch->str) + "'; qforge converts 'llama' only",
        "convert the original HF checkpoint instead, or extend host/src/convert");
  }
  LlamaShape s;
  auto get = [&](const char* key, int64_t& dst, bool required, int64_t fallback) -> Status {
    auto v = get_count(h, key, required, fallback);
    if (!v.ok()) return v.error();
    dst = v.value();
    return ok_status();
  };
  QF_RETURN_IF_ERROR(get("llama.embedding_length", s.hidden, true, 0));
  QF_RETURN_IF_ERROR(get("llama.feed_forward_length", s.ff, true, 0));
  QF_RETURN_IF_ERROR(get("llama.block_count", s.layers, true, 0));
  QF_RETURN_IF_ERROR(get("llama.attention.head_count", s.heads, true, 0));
  QF_RETURN_IF_ERROR(get("llama.attention.head_count_kv", s.kv_heads, false, s.heads));
  if (s.hidden % s.heads != 0 || s.heads % s.kv_heads != 0) {
    return bad_input("GGUF attention heads inconsistent",
                     "embedding_length " + std::to_string(s.hidden) + ", head_count " +
                         std::to_string(s.heads) + ", head_count_kv " + std::to_string(s.kv_heads) +
                         ": heads must divide the embedding and kv heads the heads",
                     "the file is corrupt");
  }
  QF_RETURN_IF_ERROR(get("llama.attention.key_length", s.head_dim, false, s.hidden / s.heads));
  if (s.head_dim % 2 != 0) {
    return bad_input("GGUF head dimension odd",
                     "the head dimension is " + std::to_string(s.head_dim) +
                         "; rotary embeddings need an even one",
                     "the file is corrupt");
  }
  const GgufTensorInfo* embed = h.find_tensor("token_embd.weight");
  if (embed == nullptr) {
    return bad_input("GGUF tensor missing", "'token_embd.weight' is not in the file", gguf_fix());
  }
  if (embed->ne.size() != 2) {
    return bad_input(
        "GGUF tensor shape disagrees with the metadata",
        "'token_embd.weight' has " + std::to_string(embed->ne.size()) + " dimensions; expected 2",
        "the file is corrupt");
  }
  s.vocab = static_cast<int64_t>(embed->ne[1]);
  return s;
}

}  // namespace

Result<std::string> gguf_to_hf_tensor_name(const std::string& g) {
  if (g == "token_embd.weight") return std::string("model.embed_tokens.weight");
  if (g == "output_norm.weight") return std::string("model.norm.weight");
  if (g == "output.weight") return std::string("lm_head.weight");
  static const std::regex kBlock(R"(blk\.(0|[1-9][0-9]{0,5})\.([a-z_]+)\.weight)");
  std::smatch m;
  if (std::regex_match(g, m, kBlock)) {
    static const std::pair<const char*, const char*> kMap[] = {
        {"attn_q", "self_attn.q_proj"},          {"attn_k", "self_attn.k_proj"},
        {"attn_v", "self_attn.v_proj"},          {"attn_output", "self_attn.o_proj"},
        {"ffn_gate", "mlp.gate_proj"},           {"ffn_up", "mlp.up_proj"},
        {"ffn_down", "mlp.down_proj"},           {"attn_norm", "input_layernorm"},
        {"ffn_norm", "post_attention_layernorm"}};
    for (const auto& [from, to] : kMap) {
      if (m[2] == from) {
        return "model.layers." + m[1].str() + "." + to + ".weight";
      }
    }
  }
  return bad_input("GGUF tensor has no HF Llama name",
                   "'" + printable(g) +
                       "' is not one of token_embd, output_norm, output, blk.N.{attn_q, "
                       "attn_k, attn_v, attn_output, ffn_gate, ffn_up, ffn_down, "
                       "attn_norm, ffn_norm}.weight",
                   "the model uses features this converter does not map (e.g. rope_freqs of "
                   "Llama 3 rope scaling); convert the original HF checkpoint instead");
}

namespace {

Status check_rotary(int64_t rows, int64_t cols, int64_t n_head) {
  if (n_head <= 0 || rows <= 0 || cols <= 0 || rows % (2 * n_head) != 0) {
    return bad_input("rotary permutation impossible",
                     std::to_string(rows) + " rows cannot be split into " + std::to_string(n_head) +
                         " heads of an even size",
                     "the head counts in the metadata disagree with the tensor");
  }
  return ok_status();
}

// forward: HF -> GGUF (dst[gguf row] = src[hf row]); else the inverse.
void rotary_rows(const float* src, float* dst, int64_t rows, int64_t cols, int64_t n_head,
                 bool forward) {
  const int64_t head_dim = rows / n_head;
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < n_head; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t g = h * head_dim + 2 * i + j;
        const int64_t f = h * head_dim + j * half + i;
        const int64_t from = forward ? f : g;
        const int64_t to = forward ? g : f;
        std::copy(src + from * cols, src + (from + 1) * cols, dst + to * cols);
      }
    }
  }
}

}  // namespace

Status unpermute_rotary_rows(const float* src, float* dst, int64_t rows, int64_t cols,
                             int64_t n_head) {
  QF_RETURN_IF_ERROR(check_rotary(rows, cols, n_head));
  rotary_rows(src, dst, rows, cols, n_head, false);
  return ok_status();
}

Status permute_rotary_rows(const float* src, float* dst, int64_t rows, int64_t cols,
                           int64_t n_head) {
  QF_RETURN_IF_ERROR(check_rotary(rows, cols, n_head));
  rotary_rows(src, dst, rows, cols, n_head, true);
  return ok_status();
}

Result<nlohmann::json> llama_config_from_gguf(const GgufHeader& h) {
  auto shape = llama_shape(h);
  if (!shape.ok()) return shape.error();
  const LlamaShape& s = shape.value();
  auto ctx = get_count(h, "llama.context_length", true);
  if (!ctx.ok()) return ctx.error();
  auto eps = get_float(h, "llama.attention.layer_norm_rms_epsilon", true, 0);
  if (!eps.ok()) return eps.error();
  auto theta = get_float(h, "llama.rope.freq_base", false, 10000.0);
  if (!theta.ok()) return theta.error();
  if (const GgufValue* scaling = h.find("llama.rope.scaling.type")) {
    if (scaling->type != GgufType::kString || scaling->str != "none") {
      return bad_input("GGUF rope scaling not supported",
                       "llama.rope.scaling.type is set; this converter writes no rope_scaling",
                       "convert the original HF checkpoint instead");
    }
  }
  nlohmann::json c = {{"architectures", {"LlamaForCausalLM"}},
                      {"model_type", "llama"},
                      {"hidden_size", s.hidden},
                      {"intermediate_size", s.ff},
                      {"num_hidden_layers", s.layers},
                      {"num_attention_heads", s.heads},
                      {"num_key_value_heads", s.kv_heads},
                      {"head_dim", s.head_dim},
                      {"vocab_size", s.vocab},
                      {"max_position_embeddings", ctx.value()},
                      {"rms_norm_eps", eps.value()},
                      {"rope_theta", theta.value()},
                      {"rope_scaling", nullptr},
                      {"hidden_act", "silu"},
                      {"attention_bias", false},
                      {"attention_dropout", 0.0},
                      {"mlp_bias", false},
                      {"initializer_range", 0.02},
                      {"pretraining_tp", 1},
                      {"use_cache", true},
                      {"tie_word_embeddings", h.find_tensor("output.weight") == nullptr}};
  for (const auto& [gguf_key, hf_key] :
       {std::pair<const char*, const char*>{"tokenizer.ggml.bos_token_id", "bos_token_id"},
        {"tokenizer.ggml.eos_token_id", "eos_token_id"},
        {"tokenizer.ggml.padding_token_id", "pad_token_id"}}) {
    if (h.find(gguf_key) == nullptr) continue;
    const GgufValue* v = h.find(gguf_key);
    if (!is_integer(v->type) || v->u >= static_cast<uint64_t>(s.vocab)) {
      return bad_input("GGUF metadata value out of range",
                       std::string("'") + gguf_key + "' must be an integer token id below " +
                           std::to_string(s.vocab),
                       "the file is corrupt");
    }
    c[hf_key] = v->u;
  }
  return c;
}

Result<ConvertSummary> convert_gguf_to_hf(const std::filesystem::path& gguf_path,
                                          const std::filesystem::path& out_dir,
                                          const ConvertOptions& options) {
  const DLDataType dt = options.dtype;
  const bool out_bf16 = dt.code == kDLBfloat && dt.bits == 16;
  const bool out_f16 = dt.code == kDLFloat && dt.bits == 16;
  const bool out_f32 = dt.code == kDLFloat && dt.bits == 32;
  if (dt.lanes != 1 || !(out_bf16 || out_f16 || out_f32)) {
    return bad_input("unsupported output dtype", dtype_to_string(dt),
                     "use bfloat16, float16 or float32");
  }
  auto file = GgufFile::open(gguf_path);
  if (!file.ok()) return file.error();
  const GgufHeader& h = file.value()->header();
  auto config = llama_config_from_gguf(h);
  if (!config.ok()) return config.error();
  auto shape = llama_shape(h);
  const LlamaShape& s = shape.value();
  config.value()["torch_dtype"] = out_bf16 ? "bfloat16" : out_f16 ? "float16" : "float32";

  ConvertSummary summary;
  std::vector<OutputTensor> layout;
  std::vector<std::pair<const GgufTensorInfo*, std::string>> work;
  for (const auto& t : h.tensors) {
    auto hf = gguf_to_hf_tensor_name(t.name);
    if (!hf.ok()) return hf.error();
    if (!gguf_tensor_type_supported(t.type)) {
      return bad_input("GGUF tensor type not supported",
                       "'" + printable(t.name) + "' has ggml type " + ggml_type_name(t.type) +
                           "; supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1",
                       "re-export the model from llama.cpp with one of the supported types");
    }
    auto expected = expected_shape(hf.value(), s);
    if (!expected.ok()) return expected.error();
    QF_RETURN_IF_ERROR(check_shape(t, expected.value(), hf.value()));
    const auto layer_pos = hf.value().find("layers.");
    if (layer_pos != std::string::npos) {
      const int64_t layer = std::atoll(hf.value().c_str() + layer_pos + 7);
      if (layer >= s.layers) {
        return bad_input("GGUF tensor of a layer beyond block_count",
                         "'" + printable(t.name) + "' belongs to layer " + std::to_string(layer) +
                             ", but llama.block_count is " + std::to_string(s.layers),
                         "the file is corrupt");
      }
    }
    summary.tensor_types[hf.value()] = ggml_type_name(t.type);
    layout.push_back({hf.value(), dt, t.shape()});
    work.emplace_back(&t, hf.value());
  }
  // Every layer needs its nine tensors; a silent gap would become a zero-initialised module.
  for (int64_t l = 0; l < s.layers; ++l) {
    for (const char* part : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                             "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj",
                             "input_layernorm", "post_attention_layernorm"}) {
      const std::string name = "model.layers." + std::to_string(l) + "." + part + ".weight";
      if (summary.tensor_types.count(name) == 0) {
        return bad_input("GGUF tensor missing", "no tensor maps to '" + name + "'", gguf_fix());
      }
    }
  }
  for (const char* name : {"model.embed_tokens.weight", "model.norm.weight"}) {
    if (summary.tensor_types.count(name) == 0) {
      return bad_input("GGUF tensor missing", std::string("no tensor maps to '") + name + "'",
                       gguf_fix());
    }
  }
  std::sort(layout.begin(), layout.end(),
            [](const OutputTensor& a, const OutputTensor& b) { return a.name < b.name; });

  WriterOptions wopts;
  wopts.overwrite = options.overwrite;
  wopts.max_shard_bytes = options.max_shard_bytes;
  auto writer = CheckpointWriter::create(out_dir, layout, wopts);
  if (!writer.ok()) return writer.error();

  std::vector<float> permuted;
  std::vector<uint16_t> half_out;
  for (const auto& [t, hf] : work) {
    auto values = file.value()->dequantize(t->name);
    if (!values.ok()) return values.error();
    std::vector<float>& v = values.value();
    const bool is_q = hf.find("q_proj") != std::string::npos;
    const bool is_k = hf.find("k_proj") != std::string::npos;
    if (is_q || is_k) {
      const auto shp = t->shape();
      permuted.resize(v.size());
      QF_RETURN_IF_ERROR(unpermute_rotary_rows(v.data(), permuted.data(), shp[0], shp[1],
                                               is_q ? s.heads : s.kv_heads));
      v.swap(permuted);
    }
    if (out_f32) {
      QF_RETURN_IF_ERROR(writer.value()->write(hf, v.data(), v.size() * sizeof(float)));
      continue;
    }
    half_out.resize(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      half_out[i] = out_bf16 ? float_to_bf16(v[i]) : float_to_half(v[i]);
    }
    QF_RETURN_IF_ERROR(
        writer.value()->write(hf, half_out.data(), half_out.size() * sizeof(uint16_t)));
  }
  QF_RETURN_IF_ERROR(writer.value()->add_file("config.json", dump_config_json(config.value())));
  auto written = writer.value()->commit();
  if (!written.ok()) return written.error();
  summary.config = std::move(config.value());
  summary.written = std::move(written.value());
  return summary;
}

}  // namespace qforge
