// Precompiled header for every target: LibTorch is by far the heaviest include.
#pragma once
#include <torch/torch.h>
#include <fmt/format.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>
