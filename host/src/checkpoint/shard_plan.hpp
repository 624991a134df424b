// The writer's layout, computed before any byte is written: which shard each tensor goes to
// (huggingface_hub's split_state_dict_into_shards), the data order inside a shard (safetensors'
// serializer order) and every shard's final header bytes. Pure: no file system access.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "qforge/checkpoint.hpp"

namespace qforge::checkpoint {

struct PlannedTensor {
  OutputTensor spec;
  uint64_t nbytes = 0;
  size_t shard = 0;
  uint64_t file_offset = 0;  // absolute offset of its data in the shard file
};

struct PlannedShard {
  std::string file_name;           // "model.safetensors", "model-00001-of-00003.safetensors"
  std::string prefix;              // 8-byte length + space-padded JSON header
  uint64_t file_size = 0;          // prefix + data
  std::vector<size_t> data_order;  // indices into ShardPlan::tensors
};

struct ShardPlan {
  std::vector<PlannedTensor> tensors;  // in layout order
  std::vector<PlannedShard> shards;
  uint64_t total_bytes = 0;
  std::string index_file_name;  // empty when there is one shard
  std::string index_json;       // the index file's text
};

// Validates the layout (unique, non-empty, valid UTF-8 names other than "__metadata__"; known
// dtypes; shapes and byte sizes overflow-checked) and computes the plan.
Result<ShardPlan> plan_shards(const std::vector<OutputTensor>& layout, uint64_t max_shard_bytes,
                              const std::string& weights_name);

}  // namespace qforge::checkpoint
