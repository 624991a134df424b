// The runtime side of `qforge verify`'s output checks: qforge::runtime::Model behind the
// OutputModel seam of verify.hpp. Header-only, and kept out of verify.hpp on purpose: whoever
// includes it links `qforge::runtime` (LibTorch); libqforge itself never includes it.
//
//   qforge::VerifyOptions options;
//   options.load_model = qforge::runtime_model_loader();
//   auto report = qforge::verify_checkpoints(host, orig, quant, options).value();
#pragma once

#include <memory>
#include <utility>
#include <vector>

#include "qforge/runtime.hpp"
#include "qforge/verify.hpp"

namespace qforge {

namespace verify_detail {
class RuntimeOutputModel final : public OutputModel {
 public:
  explicit RuntimeOutputModel(runtime::Model model) : model_(std::move(model)) {}
  bool causal_lm() const override { return model_.kind() == runtime::ModelKind::kCausalLM; }
  int64_t vocab_size() const override { return model_.vocab_size(); }
  Result<runtime::Activations> forward(const runtime::TokenBatch& ids) override {
    return causal_lm() ? model_.forward(ids) : model_.embed(ids);
  }
  Result<std::vector<int64_t>> generate(const std::vector<int64_t>& prompt,
                                        int64_t new_tokens) override {
    return model_.generate(prompt, new_tokens);
  }

 private:
  runtime::Model model_;
};
}  // namespace verify_detail

// (f) through qforge::runtime::Model; link `qforge::runtime` to use it.
inline ModelLoader runtime_model_loader(runtime::RuntimeOptions options = {}) {
  return
      [options](Host& host, const Checkpoint& checkpoint) -> Result<std::unique_ptr<OutputModel>> {
        auto model = runtime::Model::load(host, checkpoint, options);
        if (!model.ok()) return model.error();
        return std::unique_ptr<OutputModel>(
            std::make_unique<verify_detail::RuntimeOutputModel>(std::move(model).value()));
      };
}

}  // namespace qforge
