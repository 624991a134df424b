// The awq plugin's C entry: negotiation and the method table. Logic lives in awq_quantizer.cpp.
#include <qforge/qf_plugin.hpp>

#include "awq_quantizer.hpp"

namespace {

// A function: QF_PLUGIN_ENTRY's argument must not be split by a braced initializer's commas.
qforge::sdk::PluginSpec awq_plugin_spec() {
  namespace awq = qforge::plugins::awq;
  return qforge::sdk::PluginSpec{awq::kPluginId,
                                 awq::kPluginVersion,
                                 0,  // any 1.x host
                                 {qforge::sdk::method_table<awq::AwqQuantizer>()}};
}

}  // namespace

QF_PLUGIN_ENTRY(awq_plugin_spec())
