// Quantizer selection (ARCHITECTURE.md "Selection"): pin -> manifest filter (devices,
// requirements) -> validate_environment -> priority -> id, with every rejection explained and a
// pin that cannot serve being an error, never a silent fallback. Uses fault_ok (priority 10) and
// fault_ok_low (priority 5), both serving `fault_rtn`; scratch copies change their manifests.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "qforge/host.hpp"
#include "support/fixture_paths.hpp"

namespace qforge {
namespace {

namespace fs = std::filesystem;
using fixtures::copy_fixture_file;
using fixtures::fault_manifest;
using fixtures::find_record;
using fixtures::fixture_dir;
using fixtures::isolated_options;
using fixtures::ScratchDir;
using ::testing::AllOf;
using ::testing::HasSubstr;

SelectionRequest fault_rtn_on(const std::string& device) {
  SelectionRequest request;
  request.quant_method = "fault_rtn";
  request.request = {
      {"pre_quantized", false}, {"dtype", nullptr}, {"device", device}, {"device_map", nullptr}};
  return request;
}

const Candidate* find_candidate(const Selection& selection, const std::string& id) {
  for (const auto& c : selection.candidates) {
    if (c.plugin_id == id) return &c;
  }
  return nullptr;
}

// The chosen candidate has no reason; every other one says why it lost.
void expect_every_loser_explained(const Selection& selection) {
  for (const auto& c : selection.candidates) {
    if (selection.ok() && c.plugin_id == selection.plugin_id) {
      EXPECT_TRUE(c.rejected_because.empty()) << c.plugin_id << ": " << c.rejected_because;
    } else {
      EXPECT_FALSE(c.rejected_because.empty()) << c.plugin_id << " lost without a reason";
    }
  }
}

// A scratch copy of fault_ok_low restricted to CUDA with a minimum compute capability, and
// raised to priority 100 so that it ranks first and the manifest filter has to judge it.
fs::path cuda_only_ok_low(const ScratchDir& scratch, const std::string& min_cc) {
  const fs::path dir = scratch / "cuda_only_low";
  copy_fixture_file("qf_fault_ok_low", "qf_fault_ok_low.so", dir);
  fault_manifest("fault_ok_low", "qf_fault_ok_low.so")
      .method(test::MethodBuilder("fault_rtn")
                  .devices({test::DeviceBuilder::cuda(min_cc)})
                  .priority(100))
      .write(dir);
  return dir;
}

// ------------------------------------------------------------------ ranking

TEST(Selection, HigherPriorityWins) {
  Host host(isolated_options({fixture_dir("qf_fault_ok"), fixture_dir("qf_fault_ok_low")}));
  const Selection selection = host.select(fault_rtn_on("cpu"));
  ASSERT_TRUE(selection.ok()) << selection.explain();
  EXPECT_EQ(selection.plugin_id, "fault_ok");
  ASSERT_EQ(selection.candidates.size(), 2u);
  EXPECT_EQ(selection.candidates[0].plugin_id, "fault_ok");
  EXPECT_EQ(selection.candidates[0].priority, 10);
  EXPECT_EQ(selection.candidates[1].plugin_id, "fault_ok_low");
  EXPECT_EQ(selection.candidates[1].priority, 5);
  EXPECT_THAT(selection.candidates[1].rejected_because, HasSubstr("fault_ok"));
  expect_every_loser_explained(selection);
}

TEST(Selection, PriorityBeatsSearchOrder) {
  Host host(isolated_options({fixture_dir("qf_fault_ok_low"), fixture_dir("qf_fault_ok")}));
  const Selection selection = host.select(fault_rtn_on("cpu"));
  ASSERT_TRUE(selection.ok()) << selection.explain();
  EXPECT_EQ(selection.plugin_id, "fault_ok");
  expect_every_loser_explained(selection);
}

TEST(Selection, EqualPriorityPicksTheLowerId) {
  // fault_ok_low raised to fault_ok's priority and searched first: the id decides.
  ScratchDir scratch;
  const fs::path low = scratch / "low_at_10";
  copy_fixture_file("qf_fault_ok_low", "qf_fault_ok_low.so", low);
  fault_manifest("fault_ok_low", "qf_fault_ok_low.so", 10).write(low);
  Host host(isolated_options({low, fixture_dir("qf_fault_ok")}));
  const Selection selection = host.select(fault_rtn_on("cpu"));
  ASSERT_TRUE(selection.ok()) << selection.explain();
  EXPECT_EQ(selection.plugin_id, "fault_ok");  // "fault_ok" < "fault_ok_low"
  ASSERT_EQ(selection.candidates.size(), 2u);
  EXPECT_EQ(selection.candidates[1].plugin_id, "fault_ok_low");
  EXPECT_EQ(selection.candidates[1].priority, 10);
  expect_every_loser_explained(selection);
}

TEST(Selection, LoadsOnlyWhatItChooses) {
  Host host(isolated_options({fixture_dir("qf_fault_ok"), fixture_dir("qf_fault_ok_low")}));
  const Selection selection = host.select(fault_rtn_on("cpu"));
  ASSERT_TRUE(selection.ok()) << selection.explain();
  EXPECT_EQ(find_record(host.plugins(), "fault_ok").value().state, PluginState::kLoaded);
  EXPECT_EQ(find_record(host.plugins(), "fault_ok_low").value().state, PluginState::kDiscovered)
      << "a lower-ranked candidate need not be loaded once a better one serves";
}

TEST(Selection, UnknownMethodHasNoCandidatesAndSaysSo) {
  Host host(isolated_options({fixture_dir("qf_fault_ok")}));
  SelectionRequest request = fault_rtn_on("cpu");
  request.quant_method = "no_such_method";
  const Selection selection = host.select(request);
  EXPECT_FALSE(selection.ok());
  EXPECT_TRUE(selection.candidates.empty());
  EXPECT_THAT(selection.explain(), HasSubstr("no_such_method"));
}

TEST(Selection, BrokenHigherPriorityPluginIsSkippedWithItsLoadError) {
  // fault_wrong_major also declares fault_rtn; raised above fault_ok it is tried first.
  ScratchDir scratch;
  const fs::path broken = scratch / "wrong_major";
  copy_fixture_file("qf_fault_wrong_major", "qf_fault_wrong_major.so", broken);
  fault_manifest("fault_wrong_major", "qf_fault_wrong_major.so", 100).write(broken);
  Host host(isolated_options({broken, fixture_dir("qf_fault_ok")}));
  const Selection selection = host.select(fault_rtn_on("cpu"));
  ASSERT_TRUE(selection.ok()) << selection.explain();
  EXPECT_EQ(selection.plugin_id, "fault_ok");
  const Candidate* c = find_candidate(selection, "fault_wrong_major");
  ASSERT_NE(c, nullptr);
  EXPECT_THAT(c->rejected_because, HasSubstr("2.0"));
  expect_every_loser_explained(selection);
}

// ------------------------------------------------------------------ pins

TEST(Selection, PinWinsEvenAtLowerPriority) {
  Host host(isolated_options({fixture_dir("qf_fault_ok"), fixture_dir("qf_fault_ok_low")}));
  SelectionRequest request = fault_rtn_on("cpu");
  request.pinned_plugin = "fault_ok_low";
  const Selection selection = host.select(request);
  ASSERT_TRUE(selection.ok()) << selection.explain();
  EXPECT_EQ(selection.plugin_id, "fault_ok_low");
  const Candidate* other = find_candidate(selection, "fault_ok");
  ASSERT_NE(other, nullptr);
  EXPECT_THAT(other->rejected_because, HasSubstr("pinned"));
  expect_every_loser_explained(selection);
}

TEST(Selection, PinRefusedByValidateEnvironmentIsAnErrorNotAFallback) {
  // fault_ok could serve; the pinned fault_ok_low turns the request down in
  // validate_environment (the fixture's {"refuse": id} hook).
  Host host(isolated_options({fixture_dir("qf_fault_ok"), fixture_dir("qf_fault_ok_low")}));
  SelectionRequest request = fault_rtn_on("cpu");
  request.pinned_plugin = "fault_ok_low";
  request.config = {{"refuse", "fault_ok_low"}};
  const Selection selection = host.select(request);
  EXPECT_FALSE(selection.ok()) << "fell back to " << selection.plugin_id;
  EXPECT_TRUE(selection.plugin_id.empty());
  const Candidate* pinned = find_candidate(selection, "fault_ok_low");
  ASSERT_NE(pinned, nullptr);
  EXPECT_THAT(pinned->rejected_because,
              AllOf(HasSubstr("validate_environment"), HasSubstr("refuses this request")));
  EXPECT_THAT(selection.explain(), HasSubstr("fault_ok_low"));
  expect_every_loser_explained(selection);
}

TEST(Selection, UnpinnedRefusalFallsThroughToTheNextCandidate) {
  // The same refusal without a pin is an ordinary rejection: the next candidate serves.
  Host host(isolated_options({fixture_dir("qf_fault_ok"), fixture_dir("qf_fault_ok_low")}));
  SelectionRequest request = fault_rtn_on("cpu");
  request.config = {{"refuse", "fault_ok"}};
  const Selection selection = host.select(request);
  ASSERT_TRUE(selection.ok()) << selection.explain();
  EXPECT_EQ(selection.plugin_id, "fault_ok_low");
  EXPECT_THAT(find_candidate(selection, "fault_ok")->rejected_because,
              HasSubstr("refuses this request"));
  expect_every_loser_explained(selection);
}

TEST(Selection, PinnedCudaRequestWithoutAGpuIsAnError) {
  Host host(isolated_options({fixture_dir("qf_fault_ok"), fixture_dir("qf_fault_ok_low")}));
  SelectionRequest request = fault_rtn_on("cuda:0");
  request.pinned_plugin = "fault_ok";
  const Selection selection = host.select(request);
  EXPECT_FALSE(selection.ok()) << "chose " << selection.plugin_id;
  const Candidate* pinned = find_candidate(selection, "fault_ok");
  ASSERT_NE(pinned, nullptr);
  EXPECT_THAT(pinned->rejected_because, HasSubstr("cuda"));
  expect_every_loser_explained(selection);
}

TEST(Selection, PinExcludedByItsManifestDevicesIsAnErrorNotAFallback) {
  // fault_ok_low made CUDA-only; on the CPU fault_ok could serve, but the pin stands.
  ScratchDir scratch;
  const fs::path low = cuda_only_ok_low(scratch, "7.0");
  Host host(isolated_options({fixture_dir("qf_fault_ok"), low}));
  SelectionRequest request = fault_rtn_on("cpu");
  request.pinned_plugin = "fault_ok_low";
  const Selection selection = host.select(request);
  EXPECT_FALSE(selection.ok()) << "fell back to " << selection.plugin_id;
  const Candidate* pinned = find_candidate(selection, "fault_ok_low");
  ASSERT_NE(pinned, nullptr);
  EXPECT_THAT(pinned->rejected_because, AllOf(HasSubstr("cuda"), HasSubstr("cpu")));
  EXPECT_EQ(find_record(host.plugins(), "fault_ok_low").value().state, PluginState::kDiscovered)
      << "the manifest filter runs before any code is loaded";
  expect_every_loser_explained(selection);
}

TEST(Selection, PinOfAPluginThatDoesNotDeclareTheMethodIsAnError) {
  Host host(isolated_options({fixture_dir("qf_fault_ok")}));
  SelectionRequest request = fault_rtn_on("cpu");
  request.pinned_plugin = "not_installed";
  const Selection selection = host.select(request);
  EXPECT_FALSE(selection.ok());
  const Candidate* pinned = find_candidate(selection, "not_installed");
  ASSERT_NE(pinned, nullptr);
  EXPECT_THAT(pinned->rejected_because, HasSubstr("fault_rtn"));
  expect_every_loser_explained(selection);
}

// ------------------------------------------------------------------ manifest device filter

TEST(Selection, ComputeCapabilityBelowTheManifestMinimumIsRejectedNamingBoth) {
  ScratchDir scratch;
  const fs::path low = cuda_only_ok_low(scratch, "9.0");
  Host host(isolated_options({low, fixture_dir("qf_fault_ok")},
                             fixtures::environment_with_cuda_gpu(8, 0)));
  const Selection selection = host.select(fault_rtn_on("cuda:0"));
  const Candidate* low_candidate = find_candidate(selection, "fault_ok_low");
  ASSERT_NE(low_candidate, nullptr);
  EXPECT_THAT(low_candidate->rejected_because, AllOf(HasSubstr("8.0"), HasSubstr("9.0")));
  EXPECT_EQ(find_record(host.plugins(), "fault_ok_low").value().state, PluginState::kDiscovered)
      << "the manifest filter runs before any code is loaded";
  // fault_ok declares cuda without a minimum, and its validate_environment sees the GPU.
  ASSERT_TRUE(selection.ok()) << selection.explain();
  EXPECT_EQ(selection.plugin_id, "fault_ok");
  expect_every_loser_explained(selection);
}

TEST(Selection, ComputeCapabilityAtTheManifestMinimumPasses) {
  ScratchDir scratch;
  const fs::path low = cuda_only_ok_low(scratch, "9.0");
  Host host(isolated_options({low}, fixtures::environment_with_cuda_gpu(9, 0)));
  const Selection selection = host.select(fault_rtn_on("cuda:0"));
  ASSERT_TRUE(selection.ok()) << selection.explain();
  EXPECT_EQ(selection.plugin_id, "fault_ok_low");
}

TEST(Selection, ValidateEnvironmentRefusesCudaWhenTheEnvironmentHasNone) {
  // The plugin's own check, reached directly: FAILED_PRECONDITION maps to exit code 3.
  Host host(isolated_options({fixture_dir("qf_fault_ok")}));
  auto quantizer = host.create_quantizer("fault_ok", "fault_rtn", nlohmann::json::object());
  ASSERT_TRUE(quantizer.ok()) << quantizer.error().to_string();
  Status status =
      quantizer.value()->validate_environment(host.environment().to_json(), {{"device", "cuda:0"}});
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(status.error().exit_code(), ExitCode::kEnvironment);
  EXPECT_THAT(status.error().to_string(), AllOf(HasSubstr("cuda:0"), HasSubstr("no cuda device")));

  Status with_gpu = quantizer.value()->validate_environment(
      fixtures::environment_with_cuda_gpu(8, 0).to_json(), {{"device", "cuda:0"}});
  EXPECT_TRUE(with_gpu.ok()) << with_gpu.error().to_string();
}

}  // namespace
}  // namespace qforge
