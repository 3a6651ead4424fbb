// Transcribed from docs/paper-benchmarks.md §1.1–§1.5 (the Megalodon paper, arXiv:2404.08801v2,
// and the Mega paper, ICLR 2023). Parameter counts and sizes are stored as plain numbers (786K →
// 786000) so that a report can format them like its own.
#include "harness/report/paper_tables.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <stdexcept>

namespace mgl::harness {

namespace {

constexpr std::nullopt_t X = std::nullopt;  // the papers' ✗, or a number they do not report

std::vector<PaperTable> build_tables() {
  std::vector<PaperTable> t;

  t.push_back({"lra",
               "Long Range Arena, accuracy %",
               "Megalodon paper (arXiv:2404.08801v2) Table 6; baseline rows from Mega (ICLR 2023) Table 2",
               {"ListOps", "Text", "Retrieval", "Image", "Pathfinder", "Path-X", "Avg"},
               {
                   {"Transformer (Mega's rerun)", {37.11, 65.21, 79.14, 42.94, 71.83, X, 59.24}},
                   {"Reformer", {37.27, 56.10, 53.40, 38.07, 68.50, X, 50.67}},
                   {"Linformer", {35.70, 53.94, 52.27, 38.56, 76.34, X, 51.36}},
                   {"BigBird", {36.05, 64.02, 59.29, 40.83, 74.87, X, 55.01}},
                   {"Luna-256", {37.98, 65.78, 79.56, 47.86, 78.55, X, 61.95}},
                   {"S4 (S4-v2, Mega's rerun)", {59.10, 86.53, 90.94, 88.48, 94.01, 96.07, 85.86}},
                   {"Mega-chunk", {58.76, 90.19, 90.97, 85.80, 94.41, 93.81, 85.66}},
                   {"Mega", {63.14, 90.43, 91.25, 90.44, 96.01, 97.98, 88.21}},
                   {"Megalodon-chunk", {62.23, 90.53, 91.74, 87.11, 96.89, 97.21, 87.62}},
                   {"Megalodon", {63.79, 90.48, 91.76, 89.42, 98.13, 98.17, 88.63}},
               }});

  t.push_back({"speech",
               "Raw Speech Commands SC10 (10 classes), accuracy %",
               "Megalodon paper (arXiv:2404.08801v2) Table 7 (= Mega (ICLR 2023) Table 4 + the Megalodon row)",
               {"#Params", "Acc"},
               {
                   {"Transformer", {786e3, X}},
                   {"S4 (Mega's rerun)", {300e3, 97.50}},
                   {"Mega (base; Mega-chunk c=1000)", {300e3, 96.92}},
                   {"Mega (big)", {476e3, 97.30}},
                   {"Megalodon (c=1000)", {300e3, 98.14}},
               }});

  // "Image size" is the side of the square input (224² → 224).
  t.push_back({"imagenet",
               "ImageNet-1K, top-1 accuracy %",
               "Megalodon paper (arXiv:2404.08801v2) Table 4; Mega (ICLR 2023) Table 6",
               {"Image size", "#Params", "Top-1"},
               {
                   {"ResNet-152", {224, 60e6, 78.3}},
                   {"ViT-B", {384, 86e6, 77.9}},
                   {"DeiT-B", {224, 86e6, 81.8}},
                   {"Mega", {224, 90e6, 82.3}},
                   {"Megalodon", {224, 90e6, 83.1}},
               }});

  t.push_back({"wikitext103",
               "WikiText-103 word-level perplexity (test)",
               "Megalodon paper (arXiv:2404.08801v2) Table 8; Mega (ICLR 2023) Table 5 (inference speed)",
               {"#Params", "Test PPL", "Inference tok/s"},
               {
                   {"Transformer (adaptive input)", {247e6, 18.66, 5.6e3}},
                   {"Transformer-XL", {257e6, 18.30, X}},
                   {"S4", {249e6, 20.95, X}},
                   {"Mega", {252e6, 18.07, 48e3}},
                   {"Megalodon", {252e6, 17.23, X}},
               }});

  t.push_back({"pg19",
               "PG-19 word-level perplexity",
               "Megalodon paper (arXiv:2404.08801v2) Table 5",
               {"#Params", "Val", "Test"},
               {
                   {"Compressive Transformer", {X, 43.4, 33.6}},
                   {"Perceiver AR", {975e6, 45.9, 28.9}},
                   {"Block-Recurrent Transformer", {1.3e9, X, 26.5}},
                   {"MEGABYTE", {1.3e9, 42.8, 36.4}},
                   {"Megalodon", {1.3e9, 29.5, 25.4}},
               }});
  return t;
}

const std::vector<PaperTable>& tables() {
  static const std::vector<PaperTable> t = build_tables();
  return t;
}

}  // namespace

int PaperTable::column_index(const std::string& column) const {
  for (size_t i = 0; i < columns.size(); ++i)
    if (columns[i] == column) return static_cast<int>(i);
  return -1;
}

std::vector<std::string> paper_table_ids() {
  std::vector<std::string> ids;
  for (const auto& t : tables()) ids.push_back(t.id);
  return ids;
}

const PaperTable& paper_table(const std::string& id) {
  for (const auto& t : tables())
    if (t.id == id) return t;
  throw std::invalid_argument(
      fmt::format("unknown paper table '{}'; known: {}", id, fmt::join(paper_table_ids(), ", ")));
}

}  // namespace mgl::harness
