// validate_environment for the bitsandbytes methods: the transformers v5 rules of
// Bnb4BitHfQuantizer / Bnb8BitHfQuantizer (FORMATS.md §2.2, §2.3) translated from "is this
// Python package and torch device available" to "does the host's environment probe list it".
#pragma once

#include <string>

#include "bnb_config.hpp"
#include "environment_facts.hpp"  // plugins/common

namespace qforge::plugins::bnb {

// Applies the rules; throws sdk::Error with FAILED_PRECONDITION (this machine cannot serve it)
// or INVALID_ARGUMENT (the request itself is wrong).
void check_environment(const BnbConfig& config, BnbBits bits, const EnvironmentFacts& env,
                       const RequestFacts& request);

}  // namespace qforge::plugins::bnb
