// CheckpointWriter: byte layout (golden file), sharding like huggingface_hub, round trips through
// Checkpoint::open, and atomicity under injected faults (IO1-IO6).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <qforge/qf_plugin.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <string>
#include <thread>

#include "qforge/checkpoint.hpp"
#include "unit/host/checkpoint/safetensors_builder.hpp"

namespace qforge {
namespace {

namespace fs = std::filesystem;
using test::read_bytes;
using test::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr DLDataType kF32{kDLFloat, 32, 1};
constexpr DLDataType kF16{kDLFloat, 16, 1};
constexpr DLDataType kBF16{kDLBfloat, 16, 1};
constexpr DLDataType kU8{kDLUInt, 8, 1};
constexpr DLDataType kI64{kDLInt, 64, 1};
constexpr DLDataType kBool{QF_DL_BOOL, 8, 1};
constexpr DLDataType kE4M3{QF_DL_FLOAT8_E4M3FN, 8, 1};

uint64_t nbytes(const OutputTensor& t) {
  uint64_t n = dtype_size(t.dtype);
  for (int64_t d : t.shape) n *= static_cast<uint64_t>(d);
  return n;
}

// Writes every tensor of `layout` with pattern bytes (seeded by position) and commits.
Result<WriteSummary> write_all(const fs::path& out, const std::vector<OutputTensor>& layout,
                               WriterOptions options = {}) {
  auto writer = CheckpointWriter::create(out, layout, std::move(options));
  if (!writer.ok()) return writer.error();
  unsigned seed = 1;
  for (const OutputTensor& t : layout) {
    const std::string data = test::pattern_bytes(nbytes(t), seed++);
    QF_RETURN_IF_ERROR(writer.value()->write(t.name, data.data(), data.size()));
  }
  return writer.value()->commit();
}

std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

TEST(CheckpointWriter, WritesTheGoldenSingleTensorFile) {
  TempDir dir;
  const std::vector<OutputTensor> layout = {{"attn0", kF32, {1, 2}}};
  auto writer = CheckpointWriter::create(dir / "out", layout);
  ASSERT_TRUE(writer.ok()) << writer.error().to_string();
  const std::string data = test::f32_bytes({1.0f, 2.0f});
  ASSERT_TRUE(writer.value()->write("attn0", data.data(), data.size()).ok());
  ASSERT_TRUE(writer.value()->commit().ok());
  // By hand from the format: compact JSON, __metadata__ first, spaces to a multiple of 8.
  const std::string json =
      R"({"__metadata__":{"format":"pt"},"attn0":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]}})";
  ASSERT_EQ(json.size(), 91u);
  const std::string expected = std::string("\x60\0\0\0\0\0\0\0", 8) + json + "     " +
                               std::string("\x00\x00\x80\x3f\x00\x00\x00\x40", 8);
  EXPECT_EQ(read_bytes(dir / "out" / "model.safetensors"), expected);
  EXPECT_THAT(entries(dir / "out"), ElementsAre("model.safetensors"));
}

TEST(CheckpointWriter, OrdersDataLikeTheSafetensorsSerializer) {
  TempDir dir;
  // Reference order: dtype enum descending (I64 > F32 > BF16 > F16 > F8_E4M3 > U8 > BOOL), then
  // name; zero-size tensors last.
  const std::vector<OutputTensor> layout = {
      {"z_u8", kU8, {3}},   {"a_f16", kF16, {2}}, {"b_bf16", kBF16, {2}},
      {"empty", kF32, {0}}, {"m_f32", kF32, {1}}, {"flag", kBool, {1}},
      {"idx", kI64, {1}},   {"e4", kE4M3, {2}},   {"a_f32", kF32, {2}}};
  ASSERT_TRUE(write_all(dir / "out", layout).ok());
  auto file = SafetensorsFile::open(dir / "out" / "model.safetensors");
  ASSERT_TRUE(file.ok()) << file.error().to_string();
  std::vector<std::string> order;
  for (const TensorInfo& t : file.value()->tensors()) order.push_back(t.name);
  EXPECT_THAT(order, ElementsAre("idx", "a_f32", "m_f32", "b_bf16", "a_f16", "e4", "z_u8", "flag",
                                 "empty"));
  EXPECT_EQ(file.value()->metadata().at("format"), "pt");
}

TEST(CheckpointWriter, ShardsLikeHuggingfaceHub) {
  TempDir dir;
  // Sizes 6, 10, 30, 2, 2 with a limit of 10 (huggingface_hub's own test case): the 30-byte
  // tensor gets a shard of its own, appended when met, while the open shard stays open.
  const std::vector<OutputTensor> layout = {{"layer_1", kU8, {6}},
                                            {"layer_2", kU8, {10}},
                                            {"layer_3", kU8, {30}},
                                            {"layer_4", kU8, {2}},
                                            {"layer_5", kU8, {2}}};
  WriterOptions options;
  options.max_shard_bytes = 10;
  auto writer = CheckpointWriter::create(dir / "out", layout, options);
  ASSERT_TRUE(writer.ok()) << writer.error().to_string();
  EXPECT_EQ(writer.value()->shard_count(), 4);
  EXPECT_EQ(writer.value()->shard_of("layer_1"), "model-00001-of-00004.safetensors");
  EXPECT_EQ(writer.value()->shard_of("layer_3"), "model-00002-of-00004.safetensors");
  EXPECT_EQ(writer.value()->shard_of("layer_2"), "model-00003-of-00004.safetensors");
  EXPECT_EQ(writer.value()->shard_of("layer_4"), "model-00004-of-00004.safetensors");
  EXPECT_EQ(writer.value()->shard_of("layer_5"), "model-00004-of-00004.safetensors");
  EXPECT_EQ(writer.value()->shard_of("unknown"), "");
}

TEST(CheckpointWriter, RoundTripsSeveralDtypesAndShards) {
  TempDir dir;
  const std::vector<OutputTensor> layout = {{"model.embed.weight", kBF16, {16, 8}},
                                            {"model.layers.0.w", kF32, {8, 8}},
                                            {"model.layers.0.q", kU8, {32, 1}},
                                            {"model.layers.0.absmax", kF32, {4}},
                                            {"model.layers.1.w", kF16, {8, 8}},
                                            {"model.layers.1.ids", kI64, {3}},
                                            {"model.norm.weight", kF32, {8}},
                                            {"flags", kBool, {5}},
                                            {"fp8", kE4M3, {7}},
                                            {"model.empty", kF16, {0, 8}}};
  WriterOptions options;
  options.max_shard_bytes = 300;
  auto summary = write_all(dir / "out", layout, options);
  ASSERT_TRUE(summary.ok()) << summary.error().to_string();
  EXPECT_GT(summary->shards, 1);
  uint64_t total = 0;
  for (const auto& t : layout) total += nbytes(t);
  EXPECT_EQ(summary->tensor_bytes, total);
  EXPECT_EQ(summary->files.back(), dir / "out" / "model.safetensors.index.json");

  auto ckpt = Checkpoint::open(dir / "out");
  ASSERT_TRUE(ckpt.ok()) << ckpt.error().to_string();
  EXPECT_EQ(ckpt->tensors().size(), layout.size());
  EXPECT_EQ(ckpt->shard_files().size(), static_cast<size_t>(summary->shards));
  unsigned seed = 1;
  for (const OutputTensor& t : layout) {
    const TensorInfo* info = ckpt->find(t.name);
    ASSERT_NE(info, nullptr) << t.name;
    EXPECT_TRUE(dtype_equal(info->dtype, t.dtype)) << t.name;
    EXPECT_EQ(info->shape, t.shape) << t.name;
    auto view = ckpt->view(t.name);
    ASSERT_TRUE(view.ok());
    EXPECT_EQ(std::string(static_cast<const char*>(view->data()), view->nbytes()),
              test::pattern_bytes(nbytes(t), seed++))
        << t.name;
  }
  // The index as transformers writes it: indent 2, sorted keys, trailing newline.
  const std::string index = read_bytes(dir / "out" / "model.safetensors.index.json");
  EXPECT_EQ(index.rfind("{\n  \"metadata\": {\n    \"total_size\": " + std::to_string(total) +
                            "\n  },\n  \"weight_map\": {\n    \"flags\": \"model-000",
                        0),
            0u)
      << index;
  EXPECT_EQ(index.back(), '\n');
}

TEST(CheckpointWriter, TensorNamesAreNeverPaths) {  // ST20
  TempDir dir;
  const std::string nul_name("x\0y", 3);
  const std::vector<OutputTensor> layout = {{"../../escape", kU8, {1}},
                                            {"/abs", kU8, {1}},
                                            {nul_name, kU8, {1}},
                                            {"caf\xC3\xA9\"q\\", kU8, {1}}};
  ASSERT_TRUE(write_all(dir / "out", layout).ok());
  EXPECT_THAT(entries(dir.path()), ElementsAre("out"));
  EXPECT_THAT(entries(dir / "out"), ElementsAre("model.safetensors"));
  auto ckpt = Checkpoint::open(dir / "out");
  ASSERT_TRUE(ckpt.ok()) << ckpt.error().to_string();
  for (const auto& t : layout) EXPECT_NE(ckpt->find(t.name), nullptr);
}

TEST(CheckpointWriter, WritesConcurrentlyFromSeveralThreads) {
  TempDir dir;
  std::vector<OutputTensor> layout;
  for (int i = 0; i < 64; ++i) layout.push_back({"t" + std::to_string(i), kF32, {100}});
  WriterOptions options;
  options.max_shard_bytes = 4000;
  auto writer = CheckpointWriter::create(dir / "out", layout, options);
  ASSERT_TRUE(writer.ok());
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      for (int i = k; i < 64; i += 4) {
        const std::string data = test::pattern_bytes(400, static_cast<unsigned>(i));
        if (!writer.value()->write("t" + std::to_string(i), data.data(), data.size()).ok())
          ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  ASSERT_TRUE(writer.value()->commit().ok());
  auto ckpt = Checkpoint::open(dir / "out");
  ASSERT_TRUE(ckpt.ok());
  for (int i = 0; i < 64; ++i) {
    auto view = ckpt->view("t" + std::to_string(i));
    EXPECT_EQ(std::string(static_cast<const char*>(view->data()), 400),
              test::pattern_bytes(400, static_cast<unsigned>(i)));
  }
}

TEST(CheckpointWriter, RefusesBadWrites) {
  TempDir dir;
  auto writer = CheckpointWriter::create(dir / "out", {{"a", kF32, {2}}, {"b", kU8, {1}}});
  ASSERT_TRUE(writer.ok());
  CheckpointWriter& w = *writer.value();
  const std::string eight(8, 'x');
  EXPECT_THAT(w.write("zzz", eight.data(), 8).error().why(),
              HasSubstr("not in the checkpoint layout"));
  EXPECT_THAT(w.write("a", eight.data(), 4).error().why(), HasSubstr("the layout needs 8"));
  Tensor wrong = Tensor::zeros(kF16, {4}).value();
  EXPECT_FALSE(w.write("a", TensorView::of(wrong)).ok());
  ASSERT_TRUE(w.write("a", eight.data(), 8).ok());
  EXPECT_THAT(w.write("a", eight.data(), 8).error().summary(), HasSubstr("written twice"));
  auto missing = w.commit();
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.error().why(), HasSubstr("'b'"));
  EXPECT_THAT(w.add_file("model.safetensors", "x").error().why(), HasSubstr("already part"));
  EXPECT_THAT(w.add_file("../x", "x").error().why(), HasSubstr("plain file names"));
  ASSERT_TRUE(w.write("b", "y", 1).ok());
  ASSERT_TRUE(w.commit().ok());
  EXPECT_FALSE(w.commit().ok());
}

TEST(CheckpointWriter, RefusesBadLayouts) {
  TempDir dir;
  EXPECT_THAT(
      CheckpointWriter::create(dir / "o", {{"a", kU8, {1}}, {"a", kU8, {1}}}).error().summary(),
      HasSubstr("appears twice"));
  EXPECT_THAT(CheckpointWriter::create(dir / "o", {{"a", kU8, {-1}}}).error().summary(),
              HasSubstr("negative"));
  EXPECT_THAT(CheckpointWriter::create(dir / "o", {{"a", DLDataType{kDLFloat, 8, 1}, {1}}})
                  .error()
                  .summary(),
              HasSubstr("unsupported dtype"));
  EXPECT_THAT(CheckpointWriter::create(dir / "o", {{"__metadata__", kU8, {1}}}).error().summary(),
              HasSubstr("__metadata__"));
  EXPECT_THAT(
      CheckpointWriter::create(dir / "o", {{"a", kF32, {int64_t{1} << 60, 4}}}).error().summary(),
      HasSubstr("too large"));
  EXPECT_TRUE(entries(dir.path()).empty()) << "failed creates leave nothing behind";
}

TEST(CheckpointWriter, AddsAndCopiesFiles) {
  TempDir dir;
  test::write_bytes(dir / "tokenizer.json", "{\"tok\": 1}");
  auto writer = CheckpointWriter::create(dir / "out", {{"w", kU8, {1}}});
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE(writer.value()->write("w", "z", 1).ok());
  ASSERT_TRUE(writer.value()
                  ->add_file("config.json", dump_config_json({{"b", 1}, {"a", "\xC3\xA9"}}))
                  .ok());
  ASSERT_TRUE(writer.value()->copy_file(dir / "tokenizer.json", "tokenizer.json").ok());
  EXPECT_FALSE(writer.value()->copy_file(dir / "nope.json", "nope.json").ok());
  auto summary = writer.value()->commit();
  ASSERT_TRUE(summary.ok()) << summary.error().to_string();
  EXPECT_THAT(entries(dir / "out"),
              ElementsAre("config.json", "model.safetensors", "tokenizer.json"));
  EXPECT_EQ(read_bytes(dir / "out" / "config.json"), "{\n  \"a\": \"\\u00e9\",\n  \"b\": 1\n}\n");
  EXPECT_EQ(read_bytes(dir / "out" / "tokenizer.json"), "{\"tok\": 1}");
}

// IO6: the output location is checked before any work.
TEST(CheckpointWriterLocation, RefusesBadOutputPaths) {
  TempDir dir;
  const std::vector<OutputTensor> layout = {{"w", kU8, {1}}};
  EXPECT_THAT(CheckpointWriter::create(dir / "missing" / "out", layout).error().summary(),
              HasSubstr("parent folder does not exist"));
  test::write_bytes(dir / "file", "x");
  EXPECT_THAT(CheckpointWriter::create(dir / "file", layout).error().summary(),
              HasSubstr("exists and is not a folder"));
  WriterOptions force;
  force.overwrite = true;
  EXPECT_THAT(CheckpointWriter::create(dir / "file", layout, force).error().summary(),
              HasSubstr("exists and is not a folder"));
  EXPECT_THAT(CheckpointWriter::create(dir / "file" / "out", layout).error().summary(),
              HasSubstr("parent is not a folder"));
  fs::create_directory(dir / "existing");
  auto exists = CheckpointWriter::create(dir / "existing", layout);
  ASSERT_FALSE(exists.ok());
  EXPECT_THAT(exists.error().summary(), HasSubstr("already exists"));
  EXPECT_THAT(exists.error().fix(), HasSubstr("--force"));
  EXPECT_EQ(exists.error().exit_code(), ExitCode::kUsage);
}

TEST(CheckpointWriterLocation, RefusesAReadOnlyParent) {
  if (::geteuid() == 0) GTEST_SKIP() << "root ignores folder permissions";
  TempDir dir;
  fs::create_directory(dir / "ro");
  fs::permissions(dir / "ro", fs::perms::owner_read | fs::perms::owner_exec);
  auto writer = CheckpointWriter::create(dir / "ro" / "out", {{"w", kU8, {1}}});
  ASSERT_FALSE(writer.ok());
  EXPECT_THAT(writer.error().summary(), HasSubstr("not writable"));
}

// IO2/IO3: a failure at any writer operation leaves no output and no temporaries.
class FaultAt {
 public:
  FaultAt(std::string operation, int nth) : operation_(std::move(operation)), nth_(nth) {}
  std::shared_ptr<WriterFaults> hook() {
    auto faults = std::make_shared<WriterFaults>();
    faults->before = [this](const std::string& op, const fs::path& path) -> Status {
      seen_.push_back(op);
      if (op == operation_ && ++count_ == nth_) {
        fired_ = true;
        return Error(ErrorCode::kResourceExhausted, ExitCode::kInternal,
                     "injected " + op + " failure on " + path.filename().string(),
                     "No space left on device", "test");
      }
      return ok_status();
    };
    return faults;
  }
  bool fired() const { return fired_; }
  int count(const std::string& op) const {
    return static_cast<int>(std::count(seen_.begin(), seen_.end(), op));
  }

 private:
  std::string operation_;
  int nth_;
  int count_ = 0;
  bool fired_ = false;
  std::vector<std::string> seen_;
};

std::vector<OutputTensor> fault_layout() {
  return {{"a", kF32, {4}}, {"b", kF32, {4}}, {"c", kU8, {8}}, {"d", kF16, {4}}};
}

Result<WriteSummary> write_with_files(const fs::path& out, WriterOptions options) {
  auto writer = CheckpointWriter::create(out, fault_layout(), std::move(options));
  if (!writer.ok()) return writer.error();
  unsigned seed = 7;
  for (const OutputTensor& t : fault_layout()) {
    const std::string data = test::pattern_bytes(nbytes(t), seed++);
    QF_RETURN_IF_ERROR(writer.value()->write(t.name, data.data(), data.size()));
  }
  QF_RETURN_IF_ERROR(writer.value()->add_file("config.json", "{}\n"));
  return writer.value()->commit();
}

TEST(CheckpointWriterAtomicity, EveryInjectedFailureLeavesNothingForAFreshOutput) {
  // Count the operations of one clean run, then fail each of them in turn.
  TempDir probe_dir;
  FaultAt probe("none", 1);
  WriterOptions probe_options;
  probe_options.max_shard_bytes = 20;
  probe_options.faults = probe.hook();
  ASSERT_TRUE(write_with_files(probe_dir / "out", probe_options).ok());
  int cases = 0;
  for (const std::string op : {"mkdir", "create", "truncate", "write", "fsync", "rename"}) {
    // The last fsync is the parent folder's, after the output is published.
    const int n = probe.count(op) - (op == "fsync" ? 1 : 0);
    ASSERT_GT(n, 0) << op;
    for (int nth = 1; nth <= n; ++nth) {
      TempDir dir;
      FaultAt fault(op, nth);
      WriterOptions options;
      options.max_shard_bytes = 20;
      options.faults = fault.hook();
      auto result = write_with_files(dir / "out", options);
      ASSERT_TRUE(fault.fired()) << op << " #" << nth;
      ASSERT_FALSE(result.ok()) << op << " #" << nth;
      EXPECT_THAT(result.error().summary(), HasSubstr("injected " + op));
      EXPECT_TRUE(entries(dir.path()).empty()) << op << " #" << nth << " left files behind";
      ++cases;
    }
  }
  EXPECT_GE(cases, 12);
}

TEST(CheckpointWriterAtomicity, EveryInjectedFailureKeepsThePreviousOutputByteIdentical) {
  TempDir dir;
  ASSERT_TRUE(write_all(dir / "out", {{"old", kF32, {3}}}).ok());
  test::write_bytes(dir / "out" / "note.txt", "previous run");
  const auto before = test::snapshot_tree(dir / "out");
  for (const std::string op : {"create", "write", "fsync", "rename"}) {
    for (int nth = 1; nth <= (op == "rename" ? 1 : 3); ++nth) {
      FaultAt fault(op, nth);
      WriterOptions options;
      options.overwrite = true;
      options.max_shard_bytes = 20;
      options.faults = fault.hook();
      auto result = write_with_files(dir / "out", options);
      ASSERT_TRUE(fault.fired()) << op << " #" << nth;
      ASSERT_FALSE(result.ok()) << op << " #" << nth;
      EXPECT_EQ(test::snapshot_tree(dir / "out"), before) << op << " #" << nth;
      EXPECT_THAT(entries(dir.path()), ElementsAre("out")) << op << " #" << nth;
    }
  }
}

TEST(CheckpointWriterAtomicity, AWriterDestroyedWithoutCommitRemovesEverything) {
  TempDir dir;
  {
    auto writer = CheckpointWriter::create(dir / "out", fault_layout());
    ASSERT_TRUE(writer.ok());
    EXPECT_EQ(entries(dir.path()).size(), 1u);  // the temporary folder
    EXPECT_THAT(entries(dir.path())[0], HasSubstr(".out.qforge-tmp-"));
  }
  EXPECT_TRUE(entries(dir.path()).empty());
}

TEST(CheckpointWriterAtomicity, RemovesStaleTemporariesOfDeadProcesses) {  // IO1
  TempDir dir;
  // A pid that is not running: a child that has exited and been reaped.
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  int status = 0;
  ::waitpid(child, &status, 0);
  const std::string stale = ".out.qforge-tmp-" + std::to_string(child) + "-0";
  const std::string live = ".out.qforge-tmp-" + std::to_string(::getppid()) + "-0";
  const std::string other = ".other.qforge-tmp-" + std::to_string(child) + "-0";
  for (const std::string& name : {stale, live, other}) {
    fs::create_directory(dir / name);
    test::write_bytes(dir / name / "model.safetensors", "partial");
  }
  ASSERT_TRUE(write_all(dir / "out", {{"w", kU8, {1}}}).ok());
  EXPECT_THAT(entries(dir.path()), ElementsAre(other, live, "out"));
}

TEST(CheckpointWriter, OverwritesTheMappedInputInPlace) {  // IO5
  TempDir dir;
  const fs::path model = dir / "model";
  ASSERT_TRUE(write_all(model, {{"w", kF32, {64}}, {"v", kU8, {16}}}).ok());
  test::write_bytes(model / "tokenizer.json", "tok");
  auto input = Checkpoint::open(model);
  ASSERT_TRUE(input.ok());
  const TensorView old_w = input->view("w").value();
  const std::string old_bytes(static_cast<const char*>(old_w.data()), old_w.nbytes());
  EXPECT_EQ(old_bytes, test::pattern_bytes(256, 1));

  WriterOptions options;
  options.overwrite = true;
  auto writer = CheckpointWriter::create(model, {{"w", kF16, {64}}, {"v", kU8, {16}}}, options);
  ASSERT_TRUE(writer.ok()) << writer.error().to_string();
  // New w from the old mapping's bytes, v copied through a view of the input.
  ASSERT_TRUE(writer.value()->write("w", old_w.data(), 128).ok());
  ASSERT_TRUE(writer.value()->write("v", input->view("v").value()).ok());
  for (const fs::path& f : input->companion_files()) {
    ASSERT_TRUE(writer.value()->copy_file(f, f.filename().string()).ok());
  }
  ASSERT_TRUE(writer.value()->commit().ok());

  EXPECT_EQ(std::string(static_cast<const char*>(old_w.data()), old_w.nbytes()), old_bytes)
      << "views of the replaced input must stay readable";
  auto output = Checkpoint::open(model);
  ASSERT_TRUE(output.ok()) << output.error().to_string();
  EXPECT_TRUE(dtype_equal(output->find("w")->dtype, kF16));
  EXPECT_EQ(std::string(static_cast<const char*>(output->view("w")->data()), 128),
            old_bytes.substr(0, 128));
  EXPECT_EQ(std::string(static_cast<const char*>(output->view("v")->data()), 16),
            test::pattern_bytes(16, 2));
  EXPECT_EQ(read_bytes(model / "tokenizer.json"), "tok");
  EXPECT_THAT(entries(dir.path()), ElementsAre("model"));
}

TEST(WriteFileAtomically, ReplacesTheFileOrLeavesIt) {
  TempDir dir;
  ASSERT_TRUE(write_file_atomically(dir / "f.json", "one").ok());
  EXPECT_EQ(read_bytes(dir / "f.json"), "one");
  for (const std::string op : {"create", "write", "fsync", "rename"}) {
    FaultAt fault(op, 1);
    EXPECT_FALSE(write_file_atomically(dir / "f.json", "two", fault.hook()).ok()) << op;
    EXPECT_EQ(read_bytes(dir / "f.json"), "one") << op;
    EXPECT_THAT(entries(dir.path()), ElementsAre("f.json")) << op;
  }
  ASSERT_TRUE(write_file_atomically(dir / "f.json", "two").ok());
  EXPECT_EQ(read_bytes(dir / "f.json"), "two");
}

}  // namespace
}  // namespace qforge
