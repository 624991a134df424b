// Rotary position embeddings as transformers' Llama family computes them: inv_freq =
// 1 / theta^(arange(0, d, 2) / d), cos/sin of cat(freqs, freqs), x * cos + rotate_half(x) * sin.
// rope types: "default" (no scaling) and "llama3"; others are refused by name.
#include <cmath>

#include "runtime/runtime_internal.hpp"

namespace qforge::runtime::detail {
namespace {

// The rope settings from either spelling: transformers < 5 writes rope_theta + rope_scaling,
// transformers 5 writes rope_parameters {rope_type, rope_theta, ...}.
struct RopeSettings {
  double theta = 10000.0;
  std::string type = "default";
  nlohmann::json params = nlohmann::json::object();
  std::string key = "rope_scaling";  // where the type came from, for errors
};

double number_in(const nlohmann::json& obj, const std::string& key, const std::string& where) {
  if (!obj.contains(key) || !obj[key].is_number()) {
    throw bad_input("config.json " + where + " has no numeric '" + key + "'", "got " + obj.dump(),
                    "fix config.json (transformers' rope parameters)");
  }
  return obj[key].get<double>();
}

RopeSettings read_settings(const nlohmann::json& config) {
  RopeSettings s;
  const nlohmann::json* params = nullptr;
  if (config.contains("rope_scaling") && !config["rope_scaling"].is_null()) {
    params = &config["rope_scaling"];
  } else if (config.contains("rope_parameters") && !config["rope_parameters"].is_null()) {
    params = &config["rope_parameters"];
    s.key = "rope_parameters";
  }
  if (config.contains("rope_theta") && config["rope_theta"].is_number()) {
    s.theta = config["rope_theta"].get<double>();
  } else if (params != nullptr && params->is_object() && params->contains("rope_theta")) {
    s.theta = number_in(*params, "rope_theta", s.key);
  }
  if (params != nullptr) {
    if (!params->is_object()) {
      throw bad_input("config.json '" + s.key + "' is not an object", "it is " + params->dump(),
                      "fix config.json");
    }
    s.params = *params;
    const char* type_key = params->contains("rope_type") ? "rope_type" : "type";
    if (params->contains(type_key)) {
      if (!(*params)[type_key].is_string()) {
        throw bad_input("config.json '" + s.key + "." + type_key + "' is not a string",
                        "it is " + (*params)[type_key].dump(), "fix config.json");
      }
      s.type = (*params)[type_key].get<std::string>();
    }
  }
  if (!(s.theta > 0) || !std::isfinite(s.theta)) {
    throw bad_input("config.json rope_theta is not a positive number",
                    "it is " + std::to_string(s.theta), "fix config.json");
  }
  return s;
}

// transformers' _compute_llama3_parameters: low frequencies divided by `factor`, high ones
// kept, a smooth blend between the two wavelength bounds.
at::Tensor llama3_inv_freq(const at::Tensor& inv_freq, const RopeSettings& s) {
  const std::string where = s.key;
  const double factor = number_in(s.params, "factor", where);
  const double low = number_in(s.params, "low_freq_factor", where);
  const double high = number_in(s.params, "high_freq_factor", where);
  const double old_len = number_in(s.params, "original_max_position_embeddings", where);
  const double low_wavelen = old_len / low;
  const double high_wavelen = old_len / high;
  const at::Tensor wavelen = 2 * M_PI / inv_freq;
  at::Tensor scaled = at::where(wavelen > low_wavelen, inv_freq / factor, inv_freq);
  const at::Tensor smooth = (old_len / wavelen - low) / (high - low);
  const at::Tensor smoothed = (1 - smooth) * scaled / factor + smooth * scaled;
  const at::Tensor medium = (wavelen >= high_wavelen).logical_and(wavelen <= low_wavelen);
  return at::where(medium, smoothed, scaled);
}

at::Tensor rotate_half(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

}  // namespace

Rotary Rotary::from_config(const nlohmann::json& config, int64_t head_dim) {
  const RopeSettings s = read_settings(config);
  if (config.contains("partial_rotary_factor") && config["partial_rotary_factor"].is_number() &&
      config["partial_rotary_factor"].get<double>() != 1.0) {
    throw bad_input(
        "config.json partial_rotary_factor is not supported",
        "it is " + config["partial_rotary_factor"].dump() + "; the runtime rotates the whole head",
        "use a model with full rotary embeddings");
  }
  Rotary r;
  const at::Tensor exponent =
      at::arange(0, head_dim, 2, at::TensorOptions(at::kLong)).to(at::kFloat) /
      static_cast<double>(head_dim);
  r.inv_freq_ = 1.0 / at::pow(s.theta, exponent);
  if (s.type == "llama3") {
    r.inv_freq_ = llama3_inv_freq(r.inv_freq_, s);
  } else if (s.type != "default") {
    throw bad_input("config.json '" + s.key + "' asks for rope type '" + s.type + "'",
                    "the runtime computes rotary embeddings of type 'default' (no scaling) and "
                    "'llama3'",
                    "use a model without '" + s.key + "' (or with rope_type default/llama3)");
  }
  return r;
}

at::Tensor Rotary::apply(const at::Tensor& x, int64_t start) const {
  const int64_t t = x.size(2);
  const at::Tensor positions =
      at::arange(start, start + t, at::TensorOptions(at::kLong)).to(at::kFloat);
  const at::Tensor freqs = at::outer(positions, inv_freq_);  // [T, d/2]
  const at::Tensor emb = at::cat({freqs, freqs}, -1);        // [T, d]
  return x * emb.cos() + rotate_half(x) * emb.sin();
}

}  // namespace qforge::runtime::detail
