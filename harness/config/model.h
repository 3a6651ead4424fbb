// The `model` section: MegalodonConfig fields as typed config keys and as JSON (the config written
// beside exported safetensors weights). Field names are the official ModelConf names (spec §5.1),
// so a config moves between this project and the PyTorch code by name.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "core/config.h"
#include "harness/config/config.h"

namespace mgl::harness {

// One MegalodonConfig field: its key, type, doc, and accessors through Value.
struct ModelField {
  std::string key;
  ValueType type;
  std::string doc;
  std::vector<std::string> choices;
  Value (*get)(const MegalodonConfig&);
  void (*set)(MegalodonConfig&, const Value&, const std::string& key);
};
const std::vector<ModelField>& megalodon_fields();

// Adds `<prefix>.<field>` for every field (defaults from MegalodonConfig{}), plus `<prefix>.preset`
// (a named official configuration that explicit keys then override).
void add_megalodon_schema(Schema& schema, const std::string& prefix = "model");
// The preset (if any), then every key set explicitly in a file or on the command line; validated.
MegalodonConfig megalodon_config_from(const Config& cfg, const std::string& prefix = "model");

nlohmann::json to_json(const MegalodonConfig& c);
// Unknown keys and wrong types are refused naming `where` (the file) and the key; absent keys keep
// MegalodonConfig's defaults.
MegalodonConfig megalodon_config_from_json(const nlohmann::json& j, const std::string& where);

}  // namespace mgl::harness
