// The Llama family (llama, mistral, qwen2) as transformers' *ForCausalLM computes it in float32:
// embed -> N x [RMSNorm -> attention (rotary, GQA, causal) + residual -> RMSNorm -> SwiGLU MLP +
// residual] -> RMSNorm -> lm_head (or the tied embedding).
#include <cmath>
#include <limits>

#include "runtime/runtime_internal.hpp"

namespace qforge::runtime::detail {
namespace {

// The prefix of the base model's modules: "model." for *ForCausalLM, "" for a bare LlamaModel.
std::string base_prefix(const WeightSource& source) {
  if (source.find_module("model.embed_tokens") != nullptr) return "model.";
  if (source.find_module("embed_tokens") != nullptr) return "";
  throw bad_input("the checkpoint has no module 'model.embed_tokens'",
                  "a " + source.family() + " model needs the token embedding and " +
                      source.checkpoint().root().string() + " stores neither " +
                      "'model.embed_tokens.weight' nor 'embed_tokens.weight'",
                  "use a complete checkpoint (a missing shard?)");
}

at::Tensor apply(const LinearCall* call, const Linear& layer, const at::Tensor& x) {
  return call != nullptr && *call ? (*call)(layer, x) : layer(x);
}

bool config_bool(const nlohmann::json& config, const std::string& key, bool fallback) {
  if (!config.contains(key) || config[key].is_null()) return fallback;
  return config[key].is_boolean() ? config[key].get<bool>() : fallback;
}

}  // namespace

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  const at::Tensor variance = x.pow(2).mean(-1, /*keepdim=*/true);
  return weight * (x * at::rsqrt(variance + eps));
}

std::unique_ptr<LlamaNetwork> LlamaNetwork::load(const WeightSource& source) {
  auto net = std::make_unique<LlamaNetwork>();
  const nlohmann::json& config = source.config();
  net->vocab_ = source.config_int("vocab_size");
  net->hidden_ = source.config_int("hidden_size");
  net->heads_ = source.config_int("num_attention_heads");
  net->kv_heads_ = source.config_int("num_key_value_heads", net->heads_);
  if (net->hidden_ % net->heads_ != 0 && !config.contains("head_dim")) {
    throw bad_input("config.json hidden_size is not a multiple of num_attention_heads",
                    std::to_string(net->hidden_) + " / " + std::to_string(net->heads_),
                    "add head_dim to config.json");
  }
  net->head_dim_ = source.config_int("head_dim", net->hidden_ / net->heads_);
  if (net->heads_ % net->kv_heads_ != 0) {
    throw bad_input("config.json num_attention_heads is not a multiple of num_key_value_heads",
                    std::to_string(net->heads_) + " / " + std::to_string(net->kv_heads_),
                    "fix config.json");
  }
  net->eps_ = source.config_double("rms_norm_eps", 1e-6);
  const std::string act = config.value("hidden_act", std::string("silu"));
  if (act != "silu") {
    throw bad_input("config.json hidden_act '" + act + "' is not supported",
                    "the Llama-family runtime computes SwiGLU with silu", "use a silu model");
  }
  if (config_bool(config, "use_sliding_window", false)) {
    throw bad_input("config.json use_sliding_window is not supported",
                    "the runtime attends to every earlier position",
                    "set use_sliding_window to false (the model then attends fully)");
  }
  // Mistral attends to the last sliding_window positions only (qwen2's window is off unless
  // use_sliding_window, refused above).
  if (config.value("model_type", std::string()) == "mistral") {
    net->window_ = source.config_int("sliding_window", 0);
  }
  const int64_t layers = source.config_int("num_hidden_layers");
  net->rotary_ = Rotary::from_config(config, net->head_dim_);

  const std::string p = base_prefix(source);
  net->embed_ = source.tensor(p + "embed_tokens.weight", {net->vocab_, net->hidden_});
  net->final_norm_ = source.tensor(p + "norm.weight", {net->hidden_});
  const int64_t q_out = net->heads_ * net->head_dim_;
  const int64_t kv_out = net->kv_heads_ * net->head_dim_;
  const int64_t inter = source.config_int("intermediate_size");
  for (int64_t i = 0; i < layers; ++i) {
    const std::string l = p + "layers." + std::to_string(i) + ".";
    Layer layer;
    layer.input_norm = source.tensor(l + "input_layernorm.weight", {net->hidden_});
    layer.post_norm = source.tensor(l + "post_attention_layernorm.weight", {net->hidden_});
    layer.q = Linear::load(source, l + "self_attn.q_proj", q_out, net->hidden_);
    layer.k = Linear::load(source, l + "self_attn.k_proj", kv_out, net->hidden_);
    layer.v = Linear::load(source, l + "self_attn.v_proj", kv_out, net->hidden_);
    layer.o = Linear::load(source, l + "self_attn.o_proj", net->hidden_, q_out);
    layer.gate = Linear::load(source, l + "mlp.gate_proj", inter, net->hidden_);
    layer.up = Linear::load(source, l + "mlp.up_proj", inter, net->hidden_);
    layer.down = Linear::load(source, l + "mlp.down_proj", net->hidden_, inter);
    net->layers_.push_back(std::move(layer));
  }
  // transformers ties when tie_word_embeddings says so (False is the default of all three
  // config classes); a checkpoint without lm_head.weight can only be run tied.
  const bool tied = config_bool(config, "tie_word_embeddings", false);
  if (!tied && source.find_module("lm_head") != nullptr) {
    net->lm_head_ = Linear::load(source, "lm_head", net->vocab_, net->hidden_);
  }
  return net;
}

at::Tensor LlamaNetwork::forward(const at::Tensor& ids, KvCache* cache) const {
  const int64_t t = ids.size(1);
  const int64_t start = cache != nullptr ? cache->length : 0;
  const at::Tensor mask = attention_mask(start, t);
  if (cache != nullptr && cache->keys.empty()) {
    cache->keys.resize(layers_.size());
    cache->values.resize(layers_.size());
  }
  at::Tensor h = embed(ids);
  for (size_t li = 0; li < layers_.size(); ++li) {
    h = h + attention(li, h, start, mask, cache);
    h = h + mlp(li, h);
  }
  if (cache != nullptr) cache->length = start + t;
  return head(h);
}

at::Tensor LlamaNetwork::embed(const at::Tensor& ids) const { return at::embedding(embed_, ids); }

at::Tensor LlamaNetwork::attention_mask(int64_t start, int64_t t) const {
  const int64_t total = start + t;
  // Query i (absolute position start + i) sees keys 0 .. start + i.
  const at::Tensor q_pos = at::arange(start, total, at::TensorOptions(at::kLong)).unsqueeze(1);
  const at::Tensor k_pos = at::arange(0, total, at::TensorOptions(at::kLong)).unsqueeze(0);
  at::Tensor hidden_keys = k_pos > q_pos;
  if (window_ > 0) hidden_keys = hidden_keys.logical_or(k_pos <= q_pos - window_);
  return at::zeros({t, total}, at::TensorOptions(at::kFloat))
      .masked_fill(hidden_keys, -std::numeric_limits<float>::infinity());
}

at::Tensor LlamaNetwork::attention(size_t li, const at::Tensor& h, int64_t start,
                                   const at::Tensor& mask, KvCache* cache,
                                   const LinearCall* call) const {
  const auto run = [call](const Linear& l, const at::Tensor& x) { return apply(call, l, x); };
  const int64_t b = h.size(0);
  const int64_t t = h.size(1);
  const int64_t groups = heads_ / kv_heads_;
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim_));
  const Layer& layer = layers_[li];
  const at::Tensor x = rms_norm(h, layer.input_norm, eps_);
  at::Tensor q = run(*layer.q, x).view({b, t, heads_, head_dim_}).transpose(1, 2);
  at::Tensor k = run(*layer.k, x).view({b, t, kv_heads_, head_dim_}).transpose(1, 2);
  at::Tensor v = run(*layer.v, x).view({b, t, kv_heads_, head_dim_}).transpose(1, 2);
  q = rotary_->apply(q, start);
  k = rotary_->apply(k, start);
  if (cache != nullptr) {
    if (cache->keys[li].defined()) {
      k = at::cat({cache->keys[li], k}, 2);
      v = at::cat({cache->values[li], v}, 2);
    }
    cache->keys[li] = k;
    cache->values[li] = v;
  }
  // repeat_kv: each kv head serves `groups` consecutive query heads.
  if (groups > 1) {
    k = k.repeat_interleave(groups, 1);
    v = v.repeat_interleave(groups, 1);
  }
  const at::Tensor scores = at::matmul(q, k.transpose(2, 3)) * scale + mask;
  const at::Tensor attn = at::matmul(at::softmax(scores, -1), v);  // [B, H, T, D]
  return run(*layer.o, attn.transpose(1, 2).reshape({b, t, heads_ * head_dim_}));
}

at::Tensor LlamaNetwork::mlp(size_t li, const at::Tensor& h, const LinearCall* call) const {
  const auto run = [call](const Linear& l, const at::Tensor& x) { return apply(call, l, x); };
  const Layer& layer = layers_[li];
  const at::Tensor y = rms_norm(h, layer.post_norm, eps_);
  return run(*layer.down, at::silu(run(*layer.gate, y)) * run(*layer.up, y));
}

at::Tensor LlamaNetwork::head(const at::Tensor& h) const {
  const at::Tensor n = rms_norm(h, final_norm_, eps_);
  return lm_head_ ? (*lm_head_)(n) : at::linear(n, embed_);
}

std::vector<const Linear*> LlamaNetwork::linears() const {
  std::vector<const Linear*> out;
  for (const auto& l : layers_) {
    for (const auto* m : {&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down}) out.push_back(&**m);
  }
  if (lm_head_) out.push_back(&*lm_head_);
  return out;
}

std::vector<Linear*> LlamaNetwork::linears() {
  std::vector<Linear*> out;
  for (const Linear* l : static_cast<const LlamaNetwork*>(this)->linears()) {
    out.push_back(const_cast<Linear*>(l));
  }
  return out;
}

}  // namespace qforge::runtime::detail
