#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <set>

#include "model/model_internal.hpp"

namespace qforge::model {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const char* const kMinimal = R"(schema: 1
family: demo
model_types: [demo]
architectures: [DemoForCausalLM]
tie_word_embeddings_default: false
output_head: 'lm_head'
input_embedding: 'model\.embed'
defaults: {head_dim: "hidden_size / heads", kv: heads}
modules:
  - {match: 'model\.layers\.\d+\.q', role: linear, out: heads * head_dim, in: hidden_size}
  - {match: 'model\.embed', role: embedding}
  - {match: 'lm_head', role: output_head, out: vocab_size, in: 64}
)";

std::string parse_error(const std::string& text) {
  auto r = parse_architecture_map(text, "maps/demo.yaml");
  EXPECT_FALSE(r.ok()) << text;
  if (r.ok()) return "";
  EXPECT_EQ(r.error().exit_code(), ExitCode::kBadInput);
  EXPECT_NE(r.error().summary().find("maps/demo.yaml"), std::string::npos) << r.error().summary();
  return r.error().summary() + " | " + r.error().why();
}

std::string replace(std::string text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

TEST(ArchitectureMapParse, ReadsEveryField) {
  auto r = parse_architecture_map(kMinimal, "maps/demo.yaml");
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  const ArchitectureMap& m = r.value();
  EXPECT_EQ(m.source, fs::path("maps/demo.yaml"));
  EXPECT_EQ(m.family, "demo");
  EXPECT_EQ(m.model_types, std::vector<std::string>{"demo"});
  EXPECT_EQ(m.architectures, std::vector<std::string>{"DemoForCausalLM"});
  EXPECT_FALSE(m.tie_word_embeddings_default);
  EXPECT_EQ(m.output_head, std::optional<std::string>("lm_head"));
  EXPECT_EQ(m.input_embedding, std::optional<std::string>("model\\.embed"));
  ASSERT_EQ(m.defaults.size(), 2u);
  EXPECT_EQ(m.defaults[0],
            (std::pair<std::string, std::string>{"head_dim", "hidden_size / heads"}));
  EXPECT_EQ(m.defaults[1], (std::pair<std::string, std::string>{"kv", "heads"}));
  ASSERT_EQ(m.modules.size(), 3u);
  EXPECT_EQ(m.modules[0].regex, "model\\.layers\\.\\d+\\.q");
  EXPECT_EQ(m.modules[0].role, ModuleRole::kLinear);
  EXPECT_EQ(m.modules[0].out_features, std::optional<std::string>("heads * head_dim"));
  EXPECT_EQ(m.modules[0].in_features, std::optional<std::string>("hidden_size"));
  EXPECT_EQ(m.modules[1].role, ModuleRole::kEmbedding);
  EXPECT_FALSE(m.modules[1].out_features);
  EXPECT_EQ(m.modules[2].role, ModuleRole::kOutputHead);
  EXPECT_EQ(m.modules[2].in_features, std::optional<std::string>("64"));  // a YAML integer
}

TEST(ArchitectureMapParse, RejectsUnknownKeysWithFileLineAndKey) {
  std::string msg = parse_error(replace(kMinimal, "family: demo", "family: demo\nfamilly: x"));
  EXPECT_NE(msg.find("maps/demo.yaml:3: key 'familly': unknown key"), std::string::npos) << msg;
  msg = parse_error(replace(kMinimal, "role: embedding}", "role: embedding, bias: true}"));
  EXPECT_NE(msg.find("key 'modules[1].bias'"), std::string::npos) << msg;
}

TEST(ArchitectureMapParse, RejectsMissingRequiredKeys) {
  EXPECT_NE(parse_error(replace(kMinimal, "tie_word_embeddings_default: false\n", ""))
                .find("missing key 'tie_word_embeddings_default'"),
            std::string::npos);
  EXPECT_NE(parse_error(replace(kMinimal, "schema: 1\n", "")).find("missing key 'schema'"),
            std::string::npos);
  EXPECT_NE(parse_error(replace(kMinimal, "role: embedding", "out: 3")).find("missing key 'role'"),
            std::string::npos);
}

TEST(ArchitectureMapParse, RejectsBadValues) {
  EXPECT_NE(parse_error(replace(kMinimal, "schema: 1", "schema: 2")).find("unsupported schema"),
            std::string::npos);
  EXPECT_NE(parse_error(replace(kMinimal, "family: demo", "family: Demo")).find("bad family"),
            std::string::npos);
  EXPECT_NE(parse_error(replace(kMinimal, "role: embedding", "role: dense")).find("unknown role"),
            std::string::npos);
  EXPECT_NE(parse_error(replace(kMinimal, "tie_word_embeddings_default: false",
                                "tie_word_embeddings_default: no"))
                .find("expected true or false"),
            std::string::npos);
  EXPECT_NE(parse_error(replace(kMinimal, "model_types: [demo]", "model_types: [demo, demo]"))
                .find("listed twice"),
            std::string::npos);
  EXPECT_NE(parse_error(replace(kMinimal, "model_types: [demo]", "model_types: demo"))
                .find("expected a list"),
            std::string::npos);
  EXPECT_NE(parse_error(replace(kMinimal, "role: embedding}", "role: embedding, out: 4}"))
                .find("has no in/out features"),
            std::string::npos);
  EXPECT_NE(parse_error(replace(kMinimal, "kv: heads", "2kv: heads")).find("not a config key"),
            std::string::npos);
}

TEST(ArchitectureMapParse, BadRegexIsReportedNotThrown) {
  const std::string msg = parse_error(replace(kMinimal, "'model\\.embed', role", "'model(', role"));
  EXPECT_NE(msg.find("key 'modules[1].match'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("bad regular expression 'model('"), std::string::npos) << msg;
  EXPECT_NE(parse_error(replace(kMinimal, "output_head: 'lm_head'", "output_head: '[lm'"))
                .find("key 'output_head'"),
            std::string::npos);
}

TEST(ArchitectureMapParse, BadExpressionNamesKey) {
  std::string msg = parse_error(replace(kMinimal, "out: heads * head_dim", "out: heads ** 2"));
  EXPECT_NE(msg.find("key 'modules[0].out'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("heads ** 2"), std::string::npos) << msg;
  msg = parse_error(replace(kMinimal, "kv: heads", "kv: (heads"));
  EXPECT_NE(msg.find("key 'defaults.kv'"), std::string::npos) << msg;
  msg = parse_error(replace(kMinimal, "in: 64", "in: 6.5"));
  EXPECT_NE(msg.find("expected a shape expression"), std::string::npos) << msg;
}

TEST(ArchitectureMapParse, YamlReaderStrictnessApplies) {
  EXPECT_NE(parse_error(replace(kMinimal, "family: demo", "family: demo\nfamily: other"))
                .find("duplicate"),
            std::string::npos);
  parse_error("- just\n- a list\n");
  parse_error("schema: 1\nfamily: &a demo\n");
}

TEST(ModuleRoleName, RoundTrips) {
  for (ModuleRole role : {ModuleRole::kLinear, ModuleRole::kConv1D, ModuleRole::kEmbedding,
                          ModuleRole::kNorm, ModuleRole::kOutputHead, ModuleRole::kOther}) {
    ModuleRole back = ModuleRole::kOther;
    ASSERT_TRUE(parse_module_role(module_role_name(role), &back)) << module_role_name(role);
    EXPECT_EQ(back, role);
  }
  EXPECT_STREQ(module_role_name(ModuleRole::kConv1D), "conv1d");
  EXPECT_STREQ(module_role_name(ModuleRole::kOutputHead), "output_head");
}

// ------------------------------------------------------------------ folders

class MapDirs : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("qforge-archmaps-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  fs::path write(const std::string& dir, const std::string& file, const std::string& text) {
    fs::create_directories(root_ / dir);
    std::ofstream(root_ / dir / file) << text;
    return root_ / dir;
  }
  static std::string map_text(const std::string& family, const std::string& model_type,
                              const std::string& extra = "") {
    return "schema: 1\nfamily: " + family + "\nmodel_types: [" + model_type +
           "]\ntie_word_embeddings_default: true\n" + extra + "modules: []\n";
  }
  fs::path root_;
};

TEST_F(MapDirs, LoadsYamlFilesInNameOrder) {
  const fs::path d = write("a", "b.yaml", map_text("beta", "b"));
  write("a", "a.yml", map_text("alpha", "a"));
  write("a", "notes.txt", "not a map");
  auto maps = load_architecture_maps({d});
  ASSERT_TRUE(maps.ok()) << maps.error().to_string();
  ASSERT_EQ(maps.value().size(), 2u);
  EXPECT_EQ(maps.value()[0].family, "alpha");
  EXPECT_EQ(maps.value()[1].family, "beta");
  EXPECT_EQ(maps.value()[1].source, d / "b.yaml");
}

TEST_F(MapDirs, DuplicateFamilyInOneFolderIsAnError) {
  const fs::path d = write("a", "one.yaml", map_text("llama", "x"));
  write("a", "two.yaml", map_text("llama", "y"));
  auto maps = load_architecture_maps({d});
  ASSERT_FALSE(maps.ok());
  EXPECT_NE(maps.error().summary().find("'llama' is defined twice"), std::string::npos);
  EXPECT_NE(maps.error().why().find("one.yaml and two.yaml"), std::string::npos);
}

TEST_F(MapDirs, ModelTypeClaimedTwiceInOneFolderIsAnError) {
  const fs::path d = write("a", "one.yaml", map_text("one", "llama"));
  write("a", "two.yaml", map_text("two", "llama"));
  auto maps = load_architecture_maps({d});
  ASSERT_FALSE(maps.ok());
  EXPECT_NE(maps.error().summary().find("model_type 'llama' is claimed by two maps"),
            std::string::npos);
}

TEST_F(MapDirs, FirstFolderWinsForAFamily) {
  const fs::path first = write("first", "llama.yaml", map_text("llama", "llama"));
  const fs::path second = write("second", "llama.yaml", map_text("llama", "llama"));
  write("second", "gpt2.yaml", map_text("gpt2", "gpt2"));
  auto maps = load_architecture_maps({first, second});
  ASSERT_TRUE(maps.ok()) << maps.error().to_string();
  ASSERT_EQ(maps.value().size(), 2u);
  EXPECT_EQ(maps.value()[0].source, first / "llama.yaml");
  EXPECT_EQ(maps.value()[1].family, "gpt2");
}

TEST_F(MapDirs, ABadFileFailsTheLoadNamingIt) {
  const fs::path d = write("a", "ok.yaml", map_text("ok", "ok"));
  write("a", "bad.yaml", "schema: 1\nfamily: bad\nmodules: []\nextra: 1\n");
  auto maps = load_architecture_maps({d});
  ASSERT_FALSE(maps.ok());
  EXPECT_NE(maps.error().summary().find("bad.yaml:4: key 'extra'"), std::string::npos)
      << maps.error().summary();
}

TEST_F(MapDirs, MissingFolderIsAnError) {
  auto maps = load_architecture_maps({root_ / "nope"});
  ASSERT_FALSE(maps.ok());
  EXPECT_NE(maps.error().summary().find("does not exist"), std::string::npos);
}

TEST_F(MapDirs, EnvironmentPathComesFirstAndOnlyExistingAbsoluteFoldersCount) {
  const fs::path d = write("env", "x.yaml", map_text("x", "x"));
  const std::string value = "relative/dir:" + (root_ / "missing").string() + "::" + d.string();
  ASSERT_EQ(::setenv("QFORGE_ARCHITECTURE_PATH", value.c_str(), 1), 0);
  const auto dirs = default_architecture_dirs();
  ::unsetenv("QFORGE_ARCHITECTURE_PATH");
  ASSERT_FALSE(dirs.empty());
  EXPECT_EQ(dirs.front(), fs::weakly_canonical(d));
  std::set<fs::path> unique(dirs.begin(), dirs.end());
  EXPECT_EQ(unique.size(), dirs.size());
  for (const auto& dir : dirs) EXPECT_TRUE(fs::is_directory(dir)) << dir;
  // The source tree's folder is always there for a build-tree test binary.
  EXPECT_NE(
      std::find(dirs.begin(), dirs.end(),
                fs::weakly_canonical(fs::path(QFORGE_SOURCE_DIR) / "manifests" / "architectures")),
      dirs.end());
}

// ------------------------------------------------------------------ selection

std::vector<ArchitectureMap> selection_maps() {
  std::vector<ArchitectureMap> maps(3);
  maps[0].family = "llama";
  maps[0].model_types = {"llama"};
  maps[0].architectures = {"LlamaForCausalLM"};
  maps[1].family = "generic";
  maps[2].family = "gpt2";
  maps[2].model_types = {"gpt2"};
  maps[2].architectures = {"GPT2LMHeadModel", "MyGpt"};
  return maps;
}

std::string selected(const std::vector<ArchitectureMap>& maps, const json& config) {
  auto r = select_architecture(maps, config);
  EXPECT_TRUE(r.ok()) << config.dump();
  return r.ok() ? r.value()->family : "";
}

TEST(SelectArchitecture, ByModelTypeThenArchitecturesThenGeneric) {
  const auto maps = selection_maps();
  EXPECT_EQ(selected(maps, {{"model_type", "gpt2"}, {"architectures", {"LlamaForCausalLM"}}}),
            "gpt2");
  EXPECT_EQ(selected(maps, {{"model_type", "my_gpt"}, {"architectures", {"Other", "MyGpt"}}}),
            "gpt2");
  EXPECT_EQ(selected(maps, {{"model_type", "falcon"}, {"architectures", {"FalconForCausalLM"}}}),
            "generic");
  EXPECT_EQ(selected(maps, json::object()), "generic");
  EXPECT_EQ(selected(maps, {{"model_type", 7}}), "generic");
}

TEST(SelectArchitecture, WithoutGenericMapAnUnknownModelIsAnError) {
  auto maps = selection_maps();
  maps.erase(maps.begin() + 1);
  auto r = select_architecture(maps, {{"model_type", "falcon"}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().exit_code(), ExitCode::kBadInput);
  EXPECT_NE(r.error().summary().find("model_type 'falcon'"), std::string::npos);
}

// ------------------------------------------------------------------ the shipped maps

TEST(ShippedArchitectureMaps, EveryFileParsesAndTheRequiredFamiliesExist) {
  const fs::path dir = fs::path(QFORGE_SOURCE_DIR) / "manifests" / "architectures";
  auto maps = load_architecture_maps({dir});
  ASSERT_TRUE(maps.ok()) << maps.error().to_string();
  size_t files = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() == ".yaml") ++files;
  }
  EXPECT_EQ(maps.value().size(), files);
  std::set<std::string> families;
  for (const auto& m : maps.value()) {
    families.insert(m.family);
    EXPECT_EQ(m.source.stem().string(), m.family) << "a map file is named after its family";
  }
  for (const char* f : {"llama", "mistral", "qwen2", "gpt2", "bert", "generic"}) {
    EXPECT_EQ(families.count(f), 1u) << f;
  }
  auto pick = [&](const json& config) {
    auto r = select_architecture(maps.value(), config);
    return r.ok() ? r.value()->family : std::string("?");
  };
  EXPECT_EQ(pick({{"model_type", "llama"}}), "llama");
  EXPECT_EQ(pick({{"model_type", "qwen2"}}), "qwen2");
  EXPECT_EQ(pick({{"architectures", {"GPT2LMHeadModel"}}}), "gpt2");
  EXPECT_EQ(pick({{"model_type", "bert"}}), "bert");
  EXPECT_EQ(pick({{"model_type", "falcon"}}), "generic");
}

TEST(ShippedArchitectureMaps, TieDefaultsMatchTheConfigClasses) {
  auto maps = load_architecture_maps({fs::path(QFORGE_SOURCE_DIR) / "manifests" / "architectures"});
  ASSERT_TRUE(maps.ok()) << maps.error().to_string();
  const std::map<std::string, bool> expected = {{"llama", false}, {"mistral", false},
                                                {"qwen2", false}, {"gpt2", true},
                                                {"bert", true},   {"generic", true}};
  for (const auto& m : maps.value()) {
    auto it = expected.find(m.family);
    if (it != expected.end()) {
      EXPECT_EQ(m.tie_word_embeddings_default, it->second) << m.family;
    }
  }
}

}  // namespace
}  // namespace qforge::model
