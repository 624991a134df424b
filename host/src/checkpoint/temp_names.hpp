// Names of the writer's temporary entries next to an output: ".<name>.qforge-<kind>-<pid>-<n>"
// (kind "tmp" for a folder or file being written, "old" for a previous output moved aside).
// The pid lets a later run tell a dead writer's leftovers from a live one's.
#pragma once

#include <string>

namespace qforge::checkpoint {

// A fresh name for `target_name` (the final entry's file name); unique within the process.
std::string make_temp_name(const std::string& target_name, const std::string& kind);

// The pid in `entry_name` when it is a temporary name (either kind) for `target_name`, else -1.
long temp_name_pid(const std::string& entry_name, const std::string& target_name);

}  // namespace qforge::checkpoint
