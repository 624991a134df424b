// The bnb plugin's C entry: negotiation and the two method tables. Logic lives in
// bnb_quantizer.cpp (STYLE.md rule 4).
#include <qforge/qf_plugin.hpp>

#include "bnb_quantizer.hpp"

namespace {

// A function rather than a braced expression: QF_PLUGIN_ENTRY takes one macro argument, and
// the commas of a braced initializer would split it.
qforge::sdk::PluginSpec bnb_plugin_spec() {
  namespace bnb = qforge::plugins::bnb;
  return qforge::sdk::PluginSpec{bnb::kPluginId,
                                 bnb::kPluginVersion,
                                 0,  // any 1.x host
                                 {qforge::sdk::method_table<bnb::Bnb4BitQuantizer>(),
                                  qforge::sdk::method_table<bnb::Bnb8BitQuantizer>()}};
}

}  // namespace

QF_PLUGIN_ENTRY(bnb_plugin_spec())
