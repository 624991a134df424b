// Plugin discovery and loading against the fault fixtures (tests/fixtures/plugins):
// RELIABILITY.md PL2 (ABI mismatch), PL3 (paths and permissions), PL4 (broken libraries),
// PL5 (shadowing), sha256 pinning, lazy loading and the search path.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <qforge/qf_plugin.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "plugins/plugin_library.hpp"
#include "qforge/host.hpp"
#include "support/fixture_paths.hpp"

namespace qforge {
namespace {

namespace fs = std::filesystem;
using fixtures::copy_fixture;
using fixtures::copy_fixture_file;
using fixtures::fault_manifest;
using fixtures::find_record;
using fixtures::find_record_by_manifest;
using fixtures::fixture_dir;
using fixtures::isolated_options;
using fixtures::library_is_mapped;
using fixtures::ScratchDir;
using ::testing::AllOf;
using ::testing::AnyOf;
using ::testing::HasSubstr;
using ::testing::Not;

// The error a manifest ends with: its discovery failure, else what loading its plugin returns.
// nullopt when the plugin loads.
std::optional<Error> rejection_of(Host& host, const fs::path& manifest) {
  const auto record = find_record_by_manifest(host.plugins(), manifest);
  if (!record) {
    ADD_FAILURE() << manifest << " was not discovered";
    return std::nullopt;
  }
  if (record->state == PluginState::kFailed) {
    EXPECT_TRUE(record->failure.has_value()) << "a failed record must say why";
    return record->failure;
  }
  const std::string id = record->id();
  Status status = host.load(id);
  if (status.ok()) return std::nullopt;
  return status.error();
}

std::string sha256_of_file(const fs::path& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  EXPECT_GE(fd, 0) << path;
  auto digest = plugins::sha256_of_fd(fd, path.string());
  close(fd);
  EXPECT_TRUE(digest.ok());
  return digest.ok() ? digest.value() : std::string();
}

// ------------------------------------------------------------------ lazy loading

TEST(PluginLoader, ConstructingAHostDiscoversWithoutLoading) {
  ScratchDir scratch;
  const fs::path dir = copy_fixture("qf_fault_ok", scratch / "ok");
  const fs::path library = dir / "qf_fault_ok.so";
  Host host(isolated_options({dir}));

  const auto records = host.plugins();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].state, PluginState::kDiscovered);
  EXPECT_EQ(records[0].id(), "fault_ok");
  ASSERT_TRUE(records[0].manifest.has_value());
  EXPECT_EQ(records[0].manifest->methods.at(0).quant_method, "fault_rtn");
  EXPECT_FALSE(library_is_mapped(library)) << "discovery must not dlopen";

  Status loaded = host.load("fault_ok");
  ASSERT_TRUE(loaded.ok()) << loaded.error().to_string();
  EXPECT_TRUE(library_is_mapped(library));
  const auto record = find_record(host.plugins(), "fault_ok");
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->state, PluginState::kLoaded);
  EXPECT_EQ(record->runtime_version, "1.0.0");
  EXPECT_EQ(record->negotiated_abi, QF_ABI_VERSION);
}

TEST(PluginLoader, LoadingTwiceIsANoOp) {
  Host host(isolated_options({fixture_dir("qf_fault_ok")}));
  ASSERT_TRUE(host.load("fault_ok").ok());
  Status again = host.load("fault_ok");
  EXPECT_TRUE(again.ok()) << again.error().to_string();
  EXPECT_EQ(find_record(host.plugins(), "fault_ok").value().state, PluginState::kLoaded);
}

TEST(PluginLoader, UnknownPluginIdIsBadInput) {
  Host host(isolated_options({fixture_dir("qf_fault_ok")}));
  Status status = host.load("no_such_plugin");
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().exit_code(), ExitCode::kBadInput);
  EXPECT_THAT(status.error().to_string(), HasSubstr("no_such_plugin"));
}

// ------------------------------------------------------------------ each fault, its own error

struct FaultCase {
  const char* folder;  // under the fixture root
  const char* id;
  ExitCode exit_code;
  std::vector<std::string> mentions;  // each must appear in Error::to_string()
  // Causes this fault is not: a message listing every possible cause names none of them.
  std::vector<std::string> not_mentioned = {};
};

std::ostream& operator<<(std::ostream& os, const FaultCase& c) { return os << c.folder; }

class FaultPlugin : public ::testing::TestWithParam<FaultCase> {};

// PL2 + PL4: the fault is reported with its own cause, and a healthy plugin in the same Host
// still loads afterwards.
TEST_P(FaultPlugin, FailsWithItsOwnErrorWhileTheHealthyPluginLoads) {
  const FaultCase& c = GetParam();
  Host host(isolated_options({fixture_dir(c.folder), fixture_dir("qf_fault_ok")}));
  const auto before = host.plugins();
  ASSERT_EQ(before.size(), 2u);
  for (const auto& r : before) {
    EXPECT_EQ(r.state, PluginState::kDiscovered) << r.manifest_path;
  }

  Status status = host.load(c.id);
  ASSERT_FALSE(status.ok()) << c.id << " loaded although it is broken";
  const Error& error = status.error();
  EXPECT_EQ(error.exit_code(), c.exit_code) << error.to_string();
  EXPECT_THAT(error.to_string(), HasSubstr(c.id)) << "the error must name the plugin";
  for (const auto& text : c.mentions) EXPECT_THAT(error.to_string(), HasSubstr(text));
  for (const auto& text : c.not_mentioned) EXPECT_THAT(error.to_string(), Not(HasSubstr(text)));
  EXPECT_FALSE(error.fix().empty()) << "every load error says how to fix it: " << error.to_string();

  const auto record = find_record(host.plugins(), c.id);
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->state, PluginState::kFailed);
  ASSERT_TRUE(record->failure.has_value());
  EXPECT_EQ(record->failure->to_string(), error.to_string());

  // A second attempt reports the same failure instead of retrying a broken library.
  Status again = host.load(c.id);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().to_string(), error.to_string());

  Status healthy = host.load("fault_ok");
  EXPECT_TRUE(healthy.ok()) << healthy.error().to_string();
  EXPECT_EQ(find_record(host.plugins(), "fault_ok").value().state, PluginState::kLoaded);
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, FaultPlugin,
    ::testing::Values(
        FaultCase{"qf_fault_no_entry",
                  "fault_no_entry",
                  ExitCode::kPlugin,
                  {"qf_plugin_entry", "qf_fault_no_entry.so"}},
        FaultCase{"qf_fault_wrong_major", "fault_wrong_major", ExitCode::kPlugin, {"2.0", "1.0"}},
        FaultCase{"qf_fault_needs_newer_host",
                  "fault_needs_newer_host",
                  ExitCode::kEnvironment,
                  {"1.99"}},
        FaultCase{"not_elf", "fault_not_elf", ExitCode::kPlugin, {"ELF", "x.so"}},
        FaultCase{"missing_library", "fault_missing_library", ExitCode::kPlugin, {"missing.so"}},
        FaultCase{"qf_fault_undefined_symbol",
                  "fault_undefined_symbol",
                  ExitCode::kPlugin,
                  {"undefined symbol", "qf_fault_missing_function"}},
        FaultCase{"sha256_mismatch",
                  "fault_sha256_mismatch",
                  ExitCode::kPlugin,
                  {"sha256", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}},
        FaultCase{"qf_fault_method_mismatch",
                  "fault_method_mismatch",
                  ExitCode::kPlugin,
                  {"fault_rtn_extra", "manifest"}},
        FaultCase{"qf_fault_null_table", "fault_null_table", ExitCode::kPlugin, {"NULL"}},
        FaultCase{"qf_fault_null_create",
                  "fault_null_create",
                  ExitCode::kPlugin,
                  {"create"},
                  {"too small"}},
        FaultCase{"qf_fault_small_table",
                  "fault_small_table",
                  ExitCode::kPlugin,
                  {"struct_size", std::to_string(offsetof(qf_method, quantize))},
                  {"lacks", "is NULL"}}),
    [](const ::testing::TestParamInfo<FaultCase>& param) { return std::string(param.param.id); });

TEST(PluginLoader, EveryFaultFixtureFailsWithADistinctError) {
  const std::vector<std::pair<std::string, std::string>> faults = {
      {"qf_fault_no_entry", "fault_no_entry"},
      {"qf_fault_wrong_major", "fault_wrong_major"},
      {"qf_fault_needs_newer_host", "fault_needs_newer_host"},
      {"not_elf", "fault_not_elf"},
      {"missing_library", "fault_missing_library"},
      {"qf_fault_undefined_symbol", "fault_undefined_symbol"},
      {"sha256_mismatch", "fault_sha256_mismatch"},
      {"qf_fault_method_mismatch", "fault_method_mismatch"},
      {"qf_fault_null_table", "fault_null_table"},
      {"qf_fault_null_create", "fault_null_create"},
      {"qf_fault_small_table", "fault_small_table"},
  };
  std::vector<fs::path> dirs;
  for (const auto& [folder, id] : faults) dirs.push_back(fixture_dir(folder));
  dirs.push_back(fixture_dir("qf_fault_ok"));
  Host host(isolated_options(dirs));

  std::set<std::string> summaries;
  for (const auto& [folder, id] : faults) {
    Status status = host.load(id);
    ASSERT_FALSE(status.ok()) << id;
    // What failed and why, without the plugin name, must differ from fault to fault.
    std::string what = status.error().summary();
    const size_t at = what.find(": ");
    summaries.insert((at == std::string::npos ? what : what.substr(at + 2)) + " / " +
                     status.error().why());
  }
  EXPECT_EQ(summaries.size(), faults.size()) << ::testing::PrintToString(summaries);
  Status healthy = host.load("fault_ok");
  EXPECT_TRUE(healthy.ok()) << healthy.error().to_string();
}

TEST(PluginLoader, Sha256MismatchNamesExpectedAndActualHashesAndNeverLoads) {
  const fs::path dir = fixture_dir("sha256_mismatch");
  const fs::path library = dir / "qf_fault_sha256_mismatch.so";
  Host host(isolated_options({dir}));
  Status status = host.load("fault_sha256_mismatch");
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.error().to_string(),
              AllOf(HasSubstr("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
                    HasSubstr(sha256_of_file(library))));
  EXPECT_FALSE(library_is_mapped(library)) << "a library failing its pin must never be opened";
}

TEST(PluginLoader, CorrectSha256PinLoads) {
  // The pin was written by CMake's file(SHA256) after linking: the host's hash must agree.
  Host host(isolated_options({fixture_dir("sha256_ok")}));
  const auto record = find_record(host.plugins(), "fault_sha256_ok");
  ASSERT_TRUE(record.has_value());
  ASSERT_TRUE(record->manifest && record->manifest->sha256);
  EXPECT_EQ(*record->manifest->sha256,
            sha256_of_file(fixture_dir("sha256_ok") / "qf_fault_sha256_ok.so"));
  Status status = host.load("fault_sha256_ok");
  EXPECT_TRUE(status.ok()) << status.error().to_string();
}

TEST(PluginLoader, RebuiltLibraryFailsAnOldPin) {
  ScratchDir scratch;
  const fs::path dir = copy_fixture("sha256_ok", scratch / "pinned");
  // Appending bytes keeps the ELF loadable but changes its hash, as a swapped library would.
  {
    std::ofstream out(dir / "qf_fault_sha256_ok.so", std::ios::binary | std::ios::app);
    out << "tampered";
  }
  Host host(isolated_options({dir}));
  Status status = host.load("fault_sha256_ok");
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().exit_code(), ExitCode::kPlugin);
  EXPECT_THAT(status.error().to_string(), HasSubstr(sha256_of_file(dir / "qf_fault_sha256_ok.so")));
  EXPECT_FALSE(library_is_mapped(dir / "qf_fault_sha256_ok.so"));
}

// ------------------------------------------------------------------ PL2 declared ABI

TEST(PluginLoader, ManifestDeclaringAbiMajor2IsRejectedBeforeDlopen) {
  ScratchDir scratch;
  const fs::path dir = scratch / "major2";
  copy_fixture_file("qf_fault_ok", "qf_fault_ok.so", dir);
  const fs::path manifest = fault_manifest("fault_ok", "qf_fault_ok.so").abi_major(2).write(dir);
  Host host(isolated_options({dir}));
  auto error = rejection_of(host, manifest);
  ASSERT_TRUE(error.has_value()) << "a manifest declaring ABI 2 must be refused";
  EXPECT_THAT(error->to_string(), AllOf(HasSubstr("ABI 2"), HasSubstr("1.0")));
  EXPECT_FALSE(library_is_mapped(dir / "qf_fault_ok.so"));
}

TEST(PluginLoader, ManifestNeedingANewerHostMinorIsRejectedBeforeDlopen) {
  ScratchDir scratch;
  const fs::path dir = scratch / "minor99";
  copy_fixture_file("qf_fault_ok", "qf_fault_ok.so", dir);
  const fs::path manifest =
      fault_manifest("fault_ok", "qf_fault_ok.so").abi_min_minor(99).write(dir);
  Host host(isolated_options({dir}));
  auto error = rejection_of(host, manifest);
  ASSERT_TRUE(error.has_value()) << "a manifest needing ABI 1.99 must be refused by a 1.0 host";
  EXPECT_THAT(error->to_string(), HasSubstr("1.99"));
  EXPECT_FALSE(library_is_mapped(dir / "qf_fault_ok.so"));
}

// ------------------------------------------------------------------ PL4 wrong architecture

TEST(PluginLoader, LibraryForAnotherCpuArchitectureIsRejectedBeforeDlopen) {
  ScratchDir scratch;
  const fs::path dir = copy_fixture("qf_fault_ok", scratch / "arch");
  const fs::path library = dir / "qf_fault_ok.so";
  {
    // e_machine is the 16-bit field at offset 18 of the ELF header; 0x0015 is EM_PPC64.
    std::fstream f(library, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(18);
    const char ppc64[2] = {0x15, 0x00};
    f.write(ppc64, 2);
    ASSERT_TRUE(f.good());
  }
  Host host(isolated_options({dir}));
  Status status = host.load("fault_ok");
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().exit_code(), ExitCode::kPlugin);
  EXPECT_THAT(status.error().to_string(), HasSubstr("architecture"));
  EXPECT_FALSE(library_is_mapped(library));
}

// ------------------------------------------------------------------ PL3 paths and permissions

TEST(PluginLoader, LibraryPathEscapingTheFolderIsRefusedBeforeDlopen) {
  ScratchDir scratch;
  copy_fixture_file("qf_fault_ok", "qf_fault_ok.so", scratch.path());
  fs::rename(scratch / "qf_fault_ok.so", scratch / "x.so");
  const fs::path dir = scratch / "plugin";
  const fs::path manifest = fault_manifest("fault_ok", "../x.so").write(dir);
  Host host(isolated_options({dir}));
  auto error = rejection_of(host, manifest);
  ASSERT_TRUE(error.has_value()) << "'../x.so' must be refused";
  EXPECT_THAT(error->to_string(), HasSubstr("../x.so"));
  EXPECT_FALSE(library_is_mapped(scratch / "x.so"));
}

TEST(PluginLoader, AbsoluteLibraryPathIsRefused) {
  ScratchDir scratch;
  copy_fixture_file("qf_fault_ok", "qf_fault_ok.so", scratch.path());
  fs::rename(scratch / "qf_fault_ok.so", scratch / "x.so");
  const fs::path dir = scratch / "plugin";
  const fs::path manifest = fault_manifest("fault_ok", (scratch / "x.so").string()).write(dir);
  Host host(isolated_options({dir}));
  auto error = rejection_of(host, manifest);
  ASSERT_TRUE(error.has_value()) << "an absolute library path must be refused";
  EXPECT_THAT(error->to_string(), HasSubstr((scratch / "x.so").string()));
  EXPECT_FALSE(library_is_mapped(scratch / "x.so"));
}

TEST(PluginLoader, SymlinkedLibraryPointingOutsideTheFolderIsRefusedBeforeDlopen) {
  ScratchDir scratch;
  const fs::path dir = copy_fixture("qf_fault_ok", scratch / "plugin");
  fs::create_directories(scratch / "elsewhere");
  const fs::path outside = scratch / "elsewhere" / "qf_fault_ok.so";
  fs::rename(dir / "qf_fault_ok.so", outside);
  fs::create_symlink(outside, dir / "qf_fault_ok.so");
  Host host(isolated_options({dir}));
  auto error = rejection_of(host, dir / "fault_ok.yaml");
  ASSERT_TRUE(error.has_value()) << "a symlink out of the plugin folder must be refused";
  EXPECT_EQ(error->exit_code(), ExitCode::kPlugin);
  EXPECT_THAT(error->to_string(), AllOf(HasSubstr("outside"), HasSubstr(outside.string())));
  EXPECT_FALSE(library_is_mapped(outside));
}

TEST(PluginLoader, SymlinkedLibraryInsideTheFolderLoads) {
  ScratchDir scratch;
  const fs::path dir = copy_fixture("qf_fault_ok", scratch / "plugin");
  fs::rename(dir / "qf_fault_ok.so", dir / "qf_fault_ok.so.1");
  fs::create_symlink("qf_fault_ok.so.1", dir / "qf_fault_ok.so");
  Host host(isolated_options({dir}));
  Status status = host.load("fault_ok");
  EXPECT_TRUE(status.ok()) << status.error().to_string();
}

TEST(PluginLoader, WorldWritableLibraryIsRefusedBeforeDlopen) {
  ScratchDir scratch;
  const fs::path dir = copy_fixture("qf_fault_ok", scratch / "plugin");
  const fs::path library = dir / "qf_fault_ok.so";
  fs::permissions(library, fs::perms::others_write, fs::perm_options::add);
  Host host(isolated_options({dir}));
  auto error = rejection_of(host, dir / "fault_ok.yaml");
  ASSERT_TRUE(error.has_value()) << "a world-writable library must be refused";
  EXPECT_THAT(error->to_string(), AllOf(HasSubstr("world-writable"), HasSubstr("qf_fault_ok.so")));
  EXPECT_FALSE(library_is_mapped(library));
}

TEST(PluginLoader, WorldWritableManifestIsRefused) {
  ScratchDir scratch;
  const fs::path dir = copy_fixture("qf_fault_ok", scratch / "plugin");
  fs::permissions(dir / "fault_ok.yaml", fs::perms::others_write, fs::perm_options::add);
  Host host(isolated_options({dir}));
  auto error = rejection_of(host, dir / "fault_ok.yaml");
  ASSERT_TRUE(error.has_value()) << "a world-writable manifest must be refused";
  EXPECT_EQ(error->exit_code(), ExitCode::kBadInput);
  EXPECT_THAT(error->to_string(), AllOf(HasSubstr("world-writable"), HasSubstr("fault_ok.yaml")));
  EXPECT_FALSE(library_is_mapped(dir / "qf_fault_ok.so"));
}

TEST(PluginLoader, WorldWritablePluginFolderIsRefused) {
  ScratchDir scratch;
  const fs::path dir = copy_fixture("qf_fault_ok", scratch / "plugin");
  fs::permissions(dir, fs::perms::others_write, fs::perm_options::add);
  Host host(isolated_options({dir}));
  auto error = rejection_of(host, dir / "fault_ok.yaml");
  ASSERT_TRUE(error.has_value()) << "a manifest in a world-writable folder must be refused";
  EXPECT_THAT(error->to_string(), HasSubstr("world-writable"));
  EXPECT_FALSE(library_is_mapped(dir / "qf_fault_ok.so"));
}

// ------------------------------------------------------------------ PL5 shadowing

TEST(PluginSearch, FirstManifestInSearchOrderWinsAndTheOtherIsShadowed) {
  const fs::path a = fixture_dir("shadow_a"), b = fixture_dir("shadow_b");
  Host host(isolated_options({a, b}));
  const auto records = host.plugins();
  ASSERT_EQ(records.size(), 2u);
  const auto winner = find_record_by_manifest(records, a / "fault_shadow.yaml");
  const auto loser = find_record_by_manifest(records, b / "fault_shadow.yaml");
  ASSERT_TRUE(winner.has_value());
  ASSERT_TRUE(loser.has_value());
  EXPECT_EQ(winner->state, PluginState::kDiscovered);
  EXPECT_EQ(loser->state, PluginState::kShadowed);
  std::error_code ec;
  EXPECT_TRUE(fs::equivalent(loser->shadowed_by, a / "fault_shadow.yaml", ec))
      << "shadowed_by is " << loser->shadowed_by;

  ASSERT_TRUE(host.load("fault_shadow").ok());
  EXPECT_EQ(find_record(host.plugins(), "fault_shadow").value().runtime_version, "1.0.0-a");
  EXPECT_EQ(find_record_by_manifest(host.plugins(), b / "fault_shadow.yaml").value().state,
            PluginState::kShadowed)
      << "a shadowed manifest is never loaded";
}

TEST(PluginSearch, ReversingTheSearchOrderReversesTheWinner) {
  const fs::path a = fixture_dir("shadow_a"), b = fixture_dir("shadow_b");
  Host host(isolated_options({b, a}));
  const auto loser = find_record_by_manifest(host.plugins(), a / "fault_shadow.yaml");
  ASSERT_TRUE(loser.has_value());
  EXPECT_EQ(loser->state, PluginState::kShadowed);
  std::error_code ec;
  EXPECT_TRUE(fs::equivalent(loser->shadowed_by, b / "fault_shadow.yaml", ec));
  ASSERT_TRUE(host.load("fault_shadow").ok());
  EXPECT_EQ(find_record(host.plugins(), "fault_shadow").value().runtime_version, "1.0.0-b");
}

TEST(PluginSearch, RecordsFollowSearchOrder) {
  const fs::path ok = fixture_dir("qf_fault_ok"), low = fixture_dir("qf_fault_ok_low");
  Host host(isolated_options({low, ok}));
  ASSERT_EQ(host.search_path().size(), 2u);
  EXPECT_TRUE(fs::equivalent(host.search_path()[0], low));
  EXPECT_TRUE(fs::equivalent(host.search_path()[1], ok));
  const auto records = host.plugins();
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].id(), "fault_ok_low");
  EXPECT_EQ(records[1].id(), "fault_ok");
}

// ------------------------------------------------------------------ search path

TEST(PluginSearch, ReadsQforgePluginPath) {
  const fs::path ok = fixture_dir("qf_fault_ok"), low = fixture_dir("qf_fault_ok_low");
  fixtures::ScopedEnvVar env("QFORGE_PLUGIN_PATH", ok.string() + ":" + low.string());
  HostOptions options = isolated_options({});
  options.use_env_path = true;
  Host host(options);
  EXPECT_TRUE(find_record(host.plugins(), "fault_ok").has_value());
  EXPECT_TRUE(find_record(host.plugins(), "fault_ok_low").has_value());
  ASSERT_EQ(host.search_path().size(), 2u);
  EXPECT_TRUE(fs::equivalent(host.search_path()[0], ok));
}

TEST(PluginSearch, PluginDirsComeBeforeQforgePluginPath) {
  fixtures::ScopedEnvVar env("QFORGE_PLUGIN_PATH", fixture_dir("shadow_a").string());
  HostOptions options = isolated_options({fixture_dir("shadow_b")});
  options.use_env_path = true;
  Host host(options);
  ASSERT_TRUE(host.load("fault_shadow").ok());
  EXPECT_EQ(find_record(host.plugins(), "fault_shadow").value().runtime_version, "1.0.0-b");
}

TEST(PluginSearch, QforgePluginPathIsIgnoredWhenUseEnvPathIsOff) {
  fixtures::ScopedEnvVar env("QFORGE_PLUGIN_PATH", fixture_dir("qf_fault_ok").string());
  Host host(isolated_options({}));
  EXPECT_FALSE(find_record(host.plugins(), "fault_ok").has_value());
  EXPECT_TRUE(host.search_path().empty());
}

TEST(PluginSearch, NeverSearchesTheCurrentDirectory) {
  // A manifest in the working directory, with every default search source on.
  fixtures::ScopedCwd cwd(fixture_dir("qf_fault_ok"));
  fixtures::ScopedEnvVar env("QFORGE_PLUGIN_PATH", std::nullopt);
  HostOptions options;
  options.environment = fixtures::cpu_only_environment();
  Host host(options);
  EXPECT_FALSE(find_record(host.plugins(), "fault_ok").has_value())
      << "the current directory was searched";
  for (const auto& dir : host.search_path()) {
    std::error_code ec;
    EXPECT_FALSE(fs::equivalent(dir, fs::current_path(), ec)) << dir;
  }
}

TEST(PluginSearch, EmptyAndRelativeQforgePluginPathEntriesDoNotMeanTheCurrentDirectory) {
  // "" and "." both name the working directory in PATH-like variables; a relative entry
  // depends on it. None of them may make the host search where it happens to run.
  fixtures::ScopedCwd cwd(fixtures::fixture_root());
  fixtures::ScopedEnvVar env("QFORGE_PLUGIN_PATH", ":.:qf_fault_ok::./qf_fault_ok_low:");
  HostOptions options = isolated_options({});
  options.use_env_path = true;
  Host host(options);
  EXPECT_FALSE(find_record(host.plugins(), "fault_ok").has_value());
  EXPECT_FALSE(find_record(host.plugins(), "fault_ok_low").has_value());
  EXPECT_TRUE(host.search_path().empty()) << ::testing::PrintToString(host.search_path());
}

TEST(PluginSearch, BrokenManifestDoesNotStopTheOthers) {
  ScratchDir scratch;
  const fs::path dir = copy_fixture("qf_fault_ok", scratch / "plugins");
  fixtures::write_text(dir / "aaa_broken.yaml", "schema: 1\nid: [not, a, string\n");
  Host host(isolated_options({dir}));
  const auto records = host.plugins();
  ASSERT_EQ(records.size(), 2u);
  const auto broken = find_record_by_manifest(records, dir / "aaa_broken.yaml");
  ASSERT_TRUE(broken.has_value());
  EXPECT_EQ(broken->state, PluginState::kFailed);
  ASSERT_TRUE(broken->failure.has_value());
  EXPECT_EQ(broken->failure->exit_code(), ExitCode::kBadInput);
  EXPECT_THAT(broken->failure->to_string(), HasSubstr("aaa_broken.yaml"));
  Status healthy = host.load("fault_ok");
  EXPECT_TRUE(healthy.ok()) << healthy.error().to_string();
}

TEST(PluginSearch, NonYamlFilesAreNotManifests) {
  // The fixture folders hold libraries beside manifests; only *.yaml is read.
  Host host(isolated_options({fixture_dir("not_elf")}));
  const auto records = host.plugins();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].id(), "fault_not_elf");
  EXPECT_THAT(records[0].manifest_path.string(), Not(HasSubstr("x.so")));
}

}  // namespace
}  // namespace qforge
