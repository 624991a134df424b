// Bad input to the runtime: every case is an Error with exit code 4 naming what is wrong, never
// an abort. Also read_token_file's format and errors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "runtime_test_support.hpp"

namespace qforge::runtime::test {
namespace {

using ::testing::HasSubstr;

// A copy of `src` without the tensor `drop`.
void copy_without(const Checkpoint& src, const fs::path& out, const std::string& drop) {
  std::vector<OutputTensor> layout;
  for (const auto& t : src.tensors()) {
    if (t.name != drop) layout.push_back(OutputTensor{t.name, t.dtype, t.shape});
  }
  auto writer = CheckpointWriter::create(out, layout).value();
  for (const auto& t : layout) writer->write(t.name, src.view(t.name).value()).throw_if_error();
  writer->add_file("config.json", dump_config_json(src.config())).throw_if_error();
  writer->commit().value();
}

class RuntimeErrors : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = write_llama(small_spec("bf16", 1), tmp_.path() / "m"); }
  Result<Model> load(const fs::path& dir) {
    auto ckpt = Checkpoint::open(dir);
    if (!ckpt.ok()) return ckpt.error();
    ckpt_.emplace(std::move(ckpt).value());
    return Model::load(host_, *ckpt_, runtime_options());
  }
  static void expect_bad_input(const Error& e, const std::string& needle) {
    EXPECT_EQ(e.exit_code(), ExitCode::kBadInput) << e.to_string();
    EXPECT_THAT(e.to_string(), HasSubstr(needle));
  }
  TempDir tmp_;
  fs::path dir_;
  Host host_{build_tree_host()};
  std::optional<Checkpoint> ckpt_;
};

TEST_F(RuntimeErrors, UnsupportedModelTypeListsTheSupportedFamilies) {
  edit_config(dir_, [](nlohmann::json& c) {
    c["model_type"] = "falcon";
    c["architectures"] = {"FalconForCausalLM"};
  });
  auto model = load(dir_);
  ASSERT_FALSE(model.ok());
  expect_bad_input(model.error(), "falcon");
  EXPECT_THAT(model.error().why(), HasSubstr("llama, mistral, qwen2"));
  EXPECT_THAT(model.error().why(), HasSubstr("bert"));
}

TEST_F(RuntimeErrors, UnsupportedRopeScalingNamesTheKey) {
  edit_config(dir_, [](nlohmann::json& c) {
    c["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  });
  auto model = load(dir_);
  ASSERT_FALSE(model.ok());
  expect_bad_input(model.error(), "rope_scaling");
  EXPECT_THAT(model.error().to_string(), HasSubstr("yarn"));
}

TEST_F(RuntimeErrors, Llama3RopeScalingLoadsAndChangesTheLogits) {
  auto plain = load(dir_).value().forward({{1, 2, 3, 4, 5, 6, 7, 8}}).value();
  edit_config(dir_, [](nlohmann::json& c) {
    c["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", 8.0},
                         {"low_freq_factor", 1.0},
                         {"high_freq_factor", 4.0},
                         {"original_max_position_embeddings", 4}};
  });
  auto scaled = load(dir_).value().forward({{1, 2, 3, 4, 5, 6, 7, 8}}).value();
  EXPECT_GT(max_abs_diff(plain.data, scaled.data), 1e-6);
}

TEST_F(RuntimeErrors, MissingTensorIsNamed) {
  auto src = Checkpoint::open(dir_).value();
  copy_without(src, tmp_.path() / "no-norm", "model.norm.weight");
  auto model = load(tmp_.path() / "no-norm");
  ASSERT_FALSE(model.ok());
  expect_bad_input(model.error(), "model.norm.weight");

  copy_without(src, tmp_.path() / "no-up", "model.layers.1.mlp.up_proj.weight");
  auto model2 = load(tmp_.path() / "no-up");
  ASSERT_FALSE(model2.ok());
  expect_bad_input(model2.error(), "model.layers.1.mlp.up_proj");
}

TEST_F(RuntimeErrors, WrongShapeAgainstConfigIsNamed) {
  edit_config(dir_, [](nlohmann::json& c) { c["intermediate_size"] = 128; });
  auto model = load(dir_);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.error().exit_code(), ExitCode::kBadInput);
  EXPECT_THAT(model.error().to_string(), HasSubstr("mlp"));
}

TEST_F(RuntimeErrors, TokenIdsAreChecked) {
  auto model = load(dir_).value();
  auto out_of_range = model.forward({{1, 2, 3}, {4, 96, 5}});
  ASSERT_FALSE(out_of_range.ok());
  expect_bad_input(out_of_range.error(), "sequence 1, position 1");
  auto negative = model.forward({{-1}});
  ASSERT_FALSE(negative.ok());
  expect_bad_input(negative.error(), "sequence 0, position 0");

  auto empty = model.forward({});
  ASSERT_FALSE(empty.ok());
  expect_bad_input(empty.error(), "empty batch");
  auto empty_seq = model.forward({{}});
  ASSERT_FALSE(empty_seq.ok());
  expect_bad_input(empty_seq.error(), "sequence 0 is empty");

  auto unequal = model.forward({{1, 2, 3}, {1, 2}});
  ASSERT_FALSE(unequal.ok());
  expect_bad_input(unequal.error(), "unequal length");

  auto gen = model.generate({1, 200}, 3);
  ASSERT_FALSE(gen.ok());
  expect_bad_input(gen.error(), "position 1");
  ASSERT_FALSE(model.generate({}, 3).ok());
  ASSERT_FALSE(model.generate({1}, -1).ok());

  auto short_seq = model.evaluate({{1, 2, 3}, {4}});
  ASSERT_FALSE(short_seq.ok());
  expect_bad_input(short_seq.error(), "sequence 1");
  ASSERT_FALSE(model.evaluate({}).ok());
  // The model still works after the failures.
  EXPECT_TRUE(model.forward({{1, 2}}).ok());
  // embed() is for encoders.
  EXPECT_FALSE(model.embed({{1, 2}}).ok());
}

TEST(TokenFile, ReadsSequencesCommentsAndSeparators) {
  TempDir tmp;
  std::ofstream(tmp.path() / "ids.txt") << "# header\n1 2 3\n\n4,5, 6  # tail\r\n  7\t8\n";
  const TokenBatch got = read_token_file(tmp.path() / "ids.txt").value();
  EXPECT_EQ(got, (TokenBatch{{1, 2, 3}, {4, 5, 6}, {7, 8}}));
}

TEST(TokenFile, ErrorsNameTheLine) {
  TempDir tmp;
  std::ofstream(tmp.path() / "bad.txt") << "1 2\n3 x4\n";
  auto bad = read_token_file(tmp.path() / "bad.txt");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().exit_code(), ExitCode::kBadInput);
  EXPECT_THAT(bad.error().to_string(), HasSubstr("line 2"));
  EXPECT_THAT(bad.error().to_string(), HasSubstr("x4"));
  std::ofstream(tmp.path() / "neg.txt") << "-1 2\n";
  EXPECT_FALSE(read_token_file(tmp.path() / "neg.txt").ok());
  std::ofstream(tmp.path() / "big.txt") << "99999999999999999999999\n";
  EXPECT_FALSE(read_token_file(tmp.path() / "big.txt").ok());
  EXPECT_FALSE(read_token_file(tmp.path() / "missing.txt").ok());
  EXPECT_FALSE(read_token_file(tmp.path()).ok());
}

}  // namespace
}  // namespace qforge::runtime::test
