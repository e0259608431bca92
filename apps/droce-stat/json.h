// A small JSON value for droce-stat: parses DPDK telemetry replies keeping
// the order of object keys (the order droce's counters are listed in), and
// writes values back out.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace droce::stat {

struct Json {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = Kind::kNull;
  bool b = false;
  std::string num;  // a number's text, as it came (counters are 64-bit: no double)
  std::string str;
  std::vector<Json> arr;
  std::vector<std::pair<std::string, Json>> obj;  // in order

  bool is_object() const { return kind == Kind::kObject; }
  // The member named key, or nullptr.
  const Json* find(const std::string& key) const;
  // A number member as uint64 (0 when absent or not a number).
  uint64_t u64(const std::string& key) const;
  // A string member ("" when absent).
  std::string string_at(const std::string& key) const;

  static Json object() {
    Json j;
    j.kind = Kind::kObject;
    return j;
  }
  static Json string(std::string s) {
    Json j;
    j.kind = Kind::kString;
    j.str = std::move(s);
    return j;
  }
  static Json number(uint64_t v) {
    Json j;
    j.kind = Kind::kNumber;
    j.num = std::to_string(v);
    return j;
  }
  void set(const std::string& key, Json v);  // adds or replaces (objects)
};

// Parses text as one JSON value; false with *error set on failure.
bool parse_json(const std::string& text, Json* out, std::string* error);

// Compact (indent < 0) or indented text.
std::string to_json(const Json& v, int indent = -1);

}  // namespace droce::stat
