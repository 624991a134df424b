// Byte-for-byte comparison with transformers + bitsandbytes. tools/reference/bnb4_reference.py
// quantized generated models with the Python stack once and recorded every tensor's name, dtype,
// shape and sha256 and the quantization_config (tests/reference/bnb4/*.json, and bnb8/*.json for
// LLM.int8). Here the same
// model is generated again, quantized by `qforge quantize`, and compared. The only differences
// allowed are the documented ones (docs/bnb-4bit.md, "Compared with bitsandbytes"), each named
// below; anything else fails.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <string>

#include "cli_runner.hpp"

namespace qforge::test {
namespace {

namespace fs = std::filesystem;

const fs::path kReferenceDir = fs::path(QFORGE_SOURCE_DIR) / "tests" / "reference";
const std::string kMakeModel = std::string(QFORGE_BUILD_DIR) + "/bin/qforge-make-model";

std::string sha256_hex(const char* data, size_t n) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data, n, digest, &len, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 15];
  }
  return out;
}

struct StoredTensor {
  std::string dtype;
  nlohmann::json shape;
  std::string sha256;
};

struct Stored {
  std::map<std::string, StoredTensor> tensors;
  nlohmann::json metadata;
};

Stored read_safetensors(const fs::path& folder) {
  Stored out;
  for (const auto& entry : fs::directory_iterator(folder)) {
    if (entry.path().extension() != ".safetensors") continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    uint64_t n = 0;
    std::memcpy(&n, bytes.data(), 8);
    const nlohmann::json header = nlohmann::json::parse(bytes.substr(8, n));
    const size_t base = 8 + n;
    for (const auto& item : header.items()) {
      if (item.key() == "__metadata__") {
        out.metadata = item.value();
        continue;
      }
      const auto begin = item.value()["data_offsets"][0].get<size_t>();
      const auto end = item.value()["data_offsets"][1].get<size_t>();
      out.tensors[item.key()] = {item.value()["dtype"].get<std::string>(), item.value()["shape"],
                                 sha256_hex(bytes.data() + base + begin, end - begin)};
    }
  }
  return out;
}

nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

// Where qforge deliberately differs from bitsandbytes' CPU backend (docs/bnb-4bit.md).
enum class Allowed { kNothing, kBytes, kShapeAndBytes };
Allowed allowed_difference(const nlohmann::json& reference, const std::string& name) {
  // FP4 codes: we follow bitsandbytes' CUDA kernel (exact thresholds, sign kept for values that
  // round to zero); its CPU backend bucketizes against a 4-decimal rounded table. The stored
  // quant_map and absmax stay byte-identical.
  const bool quantized_weight = reference["tensors"].contains(name + ".quant_map");
  if (reference["quant_type"] == "fp4" && quantized_weight) return Allowed::kBytes;
  // Double quantization: nested_offset is written with a fixed width (Note [nested_offset
  // width]) where Python writes repr(); the value parsed is the same double.
  if (reference["double_quant"].get<bool>() &&
      name.find(".quant_state.bitsandbytes__") != std::string::npos) {
    return Allowed::kShapeAndBytes;
  }
  return Allowed::kNothing;
}

class Bnb4Reference : public ::testing::TestWithParam<std::string> {};

TEST_P(Bnb4Reference, QuantizeMatchesTransformersBitsandbytes) {
  const nlohmann::json reference = read_json(kReferenceDir / GetParam());
  TempDir tmp;
  const fs::path model = tmp.path() / "model";
  std::vector<std::string> argv = {kMakeModel, "--out", model.string()};
  for (const auto& a : reference["make_model_args"]) argv.push_back(a.get<std::string>());
  const ProcessResult made = run_process(argv);
  ASSERT_EQ(made.exit_code, 0) << made.describe();

  // The generator must still produce the bytes the reference was made from.
  const Stored source = read_safetensors(model);
  ASSERT_EQ(source.tensors.size(), reference["model"].size());
  for (const auto& [name, t] : source.tensors) {
    ASSERT_EQ(t.sha256, reference["model"].value(name, std::string()))
        << name << ": qforge-make-model output changed; the reference " << GetParam()
        << " must be made again (tools/reference/bnb4_reference.py)";
  }

  std::vector<std::string> args = {"quantize", model.string(),
                                   "-o",       (tmp.path() / "q").string(),
                                   "--method", reference["quant_type"].get<std::string>()};
  if (reference["double_quant"].get<bool>()) {
    args.insert(args.end(), {"--set", "bnb_4bit_use_double_quant=true"});
  }
  const ProcessResult r = run_qforge(args);
  ASSERT_EQ(r.exit_code, 0) << r.describe();

  const Stored ours = read_safetensors(tmp.path() / "q");
  std::set<std::string> expected_names, our_names;
  for (const auto& item : reference["tensors"].items()) expected_names.insert(item.key());
  for (const auto& [name, t] : ours.tensors) our_names.insert(name);
  ASSERT_EQ(our_names, expected_names);

  int identical = 0, allowed = 0;
  for (const auto& [name, t] : ours.tensors) {
    const auto& want = reference["tensors"][name];
    const Allowed a = allowed_difference(reference, name);
    EXPECT_EQ(t.dtype, want["dtype"].get<std::string>()) << name;
    if (a != Allowed::kShapeAndBytes) {
      EXPECT_EQ(t.shape, want["shape"]) << name;
    }
    if (t.sha256 == want["sha256"].get<std::string>()) {
      ++identical;
    } else if (a == Allowed::kNothing) {
      ADD_FAILURE() << name << ": bytes differ from transformers + bitsandbytes "
                    << reference["versions"].dump();
    } else {
      ++allowed;
    }
  }
  EXPECT_EQ(ours.metadata, reference["metadata"]);
  EXPECT_EQ(read_json(tmp.path() / "q" / "config.json")["quantization_config"],
            reference["quantization_config"]);
  // Without a documented deviation, every tensor must be identical.
  if (reference["quant_type"] != "fp4" && !reference["double_quant"].get<bool>()) {
    EXPECT_EQ(allowed, 0);
    EXPECT_EQ(identical, static_cast<int>(expected_names.size()));
  }
  RecordProperty("identical_tensors", identical);
  RecordProperty("documented_differences", allowed);
}

INSTANTIATE_TEST_SUITE_P(Committed, Bnb4Reference,
                         ::testing::Values("bnb4/nf4-bf16.json", "bnb4/nf4-fp16.json",
                                           "bnb4/nf4-fp32.json", "bnb4/fp4-bf16.json",
                                           "bnb4/nf4-dq-bf16.json", "bnb8/int8-bf16.json",
                                           "bnb8/int8-fp16.json", "bnb8/int8-fp32.json"),
                         [](const ::testing::TestParamInfo<std::string>& param) {
                           std::string name = param.param.substr(5, param.param.size() - 10);
                           for (char& ch : name) {
                             if (ch == '-') ch = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace qforge::test
