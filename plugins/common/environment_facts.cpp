// Reading validate_environment's two JSON documents (see environment_facts.hpp).
#include "environment_facts.hpp"

#include <algorithm>
#include <cctype>
#include <qforge/qf_plugin.hpp>
#include <set>

namespace qforge::plugins {
namespace {

using sdk::Error;

nlohmann::json parse_object(const std::string& text, const char* what) {
  if (text.empty()) return nlohmann::json::object();
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    throw Error(QF_CODE_INVALID_ARGUMENT, std::string(what) + " is not a JSON object",
                "got " + text.substr(0, 80), "pass a JSON object");
  }
  return j;
}

Error bad_member(const char* what, const std::string& member, const std::string& expected,
                 const nlohmann::json& got) {
  return Error(QF_CODE_INVALID_ARGUMENT, std::string(what) + ": '" + member + "' is malformed",
               "expected " + expected + ", got " + got.dump().substr(0, 80),
               "fix the " + std::string(what) + " (docs/environment.md describes the schema)");
}

// "8.9" -> (8, 9); false for anything else.
bool parse_cc(const std::string& text, int* major, int* minor) {
  const size_t dot = text.find('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 == text.size()) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    if (i != dot && std::isdigit(static_cast<unsigned char>(text[i])) == 0) return false;
  }
  if (dot > 3 || text.size() - dot - 1 > 3) return false;
  *major = std::stoi(text.substr(0, dot));
  *minor = std::stoi(text.substr(dot + 1));
  return true;
}

GpuFacts parse_gpu(const nlohmann::json& d, size_t i) {
  const std::string at = "devices[" + std::to_string(i) + "]";
  const char* what = "environment JSON";
  if (!d.is_object()) throw bad_member(what, at, "an object", d);
  GpuFacts gpu;
  auto backend = d.find("backend");
  if (backend == d.end() || !backend->is_string()) {
    throw bad_member(what, at + ".backend", "\"cuda\" or \"rocm\"", d);
  }
  gpu.backend = backend->get<std::string>();
  auto index = d.find("index");
  if (index == d.end() || !index->is_number_integer() || index->get<int64_t>() < 0) {
    throw bad_member(what, at + ".index", "a non-negative integer", d);
  }
  gpu.index = index->get<int>();
  if (auto name = d.find("name"); name != d.end() && name->is_string()) {
    gpu.name = name->get<std::string>();
  }
  if (auto cc = d.find("compute_capability"); cc != d.end() && !cc->is_null()) {
    if (!cc->is_string() || !parse_cc(cc->get<std::string>(), &gpu.cc_major, &gpu.cc_minor)) {
      throw bad_member(what, at + ".compute_capability", "a \"major.minor\" string like \"8.9\"",
                       *cc);
    }
  } else if (auto major = d.find("cc_major"); major != d.end() && major->is_number_integer()) {
    gpu.cc_major = major->get<int>();
    auto minor = d.find("cc_minor");
    gpu.cc_minor = minor != d.end() && minor->is_number_integer() ? minor->get<int>() : 0;
  }
  return gpu;
}

}  // namespace

std::string GpuFacts::label() const {
  std::string s = backend + ":" + std::to_string(index);
  if (!name.empty()) s += " (" + name + ")";
  return s;
}

std::string GpuFacts::cc_text() const {
  // The probe writes "0.0" when it could not read the capability.
  if (cc_major <= 0) return "unknown";
  return std::to_string(cc_major) + "." + std::to_string(cc_minor);
}

bool GpuFacts::cc_at_least(int major, int minor) const {
  if (cc_major <= 0) return false;
  return cc_major > major || (cc_major == major && cc_minor >= minor);
}

const GpuFacts* EnvironmentFacts::find(const std::string& backend, int index) const {
  for (const auto& gpu : gpus) {
    if (gpu.backend == backend && gpu.index == index) return &gpu;
  }
  return nullptr;
}

const GpuFacts* EnvironmentFacts::first(const std::string& backend) const {
  const GpuFacts* best = nullptr;
  for (const auto& gpu : gpus) {
    if (gpu.backend == backend && (best == nullptr || gpu.index < best->index)) best = &gpu;
  }
  return best;
}

std::string EnvironmentFacts::list(const std::string& backend) const {
  std::string text;
  for (const auto& gpu : gpus) {
    if (gpu.backend != backend) continue;
    if (!text.empty()) text += ", ";
    text += gpu.label();
  }
  return text;
}

std::string DeviceRef::text() const {
  if (kind == "cpu" || kind == "disk") return kind;
  if (kind == "gpu") return std::to_string(index);
  return kind + ":" + std::to_string(index);
}

std::optional<DeviceRef> parse_device(const nlohmann::json& value) {
  if (value.is_number_integer()) {
    if (value.get<int64_t>() < 0 || value.get<int64_t>() > 1 << 20) return std::nullopt;
    return DeviceRef{"gpu", value.get<int>()};
  }
  if (!value.is_string()) return std::nullopt;
  const std::string text = value.get<std::string>();
  if (text == "cpu" || text == "disk") return DeviceRef{text, 0};
  for (const char* kind : {"cuda", "rocm"}) {
    const std::string k = kind;
    if (text == k) return DeviceRef{k, 0};
    if (text.size() > k.size() + 1 && text.compare(0, k.size() + 1, k + ":") == 0) {
      const std::string digits = text.substr(k.size() + 1);
      if (digits.size() > 6 || !std::all_of(digits.begin(), digits.end(), [](char c) {
            return std::isdigit(static_cast<unsigned char>(c)) != 0;
          })) {
        return std::nullopt;
      }
      return DeviceRef{k, std::stoi(digits)};
    }
  }
  return std::nullopt;
}

DeviceRef resolve_device(const DeviceRef& device, const EnvironmentFacts& env) {
  if (device.kind != "gpu") return device;
  DeviceRef out = device;
  out.kind = env.first("cuda") == nullptr && env.first("rocm") != nullptr ? "rocm" : "cuda";
  return out;
}

const GpuFacts* require_gpu(const DeviceRef& device, const EnvironmentFacts& env,
                            const std::string& role, const std::string& summary,
                            const std::string& fix) {
  if (!device.is_gpu()) return nullptr;
  if (const GpuFacts* gpu = env.find(device.kind, device.index)) return gpu;
  const std::string found = env.list(device.kind);
  std::string why = role + " " + device.text() + ", but ";
  if (found.empty()) {
    const std::string& status = device.kind == "cuda" ? env.cuda_status : env.hip_status;
    why += "this machine has no " + std::string(device.kind == "cuda" ? "CUDA" : "ROCm") +
           " device" + (status.empty() ? "" : " (" + status + ")");
  } else {
    why += "this machine has only " + found;
  }
  throw Error(QF_CODE_FAILED_PRECONDITION, summary, why,
              fix + (found.empty() ? std::string() : ", or use one of " + found) +
                  "; `qforge doctor` shows the devices qforge can see");
}

EnvironmentFacts parse_environment(const std::string& env_json) {
  const nlohmann::json env = parse_object(env_json, "environment JSON");
  EnvironmentFacts facts;
  if (auto devices = env.find("devices"); devices != env.end() && !devices->is_null()) {
    if (!devices->is_array()) throw bad_member("environment JSON", "devices", "a list", *devices);
    for (size_t i = 0; i < devices->size(); ++i) facts.gpus.push_back(parse_gpu((*devices)[i], i));
  }
  // {"cuda": {"status": "libcuda.so.1 not found: ..."}, "rocm": {"status": ...}}
  auto status_of = [&env](const char* backend) {
    auto section = env.find(backend);
    if (section == env.end() || !section->is_object()) return std::string();
    auto status = section->find("status");
    return status != section->end() && status->is_string() ? status->get<std::string>()
                                                           : std::string();
  };
  facts.cuda_status = status_of("cuda");
  facts.hip_status = status_of("rocm");
  return facts;
}

RequestFacts parse_request(const std::string& request_json) {
  const nlohmann::json request = parse_object(request_json, "request JSON");
  const char* what = "request JSON";
  RequestFacts facts;
  auto read_flag = [&](const char* key, bool* out) {
    auto it = request.find(key);
    if (it == request.end() || it->is_null()) return;
    if (!it->is_boolean()) throw bad_member(what, key, "true or false", *it);
    *out = it->get<bool>();
  };
  read_flag("pre_quantized", &facts.pre_quantized);
  read_flag("from_tf", &facts.from_tf);
  read_flag("from_flax", &facts.from_flax);
  read_flag("allow_emulation", &facts.allow_emulation);
  if (auto it = request.find("device"); it != request.end() && !it->is_null()) {
    auto device = it->is_string() ? parse_device(*it) : std::nullopt;
    if (!device || device->kind == "disk") {
      throw Error(QF_CODE_INVALID_ARGUMENT, "request: device " + it->dump() + " is not a device",
                  "expected \"cpu\", \"cuda\", \"cuda:N\" or \"rocm:N\"",
                  "pass --device cpu, --device cuda or --device cuda:N");
    }
    facts.device = device;
  }
  if (auto it = request.find("device_map"); it != request.end()) {
    if (!it->is_null() && !it->is_object() && !it->is_string() && !it->is_number_integer()) {
      throw bad_member(what, "device_map", "an object, a string or null", *it);
    }
    facts.device_map = *it;
  }
  return facts;
}

std::string default_device(const EnvironmentFacts& env, const RequestFacts& request) {
  if (request.device) return resolve_device(*request.device, env).text();
  if (const GpuFacts* gpu = env.first("cuda")) return "cuda:" + std::to_string(gpu->index);
  if (const GpuFacts* gpu = env.first("rocm")) return "rocm:" + std::to_string(gpu->index);
  return "cpu";
}

bool is_device_map_strategy(const nlohmann::json& value) {
  static const std::set<std::string> kStrategies = {"auto", "balanced", "balanced_low_0",
                                                    "sequential"};
  return value.is_string() && kStrategies.count(value.get<std::string>()) != 0;
}

}  // namespace qforge::plugins
