// VerifyReport::plot_svg: the per-layer reconstruction error as a plain SVG bar chart, written by
// hand (no plotting dependency). One bar per quantized module in checkpoint order, red when over
// the reconstruction threshold (dashed line); each bar's tooltip names its module.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "verify/verify_internal.hpp"

namespace qforge {
namespace {

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

}  // namespace

std::string VerifyReport::plot_svg() const {
  constexpr double kWidth = 820, kHeight = 360, kLeft = 70, kRight = 20, kTop = 40, kBottom = 60;
  std::vector<std::pair<std::string, double>> bars;
  for (const auto& m : modules) {
    if (m.relative_error && std::isfinite(*m.relative_error)) {
      bars.emplace_back(m.name, *m.relative_error);
    }
  }
  std::optional<double> threshold;
  for (const auto& c : checks) {
    if (c.id == "reconstruction") threshold = c.threshold;
  }
  std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(kWidth) +
                  "\" height=\"" + num(kHeight) + "\" viewBox=\"0 0 " + num(kWidth) + " " +
                  num(kHeight) + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s += "<text x=\"" + num(kWidth / 2) +
       "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">Per-module reconstruction error "
       "||W - dequant(Q)|| / ||W||" +
       (quant_method.empty() ? "" : " (" + xml_escape(quant_method) + ")") + "</text>\n";
  if (bars.empty()) {
    s += "<text x=\"" + num(kWidth / 2) + "\" y=\"" + num(kHeight / 2) +
         "\" text-anchor=\"middle\">no quantized module was measured</text>\n</svg>\n";
    return s;
  }
  double top = 0;
  for (const auto& b : bars) top = std::max(top, b.second);
  if (threshold && std::isfinite(*threshold)) top = std::max(top, *threshold);
  top = top > 0 ? top * 1.1 : 1.0;
  const double plot_w = kWidth - kLeft - kRight, plot_h = kHeight - kTop - kBottom;
  const double base = kTop + plot_h;
  auto y_of = [&](double v) { return base - v / top * plot_h; };
  // Axes and five gridlines with labels.
  for (int i = 0; i <= 5; ++i) {
    const double v = top * i / 5.0, y = y_of(v);
    s += "<line x1=\"" + num(kLeft) + "\" y1=\"" + num(y) + "\" x2=\"" + num(kWidth - kRight) +
         "\" y2=\"" + num(y) + "\" stroke=\"#ddd\"/>\n";
    char label[32];
    std::snprintf(label, sizeof label, "%.3g", v);
    s += "<text x=\"" + num(kLeft - 6) + "\" y=\"" + num(y + 4) + "\" text-anchor=\"end\">" +
         label + "</text>\n";
  }
  s += "<line x1=\"" + num(kLeft) + "\" y1=\"" + num(base) + "\" x2=\"" + num(kWidth - kRight) +
       "\" y2=\"" + num(base) + "\" stroke=\"black\"/>\n";
  s += "<line x1=\"" + num(kLeft) + "\" y1=\"" + num(kTop) + "\" x2=\"" + num(kLeft) + "\" y2=\"" +
       num(base) + "\" stroke=\"black\"/>\n";
  const double slot = plot_w / static_cast<double>(bars.size());
  const double bar_w = std::max(1.0, slot * 0.8);
  for (size_t i = 0; i < bars.size(); ++i) {
    const auto& [name, value] = bars[i];
    const bool over = threshold && value > *threshold;
    const double x = kLeft + slot * static_cast<double>(i) + (slot - bar_w) / 2;
    s += "<rect x=\"" + num(x) + "\" y=\"" + num(y_of(value)) + "\" width=\"" + num(bar_w) +
         "\" height=\"" + num(base - y_of(value)) + "\" fill=\"" + (over ? "#d62728" : "#1f77b4") +
         "\"><title>" + xml_escape(name) + ": " + verify::format_figure(value) +
         "</title></rect>\n";
  }
  if (threshold && std::isfinite(*threshold)) {
    const double y = y_of(*threshold);
    s += "<line x1=\"" + num(kLeft) + "\" y1=\"" + num(y) + "\" x2=\"" + num(kWidth - kRight) +
         "\" y2=\"" + num(y) + "\" stroke=\"#d62728\" stroke-dasharray=\"6 4\"/>\n";
    s += "<text x=\"" + num(kWidth - kRight) + "\" y=\"" + num(y - 4) +
         "\" text-anchor=\"end\" fill=\"#d62728\">threshold " + verify::format_figure(*threshold) +
         "</text>\n";
  }
  s += "<text x=\"" + num(kLeft + plot_w / 2) + "\" y=\"" + num(kHeight - 20) +
       "\" text-anchor=\"middle\">" + std::to_string(bars.size()) +
       " quantized modules in checkpoint order (first: " + xml_escape(bars.front().first) +
       ", last: " + xml_escape(bars.back().first) + ")</text>\n";
  s += "</svg>\n";
  return s;
}

}  // namespace qforge
