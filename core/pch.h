// Precompiled header for every target: LibTorch is by far the heaviest include.
#pragma once
#include <torch/torch.h>
#include <fmt/format.h>
// Header-only and heavy; shared by the harness (precompiling it is a compile-speed matter only).
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>
