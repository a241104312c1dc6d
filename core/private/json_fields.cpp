// JsonFields: typed, range-checked reads of JSON object fields.
#include "json_fields.h"

#include <cmath>
#include <limits>

#include "../error.h"

namespace lowbit {

std::string json_brief(const nlohmann::json& j) {
  std::string s = j.dump();
  return s.size() > 80 ? s.substr(0, 77) + "..." : s;
}

JsonFields::JsonFields(const nlohmann::json& obj, std::string file, std::string entry)
    : obj_(obj), file_(std::move(file)), entry_(std::move(entry)) {
  if (!obj_.is_object()) throw Error(entry_ + ": expected a JSON object, got " + json_brief(obj_), file_);
}

void JsonFields::fail(const char* key, const std::string& expected) const {
  const std::string got = obj_.contains(key) ? json_brief(obj_.at(key)) : std::string("nothing (the key is missing)");
  throw Error(entry_ + ": \"" + key + "\" must be " + expected + ", got " + got, file_);
}

const nlohmann::json& JsonFields::raw(const char* key) const {
  if (!obj_.contains(key)) fail(key, "present");
  return obj_.at(key);
}

int64_t JsonFields::integer(const char* key, int64_t lo, int64_t hi) const {
  const std::string expected = "an integer in " + std::to_string(lo) + ".." + std::to_string(hi);
  if (!obj_.contains(key)) fail(key, expected);
  const nlohmann::json& j = obj_.at(key);
  int64_t v = 0;
  if (j.is_number_unsigned()) {
    const uint64_t u = j.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) fail(key, expected);
    v = static_cast<int64_t>(u);
  } else if (j.is_number_integer()) {
    v = j.get<int64_t>();
  } else {
    fail(key, expected);
  }
  if (v < lo || v > hi) fail(key, expected);
  return v;
}

uint64_t JsonFields::count(const char* key) const {
  if (obj_.contains(key) && obj_.at(key).is_number_unsigned()) return obj_.at(key).get<uint64_t>();
  return static_cast<uint64_t>(integer(key, 0, std::numeric_limits<int64_t>::max()));
}

double JsonFields::number(const char* key) const {
  if (!obj_.contains(key) || !obj_.at(key).is_number()) fail(key, "a finite number");
  const double v = obj_.at(key).get<double>();
  if (!std::isfinite(v)) fail(key, "a finite number");
  return v;
}

float JsonFields::positive_float(const char* key) const {
  const float v = static_cast<float>(number(key));
  if (!(v > 0 && std::isfinite(v))) fail(key, "a positive number that a float holds");
  return v;
}

namespace {

template <class Ok>
std::vector<float> float_list(const nlohmann::json& obj, const char* key, const JsonFields& f, const char* what,
                              Ok ok) {
  if (!obj.contains(key) || !obj.at(key).is_array() || obj.at(key).empty()) f.fail(key, what);
  std::vector<float> out;
  for (const nlohmann::json& e : obj.at(key)) {
    if (!e.is_number()) f.fail(key, what);
    const float v = static_cast<float>(e.get<double>());
    if (!ok(v)) f.fail(key, what);
    out.push_back(v);
  }
  return out;
}

}  // namespace

std::vector<float> JsonFields::positive_floats(const char* key) const {
  return float_list(obj_, key, *this, "a non-empty list of positive numbers that a float holds",
                    [](float v) { return v > 0 && std::isfinite(v); });
}

std::vector<float> JsonFields::finite_floats(const char* key) const {
  return float_list(obj_, key, *this, "a non-empty list of numbers that a float holds",
                    [](float v) { return std::isfinite(v); });
}

bool JsonFields::boolean(const char* key) const {
  if (!obj_.contains(key) || !obj_.at(key).is_boolean()) fail(key, "true or false");
  return obj_.at(key).get<bool>();
}

std::string JsonFields::string(const char* key) const {
  if (!obj_.contains(key) || !obj_.at(key).is_string()) fail(key, "a string");
  return obj_.at(key).get<std::string>();
}

Shape JsonFields::shape(const char* key) const {
  const char* expected = "a list of non-negative integers whose product fits int64";
  if (!obj_.contains(key) || !obj_.at(key).is_array()) fail(key, expected);
  Shape out;
  int64_t product = 1;
  for (const nlohmann::json& d : obj_.at(key)) {
    if (!d.is_number_integer()) fail(key, expected);
    const bool too_big = d.is_number_unsigned() &&
                         d.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    const int64_t v = too_big ? -1 : d.get<int64_t>();
    if (v < 0) fail(key, expected);
    if (v != 0 && product > std::numeric_limits<int64_t>::max() / v) fail(key, expected);
    product *= v;
    out.push_back(v);
  }
  return out;
}

}  // namespace lowbit
