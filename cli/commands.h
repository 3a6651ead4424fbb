// Subcommands of the `megalodon` executable; each is a thin layer over the library.
#pragma once
#include <string>
#include <vector>

namespace mgl::cli {
int bench_main(const std::vector<std::string>& args);
}
