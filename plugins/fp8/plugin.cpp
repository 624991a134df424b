// The fp8 plugin's C entry: negotiation and the two method tables. Logic lives in
// fp8_quantizer.cpp (fine-grained, "fp8") and fbgemm_quantizer.cpp (per-channel, "fbgemm_fp8").
#include <qforge/qf_plugin.hpp>

#include "fbgemm_quantizer.hpp"
#include "fp8_quantizer.hpp"

namespace {

// A function: QF_PLUGIN_ENTRY's argument must not be split by a braced initializer's commas.
qforge::sdk::PluginSpec fp8_plugin_spec() {
  namespace fp8 = qforge::plugins::fp8;
  return qforge::sdk::PluginSpec{fp8::kPluginId,
                                 fp8::kPluginVersion,
                                 0,  // any 1.x host
                                 {qforge::sdk::method_table<fp8::Fp8Quantizer>(),
                                  qforge::sdk::method_table<fp8::FbgemmFp8Quantizer>()}};
}

}  // namespace

QF_PLUGIN_ENTRY(fp8_plugin_spec())
