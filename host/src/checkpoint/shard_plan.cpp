#include "checkpoint/shard_plan.hpp"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <map>
#include <unordered_set>

#include "checkpoint/checkpoint_internal.hpp"

namespace qforge::checkpoint {
namespace {

using nlohmann::json;

Error layout_error(const std::string& problem, std::string why) {
  return bad_input("checkpoint layout: " + problem, std::move(why),
                   "fix the output tensor list (a qforge or plugin bug if it came from a plan)");
}

std::string quoted(const std::string& utf8) { return json(utf8).dump(); }

// serde_json's compact form of one header, then spaces to a multiple of 8 (the reference
// writer's padding), behind the little-endian length.
// `file_offset` of each tensor is still relative to the data section here.
std::string header_prefix(const std::vector<PlannedTensor>& tensors,
                          const std::vector<size_t>& order) {
  std::string text = "{\"__metadata__\":{\"format\":\"pt\"}";
  for (size_t i : order) {
    const PlannedTensor& t = tensors[i];
    const uint64_t begin = t.file_offset;
    text += "," + quoted(t.spec.name) + ":{\"dtype\":\"" + dtype_to_string(t.spec.dtype) +
            "\",\"shape\":[";
    for (size_t d = 0; d < t.spec.shape.size(); ++d) {
      text += (d ? "," : "") + std::to_string(t.spec.shape[d]);
    }
    text += "],\"data_offsets\":[" + std::to_string(begin) + "," +
            std::to_string(begin + t.nbytes) + "]}";
  }
  text += "}";
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string prefix(8, '\0');
  uint64_t n = text.size();
  for (int b = 0; b < 8; ++b) prefix[b] = static_cast<char>((n >> (8 * b)) & 0xFF);
  return prefix + text;
}

std::string shard_file_name(const std::string& weights_name, size_t index, size_t count) {
  if (count == 1) return weights_name + ".safetensors";
  char suffix[64];
  std::snprintf(suffix, sizeof suffix, "-%05zu-of-%05zu", index + 1, count);
  return weights_name + suffix + ".safetensors";
}

}  // namespace

Result<ShardPlan> plan_shards(const std::vector<OutputTensor>& layout, uint64_t max_shard_bytes,
                              const std::string& weights_name) {
  if (max_shard_bytes == 0) {
    return bad_input("max shard size is 0 bytes", "each shard holds at least one tensor",
                     "use a size such as 5GB");
  }
  if (weights_name.empty() || weights_name.find('/') != std::string::npos ||
      weights_name.front() == '.') {
    return bad_input("weights name '" + weights_name + "' is not a plain file name stem",
                     "shards are named <weights_name>.safetensors", "use \"model\"");
  }
  ShardPlan plan;
  plan.tensors.reserve(layout.size());
  std::unordered_set<std::string> names;
  for (const OutputTensor& spec : layout) {
    if (spec.name.empty()) return layout_error("a tensor has an empty name", "names are keys");
    if (spec.name == "__metadata__") {
      return layout_error("a tensor is named '__metadata__'",
                          "that key holds the safetensors metadata");
    }
    if (find_invalid_utf8(spec.name) != std::string::npos) {
      return layout_error("tensor name is not valid UTF-8", "safetensors headers are UTF-8 JSON");
    }
    if (!names.insert(spec.name).second) {
      return layout_error("tensor '" + spec.name + "' appears twice", "names must be unique");
    }
    const size_t elem = dtype_size(spec.dtype);
    if (elem == 0 || safetensors_dtype_rank(spec.dtype) < 0) {
      return layout_error("tensor '" + spec.name + "' has an unsupported dtype",
                          "code " + std::to_string(spec.dtype.code) + " bits " +
                              std::to_string(spec.dtype.bits) + " lanes " +
                              std::to_string(spec.dtype.lanes));
    }
    auto numel = checked_numel(spec.shape);
    if (!numel.ok()) {
      return layout_error("tensor '" + spec.name + "': " + numel.error().summary(),
                          numel.error().why());
    }
    const auto n = static_cast<uint64_t>(numel.value());
    if (n > std::numeric_limits<uint64_t>::max() / elem ||
        n * elem > std::numeric_limits<uint64_t>::max() - plan.total_bytes) {
      return layout_error("tensor '" + spec.name + "' is too large", "byte sizes overflow");
    }
    PlannedTensor t;
    t.spec = spec;
    t.nbytes = n * elem;
    plan.total_bytes += t.nbytes;
    plan.tensors.push_back(std::move(t));
  }

  // huggingface_hub split_state_dict_into_shards: a tensor above the limit becomes a shard of
  // its own at once (the open shard stays open); otherwise the open shard is closed when the
  // tensor would push it past the limit.
  std::vector<std::vector<size_t>> groups;
  std::vector<size_t> current;
  uint64_t current_bytes = 0;
  for (size_t i = 0; i < plan.tensors.size(); ++i) {
    const uint64_t size = plan.tensors[i].nbytes;
    if (size > max_shard_bytes) {
      groups.push_back({i});
      continue;
    }
    if (current_bytes + size > max_shard_bytes) {
      groups.push_back(std::move(current));
      current.clear();
      current_bytes = 0;
    }
    current.push_back(i);
    current_bytes += size;
  }
  if (!current.empty() || groups.empty()) groups.push_back(std::move(current));

  const size_t count = groups.size();
  for (size_t s = 0; s < count; ++s) {
    PlannedShard shard;
    shard.file_name = shard_file_name(weights_name, s, count);
    shard.data_order = groups[s];
    // safetensors' order: dtype rank descending, then name; zero-size tensors go last so they
    // sit at the end of the data section (the only place our reader accepts them).
    std::sort(shard.data_order.begin(), shard.data_order.end(), [&](size_t a, size_t b) {
      const PlannedTensor& x = plan.tensors[a];
      const PlannedTensor& y = plan.tensors[b];
      if ((x.nbytes == 0) != (y.nbytes == 0)) return y.nbytes == 0;
      const int rx = safetensors_dtype_rank(x.spec.dtype);
      const int ry = safetensors_dtype_rank(y.spec.dtype);
      if (rx != ry) return rx > ry;
      return x.spec.name < y.spec.name;
    });
    uint64_t offset = 0;
    for (size_t i : shard.data_order) {
      plan.tensors[i].shard = s;
      plan.tensors[i].file_offset = offset;  // relative for now
      offset += plan.tensors[i].nbytes;
    }
    // Header offsets are relative to the data section, so the header does not depend on its
    // own length: render it, then make the offsets absolute.
    shard.prefix = header_prefix(plan.tensors, shard.data_order);
    for (size_t i : shard.data_order) plan.tensors[i].file_offset += shard.prefix.size();
    shard.file_size = shard.prefix.size() + offset;
    plan.shards.push_back(std::move(shard));
  }

  if (count > 1) {
    json weight_map = json::object();
    for (const PlannedTensor& t : plan.tensors) {
      weight_map[t.spec.name] = plan.shards[t.shard].file_name;
    }
    json index = {{"metadata", {{"total_size", plan.total_bytes}}}, {"weight_map", weight_map}};
    plan.index_file_name = weights_name + ".safetensors.index.json";
    // transformers: json.dumps(index, indent=2, sort_keys=True) + "\n" (ASCII-escaped).
    plan.index_json = index.dump(2, ' ', true) + "\n";
  }
  return plan;
}

}  // namespace qforge::checkpoint
