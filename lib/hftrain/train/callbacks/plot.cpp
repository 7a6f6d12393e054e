#include "hftrain/train/callbacks/plot.h"

#include "hftrain/io/atomic_file.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace hftrain {

namespace {

struct Series {
  const char* key;
  const char* label;
  const char* color;
  bool right_axis;  // the learning rate has its own scale
  std::vector<std::pair<double, double>> points;
};

constexpr double kW = 720, kH = 360, kLeft = 60, kRight = 70, kTop = 30, kBottom = 40;

std::string polyline(const Series& s, double x0, double x1, double y0, double y1) {
  std::string pts;
  for (const auto& [x, y] : s.points) {
    const double px = kLeft + (x - x0) / std::max(x1 - x0, 1e-12) * (kW - kLeft - kRight);
    const double py = kH - kBottom - (y - y0) / std::max(y1 - y0, 1e-12) * (kH - kTop - kBottom);
    pts += fmt::format("{:.1f},{:.1f} ", px, py);
  }
  return fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\"/>\n", s.color, pts);
}

}  // namespace

std::string PlotCallback::render(const Json& log_history) {
  std::vector<Series> series = {{"loss", "train loss", "#1f77b4", false, {}},
                                {"eval_loss", "eval loss", "#d62728", false, {}},
                                {"learning_rate", "learning rate", "#7f7f7f", true, {}}};
  for (const Json& e : log_history)
    for (Series& s : series)
      if (e.contains(s.key) && e[s.key].is_number() && e.contains("step"))
        s.points.emplace_back(e["step"].get<double>(), e[s.key].get<double>());
  double x0 = INFINITY, x1 = -INFINITY, l0 = INFINITY, l1 = -INFINITY, r0 = 0, r1 = -INFINITY;
  for (const Series& s : series)
    for (const auto& [x, y] : s.points) {
      x0 = std::min(x0, x), x1 = std::max(x1, x);
      if (s.right_axis) r1 = std::max(r1, y);
      else l0 = std::min(l0, y), l1 = std::max(l1, y);
    }
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
      kW, kH);
  svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#ccc\"/>\n", kLeft,
                     kTop, kW - kLeft - kRight, kH - kTop - kBottom);
  if (x1 >= x0) {
    if (l1 < l0) l0 = 0, l1 = 1;
    if (r1 < r0) r1 = 1;
    for (const Series& s : series)
      if (!s.points.empty()) svg += polyline(s, x0, x1, s.right_axis ? r0 : l0, s.right_axis ? r1 : l1);
    svg += fmt::format("<text x=\"{}\" y=\"{}\">{:.4g}</text>\n<text x=\"{}\" y=\"{}\">{:.4g}</text>\n", 4, kTop + 4,
                       l1, 4, kH - kBottom, l0);
    svg += fmt::format("<text x=\"{}\" y=\"{}\">{:.3g}</text>\n", kW - kRight + 4, kTop + 4, r1);
    svg += fmt::format("<text x=\"{}\" y=\"{}\">step {:g}</text>\n<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{:g}</text>\n",
                       kLeft, kH - 12, x0, kW - kRight, kH - 12, x1);
  }
  double lx = kLeft + 10;
  for (const Series& s : series) {
    svg += fmt::format("<text x=\"{}\" y=\"18\" fill=\"{}\">{}</text>\n", lx, s.color, s.label);
    lx += 110;
  }
  return svg + "</svg>\n";
}

void PlotCallback::write(const Args& a, const State& s) {
  if (!s.is_world_process_zero) return;
  io::write_file_atomic(a.output_dir + "/loss.svg", render(s.log_history));
}

}  // namespace hftrain
