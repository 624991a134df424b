// qforge::runtime::Model: picks the network for the checkpoint's family, prepares the quantizer
// of a pre-quantized checkpoint, checks token ids, and turns LibTorch results into plain
// vectors and every failure into a Result.
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <new>
#include <set>

#include "pipeline/pipeline_internal.hpp"
#include "qforge/runtime.hpp"
#include "runtime/runtime_internal.hpp"

namespace qforge::runtime {

using detail::BertNetwork;
using detail::LlamaNetwork;

struct Model::Impl {
  ModelKind kind = ModelKind::kCausalLM;
  std::string family;
  std::unique_ptr<LlamaNetwork> llama;
  std::unique_ptr<BertNetwork> bert;
  std::vector<std::string> quantized;
  std::shared_ptr<Quantizer> quantizer;

  int64_t vocab() const { return llama ? llama->vocab_size() : bert->vocab_size(); }
};

namespace {

const char* kSupported = "llama, mistral, qwen2 (causal LM) and bert (encoder)";

constexpr const char* kModelOomFix = "use a smaller batch or model, or a machine with more memory";

Activations to_activations(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kFloat).contiguous();
  Activations a;
  a.batch = c.size(0);
  a.seq = c.size(1);
  a.width = c.size(2);
  const float* p = c.data_ptr<float>();
  a.data.assign(p, p + c.numel());
  return a;
}

void check_ids(const std::vector<int64_t>& ids, int64_t vocab, size_t sequence) {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab) {
      throw bad_input("token id " + std::to_string(ids[i]) + " at sequence " +
                          std::to_string(sequence) + ", position " + std::to_string(i) +
                          " is out of range",
                      "ids must lie in [0, " + std::to_string(vocab) + ") (vocab_size)",
                      "use token ids of this model's tokenizer");
    }
  }
}

// [B, T] int64 from a batch of equal-length sequences, every id checked.
at::Tensor batch_tensor(const TokenBatch& ids, int64_t vocab) {
  if (ids.empty()) {
    throw bad_input("empty batch", "no sequence was given", "pass at least one sequence");
  }
  const size_t t = ids[0].size();
  for (size_t s = 0; s < ids.size(); ++s) {
    if (ids[s].empty()) {
      throw bad_input("sequence " + std::to_string(s) + " is empty",
                      "every sequence needs at least one token", "remove the empty sequence");
    }
    if (ids[s].size() != t) {
      throw bad_input("sequences of unequal length in one batch",
                      "sequence 0 has " + std::to_string(t) + " tokens, sequence " +
                          std::to_string(s) + " has " + std::to_string(ids[s].size()) +
                          "; the runtime does not pad",
                      "batch sequences of equal length (or run them one by one)");
    }
    check_ids(ids[s], vocab, s);
  }
  at::Tensor out = at::empty({static_cast<int64_t>(ids.size()), static_cast<int64_t>(t)},
                             at::TensorOptions(at::kLong));
  auto acc = out.accessor<int64_t, 2>();
  for (size_t s = 0; s < ids.size(); ++s) {
    for (size_t i = 0; i < t; ++i)
      acc[static_cast<int64_t>(s)][static_cast<int64_t>(i)] = ids[s][i];
  }
  return out;
}

Error wrong_kind(const std::string& call, const std::string& family, const char* needs) {
  return bad_input(call + " is not available for a " + family + " model",
                   std::string(call) + " needs " + needs, "use forward() for this model");
}

}  // namespace

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;

Result<Model> Model::load(Host& host, const Checkpoint& checkpoint, const RuntimeOptions& options) {
  return detail::guarded<Model>("loading the model", kModelOomFix, [&]() -> Result<Model> {
    detail::warn_if_blas_is_generic();
    if (options.num_threads > 0) at::set_num_threads(options.num_threads);
    auto classified = pipeline::classify(checkpoint, options.architecture_dirs);
    if (!classified.ok()) return classified.error();
    const ModelLayout& layout = classified.value().layout;
    const std::string family = layout.map != nullptr ? layout.map->family : "generic";
    const bool causal = family == "llama" || family == "mistral" || family == "qwen2";
    if (!causal && family != "bert") {
      const auto& c = checkpoint.config();
      const std::string model_type = c.contains("model_type") && c["model_type"].is_string()
                                         ? c["model_type"].get<std::string>()
                                         : "(none)";
      return bad_input("the runtime cannot run model_type '" + model_type + "'",
                       "its architecture map is '" + family + "'; the runtime runs " + kSupported,
                       "use a checkpoint of a supported family");
    }
    auto impl = std::make_unique<Impl>();
    impl->kind = causal ? ModelKind::kCausalLM : ModelKind::kEncoder;
    impl->family = causal ? "llama" : "bert";
    if (checkpoint.quantization_config()) {
      ConfigRequest request;
      request.model_config = checkpoint.config();
      auto resolved = host.resolve(request);
      if (!resolved.ok()) {
        // A method no installed plugin declares is the environment's fault here (exit 3, as
        // runtime.hpp promises), not the checkpoint's: the same checkpoint runs elsewhere.
        const nlohmann::json qc = *checkpoint.quantization_config();
        const std::string method =
            qc.is_object() && qc.contains("quant_method") && qc["quant_method"].is_string()
                ? qc["quant_method"].get<std::string>()
                : "";
        const auto methods = host.quant_methods();
        const Error& e = resolved.error();
        if (!method.empty() && std::find(methods.begin(), methods.end(), method) == methods.end()) {
          return Error(e.code(), ExitCode::kEnvironment, e.summary(), e.why(), e.fix());
        }
        return e;
      }
      const nlohmann::json req = {{"pre_quantized", true},
                                  {"dtype", nullptr},
                                  {"device", "cpu"},
                                  {"device_map", nullptr},
                                  {"allow_emulation", options.allow_emulation}};
      auto prepared = pipeline::prepare_quantizer(host, resolved.value(), req, std::nullopt);
      if (!prepared.ok()) return prepared.error();
      impl->quantizer = prepared.value().quantizer;
    }
    const detail::WeightSource source(checkpoint, layout, impl->quantizer, options.num_threads);
    std::vector<const detail::Linear*> linears;
    if (causal) {
      impl->llama = LlamaNetwork::load(source);
      linears = static_cast<const LlamaNetwork&>(*impl->llama).linears();
    } else {
      impl->bert = BertNetwork::load(source);
      linears = static_cast<const BertNetwork&>(*impl->bert).linears();
    }
    std::set<std::string> quantized;
    for (const auto* l : linears) {
      if (l->quantized()) quantized.insert(l->name());
    }
    for (const auto& m : layout.modules) {
      if (quantized.count(m.name) != 0) impl->quantized.push_back(m.name);
    }
    return Model(std::move(impl));
  });
}

ModelKind Model::kind() const noexcept { return impl_->kind; }
const std::string& Model::family() const noexcept { return impl_->family; }
int64_t Model::vocab_size() const noexcept { return impl_->vocab(); }
int64_t Model::hidden_size() const noexcept {
  return impl_->llama ? impl_->llama->hidden_size() : impl_->bert->hidden_size();
}
int64_t Model::num_layers() const noexcept {
  return impl_->llama ? impl_->llama->num_layers() : impl_->bert->num_layers();
}
std::vector<std::string> Model::quantized_modules() const { return impl_->quantized; }

Result<Activations> Model::forward(const TokenBatch& ids) {
  return detail::guarded<Activations>("forward", kModelOomFix, [&]() -> Result<Activations> {
    const at::Tensor batch = batch_tensor(ids, impl_->vocab());
    if (impl_->llama) return to_activations(impl_->llama->forward(batch, nullptr));
    if (batch.size(1) > impl_->bert->max_positions()) {
      return bad_input("sequence too long: " + std::to_string(batch.size(1)) + " tokens",
                       "the model has " + std::to_string(impl_->bert->max_positions()) +
                           " positions (max_position_embeddings)",
                       "split the input into shorter sequences");
    }
    return to_activations(impl_->bert->forward(batch));
  });
}

Result<Activations> Model::embed(const TokenBatch& ids) {
  if (!impl_->bert) return wrong_kind("embed()", impl_->family, "an encoder (bert)");
  auto hidden = forward(ids);
  if (!hidden.ok()) return hidden.error();
  const Activations& h = hidden.value();
  Activations out;
  out.batch = h.batch;
  out.seq = 1;
  out.width = h.width;
  out.data.assign(static_cast<size_t>(h.batch * h.width), 0.0f);
  // Mean pooling as sentence-transformers does it with every token attended: a float32 sum
  // over positions divided by the count.
  for (int64_t b = 0; b < h.batch; ++b) {
    for (int64_t i = 0; i < h.width; ++i) {
      float sum = 0.0f;
      for (int64_t t = 0; t < h.seq; ++t) sum += h.at(b, t, i);
      out.data[static_cast<size_t>(b * h.width + i)] = sum / static_cast<float>(h.seq);
    }
  }
  return out;
}

Result<std::vector<int64_t>> Model::generate(const std::vector<int64_t>& prompt,
                                             int64_t max_new_tokens, std::optional<int64_t> eos) {
  if (!impl_->llama) return wrong_kind("generate()", impl_->family, "a causal LM");
  return detail::guarded<
      std::vector<int64_t>>("generate", kModelOomFix, [&]() -> Result<std::vector<int64_t>> {
    if (max_new_tokens < 0) {
      return bad_input("negative number of tokens to generate",
                       "max_new_tokens is " + std::to_string(max_new_tokens), "pass 0 or more");
    }
    if (prompt.empty()) {
      return bad_input("empty prompt", "generation needs at least one prompt token",
                       "pass a prompt");
    }
    const at::Tensor ids = batch_tensor({prompt}, impl_->vocab());
    std::vector<int64_t> out;
    if (max_new_tokens == 0) return out;
    detail::KvCache cache;
    at::Tensor logits = impl_->llama->forward(ids, &cache);
    while (true) {
      // argmax takes the first maximum on ties, as torch.argmax does.
      const int64_t next = logits[0][logits.size(1) - 1].argmax().item<int64_t>();
      out.push_back(next);
      if (static_cast<int64_t>(out.size()) == max_new_tokens || (eos && next == *eos)) break;
      logits = impl_->llama->forward(at::full({1, 1}, next, at::TensorOptions(at::kLong)), &cache);
    }
    return out;
  });
}

Result<Perplexity> Model::evaluate(const TokenBatch& sequences) {
  if (!impl_->llama) return wrong_kind("evaluate()", impl_->family, "a causal LM");
  return detail::guarded<Perplexity>("evaluate", kModelOomFix, [&]() -> Result<Perplexity> {
    if (sequences.empty()) {
      return bad_input("no sequences to evaluate", "the input holds no token sequence",
                       "pass at least one sequence of two or more tokens");
    }
    double total = 0.0;
    int64_t tokens = 0;
    for (size_t s = 0; s < sequences.size(); ++s) {
      const auto& seq = sequences[s];
      if (seq.size() < 2) {
        return bad_input("sequence " + std::to_string(s) + " is too short to evaluate",
                         "it has " + std::to_string(seq.size()) +
                             " token(s); a sequence of length L predicts L - 1 tokens",
                         "give every sequence at least two tokens");
      }
      check_ids(seq, impl_->vocab(), s);
      const at::Tensor ids = batch_tensor({seq}, impl_->vocab());
      const at::Tensor logp = at::log_softmax(impl_->llama->forward(ids, nullptr)[0], -1);
      const int64_t n = static_cast<int64_t>(seq.size()) - 1;
      const at::Tensor targets = ids[0].narrow(0, 1, n).unsqueeze(1);
      const at::Tensor picked = logp.narrow(0, 0, n).gather(1, targets);
      total -= picked.to(at::kDouble).sum().item<double>();
      tokens += n;
    }
    Perplexity p;
    p.tokens = tokens;
    p.mean_nll = total / static_cast<double>(tokens);
    p.perplexity = std::exp(p.mean_nll);
    return p;
  });
}

}  // namespace qforge::runtime
