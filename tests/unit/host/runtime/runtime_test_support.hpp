// What the runtime tests share: scratch folders, tiny Llama checkpoints from the make-model
// generator (tools/make-model), the committed reference numbers (tests/reference/runtime) and a
// Host that sees the build tree's plugins only.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "llama_model.hpp"
#include "qforge/checkpoint.hpp"
#include "qforge/host.hpp"
#include "qforge/runtime.hpp"

namespace qforge::runtime::test {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "qforge-runtime-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

inline HostOptions build_tree_host() {
  HostOptions o;
  o.plugin_dirs = {QFORGE_TEST_BUILD_PLUGIN_DIR};
  o.use_env_path = false;
  o.use_default_dirs = false;
  return o;
}

inline RuntimeOptions runtime_options() {
  RuntimeOptions o;
  o.architecture_dirs = {fs::path(QFORGE_SOURCE_DIR) / "manifests" / "architectures"};
  o.num_threads = 1;
  return o;
}

// The generator's spec from qforge-make-model flags (the reference JSON records them).
inline make_model::LlamaSpec spec_from_flags(const std::vector<std::string>& flags) {
  make_model::LlamaSpec s;
  for (size_t i = 0; i < flags.size(); ++i) {
    const std::string& f = flags[i];
    if (f == "--tie-embeddings") {
      s.tie_embeddings = true;
      continue;
    }
    const std::string v = i + 1 < flags.size() ? flags[i + 1] : "";
    ++i;
    if (f == "--hidden")
      s.hidden = std::stoll(v);
    else if (f == "--intermediate")
      s.intermediate = std::stoll(v);
    else if (f == "--layers")
      s.layers = std::stoll(v);
    else if (f == "--heads")
      s.heads = std::stoll(v);
    else if (f == "--kv-heads")
      s.kv_heads = std::stoll(v);
    else if (f == "--vocab")
      s.vocab = std::stoll(v);
    else if (f == "--dtype")
      s.dtype = v;
    else if (f == "--seed")
      s.seed = std::stoull(v);
    else
      ADD_FAILURE() << "unknown make-model flag " << f;
  }
  return s;
}

// The 2-layer, 64-hidden GQA model of the integration tests.
inline make_model::LlamaSpec small_spec(const std::string& dtype = "fp32", uint64_t seed = 3) {
  return spec_from_flags({"--hidden", "64", "--intermediate", "160", "--layers", "2", "--heads",
                          "4", "--kv-heads", "2", "--vocab", "96", "--dtype", dtype, "--seed",
                          std::to_string(seed)});
}

inline fs::path write_llama(const make_model::LlamaSpec& spec, const fs::path& out) {
  auto made = make_model::write_llama_checkpoint(spec, out, WriterOptions{});
  EXPECT_TRUE(made.ok()) << (made.ok() ? "" : made.error().to_string());
  return out;
}

inline nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "missing " << path;
  return nlohmann::json::parse(in);
}

inline nlohmann::json reference(const std::string& name) {
  return read_json(fs::path(QFORGE_SOURCE_DIR) / "tests" / "reference" / "runtime" /
                   (name + ".json"));
}

// The real-model cache (tools/fetch-models.sh): $QFORGE_MODEL_CACHE, else ~/.cache/qforge/models.
inline fs::path model_cache() {
  if (const char* env = std::getenv("QFORGE_MODEL_CACHE"); env != nullptr && *env != '\0') {
    return env;
  }
  const char* home = std::getenv("HOME");
  return fs::path(home != nullptr ? home : "/nonexistent") / ".cache" / "qforge" / "models";
}

// Skips the test when the real model in `dir` is not in the cache, saying how to fetch it.
#define SKIP_WITHOUT(dir)                                                                 \
  if (!fs::exists((dir) / "model.safetensors")) {                                         \
    GTEST_SKIP() << "model missing: " << (dir)                                            \
                 << " (run tools/fetch-models.sh --qforge build/bin/qforge to fetch it)"; \
  }

// Rewrites config.json of a checkpoint folder through `edit`.
template <class F>
void edit_config(const fs::path& dir, F&& edit) {
  nlohmann::json c = read_json(dir / "config.json");
  edit(c);
  std::ofstream(dir / "config.json") << c.dump(2);
}

inline double cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ab += double(a[i]) * b[i];
    aa += double(a[i]) * a[i];
    bb += double(b[i]) * b[i];
  }
  return ab / std::sqrt(aa * bb);
}

inline double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(double(a[i]) - b[i]));
  return m;
}

inline double value_range(const std::vector<float>& a) {
  const auto [lo, hi] = std::minmax_element(a.begin(), a.end());
  return double(*hi) - double(*lo);
}

}  // namespace qforge::runtime::test
