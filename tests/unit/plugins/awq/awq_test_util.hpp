// Helpers the awq tests share: the committed reference numbers and tensor lists from vectors.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "dense_tensor_io.hpp"  // plugins/common
#include "unit/plugins/support/test_host.hpp"

namespace qforge::plugins::awq::test_util {

inline nlohmann::json load_reference() {
  std::ifstream in(std::string(QFORGE_SOURCE_DIR) + "/tests/reference/awq/awq_reference.json");
  EXPECT_TRUE(in.good()) << "tests/reference/awq/awq_reference.json is missing";
  return nlohmann::json::parse(in);
}

inline void add_i32(qforge::test::TensorList& list, const std::string& name,
                    const std::vector<int32_t>& v, std::vector<int64_t> shape) {
  auto& t = list.add(name, sdk::make_dtype(kDLInt, 32), std::move(shape));
  ASSERT_EQ(static_cast<size_t>(t.numel()), v.size()) << name;
  std::memcpy(t.data<int32_t>(), v.data(), v.size() * 4);
}

inline void add_f16(qforge::test::TensorList& list, const std::string& name,
                    const std::vector<float>& v, std::vector<int64_t> shape) {
  auto& t = list.add(name, sdk::make_dtype(kDLFloat, 16), std::move(shape));
  ASSERT_EQ(static_cast<size_t>(t.numel()), v.size()) << name;
  write_floats(v.data(), static_cast<int64_t>(v.size()), FloatKind::kF16, t.get().data);
}

}  // namespace qforge::plugins::awq::test_util
