// qforge verify end to end: passes on the NF4 output of a generated model, and fails, naming
// the check and the module, on hand-broken copies of it (a tensor removed, a dtype changed,
// quantization_config deleted, a scale tensor zeroed).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <string>

#include "cli_runner.hpp"

namespace qforge::test {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

const std::string kMakeModel = std::string(QFORGE_BUILD_DIR) + "/bin/qforge-make-model";

void make_model(const fs::path& out) {
  const ProcessResult r =
      run_process({kMakeModel, "--out", out.string(), "--hidden", "64", "--intermediate", "160",
                   "--layers", "2", "--heads", "4", "--kv-heads", "2", "--vocab", "96"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
}

// One tensor of a single-file safetensors checkpoint, as the tests edit it.
struct RawTensor {
  std::string dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};
using RawTensors = std::map<std::string, RawTensor>;

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

RawTensors read_safetensors(const fs::path& file) {
  const std::string text = read_file(file);
  uint64_t n = 0;
  std::memcpy(&n, text.data(), 8);
  const nlohmann::json header = nlohmann::json::parse(text.substr(8, n));
  RawTensors out;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") continue;
    const auto offsets = info["data_offsets"].get<std::vector<uint64_t>>();
    out[name] = RawTensor{info["dtype"], info["shape"].get<std::vector<int64_t>>(),
                          text.substr(8 + n + offsets[0], offsets[1] - offsets[0])};
  }
  return out;
}

// A tiny safetensors writer: tensors in name order, header padded to 8 bytes.
void write_safetensors(const fs::path& file, const RawTensors& tensors) {
  nlohmann::json header = {{"__metadata__", {{"format", "pt"}}}};
  uint64_t offset = 0;
  std::string data;
  for (const auto& [name, t] : tensors) {
    header[name] = {{"dtype", t.dtype},
                    {"shape", t.shape},
                    {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
    data += t.bytes;
  }
  std::string text = header.dump();
  text.resize((text.size() + 7) / 8 * 8, ' ');
  const uint64_t n = text.size();
  std::ofstream out(file, std::ios::binary);
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << text << data;
}

// A copy of checkpoint `from` at `to`, with its tensors and config.json edited.
void broken_copy(const fs::path& from, const fs::path& to,
                 const std::function<void(RawTensors&)>& edit_tensors,
                 const std::function<void(nlohmann::json&)>& edit_config = nullptr) {
  fs::create_directories(to);
  RawTensors tensors = read_safetensors(from / "model.safetensors");
  if (edit_tensors) edit_tensors(tensors);
  write_safetensors(to / "model.safetensors", tensors);
  nlohmann::json config = nlohmann::json::parse(read_file(from / "config.json"));
  if (edit_config) edit_config(config);
  std::ofstream(to / "config.json") << config.dump(2);
}

nlohmann::json parse_json(const ProcessResult& r) {
  std::string why;
  auto j = parse_stdout_json(r, &why);
  EXPECT_TRUE(j.has_value()) << why << "\n" << r.describe();
  return j.value_or(nlohmann::json::object());
}

const nlohmann::json& check_of(const nlohmann::json& report, const std::string& id) {
  static const nlohmann::json none = nlohmann::json::object();
  for (const auto& c : report["checks"]) {
    if (c["id"] == id) return c;
  }
  ADD_FAILURE() << "no check '" << id << "' in " << report.dump(2);
  return none;
}

class VerifyEndToEnd : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    make_model(dir_->path() / "m");
    const ProcessResult r = run_qforge({"quantize", (dir_->path() / "m").string(), "-o",
                                        (dir_->path() / "q").string(), "--method", "nf4"});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static fs::path orig() { return dir_->path() / "m"; }
  static fs::path quant() { return dir_->path() / "q"; }

  // verify --json on a broken copy: exit 4, the named check failed.
  static nlohmann::json verify_fails(const fs::path& broken, const std::string& failed_check,
                                     std::vector<std::string> extra = {"--static-only"}) {
    std::vector<std::string> args = {"verify", orig().string(), broken.string(), "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    const ProcessResult r = run_qforge(args);
    EXPECT_EQ(r.exit_code, 4) << r.describe();
    EXPECT_THAT(r.err, HasSubstr("verification failed"));
    EXPECT_THAT(r.err, HasSubstr(failed_check));
    const nlohmann::json report = parse_json(r);
    EXPECT_FALSE(report.value("passed", true));
    EXPECT_EQ(check_of(report, failed_check)["outcome"], "fail") << report.dump(2);
    return report;
  }

  static TempDir* dir_;
};
TempDir* VerifyEndToEnd::dir_ = nullptr;

TEST_F(VerifyEndToEnd, StaticChecksPassOnTheNf4Output) {
  const ProcessResult r =
      run_qforge({"verify", orig().string(), quant().string(), "--json", "--static-only"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const nlohmann::json report = parse_json(r);
  EXPECT_TRUE(report["passed"].get<bool>()) << report.dump(2);
  EXPECT_EQ(report["quant_method"], "bitsandbytes_4bit");
  EXPECT_EQ(report["plugin"], "bnb");
  for (const char* id :
       {"footprint", "layer_types", "dtypes", "config", "round_trip", "reconstruction"}) {
    EXPECT_EQ(check_of(report, id)["outcome"], "pass") << id << ": " << report.dump(2);
  }
  // 2 layers x 7 linears are quantized, each with its reconstruction error; NF4 of a normal
  // weight loses ~10%.
  const double ratio = check_of(report, "footprint")["figure"].get<double>();
  EXPECT_GT(ratio, 0.0);
  EXPECT_LT(ratio, 1.0);
  int measured = 0;
  for (const auto& m : report["modules"]) {
    if (m["relative_error"].is_number()) {
      ++measured;
      EXPECT_GT(m["relative_error"].get<double>(), 0.01) << m.dump();
      EXPECT_LT(m["relative_error"].get<double>(), 0.2) << m.dump();
    }
  }
  EXPECT_EQ(measured, 14);
  // Static only: the output checks say they did not run, and never pass.
  EXPECT_EQ(check_of(report, "top1")["outcome"], "skipped");
  EXPECT_TRUE(check_of(report, "top1")["figure"].is_null());
}

TEST_F(VerifyEndToEnd, TextSummaryHasOneLinePerCheckAndTheReportIsWritten) {
  const fs::path md = dir_->path() / "out" / "report.md";
  fs::create_directories(md.parent_path());
  const ProcessResult r = run_qforge(
      {"verify", orig().string(), quant().string(), "--static-only", "--report", md.string()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_THAT(r.out, HasSubstr("layer_types"));
  EXPECT_THAT(r.out, HasSubstr("round_trip"));
  EXPECT_THAT(r.out, HasSubstr("Result: PASS"));
  const std::string text = read_file(md);
  EXPECT_THAT(text, HasSubstr("](report.svg)"));
  EXPECT_THAT(text, HasSubstr("model.layers.1.mlp.down_proj"));
  const std::string svg = read_file(md.parent_path() / "report.svg");
  EXPECT_THAT(svg, HasSubstr("<svg"));
  EXPECT_THAT(svg, HasSubstr("model.layers.0.self_attn.q_proj"));
  int files = 0;
  for (const auto& e : fs::directory_iterator(md.parent_path())) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 2);  // no temporary files left
}

TEST_F(VerifyEndToEnd, OutputChecksRunTheModelsAndPassWithRandomWeightThresholds) {
  // Random weights give nearly flat next-token distributions: argmaxes and greedy paths flip
  // easily (docs/verify.md), so top-1 and generation get the demo's figures.
  const ProcessResult r = run_qforge({"verify", orig().string(), quant().string(), "--json",
                                      "--threshold", "logit_cosine=0.9", "--threshold", "top1=0.3",
                                      "--threshold", "generation=0.2", "-n", "8"});
  const nlohmann::json report = parse_json(r);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  for (const char* id : {"logit_cosine", "kl", "top1", "ppl_delta", "generation"}) {
    const nlohmann::json& c = check_of(report, id);
    EXPECT_EQ(c["outcome"], "pass") << id << ": " << c.dump();
    EXPECT_TRUE(c["figure"].is_number()) << id << ": " << c.dump();
  }
  EXPECT_GT(check_of(report, "logit_cosine")["figure"].get<double>(), 0.9);
  EXPECT_LT(check_of(report, "logit_cosine")["figure"].get<double>(), 1.0);  // 4-bit is lossy
  EXPECT_LT(check_of(report, "kl")["figure"].get<double>(), 0.1);
  // An encoder's check does not appear for a causal LM.
  for (const auto& c : report["checks"]) EXPECT_NE(c["id"], "embedding_cosine");
}

TEST_F(VerifyEndToEnd, OutputFiguresAreDeterministic) {
  // The default inputs are seeded: two runs give the same figures.
  const auto run = [] {
    return parse_json(
        run_qforge({"verify", orig().string(), quant().string(), "--json", "-n", "4", "--threshold",
                    "top1=0", "--threshold", "generation=0", "--threshold", "logit_cosine=0"}));
  };
  const nlohmann::json a = run(), b = run();
  EXPECT_EQ(check_of(a, "kl")["figure"], check_of(b, "kl")["figure"]);
  EXPECT_EQ(check_of(a, "top1")["figure"], check_of(b, "top1")["figure"]);
}

TEST_F(VerifyEndToEnd, FailsWhenAQuantizedModulesTensorIsRemoved) {
  const fs::path broken = dir_->path() / "no-absmax";
  broken_copy(quant(), broken, [](RawTensors& t) {
    ASSERT_EQ(t.erase("model.layers.0.self_attn.q_proj.weight.absmax"), 1u);
  });
  const nlohmann::json report = verify_fails(broken, "layer_types");
  const std::string detail = check_of(report, "layer_types")["detail"];
  EXPECT_THAT(detail, HasSubstr("model.layers.0.self_attn.q_proj"));
  EXPECT_THAT(detail, HasSubstr("absmax"));
}

TEST_F(VerifyEndToEnd, FailsWhenADtypeChanges) {
  const fs::path broken = dir_->path() / "i32-absmax";
  broken_copy(quant(), broken, [](RawTensors& t) {
    RawTensor& absmax = t.at("model.layers.1.self_attn.v_proj.weight.absmax");
    ASSERT_EQ(absmax.dtype, "F32");
    absmax.dtype = "I32";  // same bytes, another dtype
  });
  const nlohmann::json report = verify_fails(broken, "dtypes");
  const std::string detail = check_of(report, "dtypes")["detail"];
  EXPECT_THAT(detail, HasSubstr("model.layers.1.self_attn.v_proj.weight.absmax"));
  EXPECT_THAT(detail, HasSubstr("I32"));
}

TEST_F(VerifyEndToEnd, FailsWhenAKeptTensorChangesDtype) {
  const fs::path broken = dir_->path() / "f16-norm";
  broken_copy(quant(), broken, [](RawTensors& t) { t.at("model.norm.weight").dtype = "F16"; });
  const nlohmann::json report = verify_fails(broken, "dtypes");
  EXPECT_THAT(check_of(report, "dtypes")["detail"].get<std::string>(),
              HasSubstr("model.norm.weight"));
}

TEST_F(VerifyEndToEnd, FailsWhenQuantizationConfigIsDeleted) {
  const fs::path broken = dir_->path() / "no-config";
  broken_copy(quant(), broken, nullptr,
              [](nlohmann::json& c) { ASSERT_EQ(c.erase("quantization_config"), 1u); });
  const nlohmann::json report = verify_fails(broken, "config", {});
  EXPECT_THAT(check_of(report, "config")["detail"].get<std::string>(),
              HasSubstr("no quantization_config"));
  // Nothing that needs the method can pass without it.
  EXPECT_NE(check_of(report, "layer_types")["outcome"], "pass");
  EXPECT_NE(check_of(report, "top1")["outcome"], "pass");
}

TEST_F(VerifyEndToEnd, FailsNamingTheModuleWhenAScaleTensorIsZeroed) {
  const fs::path broken = dir_->path() / "zero-absmax";
  const std::string module = "model.layers.1.mlp.down_proj";
  broken_copy(quant(), broken, [&](RawTensors& t) {
    std::string& bytes = t.at(module + ".weight.absmax").bytes;
    bytes.assign(bytes.size(), '\0');
  });
  const nlohmann::json report = verify_fails(broken, "reconstruction");
  const nlohmann::json& c = check_of(report, "reconstruction");
  EXPECT_THAT(c["detail"].get<std::string>(), HasSubstr(module));
  EXPECT_NEAR(c["figure"].get<double>(), 1.0, 1e-9);  // everything of W is lost
  for (const auto& m : report["modules"]) {
    if (m["name"] == module) {
      EXPECT_NEAR(m["relative_error"].get<double>(), 1.0, 1e-9);
    }
  }
}

TEST_F(VerifyEndToEnd, ThresholdsCanBeOverriddenAndUnknownOnesAreUsageErrors) {
  // QUANT is ~0.3 of ORIG: demanding 0.1 fails the footprint check.
  verify_fails(quant(), "footprint", {"--static-only", "--threshold", "footprint=0.1"});
  const ProcessResult unknown = run_qforge(
      {"verify", orig().string(), quant().string(), "--static-only", "--threshold", "nonsense=1"});
  EXPECT_EQ(unknown.exit_code, 2) << unknown.describe();
  EXPECT_THAT(unknown.err, HasSubstr("top1"));
  const ProcessResult malformed = run_qforge(
      {"verify", orig().string(), quant().string(), "--static-only", "--threshold", "top1"});
  EXPECT_EQ(malformed.exit_code, 2) << malformed.describe();
}

TEST_F(VerifyEndToEnd, DenseAgainstDenseIsBadInput) {
  const ProcessResult r = run_qforge({"verify", orig().string(), orig().string(), "--json"});
  EXPECT_NE(r.exit_code, 0) << r.describe();
  EXPECT_THAT(r.err, HasSubstr("config"));
}

}  // namespace
}  // namespace qforge::test
