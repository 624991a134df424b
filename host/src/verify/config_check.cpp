// (d) quantization_config: present, resolved and accepted by its method's plugin, equal to what
// the plugin's postprocess writes for it, and unchanged by config.json's dump -> parse round
// trip. The plan of ORIG under QUANT's config made here is what (b) and (c) check against.
#include "verify/verify_internal.hpp"

namespace qforge::verify {
namespace {

std::string value_text(const nlohmann::json* v) { return v ? v->dump() : "(absent)"; }

}  // namespace

Result<std::optional<Plan>> check_config(Host& host, const Checkpoint& original,
                                         const Checkpoint& quantized, const VerifyOptions& options,
                                         VerifyCheck& check) {
  const std::optional<nlohmann::json> qconfig = quantized.quantization_config();
  if (!qconfig) {
    fail(check,
         "config.json of QUANT has no quantization_config: transformers would load the "
         "quantized tensors as a dense model and fail");
    return std::optional<Plan>();
  }
  if (!qconfig->is_object()) {
    fail(check, "quantization_config is " + std::string(qconfig->type_name()) + ", not an object");
    return std::optional<Plan>();
  }
  Problems problems;
  // What transformers does with the file: json.dumps(indent=2, sort_keys=True), then json.load.
  nlohmann::json reparsed;
  try {
    reparsed = nlohmann::json::parse(dump_config_json(quantized.config()));
  } catch (const std::exception& e) {
    reparsed = nlohmann::json();
    problems.add(std::string("config.json does not parse after a dump: ") + e.what());
  }
  if (!reparsed.is_null() && reparsed != quantized.config()) {
    const nlohmann::json* again =
        reparsed.contains("quantization_config") ? &reparsed["quantization_config"] : nullptr;
    problems.add(
        "config.json changes under a JSON dump -> parse round trip (quantization_config "
        "before: " +
        qconfig->dump() + ", after: " + value_text(again) + ")");
  }

  ConfigRequest resolve_request;
  resolve_request.model_config = quantized.config();
  auto resolved = host.resolve(resolve_request);
  if (!resolved.ok()) {
    problems.add("it does not resolve: " + resolved.error().to_string());
    fail(check, problems.text());
    return std::optional<Plan>();
  }

  // ORIG planned with QUANT's config: the modules it targets, the tensors the method writes
  // for each, and the config the method's postprocess writes.
  PlanRequest plan_request;
  plan_request.config.user_config = *qconfig;
  plan_request.architecture_dirs = options.architecture_dirs;
  plan_request.allow_emulation = options.allow_emulation;
  auto plan = make_plan(host, original, plan_request);
  if (!plan.ok()) {
    // No plugin serves the method here (or the environment refuses it): nothing can be checked.
    if (plan.error().exit_code() == ExitCode::kEnvironment) return plan.error();
    problems.add("the method rejects it: " + plan.error().to_string());
    fail(check, problems.text());
    return std::optional<Plan>();
  }
  if (plan.value().nothing_to_do) {
    return bad_input("ORIG is not a dense checkpoint: " + plan.value().note,
                     "verify compares a quantized checkpoint against the dense one it was made "
                     "from",
                     "pass the unquantized model as ORIG");
  }
  const nlohmann::json& written = plan.value().quantization_config;
  if (resolved.value().quant_method != plan.value().config.quant_method) {
    problems.add("method " + resolved.value().quant_method + " resolves differently on ORIG (" +
                 plan.value().config.quant_method + ")");
  }
  // A key QUANT lacks is what the method's config class defaults it to on load (transformers'
  // from_dict), and `written` was made from QUANT's own config, so it holds that default:
  // checkpoints written by older writers (DeepSeek-V3's fp8 config has no `dequantize`) pass.
  std::string defaulted;
  if (written.is_object()) {
    for (const auto& [key, value] : written.items()) {
      const nlohmann::json* stored = qconfig->contains(key) ? &(*qconfig)[key] : nullptr;
      if (stored == nullptr) {
        defaulted += (defaulted.empty() ? "" : ", ") + key + "=" + value.dump();
      } else if (*stored != value) {
        problems.add("key '" + key + "': QUANT has " + value_text(stored) + ", the method writes " +
                     value.dump());
      }
    }
  }
  if (problems.empty()) {
    check.outcome = CheckOutcome::kPass;
    check.detail =
        resolved.value().quant_method + " (plugin " + plan.value().selection.plugin_id + ")" +
        (defaulted.empty() ? "" : "; keys absent from QUANT, read as their defaults: " + defaulted);
  } else {
    fail(check, problems.text());
  }
  return std::optional<Plan>(std::move(plan).value());
}

}  // namespace qforge::verify
