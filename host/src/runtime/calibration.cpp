// Calibration capture (calibration.hpp): block by block, group by group, each linear's input
// statistics to the consumer, its replacement weights into the network.
//
// Each group is captured by its own pass over the block's inputs (stopping after the attention
// half when the group lies there), so only one group's statistics exist at a time; in
// non-sequential mode the passes see the original block because nothing is installed before
// the block's end.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "pipeline/pipeline_internal.hpp"
#include "qforge/logging.hpp"
#include "runtime/calibration_internal.hpp"

namespace qforge::runtime {
namespace detail {

std::unique_ptr<LlamaNetwork> load_calibration_network(const Checkpoint& checkpoint,
                                                       const RuntimeOptions& runtime) {
  if (checkpoint.quantization_config()) {
    throw bad_input("calibration needs an unquantized checkpoint",
                    "config.json has a quantization_config; calibration measures the "
                    "activations of the original float model",
                    "calibrate on the original (unquantized) checkpoint");
  }
  warn_if_blas_is_generic();
  if (runtime.num_threads > 0) at::set_num_threads(runtime.num_threads);
  auto classified = pipeline::classify(checkpoint, runtime.architecture_dirs);
  if (!classified.ok()) throw classified.error();
  const ModelLayout& layout = classified.value().layout;
  const std::string family = layout.map != nullptr ? layout.map->family : "generic";
  if (family != "llama" && family != "mistral" && family != "qwen2") {
    throw bad_input("calibration cannot run a '" + family + "' model",
                    "calibration capture is implemented for the Llama family (llama, mistral, "
                    "qwen2)",
                    "use a Llama-family checkpoint");
  }
  const WeightSource source(checkpoint, layout, nullptr, runtime.num_threads);
  return LlamaNetwork::load(source);
}

namespace {

// The calibration sequences in forward passes: consecutive sequences of equal length, at most
// batch_size each. `hidden` is the input of the current block.
struct Batch {
  int64_t first = 0;        // index of its first sequence
  int64_t first_token = 0;  // index of its first token over all sequences
  at::Tensor ids;           // [b, T]
  at::Tensor hidden;        // [b, T, hidden]
  at::Tensor mask;          // [T, T]
};

void check_input(const TokenBatch& input, int64_t vocab) {
  if (input.empty()) {
    throw bad_input("no calibration sequences", "the calibration input holds no sequence",
                    "pass token-id sequences (e.g. a --ids-file) or use data-free calibration");
  }
  for (size_t s = 0; s < input.size(); ++s) {
    const auto& seq = input[s];
    if (seq.size() < 2) {
      throw bad_input("calibration sequence " + std::to_string(s) + " is too short",
                      "it has " + std::to_string(seq.size()) +
                          " token(s); calibration sequences need at least two",
                      "drop or lengthen the sequence");
    }
    for (size_t i = 0; i < seq.size(); ++i) {
      if (seq[i] < 0 || seq[i] >= vocab) {
        throw bad_input("token id " + std::to_string(seq[i]) + " at calibration sequence " +
                            std::to_string(s) + ", position " + std::to_string(i) +
                            " is out of range",
                        "ids must lie in [0, " + std::to_string(vocab) + ") (vocab_size)",
                        "use token ids of this model's tokenizer");
      }
    }
  }
}

std::vector<Batch> make_batches(const LlamaNetwork& net, const TokenBatch& input,
                                int64_t batch_size) {
  std::vector<Batch> batches;
  int64_t token = 0;
  for (size_t s = 0; s < input.size();) {
    size_t end = s + 1;
    while (end < input.size() && static_cast<int64_t>(end - s) < batch_size &&
           input[end].size() == input[s].size()) {
      ++end;
    }
    const auto b = static_cast<int64_t>(end - s);
    const auto t = static_cast<int64_t>(input[s].size());
    Batch batch;
    batch.first = static_cast<int64_t>(s);
    batch.first_token = token;
    batch.ids = at::empty({b, t}, at::TensorOptions(at::kLong));
    auto acc = batch.ids.accessor<int64_t, 2>();
    for (int64_t i = 0; i < b; ++i) {
      for (int64_t j = 0; j < t; ++j) acc[i][j] = input[s + static_cast<size_t>(i)][j];
    }
    batch.hidden = net.embed(batch.ids);
    batch.mask = net.attention_mask(0, t);
    batches.push_back(std::move(batch));
    token += b * t;
    s = end;
  }
  return batches;
}

// One linear's running statistics.
class Accumulator {
 public:
  Accumulator(const Linear& layer, const CalibrationOptions& options, int64_t total_tokens) {
    stats_.module = layer.name();
    stats_.out_features = layer.weight().size(0);
    stats_.in_features = layer.weight().size(1);
    const int64_t in = stats_.in_features;
    if (options.hessian == HessianPrecision::kFloat32) {
      h_ = at::zeros({in, in}, at::TensorOptions(at::kFloat));
    } else if (options.hessian == HessianPrecision::kFloat64) {
      h_ = at::zeros({in, in}, at::TensorOptions(at::kDouble));
    }
    if (options.mean_abs) abs_sum_ = at::zeros({in}, at::TensorOptions(at::kDouble));
    // Evenly strided rows: floor(k * total / cap) for k < cap (every row when they fit).
    const int64_t cap = options.max_sample_tokens;
    if (cap > 0) {
      const int64_t k = std::min(cap, total_tokens);
      for (int64_t i = 0; i < k; ++i) picks_.push_back(i * total_tokens / k);
    }
  }

  // x: the layer's input for `sequences` sequences whose tokens start at `first_token`.
  void add(const at::Tensor& x, int64_t sequences, int64_t first_token) {
    const at::Tensor rows = x.reshape({-1, stats_.in_features});
    const int64_t m = rows.size(0);
    if (h_.defined()) {
      // add_batch: H *= n / (n + m); n += m; H += (sqrt(2 / n) x)^T (sqrt(2 / n) x).
      const int64_t n = stats_.sequences;
      h_.mul_(static_cast<double>(n) / static_cast<double>(n + sequences));
      const at::Tensor scaled =
          rows.to(h_.scalar_type()) * std::sqrt(2.0 / static_cast<double>(n + sequences));
      h_.addmm_(scaled.t(), scaled);
    }
    if (abs_sum_.defined()) abs_sum_ += rows.abs().to(at::kDouble).sum(0);
    if (!picks_.empty()) {
      std::vector<int64_t> local;
      for (int64_t p : picks_) {
        if (p >= first_token && p < first_token + m) local.push_back(p - first_token);
      }
      if (!local.empty()) {
        const at::Tensor index = at::tensor(local, at::TensorOptions(at::kLong));
        sample_.push_back(rows.index_select(0, index).to(at::kFloat));
      }
    }
    stats_.sequences += sequences;
    stats_.tokens += m;
  }

  LinearStats finish() {
    if (h_.defined()) {
      const at::Tensor h = h_.contiguous();
      if (h.scalar_type() == at::kFloat) {
        stats_.hessian32.assign(h.data_ptr<float>(), h.data_ptr<float>() + h.numel());
      } else {
        stats_.hessian64.assign(h.data_ptr<double>(), h.data_ptr<double>() + h.numel());
      }
    }
    if (abs_sum_.defined()) {
      const at::Tensor mean = (abs_sum_ / static_cast<double>(stats_.tokens)).to(at::kFloat);
      stats_.mean_abs.assign(mean.data_ptr<float>(), mean.data_ptr<float>() + mean.numel());
    }
    if (!sample_.empty()) {
      const at::Tensor s = at::cat(sample_, 0).contiguous();
      stats_.sample.rows = s.size(0);
      stats_.sample.cols = s.size(1);
      stats_.sample.data.assign(s.data_ptr<float>(), s.data_ptr<float>() + s.numel());
    }
    return std::move(stats_);
  }

 private:
  LinearStats stats_;
  at::Tensor h_, abs_sum_;
  std::vector<int64_t> picks_;
  std::vector<at::Tensor> sample_;
};

Matrix to_matrix(const at::Tensor& t) {
  const at::Tensor c = t.reshape({-1, t.size(-1)}).to(at::kFloat).contiguous();
  Matrix m;
  m.rows = c.size(0);
  m.cols = c.size(1);
  m.data.assign(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  return m;
}

std::vector<float> to_vector(const at::Tensor& t) {
  if (!t.defined()) return {};
  const at::Tensor c = t.to(at::kFloat).contiguous();
  std::vector<float> out(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  return out;
}

// The current block as the consumer sees it.
class LlamaBlock : public BlockHandle {
 public:
  LlamaBlock(LlamaNetwork& net, size_t li, std::vector<Batch>& batches, int64_t run_sequences)
      : net_(net), li_(li), batches_(batches), run_sequences_(run_sequences) {
    auto& l = net.layer(li);
    linears_ = {&*l.q, &*l.k, &*l.v, &*l.o, &*l.gate, &*l.up, &*l.down};
  }

  int64_t index() const override { return static_cast<int64_t>(li_); }
  std::vector<std::string> linears() const override {
    std::vector<std::string> names;
    for (const Linear* l : linears_) names.push_back(l->name());
    return names;
  }
  const std::vector<Linear*>& layers() const { return linears_; }

  Linear& find(const std::string& module) const {
    for (Linear* l : linears_) {
      if (l->name() == module) return *l;
    }
    throw bad_input("'" + module + "' is not a linear layer of block " + std::to_string(li_),
                    "the block's linears are " + names_text(),
                    "name a linear of the current block (checkpoint names)");
  }

  Matrix weight(const std::string& module) const override {
    return to_matrix(find(module).weight());
  }
  std::vector<float> bias(const std::string& module) const override {
    return to_vector(find(module).bias());
  }
  std::vector<float> norm(BlockNorm which) const override {
    const auto& l = net_.layer(li_);
    return to_vector(which == BlockNorm::kInput ? l.input_norm : l.post_norm);
  }

  // A replacement as a float32 [out, in] tensor; bad input naming the module otherwise.
  at::Tensor weight_tensor(const std::string& module, const std::vector<float>& w,
                           const char* what) const {
    const Linear& layer = find(module);
    const int64_t out = layer.weight().size(0);
    const int64_t in = layer.weight().size(1);
    if (static_cast<int64_t>(w.size()) != out * in) {
      throw bad_input(std::string(what) + " for '" + module + "' has the wrong size",
                      "it holds " + std::to_string(w.size()) + " values; the weight is [" +
                          std::to_string(out) + ", " + std::to_string(in) +
                          "] = " + std::to_string(out * in),
                      "return a dense float32 [out, in] weight, row-major");
    }
    for (size_t i = 0; i < w.size(); ++i) {
      if (!std::isfinite(w[i])) {
        throw bad_input(std::string(what) + " for '" + module + "' is not finite",
                        "element " + std::to_string(i) + " is " + std::to_string(w[i]),
                        "fix the method's weights (NaN/Inf would poison every later block)");
      }
    }
    return at::from_blob(const_cast<float*>(w.data()), {out, in}, at::TensorOptions(at::kFloat))
        .clone();
  }

  Result<Matrix> run(BlockPart part, const Replacements& overrides,
                     const std::string& module) override {
    return guarded<Matrix>(
        "evaluating a calibration block", kCalibrationOomFix, [&]() -> Result<Matrix> {
          std::map<const Linear*, at::Tensor> weights;
          for (const auto& [name, w] : overrides)
            weights[&find(name)] = weight_tensor(name, w, "an override");
          const Linear* target = nullptr;
          bool in_mlp = part == BlockPart::kMlp;
          if (part == BlockPart::kLinear) {
            target = &find(module);
            in_mlp = target == linears_[4] || target == linears_[5] || target == linears_[6];
          }
          bool attention_overridden = false;
          bool only_target = true;
          for (const auto& [layer, w] : weights) {
            attention_overridden = attention_overridden || layer == linears_[0] ||
                                   layer == linears_[1] || layer == linears_[2] ||
                                   layer == linears_[3];
            only_target = only_target && layer == target;
          }
          // A search evaluates one part many times with only its own linears changed: what
          // enters the part is the same every time (the block's current weights), so it is
          // computed once.
          if (target != nullptr && only_target) {
            const at::Tensor& x = linear_input(*target);
            const auto it = weights.find(target);
            const at::Tensor& w = it == weights.end() ? target->weight() : it->second;
            const at::Tensor y =
                target->bias().defined() ? at::linear(x, w, target->bias()) : at::linear(x, w);
            return to_matrix(y);
          }
          at::Tensor captured;
          const LinearCall call = [&](const Linear& l, const at::Tensor& x) {
            const auto it = weights.find(&l);
            at::Tensor y = it == weights.end()  ? l(x)
                           : l.bias().defined() ? at::linear(x, it->second, l.bias())
                                                : at::linear(x, it->second);
            if (&l == target) captured = y;
            return y;
          };
          std::vector<at::Tensor> outputs;
          const auto inputs = run_inputs();
          for (size_t bi = 0; bi < inputs.size(); ++bi) {
            const at::Tensor& h = inputs[bi];
            at::Tensor out;
            if (in_mlp && !attention_overridden) {
              out = net_.mlp(li_, mlp_input(bi, h), &call);
            } else {
              const at::Tensor a = net_.attention(li_, h, 0, batches_[bi].mask, nullptr, &call);
              out = in_mlp ? net_.mlp(li_, h + a, &call) : a;
            }
            const at::Tensor y = target != nullptr ? captured : out;
            outputs.push_back(y.reshape({-1, y.size(-1)}));
          }
          return to_matrix(at::cat(outputs, 0));
        });
  }

  // The block's weights changed (replacements installed): cached inputs are stale.
  void invalidate() {
    mlp_inputs_.clear();
    linear_inputs_.clear();
  }

 private:
  // The block inputs run() evaluates: the first run_sequences sequences, batch by batch.
  std::vector<at::Tensor> run_inputs() const {
    std::vector<at::Tensor> inputs;
    int64_t left = run_sequences_ > 0 ? run_sequences_ : std::numeric_limits<int64_t>::max();
    for (const Batch& batch : batches_) {
      if (left <= 0) break;
      at::Tensor h = batch.hidden;
      if (h.size(0) > left) h = h.narrow(0, 0, left);
      left -= h.size(0);
      inputs.push_back(h);
    }
    return inputs;
  }

  // h + attention(h) of run input `bi`, with the block's current weights.
  const at::Tensor& mlp_input(size_t bi, const at::Tensor& h) {
    if (mlp_inputs_.size() <= bi) mlp_inputs_.resize(bi + 1);
    if (!mlp_inputs_[bi].defined()) {
      mlp_inputs_[bi] = h + net_.attention(li_, h, 0, batches_[bi].mask, nullptr);
    }
    return mlp_inputs_[bi];
  }

  // Every run input row of `layer`, [tokens, in], with the block's current weights.
  const at::Tensor& linear_input(const Linear& layer) {
    auto& cached = linear_inputs_[&layer];
    if (cached.defined()) return cached;
    std::vector<at::Tensor> rows;
    const LinearCall call = [&](const Linear& l, const at::Tensor& x) {
      if (&l == &layer) rows.push_back(x.reshape({-1, x.size(-1)}));
      return l(x);
    };
    const auto inputs = run_inputs();
    const bool in_mlp = &layer == linears_[4] || &layer == linears_[5] || &layer == linears_[6];
    for (size_t bi = 0; bi < inputs.size(); ++bi) {
      if (in_mlp) {
        (void)net_.mlp(li_, mlp_input(bi, inputs[bi]), &call);
      } else {
        (void)net_.attention(li_, inputs[bi], 0, batches_[bi].mask, nullptr, &call);
      }
    }
    cached = at::cat(rows, 0);
    return cached;
  }

  std::string names_text() const {
    std::string s;
    for (const Linear* l : linears_) s += (s.empty() ? "" : ", ") + l->name();
    return s;
  }

  LlamaNetwork& net_;
  size_t li_;
  std::vector<Batch>& batches_;
  int64_t run_sequences_;
  std::vector<Linear*> linears_;
  std::vector<at::Tensor> mlp_inputs_;
  std::map<const Linear*, at::Tensor> linear_inputs_;
};

void check_options(const CalibrationOptions& o) {
  if (o.batch_size < 1) {
    throw bad_input("calibration batch_size must be at least 1",
                    "batch_size is " + std::to_string(o.batch_size), "use 1 or more");
  }
  if (o.max_sample_tokens < 0 || o.run_sequences < 0) {
    throw bad_input("calibration max_sample_tokens and run_sequences must not be negative",
                    "they are " + std::to_string(o.max_sample_tokens) + " and " +
                        std::to_string(o.run_sequences),
                    "use 0 (none / all) or a positive count");
  }
}

CalibrationSummary run_calibration(LlamaNetwork& net, TokenBatch input,
                                   const CalibrationOptions& options,
                                   CalibrationConsumer& consumer) {
  check_input(input, net.vocab_size());
  std::vector<Batch> batches = make_batches(net, input, options.batch_size);
  CalibrationSummary summary;
  summary.blocks = net.num_layers();
  summary.sequences = static_cast<int64_t>(input.size());
  for (const auto& s : input) summary.tokens += static_cast<int64_t>(s.size());
  summary.input = std::move(input);
  auto log = get_logger("calibrate");

  for (int64_t li = 0; li < net.num_layers(); ++li) {
    const BlockProgress progress{li, summary.blocks, summary.sequences, summary.tokens};
    if (options.progress) {
      options.progress(progress);
    } else {
      log->info("calibrating block {}/{} ({} sequences, {} tokens)", li + 1, summary.blocks,
                summary.sequences, summary.tokens);
    }
    LlamaBlock block(net, static_cast<size_t>(li), batches, options.run_sequences);
    const auto& all = block.layers();
    // GPTQ's true-sequential order for Llama; `mlp`: the group's inputs need the MLP half.
    const std::vector<std::pair<std::vector<Linear*>, bool>> groups = {
        {{all[0], all[1], all[2]}, false},
        {{all[3]}, false},
        {{all[4], all[5]}, true},
        {{all[6]}, true}};
    const Status begun = consumer.begin_block(block);
    if (!begun.ok()) throw begun.error();
    std::vector<std::pair<Linear*, at::Tensor>> pending;
    for (size_t gi = 0; gi < groups.size(); ++gi) {
      const auto& [members, needs_mlp] = groups[gi];
      std::map<const Linear*, Accumulator> acc;
      LinearGroup group;
      group.block = li;
      group.index = static_cast<int64_t>(gi);
      for (Linear* l : members) {
        acc.emplace(l, Accumulator(*l, options, summary.tokens));
        group.modules.push_back(l->name());
      }
      for (const Batch& batch : batches) {
        const LinearCall call = [&](const Linear& l, const at::Tensor& x) {
          const auto it = acc.find(&l);
          if (it != acc.end()) it->second.add(x, batch.hidden.size(0), batch.first_token);
          return l(x);
        };
        const at::Tensor a =
            net.attention(static_cast<size_t>(li), batch.hidden, 0, batch.mask, nullptr, &call);
        if (needs_mlp) (void)net.mlp(static_cast<size_t>(li), batch.hidden + a, &call);
      }
      std::vector<LinearStats> stats;
      for (Linear* l : members) stats.push_back(acc.at(l).finish());
      acc.clear();
      auto replaced = consumer.on_group(block, group, stats);
      if (!replaced.ok()) throw replaced.error();
      stats.clear();
      for (const auto& [name, w] : replaced.value()) {
        Linear& layer = block.find(name);
        at::Tensor t = block.weight_tensor(name, w, "the replacement weight");
        if (options.true_sequential) {
          layer.replace_weight(std::move(t));
          block.invalidate();
        } else {
          pending.emplace_back(&layer, std::move(t));
        }
        ++summary.replaced;
      }
    }
    for (auto& [layer, w] : pending) layer->replace_weight(std::move(w));
    block.invalidate();
    const Status ended = consumer.end_block(block);
    if (!ended.ok()) throw ended.error();
    for (Batch& batch : batches) {
      at::Tensor h = batch.hidden;
      h = h + net.attention(static_cast<size_t>(li), h, 0, batch.mask, nullptr);
      h = h + net.mlp(static_cast<size_t>(li), h);
      batch.hidden = h;
    }
  }
  if (options.keep_logits) {
    for (const Batch& batch : batches) {
      const at::Tensor logits = net.head(batch.hidden);
      for (int64_t i = 0; i < logits.size(0); ++i) summary.logits.push_back(to_matrix(logits[i]));
    }
  }
  return summary;
}

}  // namespace
}  // namespace detail

Result<CalibrationSummary> calibrate(const Checkpoint& checkpoint,
                                     const std::optional<TokenBatch>& input,
                                     const CalibrationOptions& options,
                                     CalibrationConsumer& consumer) {
  return detail::guarded<CalibrationSummary>(
      "calibration", detail::kCalibrationOomFix, [&]() -> Result<CalibrationSummary> {
        detail::check_options(options);
        auto net = detail::load_calibration_network(checkpoint, options.runtime);
        TokenBatch ids =
            input ? *input : detail::sample_tokens(*net, checkpoint.config(), options.data_free);
        return detail::run_calibration(*net, std::move(ids), options, consumer);
      });
}

}  // namespace qforge::runtime
