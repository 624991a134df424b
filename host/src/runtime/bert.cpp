// BERT encoders as transformers' BertModel computes them in float32 (eval: no dropout):
// (word + token_type(0)) + absolute position embeddings -> LayerNorm -> N x post-LN layers
// [self-attention (bidirectional) -> dense -> LayerNorm(x + attn) -> GELU intermediate ->
// dense -> LayerNorm(x + ...)]. The pooler and task heads are not run.
#include <cmath>

#include "runtime/runtime_internal.hpp"

namespace qforge::runtime::detail {
namespace {

// "bert." for task models (BertForMaskedLM, ...), "" for a bare BertModel (sentence-transformers).
std::string base_prefix(const WeightSource& source) {
  if (source.find_module("bert.embeddings.word_embeddings") != nullptr) return "bert.";
  if (source.find_module("embeddings.word_embeddings") != nullptr) return "";
  throw bad_input("the checkpoint has no module 'embeddings.word_embeddings'",
                  "a BERT model needs the word embedding and " +
                      source.checkpoint().root().string() + " stores neither " +
                      "'bert.embeddings.word_embeddings.weight' nor "
                      "'embeddings.word_embeddings.weight'",
                  "use a complete checkpoint (a missing shard?)");
}

enum class Activation { kGeluErf, kGeluTanh, kRelu };

Activation activation_of(const nlohmann::json& config) {
  const std::string act = config.value("hidden_act", std::string("gelu"));
  if (act == "gelu") return Activation::kGeluErf;
  if (act == "gelu_new" || act == "gelu_pytorch_tanh") return Activation::kGeluTanh;
  if (act == "relu") return Activation::kRelu;
  throw bad_input("config.json hidden_act '" + act + "' is not supported",
                  "the BERT runtime computes gelu (erf), gelu_new / gelu_pytorch_tanh and relu",
                  "use a model with one of these activations");
}

at::Tensor activate(const at::Tensor& x, Activation a) {
  switch (a) {
    case Activation::kGeluErf:
      return at::gelu(x);
    case Activation::kGeluTanh:
      return at::gelu(x, "tanh");
    case Activation::kRelu:
      break;
  }
  return at::relu(x);
}

}  // namespace

std::unique_ptr<BertNetwork> BertNetwork::load(const WeightSource& source) {
  auto net = std::make_unique<BertNetwork>();
  const nlohmann::json& config = source.config();
  net->vocab_ = source.config_int("vocab_size");
  net->hidden_ = source.config_int("hidden_size");
  net->heads_ = source.config_int("num_attention_heads");
  net->max_positions_ = source.config_int("max_position_embeddings");
  net->eps_ = source.config_double("layer_norm_eps", 1e-12);
  net->activation_ = static_cast<int>(activation_of(config));
  if (net->hidden_ % net->heads_ != 0) {
    throw bad_input("config.json hidden_size is not a multiple of num_attention_heads",
                    std::to_string(net->hidden_) + " / " + std::to_string(net->heads_),
                    "fix config.json");
  }
  const std::string pos_type = config.value("position_embedding_type", std::string("absolute"));
  if (pos_type != "absolute") {
    throw bad_input("config.json position_embedding_type '" + pos_type + "' is not supported",
                    "the BERT runtime adds absolute position embeddings",
                    "use a model with position_embedding_type \"absolute\"");
  }
  const int64_t type_vocab = source.config_int("type_vocab_size", 2);
  const int64_t inter = source.config_int("intermediate_size");
  const int64_t layers = source.config_int("num_hidden_layers");
  const int64_t h = net->hidden_;

  const std::string p = base_prefix(source);
  const auto norm = [&](const std::string& module) {
    return LayerNorm{source.tensor_any({module + ".weight", module + ".gamma"}, {h}),
                     source.tensor_any({module + ".bias", module + ".beta"}, {h})};
  };
  net->word_ = source.tensor(p + "embeddings.word_embeddings.weight", {net->vocab_, h});
  net->position_ =
      source.tensor(p + "embeddings.position_embeddings.weight", {net->max_positions_, h});
  net->token_type_ = source.tensor(p + "embeddings.token_type_embeddings.weight", {type_vocab, h});
  net->embed_norm_ = norm(p + "embeddings.LayerNorm");
  for (int64_t i = 0; i < layers; ++i) {
    const std::string l = p + "encoder.layer." + std::to_string(i) + ".";
    Layer layer;
    layer.query = Linear::load(source, l + "attention.self.query", h, h);
    layer.key = Linear::load(source, l + "attention.self.key", h, h);
    layer.value = Linear::load(source, l + "attention.self.value", h, h);
    layer.attn_out = Linear::load(source, l + "attention.output.dense", h, h);
    layer.attn_norm = norm(l + "attention.output.LayerNorm");
    layer.intermediate = Linear::load(source, l + "intermediate.dense", inter, h);
    layer.output = Linear::load(source, l + "output.dense", h, inter);
    layer.out_norm = norm(l + "output.LayerNorm");
    net->layers_.push_back(std::move(layer));
  }
  return net;
}

at::Tensor BertNetwork::layer_norm(const at::Tensor& x, const LayerNorm& norm) const {
  return at::layer_norm(x, {hidden_}, norm.weight, norm.bias, eps_);
}

at::Tensor BertNetwork::forward(const at::Tensor& ids) const {
  const int64_t b = ids.size(0), t = ids.size(1);
  const int64_t head_dim = hidden_ / heads_;
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  const at::Tensor positions = at::arange(0, t, at::TensorOptions(at::kLong));
  // BertEmbeddings: (inputs + token_type) + position, in that order.
  at::Tensor h = at::embedding(word_, ids) + token_type_[0];
  h = h + at::embedding(position_, positions);
  h = layer_norm(h, embed_norm_);
  const auto act = static_cast<Activation>(activation_);
  for (const Layer& layer : layers_) {
    const auto split = [&](const at::Tensor& x) {
      return x.view({b, t, heads_, head_dim}).transpose(1, 2);
    };
    const at::Tensor q = split((*layer.query)(h));
    const at::Tensor k = split((*layer.key)(h));
    const at::Tensor v = split((*layer.value)(h));
    const at::Tensor probs = at::softmax(at::matmul(q, k.transpose(2, 3)) * scale, -1);
    const at::Tensor ctx = at::matmul(probs, v).transpose(1, 2).reshape({b, t, hidden_});
    const at::Tensor attn = layer_norm((*layer.attn_out)(ctx) + h, layer.attn_norm);
    const at::Tensor inter = activate((*layer.intermediate)(attn), act);
    h = layer_norm((*layer.output)(inter) + attn, layer.out_norm);
  }
  return h;
}

std::vector<const Linear*> BertNetwork::linears() const {
  std::vector<const Linear*> out;
  for (const auto& l : layers_) {
    for (const auto* m : {&l.query, &l.key, &l.value, &l.attn_out, &l.intermediate, &l.output}) {
      out.push_back(&**m);
    }
  }
  return out;
}

std::vector<Linear*> BertNetwork::linears() {
  std::vector<Linear*> out;
  for (const Linear* l : static_cast<const BertNetwork*>(this)->linears()) {
    out.push_back(const_cast<Linear*>(l));
  }
  return out;
}

}  // namespace qforge::runtime::detail
