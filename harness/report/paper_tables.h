// The papers' reported numbers (docs/paper-benchmarks.md §1.1–§1.5) as data, so that a result
// table can print the reference rows beside our own runs without anyone retyping them.
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace mgl::harness {

struct PaperRow {
  std::string model;
  // One entry per PaperTable::columns; nullopt where the paper marks ✗ (failed / out of memory) or
  // reports nothing.
  std::vector<std::optional<double>> values;
};

struct PaperTable {
  std::string id;      // "lra", "speech", "imagenet", "wikitext103", "pg19"
  std::string title;   // what the numbers are, with units
  std::string source;  // the paper and table the numbers come from
  std::vector<std::string> columns;
  std::vector<PaperRow> rows;

  // Index of `column` in `columns`, or -1.
  int column_index(const std::string& column) const;
};

// The table with this id; throws std::invalid_argument naming the known ids otherwise.
const PaperTable& paper_table(const std::string& id);
std::vector<std::string> paper_table_ids();

}  // namespace mgl::harness
