// What the runtime's files share (LibTorch inside; never included by the public header).
//
// Errors inside the runtime are thrown as qforge::Error (LibTorch throws too, so every tensor
// operation is a throw point anyway) and turned into Result at the Model API (model.cpp).
#pragma once

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>

#include <functional>
#include <map>
#include <memory>
#include <new>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "qforge/checkpoint.hpp"
#include "qforge/host.hpp"
#include "qforge/model.hpp"

namespace qforge::runtime::detail {

// Runs `body` in inference mode, mapping every exception to an Error: ours as they are,
// LibTorch's and the standard library's as internal errors (a bug or resource problem, never the
// user's input), allocation failure as resource exhaustion with `oom_fix` as the way out.
template <class T, class F>
Result<T> guarded(const char* what, const char* oom_fix, F&& body) {
  try {
    c10::InferenceMode inference;
    return body();
  } catch (const Error& e) {
    return e;
  } catch (const std::bad_alloc&) {
    return Error(ErrorCode::kResourceExhausted, ExitCode::kInternal,
                 std::string(what) + ": out of memory", "an allocation failed", oom_fix);
  } catch (const c10::Error& e) {
    return internal_error(std::string(what) + " failed in LibTorch", e.what_without_backtrace());
  } catch (const std::exception& e) {
    return internal_error(std::string(what) + " failed", e.what());
  }
}

// Once per process: a warning when OpenBLAS runs generic SSE3 kernels on a CPU with AVX2 or
// AVX-512 (blas_check.cpp).
void warn_if_blas_is_generic();

// A float32 copy of a stored tensor (F32, F16 or BF16; upcasts are exact). Bad input naming the
// tensor for any other dtype.
at::Tensor to_float_tensor(const TensorView& view, const std::string& name);

// The loaded checkpoint as the model builders see it: modules by name, tensors as float32.
class WeightSource {
 public:
  WeightSource(const Checkpoint& checkpoint, const ModelLayout& layout,
               std::shared_ptr<Quantizer> quantizer, int num_threads);

  const Checkpoint& checkpoint() const { return checkpoint_; }
  const nlohmann::json& config() const { return checkpoint_.config(); }
  const std::string& family() const;
  int num_threads() const { return num_threads_; }
  const std::shared_ptr<Quantizer>& quantizer() const { return quantizer_; }

  const ModuleEntry* find_module(const std::string& name) const;
  // Throws bad_input naming the module when the checkpoint does not hold it.
  const ModuleEntry& module(const std::string& name) const;
  bool has_tensor(const std::string& name) const { return checkpoint_.find(name) != nullptr; }
  // The tensor as float32; throws bad_input naming it when missing. `shape`, when given, must
  // match (the error names both shapes).
  at::Tensor tensor(const std::string& name, const std::vector<int64_t>& shape = {}) const;
  // The first of `names` the checkpoint holds (gamma/beta spellings), else bad_input naming all.
  at::Tensor tensor_any(const std::vector<std::string>& names,
                        const std::vector<int64_t>& shape) const;

  // Config helpers: a missing or mistyped key is bad_input naming it.
  int64_t config_int(const std::string& key) const;
  int64_t config_int(const std::string& key, int64_t fallback) const;  // absent or null
  double config_double(const std::string& key, double fallback) const;

 private:
  const Checkpoint& checkpoint_;
  const ModelLayout& layout_;
  std::map<std::string, const ModuleEntry*> by_name_;
  std::shared_ptr<Quantizer> quantizer_;
  int num_threads_;
};

// A stored module stored as its method's tensor set rather than a dense weight (+ bias); the
// rule `qforge inspect` applies.
bool looks_quantized(const ModuleEntry& module);

// One linear layer, y = x W^T + b. Dense: the stored weight upcast to float32, at::linear.
// Quantized: the plugin's linear_forward on the stored tensors, or (plugin without a forward)
// the weight dequantized once at load time and at::linear.
class Linear {
 public:
  // `out`/`in` are the shape the model expects ([out, in]); a mismatch is bad input naming
  // the module.
  static Linear load(const WeightSource& source, const std::string& module_name, int64_t out,
                     int64_t in);
  at::Tensor operator()(const at::Tensor& x) const;

  const std::string& name() const { return name_; }
  bool quantized() const { return quantizer_ != nullptr; }
  bool uses_plugin_forward() const { return quantizer_ != nullptr && !weight_.defined(); }
  // Quantized layers only: the dense weight through the plugin's dequantize (tests compare the
  // two paths).
  at::Tensor dequantized_weight() const;
  // Forces the dequantize + at::linear path (tests).
  void use_dequantized();
  // Dense layers: the float32 [out, in] weight at::linear uses (undefined for a plugin forward).
  const at::Tensor& weight() const { return weight_; }
  const at::Tensor& bias() const { return bias_; }  // undefined when the layer has none
  // Calibration (calibration.cpp): the layer computes with `w` ([out, in] float32) from now on;
  // the bias stays.
  void replace_weight(at::Tensor w) { weight_ = std::move(w); }

 private:
  std::string name_;
  at::Tensor weight_;  // dense, or the dequantized weight of a quantized layer without forward
  at::Tensor bias_;    // undefined when the layer has none
  std::shared_ptr<Quantizer> quantizer_;
  ModuleInfo info_;
  std::vector<NamedView> views_;  // the stored tensor set, names relative to the module
  std::optional<TensorView> bias_view_;
  int num_threads_ = 0;
};

// RMSNorm as LlamaRMSNorm computes it in float32.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

// Rotary embeddings in HF's "rotate_half" layout (the default rope type).
class Rotary {
 public:
  // Throws bad_input naming the key for rope scaling types it cannot compute.
  static Rotary from_config(const nlohmann::json& config, int64_t head_dim);
  // x: [B, heads, T, head_dim]; positions start .. start + T - 1.
  at::Tensor apply(const at::Tensor& x, int64_t start) const;

 private:
  at::Tensor inv_freq_;  // [head_dim / 2]
};

// Key/value tensors of every layer for the positions seen so far ([B, kv_heads, S, head_dim]).
struct KvCache {
  std::vector<at::Tensor> keys, values;
  int64_t length = 0;
};

// Computes one linear layer of a block; calibration (calibration.cpp) passes one to see each
// layer's input or to run it with another weight. Null: the layer itself.
using LinearCall = std::function<at::Tensor(const Linear& layer, const at::Tensor& x)>;

class LlamaNetwork {
 public:
  struct Layer {
    at::Tensor input_norm, post_norm;
    std::optional<Linear> q, k, v, o, gate, up, down;
  };

  static std::unique_ptr<LlamaNetwork> load(const WeightSource& source);
  // ids: [B, T] int64; returns logits [B, T, vocab]. With a cache, the ids continue the cached
  // positions and the cache grows by T.
  at::Tensor forward(const at::Tensor& ids, KvCache* cache) const;

  // forward() in pieces, for calibration's block-by-block run. forward() is exactly
  // embed -> per layer: h += attention(h); h += mlp(h) -> head.
  at::Tensor embed(const at::Tensor& ids) const;
  // [T, start + T] additive mask: causal (and the sliding window, if any).
  at::Tensor attention_mask(int64_t start, int64_t t) const;
  // Layer li's input norm + self-attention on h [B, T, hidden]: o_proj's output (no residual).
  at::Tensor attention(size_t li, const at::Tensor& h, int64_t start, const at::Tensor& mask,
                       KvCache* cache, const LinearCall* call = nullptr) const;
  // Layer li's post-attention norm + SwiGLU MLP on h: down_proj's output (no residual).
  at::Tensor mlp(size_t li, const at::Tensor& h, const LinearCall* call = nullptr) const;
  // Final norm + lm_head (or the tied embedding): logits.
  at::Tensor head(const at::Tensor& h) const;
  const Layer& layer(size_t li) const { return layers_[li]; }
  Layer& layer(size_t li) { return layers_[li]; }
  int64_t vocab_size() const { return vocab_; }
  int64_t hidden_size() const { return hidden_; }
  int64_t num_layers() const { return static_cast<int64_t>(layers_.size()); }
  std::vector<const Linear*> linears() const;
  std::vector<Linear*> linears();

 private:
  int64_t vocab_ = 0, hidden_ = 0, heads_ = 0, kv_heads_ = 0, head_dim_ = 0;
  int64_t window_ = 0;  // sliding window (mistral); 0: none
  double eps_ = 1e-6;
  at::Tensor embed_, final_norm_;
  std::optional<Linear> lm_head_;  // empty: tied to embed_
  std::optional<Rotary> rotary_;
  std::vector<Layer> layers_;
};

class BertNetwork {
 public:
  static std::unique_ptr<BertNetwork> load(const WeightSource& source);
  // ids: [B, T] int64; returns the last hidden state [B, T, hidden].
  at::Tensor forward(const at::Tensor& ids) const;
  int64_t max_positions() const { return max_positions_; }
  int64_t vocab_size() const { return vocab_; }
  int64_t hidden_size() const { return hidden_; }
  int64_t num_layers() const { return static_cast<int64_t>(layers_.size()); }
  std::vector<const Linear*> linears() const;
  std::vector<Linear*> linears();

 private:
  struct LayerNorm {
    at::Tensor weight, bias;
  };
  struct Layer {
    std::optional<Linear> query, key, value, attn_out, intermediate, output;
    LayerNorm attn_norm, out_norm;
  };
  at::Tensor layer_norm(const at::Tensor& x, const LayerNorm& norm) const;
  int64_t vocab_ = 0, hidden_ = 0, heads_ = 0, max_positions_ = 0;
  int activation_ = 0;  // bert.cpp's Activation
  double eps_ = 1e-12;
  at::Tensor word_, position_, token_type_;
  LayerNorm embed_norm_;
  std::vector<Layer> layers_;
};

}  // namespace qforge::runtime::detail
