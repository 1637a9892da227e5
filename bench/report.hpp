// Turning the benchmark's JSON results into the summary table (stdout, table.txt) and the
// gnuplot plots (delay distribution, throughput over time).
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace harmony::bench {

// The table: one line per figure, ours | naive | ratio | target | PASS/MISS. Also records the
// per-target verdicts in results["targets"].
std::string summary_table(nlohmann::json& results);

// Writes gnuplot data and scripts into `work_dir` and renders delay.png and throughput.png into
// `out_dir`. Returns the PNG paths written (none when gnuplot is missing).
std::vector<std::string> render_plots(const nlohmann::json& results, const std::string& work_dir,
                                      const std::string& out_dir);

}  // namespace harmony::bench
