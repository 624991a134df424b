// Checkpoint::open: weight discovery, sharded indexes (ST19), config.json (CF1, CF6) and
// companion files.
#include "qforge/checkpoint.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "unit/host/checkpoint/safetensors_builder.hpp"

namespace qforge {
namespace {

namespace fs = std::filesystem;
using test::SafetensorsBuilder;
using test::TempDir;
using test::write_bytes;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string open_error(const fs::path& path) {
  auto ckpt = Checkpoint::open(path);
  if (ckpt.ok()) return "<accepted>";
  EXPECT_EQ(ckpt.error().exit_code(), ExitCode::kBadInput);
  return ckpt.error().summary() + " | " + ckpt.error().why();
}

std::string shard(const std::vector<std::string>& names, unsigned seed = 1) {
  SafetensorsBuilder b;
  b.metadata("format", "pt");
  for (const std::string& n : names) b.tensor(n, "F32", {2}, test::pattern_bytes(8, seed++));
  return b.bytes();
}

std::string index_json(const std::vector<std::pair<std::string, std::string>>& map) {
  std::string s = "{\"metadata\":{\"total_size\":0},\"weight_map\":{";
  for (size_t i = 0; i < map.size(); ++i) {
    s += (i ? "," : "") + test::json_string(map[i].first) + ":" + test::json_string(map[i].second);
  }
  return s + "}}";
}

// A two-shard model: a, b in shard 1; c in shard 2.
void write_sharded(const fs::path& dir) {
  write_bytes(dir / "model-00001-of-00002.safetensors", shard({"a", "b"}, 1));
  write_bytes(dir / "model-00002-of-00002.safetensors", shard({"c"}, 5));
  write_bytes(dir / "model.safetensors.index.json",
              index_json({{"a", "model-00001-of-00002.safetensors"},
                          {"b", "model-00001-of-00002.safetensors"},
                          {"c", "model-00002-of-00002.safetensors"}}));
}

TEST(Checkpoint, OpensAnUnshardedFolder) {
  TempDir dir;
  write_bytes(dir / "model.safetensors", shard({"w", "v"}));
  write_bytes(dir / "config.json", R"({"model_type": "llama", "hidden_size": 8})");
  auto ckpt = Checkpoint::open(dir.path());
  ASSERT_TRUE(ckpt.ok()) << ckpt.error().to_string();
  EXPECT_TRUE(ckpt->has_config_file());
  EXPECT_EQ(ckpt->config()["model_type"], "llama");
  EXPECT_FALSE(ckpt->quantization_config().has_value());
  ASSERT_EQ(ckpt->tensors().size(), 2u);
  EXPECT_EQ(ckpt->tensors()[0].name, "v");  // sorted by name
  EXPECT_EQ(ckpt->tensors()[0].file, dir.path() / "model.safetensors");
  EXPECT_EQ(ckpt->total_tensor_bytes(), 16u);
  EXPECT_THAT(ckpt->shard_files(), ElementsAre(dir.path() / "model.safetensors"));
  auto view = ckpt->view("w");
  ASSERT_TRUE(view.ok());
  EXPECT_EQ(std::string(static_cast<const char*>(view->data()), 8), test::pattern_bytes(8, 1));
  EXPECT_FALSE(ckpt->view("missing").ok());
}

TEST(Checkpoint, OpensAShardedFolderThroughItsIndex) {
  TempDir dir;
  write_sharded(dir.path());
  auto ckpt = Checkpoint::open(dir.path());
  ASSERT_TRUE(ckpt.ok()) << ckpt.error().to_string();
  EXPECT_FALSE(ckpt->has_config_file());
  EXPECT_TRUE(ckpt->config().is_object());
  EXPECT_THAT(ckpt->shard_files(), ElementsAre(dir.path() / "model-00001-of-00002.safetensors",
                                               dir.path() / "model-00002-of-00002.safetensors"));
  ASSERT_EQ(ckpt->tensors().size(), 3u);
  EXPECT_EQ(ckpt->find("c")->file, dir.path() / "model-00002-of-00002.safetensors");
  EXPECT_EQ(std::string(static_cast<const char*>(ckpt->view("c")->data()), 8),
            test::pattern_bytes(8, 5));
}

TEST(Checkpoint, OpensABareSafetensorsFile) {
  TempDir dir;
  write_bytes(dir / "x.safetensors", shard({"w"}));
  write_bytes(dir / "config.json", "{}");
  auto ckpt = Checkpoint::open(dir / "x.safetensors");
  ASSERT_TRUE(ckpt.ok()) << ckpt.error().to_string();
  EXPECT_FALSE(ckpt->has_config_file());
  EXPECT_TRUE(ckpt->config().empty());
  EXPECT_EQ(ckpt->root(), dir.path());
  EXPECT_TRUE(ckpt->companion_files().empty());
  EXPECT_NE(ckpt->find("w"), nullptr);
}

TEST(Checkpoint, FallsBackToTheOnlySafetensorsFile) {
  TempDir dir;
  write_bytes(dir / "weights.safetensors", shard({"w"}));
  auto ckpt = Checkpoint::open(dir.path());
  ASSERT_TRUE(ckpt.ok()) << ckpt.error().to_string();
  EXPECT_THAT(ckpt->shard_files(), ElementsAre(dir.path() / "weights.safetensors"));
  write_bytes(dir / "other.safetensors", shard({"v"}));
  EXPECT_THAT(open_error(dir.path()), HasSubstr("several .safetensors files"));
}

TEST(Checkpoint, ModelSafetensorsWinsOverAnIndexLikeTransformers) {
  TempDir dir;
  write_sharded(dir.path());
  write_bytes(dir / "model.safetensors", shard({"only"}));
  auto ckpt = Checkpoint::open(dir.path());
  ASSERT_TRUE(ckpt.ok()) << ckpt.error().to_string();
  ASSERT_EQ(ckpt->tensors().size(), 1u);
  EXPECT_EQ(ckpt->tensors()[0].name, "only");
}

TEST(Checkpoint, RefusesFoldersWithoutWeights) {
  TempDir dir;
  EXPECT_THAT(open_error(dir.path()), HasSubstr("no safetensors weights"));
  write_bytes(dir / "pytorch_model.bin", "pickle");
  EXPECT_THAT(open_error(dir.path()), HasSubstr("PyTorch pickle weights"));
  EXPECT_THAT(open_error(dir / "nope"), HasSubstr("does not exist"));
}

// ST19: every way an index can be wrong.
TEST(CheckpointIndex, RefusesAMissingShard) {
  TempDir dir;
  write_sharded(dir.path());
  fs::remove(dir / "model-00002-of-00002.safetensors");
  EXPECT_THAT(open_error(dir.path()),
              HasSubstr("shard 'model-00002-of-00002.safetensors' is missing"));
}

TEST(CheckpointIndex, RefusesATensorInTwoShards) {
  TempDir dir;
  write_sharded(dir.path());
  write_bytes(dir / "model-00002-of-00002.safetensors", shard({"b", "c"}));
  EXPECT_THAT(open_error(dir.path()), HasSubstr("tensor 'b' is in two shards"));
}

TEST(CheckpointIndex, RefusesATensorFoundInAnotherShardThanIndexed) {
  TempDir dir;
  write_sharded(dir.path());
  write_bytes(dir / "model-00001-of-00002.safetensors", shard({"a"}));
  write_bytes(dir / "model-00002-of-00002.safetensors", shard({"b", "c"}));
  EXPECT_THAT(open_error(dir.path()), HasSubstr("but the index maps it to"));
}

TEST(CheckpointIndex, RefusesAnIndexedTensorNoShardHolds) {
  TempDir dir;
  write_sharded(dir.path());
  write_bytes(dir / "model-00001-of-00002.safetensors", shard({"a"}));
  EXPECT_THAT(open_error(dir.path()), HasSubstr("tensor 'b' listed in the index is in no shard"));
}

TEST(CheckpointIndex, RefusesAShardTensorTheIndexDoesNotList) {
  TempDir dir;
  write_sharded(dir.path());
  write_bytes(dir / "model-00002-of-00002.safetensors", shard({"c", "extra"}));
  EXPECT_THAT(open_error(dir.path()), HasSubstr("that the index does not list"));
}

TEST(CheckpointIndex, RefusesPathsLeavingTheFolder) {
  TempDir outer;
  fs::create_directory(outer / "model");
  const fs::path dir = outer / "model";
  write_bytes(outer / "evil.safetensors", shard({"a"}));
  const auto try_index = [&](const std::string& file) {
    write_bytes(dir / "model.safetensors.index.json", index_json({{"a", file}}));
    return open_error(dir);
  };
  EXPECT_THAT(try_index("../evil.safetensors"), HasSubstr("leaves the model folder through '..'"));
  EXPECT_THAT(try_index((outer / "evil.safetensors").string()), HasSubstr("is an absolute path"));
  fs::create_directory(dir / "sub");
  write_bytes(dir / "sub" / "x.safetensors", shard({"a"}));
  EXPECT_THAT(try_index("sub/x.safetensors"), HasSubstr("is not a plain file name"));
  fs::create_symlink(outer / "evil.safetensors", dir / "link.safetensors");
  EXPECT_THAT(try_index("link.safetensors"), HasSubstr("resolves outside the model folder"));
  EXPECT_THAT(try_index(std::string("a\0b", 3)), HasSubstr("contains a NUL byte"));
}

TEST(CheckpointIndex, RefusesMalformedIndexes) {
  TempDir dir;
  write_bytes(dir / "model-00001-of-00001.safetensors", shard({"a"}));
  write_bytes(dir / "model.safetensors.index.json", R"({"metadata":{}})");
  EXPECT_THAT(open_error(dir.path()), HasSubstr("has no weight_map object"));
  write_bytes(dir / "model.safetensors.index.json", R"({"weight_map":{"a":1}})");
  EXPECT_THAT(open_error(dir.path()), HasSubstr("is not a file name"));
  write_bytes(dir / "model.safetensors.index.json", R"({"weight_map":{}})");
  EXPECT_THAT(open_error(dir.path()), HasSubstr("lists no tensors"));
  write_bytes(dir / "model.safetensors.index.json",
              R"({"weight_map":{"a":"x.safetensors","a":"y.safetensors"}})");
  EXPECT_THAT(open_error(dir.path()), HasSubstr("duplicate key 'a'"));
}

TEST(CheckpointIndex, AcceptsTheHuggingFaceCacheLayout) {
  TempDir cache;
  const fs::path snapshot = cache / "models--org--m" / "snapshots" / "abc123";
  const fs::path blobs = cache / "models--org--m" / "blobs";
  fs::create_directories(snapshot);
  fs::create_directories(blobs);
  write_bytes(blobs / "1111", shard({"w"}));
  write_bytes(blobs / "2222", R"({"model_type":"gpt2"})");
  fs::create_symlink("../../blobs/1111", snapshot / "model.safetensors");
  fs::create_symlink("../../blobs/2222", snapshot / "config.json");
  auto ckpt = Checkpoint::open(snapshot);
  ASSERT_TRUE(ckpt.ok()) << ckpt.error().to_string();
  EXPECT_EQ(ckpt->config()["model_type"], "gpt2");
  EXPECT_NE(ckpt->find("w"), nullptr);
}

// CF1 / CF6: config.json is strict JSON and must be an object.
TEST(CheckpointConfig, RefusesMalformedConfigJson) {
  TempDir dir;
  write_bytes(dir / "model.safetensors", shard({"w"}));
  const auto with_config = [&](const std::string& text) {
    write_bytes(dir / "config.json", text);
    return open_error(dir.path());
  };
  EXPECT_THAT(with_config("not json"), HasSubstr("malformed JSON"));
  EXPECT_THAT(with_config(R"({"hidden_size": 4)"), HasSubstr("malformed JSON"));
  EXPECT_THAT(with_config("\xEF\xBB\xBF{}"), HasSubstr("byte order mark"));
  EXPECT_THAT(with_config(std::string(10'000, '[') + std::string(10'000, ']')),
              HasSubstr("nesting deeper than"));
  EXPECT_THAT(with_config("[1, 2]"), HasSubstr("is not a JSON object"));
  EXPECT_THAT(with_config(R"({"hidden_size": 4, "hidden_size": 8})"),
              HasSubstr("duplicate key 'hidden_size'"));  // CF6
  std::string huge = "{\"x\": \"" + std::string(17u << 20, 'a') + "\"}";
  EXPECT_THAT(with_config(huge), HasSubstr("is too large"));
  EXPECT_THAT(with_config(R"({"quantization_config": {"quant_method": "bitsandbytes"}})"),
              "<accepted>");
  auto ckpt = Checkpoint::open(dir.path());
  ASSERT_TRUE(ckpt.ok());
  ASSERT_TRUE(ckpt->quantization_config().has_value());
  EXPECT_EQ((*ckpt->quantization_config())["quant_method"], "bitsandbytes");
}

TEST(CheckpointConfig, RefusesAConfigLinkingOutOfTheFolder) {
  TempDir outer;
  fs::create_directory(outer / "m");
  write_bytes(outer / "m" / "model.safetensors", shard({"w"}));
  write_bytes(outer / "secret.json", "{}");
  fs::create_symlink(outer / "secret.json", outer / "m" / "config.json");
  EXPECT_THAT(open_error(outer / "m"), HasSubstr("resolves outside the model folder"));
}

TEST(Checkpoint, ListsCompanionFilesButNotWeightsConfigOrHiddenFiles) {
  TempDir outer;
  fs::create_directory(outer / "m");
  const fs::path dir = outer / "m";
  write_sharded(dir);
  for (const char* name :
       {"config.json", "tokenizer.json", "generation_config.json", "tokenizer.model",
        ".gitattributes", "pytorch_model.bin", "pytorch_model.bin.index.json", "README.md"}) {
    write_bytes(dir / name, "{}");
  }
  fs::create_directory(dir / "subdir");
  write_bytes(dir / "subdir" / "nested.txt", "x");
  write_bytes(outer / "secret.txt", "x");
  fs::create_symlink(outer / "secret.txt", dir / "leak.txt");
  auto ckpt = Checkpoint::open(dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.error().to_string();
  EXPECT_THAT(ckpt->companion_files(),
              ElementsAre(dir / "README.md", dir / "generation_config.json", dir / "tokenizer.json",
                          dir / "tokenizer.model"));
}

}  // namespace
}  // namespace qforge
