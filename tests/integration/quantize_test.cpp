// plan -> quantize -> inspect end to end on generated Llama-shaped models, through the CLI.
// The expected tensor set is FORMATS.md §2.2's table: what transformers + bitsandbytes write.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <set>
#include <string>

#include "cli_runner.hpp"

namespace qforge::test {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

const std::string kMakeModel = std::string(QFORGE_BUILD_DIR) + "/bin/qforge-make-model";

// Small but Llama-shaped: 2 layers, GQA (4 heads, 2 kv heads), untied lm_head.
void make_model(const fs::path& out, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> argv = {
      kMakeModel, "--out",   out.string(), "--hidden",   "64", "--intermediate", "160", "--layers",
      "2",        "--heads", "4",          "--kv-heads", "2",  "--vocab",        "96"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  const ProcessResult r = run_process(argv);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
}

nlohmann::json run_json(const std::vector<std::string>& args, int expected_exit = 0) {
  const ProcessResult r = run_qforge(args);
  EXPECT_EQ(r.exit_code, expected_exit) << r.describe();
  std::string why;
  auto j = parse_stdout_json(r, &why);
  EXPECT_TRUE(j.has_value()) << why;
  return j.value_or(nlohmann::json());
}

nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

// name -> {dtype, shape} of every tensor in a safetensors file's header.
std::map<std::string, nlohmann::json> header_of(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  std::string text(n, '\0');
  in.read(text.data(), static_cast<std::streamsize>(n));
  std::map<std::string, nlohmann::json> out;
  const nlohmann::json header = nlohmann::json::parse(text);
  for (const auto& item : header.items()) {
    if (item.key() != "__metadata__") out[item.key()] = item.value();
  }
  return out;
}

const nlohmann::json* module_of(const nlohmann::json& plan, const std::string& name) {
  for (const auto& m : plan["modules"]) {
    if (m["name"] == name) return &m;
  }
  return nullptr;
}

int count_temp_dirs(const fs::path& dir) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename().string().find("qforge-tmp") != std::string::npos) ++n;
  }
  return n;
}

// Streaming: the input is mapped, and each module's pages are dropped from the resident set
// once it is written, so peak RSS tracks one module (plus the process), not the model.
TEST(QuantizeEndToEnd, PeakMemoryStaysFarBelowTheModelSize) {
  TempDir tmp;
  const fs::path model = tmp.path() / "m";
  // ~55 M parameters, ~110 MB of bf16 weights in 20 MB shards; the largest module is ~6 MB.
  make_model(model, {"--hidden", "1024", "--intermediate", "2816", "--layers", "4", "--heads", "8",
                     "--kv-heads", "4", "--vocab", "4096", "--max-shard-size", "20MB"});
  uint64_t model_bytes = 0;
  for (const auto& e : fs::directory_iterator(model)) {
    if (e.path().extension() == ".safetensors") model_bytes += fs::file_size(e.path());
  }
  ASSERT_GT(model_bytes, 100'000'000u);
  const nlohmann::json summary =
      run_json({"quantize", model.string(), "-o", (tmp.path() / "q").string(), "--method", "nf4",
                "--threads", "2", "--json"});
  // What quantizing cost on top of the process at start (the CLI links LibTorch for its
  // runtime commands, which alone is ~160 MB resident).
  const auto peak = summary["peak_rss_bytes"].get<uint64_t>();
  const auto at_start = summary["start_rss_bytes"].get<uint64_t>();
  ASSERT_GT(at_start, 0u);
  ASSERT_GE(peak, at_start);
  EXPECT_LT(peak - at_start, model_bytes / 2)
      << "peak RSS " << peak << " (" << at_start << " at start) for a model of " << model_bytes
      << " bytes: the input mapping is not being released";
}

TEST(QuantizeEndToEnd, PlanListsEveryModuleWithActionAndReason) {
  TempDir tmp;
  make_model(tmp.path() / "m");
  const nlohmann::json plan =
      run_json({"plan", (tmp.path() / "m").string(), "--method", "nf4", "--json"});
  ASSERT_FALSE(plan["nothing_to_do"].get<bool>()) << plan.dump(2);
  EXPECT_EQ(plan["quant_method"], "bitsandbytes_4bit");
  EXPECT_EQ(plan["selection"]["plugin"], "bnb");
  EXPECT_EQ(plan["family"], "llama");
  // 2 layers x 7 linears quantized; lm_head, embeddings and norms kept with a reason.
  EXPECT_EQ(plan["totals"]["modules_quantized"], 14);
  const auto* head = module_of(plan, "lm_head");
  ASSERT_NE(head, nullptr);
  EXPECT_EQ((*head)["action"], "keep");
  EXPECT_THAT((*head)["reason"].get<std::string>(), HasSubstr("default skip"));
  const auto* embed = module_of(plan, "model.embed_tokens");
  ASSERT_NE(embed, nullptr);
  EXPECT_EQ((*embed)["action"], "keep");
  EXPECT_FALSE((*embed)["reason"].get<std::string>().empty());
  const auto* q = module_of(plan, "model.layers.1.self_attn.q_proj");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ((*q)["action"], "quantize");
  EXPECT_EQ((*q)["shape"], nlohmann::json::array({64, 64}));
  EXPECT_GT(plan["totals"]["footprint_ratio"].get<double>(), 1.0);

  const ProcessResult text = run_qforge({"plan", (tmp.path() / "m").string(), "--method", "nf4"});
  EXPECT_EQ(text.exit_code, 0) << text.describe();
  EXPECT_THAT(text.out, HasSubstr("model.layers.0.mlp.down_proj"));
  EXPECT_THAT(text.out, HasSubstr("Totals:"));
}

TEST(QuantizeEndToEnd, Nf4OutputHasTransformersTensorSetAndConfig) {
  TempDir tmp;
  make_model(tmp.path() / "m");
  const fs::path out = tmp.path() / "q";
  const nlohmann::json summary = run_json(
      {"quantize", (tmp.path() / "m").string(), "-o", out.string(), "--method", "nf4", "--json"});
  EXPECT_EQ(summary["modules_quantized"], 14);
  EXPECT_GT(summary["footprint_ratio"].get<double>(), 2.0);

  const nlohmann::json config = read_json(out / "config.json");
  ASSERT_TRUE(config.contains("quantization_config"));
  std::set<std::string> keys;
  for (auto& [k, v] : config["quantization_config"].items()) keys.insert(k);
  EXPECT_EQ(keys, (std::set<std::string>{
                      "_load_in_4bit", "_load_in_8bit", "bnb_4bit_compute_dtype",
                      "bnb_4bit_quant_storage", "bnb_4bit_quant_type", "bnb_4bit_use_double_quant",
                      "llm_int8_enable_fp32_cpu_offload", "llm_int8_has_fp16_weight",
                      "llm_int8_skip_modules", "llm_int8_threshold", "load_in_4bit", "load_in_8bit",
                      "quant_method"}));
  EXPECT_EQ(config["quantization_config"]["bnb_4bit_quant_type"], "nf4");
  EXPECT_EQ(config["hidden_size"], 64);

  ASSERT_TRUE(fs::exists(out / "model.safetensors"));
  const auto header = header_of(out / "model.safetensors");
  // FORMATS.md §2.2: n = 64*64 = 4096 -> weight U8 [2048, 1], absmax F32 [64], quant_map F32 [16],
  // quant_state U8 [len(json)].
  const std::string p = "model.layers.0.self_attn.q_proj.";
  ASSERT_TRUE(header.count(p + "weight"));
  EXPECT_EQ(header.at(p + "weight")["dtype"], "U8");
  EXPECT_EQ(header.at(p + "weight")["shape"], nlohmann::json::array({2048, 1}));
  EXPECT_EQ(header.at(p + "weight.absmax")["dtype"], "F32");
  EXPECT_EQ(header.at(p + "weight.absmax")["shape"], nlohmann::json::array({64}));
  EXPECT_EQ(header.at(p + "weight.quant_map")["shape"], nlohmann::json::array({16}));
  EXPECT_EQ(header.at(p + "weight.quant_state.bitsandbytes__nf4")["dtype"], "U8");
  EXPECT_EQ(header.count(p + "weight.nested_absmax"), 0u);
  // k_proj: out = 2 kv heads * 16 = 32 -> n = 2048.
  EXPECT_EQ(header.at("model.layers.0.self_attn.k_proj.weight")["shape"],
            nlohmann::json::array({1024, 1}));
  // Kept dense, in the stored dtype.
  EXPECT_EQ(header.at("lm_head.weight")["dtype"], "BF16");
  EXPECT_EQ(header.at("lm_head.weight")["shape"], nlohmann::json::array({96, 64}));
  EXPECT_EQ(header.at("model.norm.weight")["dtype"], "BF16");
  // 7 tensor per quantized... exactly 4 per module without double quant.
  int quantized_tensors = 0;
  for (const auto& [name, info] : header) {
    if (name.find(".weight.") != std::string::npos) ++quantized_tensors;
  }
  EXPECT_EQ(quantized_tensors, 14 * 3);

  const nlohmann::json inspection = run_json({"inspect", out.string(), "--json"});
  EXPECT_EQ(inspection["quant_method"], "bitsandbytes_4bit");
  EXPECT_EQ(inspection["totals"]["modules_quantized"], 14);
  EXPECT_EQ(inspection["totals"]["problems"], 0);
  EXPECT_EQ(inspection["checked_by"], "bnb");
}

TEST(QuantizeEndToEnd, DoubleQuantAddsNestedTensors) {
  TempDir tmp;
  make_model(tmp.path() / "m");
  const fs::path out = tmp.path() / "q";
  run_json({"quantize", (tmp.path() / "m").string(), "-o", out.string(), "--method", "nf4", "--set",
            "bnb_4bit_use_double_quant=true", "--json"});
  const auto header = header_of(out / "model.safetensors");
  const std::string p = "model.layers.1.mlp.up_proj.weight.";
  EXPECT_EQ(header.at(p + "absmax")["dtype"], "U8");
  EXPECT_EQ(header.at(p + "nested_absmax")["dtype"], "F32");
  EXPECT_EQ(header.at(p + "nested_quant_map")["shape"], nlohmann::json::array({256}));
  const nlohmann::json inspection = run_json({"inspect", out.string(), "--json"});
  EXPECT_EQ(inspection["totals"]["problems"], 0);
}

TEST(QuantizeEndToEnd, QuantizingTheOutputAgainIsANoOp) {
  TempDir tmp;
  make_model(tmp.path() / "m");
  const fs::path out = tmp.path() / "q";
  run_json(
      {"quantize", (tmp.path() / "m").string(), "-o", out.string(), "--method", "nf4", "--json"});
  const fs::path again = tmp.path() / "q2";
  const ProcessResult r =
      run_qforge({"quantize", out.string(), "-o", again.string(), "--method", "nf4"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_THAT(r.out, HasSubstr("already quantized"));
  EXPECT_FALSE(fs::exists(again));
}

TEST(QuantizeEndToEnd, SkipListIsRespectedWithTransformersSemantics) {
  TempDir tmp;
  make_model(tmp.path() / "m");
  // A user skip list replaces transformers' default (so lm_head must be listed to stay dense).
  const nlohmann::json plan =
      run_json({"plan", (tmp.path() / "m").string(), "--method", "nf4", "--set",
                R"(llm_int8_skip_modules=["lm_head","model.layers.1"])", "--json"});
  EXPECT_EQ((*module_of(plan, "lm_head"))["action"], "keep");
  EXPECT_THAT((*module_of(plan, "model.layers.1.mlp.gate_proj"))["reason"].get<std::string>(),
              HasSubstr("llm_int8_skip_modules"));
  EXPECT_EQ((*module_of(plan, "model.layers.0.mlp.gate_proj"))["action"], "quantize");
  EXPECT_EQ(plan["totals"]["modules_quantized"], 7);

  const nlohmann::json without_head =
      run_json({"plan", (tmp.path() / "m").string(), "--method", "nf4", "--set",
                R"(llm_int8_skip_modules=["q_proj"])", "--json"});
  EXPECT_EQ((*module_of(without_head, "lm_head"))["action"], "quantize");
  EXPECT_EQ((*module_of(without_head, "model.layers.0.self_attn.q_proj"))["action"], "keep");
}

TEST(QuantizeEndToEnd, ExistingOutputNeedsForceAndIsReplacedAtomically) {
  TempDir tmp;
  make_model(tmp.path() / "m");
  const fs::path out = tmp.path() / "q";
  fs::create_directories(out);
  std::ofstream(out / "keep.txt") << "previous";
  const ProcessResult refused =
      run_qforge({"quantize", (tmp.path() / "m").string(), "-o", out.string(), "--method", "nf4"});
  EXPECT_EQ(refused.exit_code, 4) << refused.describe();
  EXPECT_THAT(refused.err, HasSubstr("--force"));
  EXPECT_TRUE(fs::exists(out / "keep.txt"));

  const ProcessResult forced = run_qforge(
      {"quantize", (tmp.path() / "m").string(), "-o", out.string(), "--method", "nf4", "--force"});
  EXPECT_EQ(forced.exit_code, 0) << forced.describe();
  EXPECT_FALSE(fs::exists(out / "keep.txt"));
  EXPECT_TRUE(fs::exists(out / "model.safetensors"));
  EXPECT_EQ(count_temp_dirs(tmp.path()), 0);
}

TEST(QuantizeEndToEnd, ShardedInputAndOutput) {
  TempDir tmp;
  make_model(tmp.path() / "m", {"--max-shard-size", "20KB"});
  ASSERT_TRUE(fs::exists(tmp.path() / "m" / "model.safetensors.index.json"));
  const fs::path out = tmp.path() / "q";
  const nlohmann::json summary =
      run_json({"quantize", (tmp.path() / "m").string(), "-o", out.string(), "--method", "fp4",
                "--max-shard-size", "10KB", "--json"});
  EXPECT_GT(summary["shards"].get<int>(), 1);
  const nlohmann::json index = read_json(out / "model.safetensors.index.json");
  EXPECT_TRUE(index["weight_map"].contains("model.layers.0.self_attn.q_proj.weight.absmax"));
  EXPECT_TRUE(index["weight_map"].contains(
      "model.layers.0.self_attn.q_proj.weight.quant_state.bitsandbytes__fp4"));
  const nlohmann::json inspection = run_json({"inspect", out.string(), "--json"});
  EXPECT_EQ(inspection["totals"]["modules_quantized"], 14);
  EXPECT_EQ(inspection["totals"]["problems"], 0);
}

TEST(QuantizeEndToEnd, BadDeviceFailsBeforeWork) {
  TempDir tmp;
  make_model(tmp.path() / "m");
  const fs::path out = tmp.path() / "q";
  const ProcessResult r = run_qforge({"quantize", (tmp.path() / "m").string(), "-o", out.string(),
                                      "--method", "nf4", "--device", "cuda:0"});
  EXPECT_EQ(r.exit_code, 3) << r.describe();
  EXPECT_FALSE(fs::exists(out));
  EXPECT_EQ(count_temp_dirs(tmp.path()), 0);
}

// A bare safetensors checkpoint of an unknown architecture (the generic map applies): two F32
// linear weights [64, 64]; `poison` puts a NaN at element 100 of "blocks.1.proj.weight".
void write_generic_model(const fs::path& dir, bool poison) {
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << R"({"model_type": "toy", "hidden_size": 64})";
  std::vector<float> a(64 * 64), b(64 * 64);
  for (size_t i = 0; i < a.size(); ++i) {
    a[i] = std::sin(static_cast<float>(i));
    b[i] = std::cos(static_cast<float>(i));
  }
  if (poison) b[100] = std::nanf("");
  const size_t bytes = a.size() * sizeof(float);
  nlohmann::json header = {
      {"blocks.0.proj.weight",
       {{"dtype", "F32"}, {"shape", {64, 64}}, {"data_offsets", {0, bytes}}}},
      {"blocks.1.proj.weight",
       {{"dtype", "F32"}, {"shape", {64, 64}}, {"data_offsets", {bytes, 2 * bytes}}}}};
  std::string text = header.dump();
  text.resize((text.size() + 7) / 8 * 8, ' ');
  const uint64_t n = text.size();
  std::ofstream out(dir / "model.safetensors", std::ios::binary);
  out.write(reinterpret_cast<const char*>(&n), 8);
  out.write(text.data(), static_cast<std::streamsize>(n));
  out.write(reinterpret_cast<const char*>(a.data()), static_cast<std::streamsize>(bytes));
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(bytes));
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(QuantizeEndToEnd, NanWeightFailsNamingTensorAndLeavesPreviousOutputIntact) {
  TempDir tmp;
  write_generic_model(tmp.path() / "good", false);
  write_generic_model(tmp.path() / "bad", true);
  const fs::path out = tmp.path() / "q";
  run_json({"quantize", (tmp.path() / "good").string(), "-o", out.string(), "--method", "nf4",
            "--json"});
  const std::string before = read_file(out / "model.safetensors");
  ASSERT_FALSE(before.empty());

  const ProcessResult r = run_qforge({"quantize", (tmp.path() / "bad").string(), "-o", out.string(),
                                      "--method", "nf4", "--force"});
  EXPECT_EQ(r.exit_code, 4) << r.describe();
  EXPECT_THAT(r.err, HasSubstr("blocks.1.proj"));
  EXPECT_THAT(r.err, HasSubstr("block"));
  EXPECT_EQ(read_file(out / "model.safetensors"), before);
  EXPECT_EQ(count_temp_dirs(tmp.path()), 0);
}

TEST(QuantizeEndToEnd, NoMethodMeansNothingToDo) {
  TempDir tmp;
  make_model(tmp.path() / "m");
  const ProcessResult r = run_qforge({"plan", (tmp.path() / "m").string()});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_THAT(r.out, HasSubstr("Nothing to do"));
}

}  // namespace
}  // namespace qforge::test
