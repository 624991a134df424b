// The hqq plugin's C entry: negotiation and the method table. Logic lives in hqq_quantizer.cpp.
#include <qforge/qf_plugin.hpp>

#include "hqq_quantizer.hpp"

namespace {

// A function: QF_PLUGIN_ENTRY's argument must not be split by a braced initializer's commas.
qforge::sdk::PluginSpec hqq_plugin_spec() {
  namespace hqq = qforge::plugins::hqq;
  return qforge::sdk::PluginSpec{hqq::kPluginId,
                                 hqq::kPluginVersion,
                                 0,  // any 1.x host
                                 {qforge::sdk::method_table<hqq::HqqQuantizer>()}};
}

}  // namespace

QF_PLUGIN_ENTRY(hqq_plugin_spec())
