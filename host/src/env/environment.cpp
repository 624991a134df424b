// Environment <-> JSON (docs/environment.md is the schema plugins read).
#include "qforge/environment.hpp"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "qforge/error.hpp"

namespace qforge {
namespace {

using nlohmann::json;

[[noreturn]] void field_error(const std::string& field, const std::string& expected,
                              const json& got) {
  throw bad_input(
      "environment JSON: field '" + field + "': expected " + expected + ", got " + got.dump(),
      "the environment description does not follow the schema",
      "see docs/environment.md, or produce the file with `qforge doctor --json`");
}

// Rejects keys outside `allowed`: a typo ("device" for "devices") would otherwise simulate a
// different machine than the one intended, silently.
void check_keys(const json& object, const std::string& where,
                const std::vector<std::string>& allowed) {
  for (const auto& item : object.items()) {
    if (std::find(allowed.begin(), allowed.end(), item.key()) == allowed.end()) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      const std::string field = where.empty() ? item.key() : where + "." + item.key();
      throw bad_input("environment JSON: unknown field '" + field + "'", "allowed here: " + list,
                      "remove or rename the field (docs/environment.md)");
    }
  }
}

const json* member(const json& object, const char* key) {
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

std::string join(const std::string& where, const char* key) {
  return where.empty() ? std::string(key) : where + "." + key;
}

const json& require_object(const json& j, const std::string& field) {
  if (!j.is_object()) field_error(field, "an object", j);
  return j;
}

void read_string(const json& object, const std::string& where, const char* key, std::string& out) {
  if (const json* v = member(object, key)) {
    if (!v->is_string()) field_error(join(where, key), "a string", *v);
    out = v->get<std::string>();
  }
}

void read_bool(const json& object, const std::string& where, const char* key, bool& out) {
  if (const json* v = member(object, key)) {
    if (!v->is_boolean()) field_error(join(where, key), "true or false", *v);
    out = v->get<bool>();
  }
}

void read_int(const json& object, const std::string& where, const char* key, int& out) {
  if (const json* v = member(object, key)) {
    if (!v->is_number_integer() || v->get<int64_t>() < 0 ||
        v->get<int64_t>() > std::numeric_limits<int>::max()) {
      field_error(join(where, key), "a non-negative integer", *v);
    }
    out = static_cast<int>(v->get<int64_t>());
  }
}

void read_bytes(const json& object, const std::string& where, const char* key, uint64_t& out) {
  if (const json* v = member(object, key)) {
    if (v->is_number_unsigned()) {
      out = v->get<uint64_t>();
    } else if (v->is_number_integer() && v->get<int64_t>() >= 0) {
      out = static_cast<uint64_t>(v->get<int64_t>());
    } else {
      field_error(join(where, key), "a non-negative integer number of bytes", *v);
    }
  }
}

// "9.0" -> (9, 0). Digits only, so "9", "9.x" and "-1.0" are rejected.
void read_compute_capability(const json& object, const std::string& where, GpuDevice& d) {
  const json* v = member(object, "compute_capability");
  if (v == nullptr) return;
  const std::string field = join(where, "compute_capability");
  if (!v->is_string()) field_error(field, "a \"major.minor\" string like \"9.0\"", *v);
  const std::string s = v->get<std::string>();
  const auto dot = s.find('.');
  auto parse = [&](const std::string& part) {
    if (part.empty() || part.size() > 4 ||
        !std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      field_error(field, "a \"major.minor\" string like \"9.0\"", *v);
    }
    return std::stoi(part);
  };
  if (dot == std::string::npos) field_error(field, "a \"major.minor\" string like \"9.0\"", *v);
  d.cc_major = parse(s.substr(0, dot));
  d.cc_minor = parse(s.substr(dot + 1));
}

GpuDevice device_from_json(const json& j, const std::string& where) {
  require_object(j, where);
  check_keys(j, where,
             {"backend", "index", "name", "compute_capability", "gcn_arch", "total_memory",
              "free_memory"});
  GpuDevice d;
  const json* backend = member(j, "backend");
  if (backend == nullptr) {
    throw bad_input("environment JSON: field '" + where + ".backend' is missing",
                    "every device names its backend", "add \"backend\": \"cuda\" or \"rocm\"");
  }
  if (!backend->is_string() || (*backend != "cuda" && *backend != "rocm")) {
    field_error(where + ".backend", "\"cuda\" or \"rocm\"", *backend);
  }
  d.backend = backend->get<std::string>();
  read_int(j, where, "index", d.index);
  read_string(j, where, "name", d.name);
  read_compute_capability(j, where, d);
  read_string(j, where, "gcn_arch", d.gcn_arch);
  read_bytes(j, where, "total_memory", d.total_memory);
  read_bytes(j, where, "free_memory", d.free_memory);
  return d;
}

}  // namespace

bool Environment::has_cpu_feature(const std::string& feature) const {
  return std::find(cpu_features.begin(), cpu_features.end(), feature) != cpu_features.end();
}

bool Environment::has_cuda() const {
  return std::any_of(devices.begin(), devices.end(),
                     [](const GpuDevice& d) { return d.backend == "cuda"; });
}

bool Environment::has_rocm() const {
  return std::any_of(devices.begin(), devices.end(),
                     [](const GpuDevice& d) { return d.backend == "rocm"; });
}

json Environment::to_json() const {
  json devices_json = json::array();
  for (const GpuDevice& d : devices) {
    json dj = {{"backend", d.backend}, {"index", d.index}, {"name", d.name}};
    if (d.backend == "cuda" || d.cc_major != 0 || d.cc_minor != 0) {
      dj["compute_capability"] = std::to_string(d.cc_major) + "." + std::to_string(d.cc_minor);
    }
    if (d.backend == "rocm" || !d.gcn_arch.empty()) dj["gcn_arch"] = d.gcn_arch;
    dj["total_memory"] = d.total_memory;
    dj["free_memory"] = d.free_memory;
    devices_json.push_back(std::move(dj));
  }
  return json{
      {"host_version", host_version},
      {"cpu",
       {{"arch", cpu_arch},
        {"model", cpu_model},
        {"logical_cpus", logical_cpus},
        {"features", cpu_features},
        {"memory_bytes", host_memory}}},
      {"cuda",
       {{"driver_found", cuda_driver_found},
        {"driver_version", cuda_driver_version},
        {"status", cuda_status}}},
      {"rocm",
       {{"runtime_found", hip_runtime_found},
        {"runtime_version", hip_runtime_version},
        {"status", hip_status}}},
      {"devices", std::move(devices_json)},
      {"torch", {{"cpu", true}, {"cuda", torch_cuda}}},
  };
}

Environment environment_from_json(const json& j) {
  Environment env;
  if (!j.is_object()) field_error("(top level)", "an object", j);
  check_keys(j, "", {"host_version", "cpu", "cuda", "rocm", "devices", "torch"});
  read_string(j, "", "host_version", env.host_version);
  if (const json* cpu = member(j, "cpu")) {
    require_object(*cpu, "cpu");
    check_keys(*cpu, "cpu", {"arch", "model", "logical_cpus", "features", "memory_bytes"});
    read_string(*cpu, "cpu", "arch", env.cpu_arch);
    read_string(*cpu, "cpu", "model", env.cpu_model);
    read_int(*cpu, "cpu", "logical_cpus", env.logical_cpus);
    read_bytes(*cpu, "cpu", "memory_bytes", env.host_memory);
    if (const json* features = member(*cpu, "features")) {
      if (!features->is_array()) field_error("cpu.features", "an array of strings", *features);
      for (std::size_t i = 0; i < features->size(); ++i) {
        const json& f = (*features)[i];
        if (!f.is_string()) {
          field_error("cpu.features[" + std::to_string(i) + "]", "a string", f);
        }
        env.cpu_features.push_back(f.get<std::string>());
      }
    }
  }
  if (const json* cuda = member(j, "cuda")) {
    require_object(*cuda, "cuda");
    check_keys(*cuda, "cuda", {"driver_found", "driver_version", "status"});
    read_bool(*cuda, "cuda", "driver_found", env.cuda_driver_found);
    read_int(*cuda, "cuda", "driver_version", env.cuda_driver_version);
    read_string(*cuda, "cuda", "status", env.cuda_status);
  }
  if (const json* rocm = member(j, "rocm")) {
    require_object(*rocm, "rocm");
    check_keys(*rocm, "rocm", {"runtime_found", "runtime_version", "status"});
    read_bool(*rocm, "rocm", "runtime_found", env.hip_runtime_found);
    read_int(*rocm, "rocm", "runtime_version", env.hip_runtime_version);
    read_string(*rocm, "rocm", "status", env.hip_status);
  }
  if (const json* devices = member(j, "devices")) {
    if (!devices->is_array()) field_error("devices", "an array of device objects", *devices);
    for (std::size_t i = 0; i < devices->size(); ++i) {
      env.devices.push_back(device_from_json((*devices)[i], "devices[" + std::to_string(i) + "]"));
    }
  }
  if (const json* torch = member(j, "torch")) {
    require_object(*torch, "torch");
    check_keys(*torch, "torch", {"cpu", "cuda"});
    bool cpu = true;
    read_bool(*torch, "torch", "cpu", cpu);  // always true for a qforge build; checked only
    read_bool(*torch, "torch", "cuda", env.torch_cuda);
  }
  return env;
}

}  // namespace qforge
