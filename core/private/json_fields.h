// Strict readers for the fields of the JSON files lowbit reads back (export manifests, quant
// reports). nlohmann's get<T>() converts between number kinds silently (2.5 -> 2, 1e300 -> an
// undefined integer, true -> 1); these refuse, and the error names the file, the entry, the key
// and the value as written. Not installed: the public headers do not depend on nlohmann-json.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "../shape.h"

namespace lowbit {

class JsonFields {
 public:
  // file: the path errors name; entry: the object's label inside it ("9.weight", "layers[2]").
  JsonFields(const nlohmann::json& obj, std::string file, std::string entry);

  bool has(const char* key) const { return obj_.contains(key); }
  const nlohmann::json& raw(const char* key) const;
  int64_t integer(const char* key, int64_t lo, int64_t hi) const;
  uint64_t count(const char* key) const;                     // an integer >= 0
  double number(const char* key) const;                      // finite
  float positive_float(const char* key) const;               // finite and > 0 as a float
  std::vector<float> positive_floats(const char* key) const; // a non-empty list of those
  std::vector<float> finite_floats(const char* key) const;   // a non-empty list, finite as floats
  bool boolean(const char* key) const;
  std::string string(const char* key) const;
  Shape shape(const char* key) const;                        // dims >= 0, product fits int64

  [[noreturn]] void fail(const char* key, const std::string& expected) const;

 private:
  const nlohmann::json& obj_;
  std::string file_, entry_;
};

// The JSON value, cut to 80 characters, for error messages.
std::string json_brief(const nlohmann::json& j);

}  // namespace lowbit
