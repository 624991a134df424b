// The gptq plugin's C entry: negotiation and the method table. Logic lives in gptq_quantizer.cpp.
#include <qforge/qf_plugin.hpp>

#include "gptq_quantizer.hpp"

namespace {

// A function: QF_PLUGIN_ENTRY's argument must not be split by a braced initializer's commas.
qforge::sdk::PluginSpec gptq_plugin_spec() {
  namespace gptq = qforge::plugins::gptq;
  return qforge::sdk::PluginSpec{gptq::kPluginId,
                                 gptq::kPluginVersion,
                                 0,  // any 1.x host
                                 {qforge::sdk::method_table<gptq::GptqQuantizer>()}};
}

}  // namespace

QF_PLUGIN_ENTRY(gptq_plugin_spec())
