// The verify checks in report order, with how each figure is held against its threshold. Its
// own file so that the manifest parser (which validates `verify:` keys) needs nothing else of
// verify: the manifest fuzz targets link it alone.
#pragma once

#include <vector>

namespace qforge {

struct CheckSpec {
  const char* id;
  const char* comparison;  // "" for checks without a figure
  const char* title;
};

const std::vector<CheckSpec>& check_table();

}  // namespace qforge
