// Tests of export: packed codes round trip, exported eval == fake-quantized eval bit for bit, corrupt files.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "layers/zoo.h"
#include "quant/export.h"
#include "quant/quantize_model.h"
#include "support/test_util.h"

using namespace lowbit;
using lowbit::test::error_of;

namespace {

ModulePtr lenet(uint64_t seed) {
  Generator g(seed);
  ModelOptions o;
  o.batch_norm = true;
  return build_model("lenet5", o, g);
}

Tensor images(int64_t n, uint64_t seed) {
  Generator g(seed);
  return Tensor::rand({n, 1, 28, 28}, g);
}

void calibrate(Module& root, const Tensor& x) {
  {
    NoGradGuard guard;
    root.forward(x);
  }
  for (auto& [name, m] : root.named_modules()) m->end_calibration();
}

bool bit_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
void write(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

// A trained-looking quantized lenet5 (with BatchNorm) in eval mode and a batch.
ModulePtr quantized_lenet(const std::string& config) {
  ModulePtr net = lenet(21);
  quantize_model(*net, config);
  calibrate(*net, images(8, 1));
  net->eval();
  return net;
}

}  // namespace

TEST_CASE("export: the exported model's eval forward equals the fake-quantized one bit for bit", "[quant][export]") {
  // The conv / linear layer names of this lenet5 (first conv, second conv, last linear).
  std::vector<std::string> names;
  {
    ModulePtr probe = lenet(21);
    for (const auto& q : quantized_layers(*probe)) names.push_back(q.name);
  }
  REQUIRE(names.size() == 4);
  for (const std::string& config :
       {"method: lsq\nweight_bits: 3\nact_bits: 3\nper_channel: true\noverrides: [{match: '" + names[0] +
            "', act_bits: 32}]",
        "method: ste_uniform\nweight_bits: 2\nact_bits: 4\noverrides: [{match: '" + names[3] + "', weight_bits: 8}]",
        "method: lsq\nweight_bits: 5\nact_bits: 32\noverrides: [{match: '" + names[1] + "', weight_bits: 32}]"}) {
    INFO(config);
    test::TempDir dir("quantfw_export");
    ModulePtr net = quantized_lenet(config);
    Tensor x = images(3, 2);
    Tensor y1 = net->forward(x);
    export_quantized(*net, dir.path.string());
    ModulePtr plain = lenet(99);  // a float model with other weights
    load_exported_into(*plain, dir.path.string());
    plain->eval();
    Tensor y2 = plain->forward(x);
    CHECK(bit_equal(y1, y2));
  }
}

TEST_CASE("export: packing sizes and dequantized weights", "[quant][export]") {
  test::TempDir dir("quantfw_pack");
  ModulePtr net = quantized_lenet("method: ste_uniform\nweight_bits: 3\nact_bits: 8");
  export_quantized(*net, dir.path.string());
  int64_t weights = 0;
  for (const auto& q : quantized_layers(*net)) weights += q.layer->parameter("weight").numel();
  int64_t expected = 0;
  for (const auto& q : quantized_layers(*net)) expected += (q.layer->parameter("weight").numel() * 3 + 7) / 8;
  CHECK(static_cast<int64_t>(std::filesystem::file_size(dir.file("weights.bin"))) == expected);
  CHECK(expected < weights / 2);
  NamedTensors t = load_exported(dir.path.string());
  for (const auto& q : quantized_layers(*net)) {
    const std::string name = q.name + ".weight";
    auto it = std::find_if(t.begin(), t.end(), [&](const auto& e) { return e.first == name; });
    REQUIRE(it != t.end());
    Tensor w = q.layer->parameter("weight");
    NoGradGuard guard;
    CHECK(bit_equal(it->second, q.wq->forward(w)));
  }
  // BatchNorm statistics and biases travel as floats.
  bool bn = false;
  for (const auto& [n, v] : t) bn = bn || n == "1.running_mean";
  CHECK(bn);
}

TEST_CASE("export: corrupt manifest or blob gives an error naming the file and tensor", "[quant][export]") {
  test::TempDir dir("quantfw_corrupt");
  ModulePtr net = quantized_lenet("method: lsq\nweight_bits: 2\nact_bits: 2");
  const std::string d = dir.path.string();
  export_quantized(*net, d);
  const std::string manifest = read(dir.file("manifest.json")), blob = read(dir.file("weights.bin"));
  auto err = [&] { return error_of([&] { load_exported(d); }); };
  REQUIRE(err() == "(no error)");

  std::string flipped = blob;
  flipped[flipped.size() / 2] ^= 0x10;
  write(dir.file("weights.bin"), flipped);
  std::string e = err();
  CHECK(has(e, "weights.bin"));
  CHECK(has(e, ".weight: checksum mismatch"));
  write(dir.file("weights.bin"), blob.substr(0, blob.size() - 3));
  CHECK(has(err(), "weights.bin: blob is"));
  CHECK(has(err(), "truncated"));
  write(dir.file("weights.bin"), blob);

  write(dir.file("manifest.json"), manifest.substr(0, manifest.size() / 2));
  CHECK(has(err(), "manifest.json: corrupt manifest (not valid JSON)"));
  std::string v = manifest;
  v.replace(v.find("\"version\": 1"), 12, "\"version\": 9");
  write(dir.file("manifest.json"), v);
  CHECK(has(err(), "manifest version 9 is not supported"));
  std::string bits = manifest;
  bits.replace(bits.find("\"bits\": 2", bits.find("\"tensors\"")), 9, "\"bits\": 3");
  write(dir.file("manifest.json"), bits);
  e = err();
  INFO(e);
  CHECK(has(e, "0.weight: length"));  // the first quantized weight listed
  write(dir.file("manifest.json"), manifest);
  CHECK(err() == "(no error)");
  // An export of another architecture does not load.
  Generator g(1);
  ModulePtr mlp = build_model("mlp", {}, g);
  CHECK(has(error_of([&] { load_exported_into(*mlp, d); }), "no conv or linear layer of that name in the model"));
}

TEST_CASE("export: manifest fields of the wrong kind or out of range are refused, naming key and value",
          "[quant][export]") {
  test::TempDir dir("quantfw_fields");
  ModulePtr net = quantized_lenet("method: cpq\nweight_bits: 3\nact_bits: 3");
  const std::string d = dir.path.string();
  export_quantized(*net, d);
  const nlohmann::json good = nlohmann::json::parse(read(dir.file("manifest.json")));
  auto err_with = [&](const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json m = good;
    edit(m);
    write(dir.file("manifest.json"), m.dump());
    ModulePtr fresh = lenet(21);
    return error_of([&] { load_exported_into(*fresh, d); });
  };
  REQUIRE(err_with([](nlohmann::json&) {}) == "(no error)");
  struct Case {
    const char* section;
    const char* key;
    nlohmann::json value;
    const char* expect;
  };
  const std::vector<Case> cases = {
      // Numbers of another kind are not converted (2.5 -> 2, true -> 1, 1e300 -> undefined).
      {"tensors", "bits", 2.5, "\"bits\" must be an integer in 1..16, got 2.5"},
      {"tensors", "bits", true, "\"bits\" must be an integer in 1..16, got true"},
      {"tensors", "bits", 4294967298ull, "got 4294967298"},
      {"tensors", "offset", 1e300, "\"offset\" must be an integer in 0..9223372036854775807, got 1e+300"},
      {"tensors", "offset", -1, "got -1"},
      {"tensors", "length", 0.5, "\"length\" must be"},
      {"tensors", "crc32", 4294967296ull, "\"crc32\" must be an integer in 0..4294967295"},
      {"tensors", "signed", 1, "\"signed\" must be true or false, got 1"},
      {"tensors", "shape", nlohmann::json::array({4611686018427387904ll, 4}), "product fits int64"},
      {"tensors", "shape", nlohmann::json::array({-32, 1, 5, 5}), "\"shape\" must be a list of non-negative"},
      // Scales that would dequantize to zeros, negatives or infinities.
      {"tensors", "scale", nlohmann::json::array({0.0}), "\"scale\" must be a non-empty list of positive numbers"},
      {"tensors", "scale", nlohmann::json::array({-0.05}), "got [-0.05]"},
      {"tensors", "scale", nlohmann::json::array({1e300}), "that a float holds, got [1e+300]"},
      {"tensors", "scale", nlohmann::json::array(), "non-empty"},
      {"activations", "scale", 0.0, "\"scale\" must be a positive number that a float holds, got 0.0"},
      {"activations", "scale", 1e39, "got 1e+39"},
      {"activations", "scale", "0.1", "got \"0.1\""},
      {"activations", "qmin", 1e300, "\"qmin\" must be an integer in -8..0"},
      {"activations", "qmax", 8, "\"qmax\" must be an integer in 0..7, got 8"},
      {"activations", "signed", true, "is not a 3-bit signed grid"},  // qmin is 0: the grid is unsigned
      {"activations", "bits", 0, "\"bits\" must be an integer in 1..16, got 0"},
      {"activations", "layer", 4, "\"layer\" must be a string, got 4"},
      // Values of the right kind that would load something else.
      {"tensors", "signed", false, "the grid [-4, 3] is not a 3-bit unsigned grid (expected [0, 7])"},
      {"tensors", "qmax", 2, "the grid [-4, 2] is not a 3-bit signed grid"},
      {"tensors", "method", "", "\"method\" must be a non-empty string"},
      {"activations", "qmax", 1, "the grid [0, 1] is not a 3-bit unsigned grid"},
      {"activations", "layer", "", "layer '': no conv or linear layer of that name"},
      {"activations", "method", nullptr, "\"method\" must be a non-empty string, got null"},
  };
  for (const Case& c : cases) {
    INFO(c.section << "." << c.key << " = " << c.value.dump());
    // The second entry of each list: layer 4, whose activations are unsigned (after a ReLU).
    const std::string e = err_with([&](nlohmann::json& m) { m[c.section][1][c.key] = c.value; });
    CHECK(has(e, "manifest.json"));
    CHECK(has(e, c.expect));
  }
  CHECK(has(err_with([](nlohmann::json& m) { m["tensors"][1].erase("bits"); }),
            "4.weight: \"bits\" must be an integer in 1..16, got nothing (the key is missing)"));
  CHECK(has(err_with([](nlohmann::json& m) { m["activations"][1] = 7; }),
            "activations[1]: expected a JSON object, got 7"));
  CHECK(has(err_with([](nlohmann::json& m) { m["format"] = 3; }), "not a lowbit export manifest"));
  CHECK(has(err_with([](nlohmann::json& m) { m["blob"] = "../weights.bin"; }),
            "\"blob\" must be \"weights.bin\" in a version-1 export, got \"../weights.bin\""));
  CHECK(has(err_with([](nlohmann::json& m) { m["packing"] = "MSB first"; }), "\"packing\" must be"));
  CHECK(has(err_with([](nlohmann::json& m) { m["activations"][1]["layer"] = m["activations"][0]["layer"]; }),
            "a second activation quantizer for layer"));
  // Manifests written before the weight grid was recorded still load.
  CHECK(err_with([](nlohmann::json& m) {
          for (auto& t : m["tensors"]) t.erase("qmin"), t.erase("qmax");
        }) == "(no error)");
  CHECK(has(err_with([](nlohmann::json& m) { m["version"] = 4294967297ull; }),
            "manifest version 4294967297 is not supported"));
}

TEST_CASE("export: every manifest field set to every hostile value is refused or means the same",
          "[quant][export]") {
  // A generated sweep over the whole manifest, so a field added later is covered too: each key
  // of each entry, and each top-level key, replaced by values of every JSON kind and at every
  // numeric edge. The load must either refuse it with an error naming a file of the export, or
  // accept a value that means the same (2 for 2.0). Two kinds of field are free: a step
  // ("scale") may take any positive value a float holds, and "method" any non-empty name (it
  // is informational: a user's own registered method loads where it is not registered).
  test::TempDir dir("quantfw_fuzz");
  ModulePtr net = quantized_lenet("method: cpq\nweight_bits: 3\nact_bits: 3");
  const std::string d = dir.path.string();
  export_quantized(*net, d);
  const nlohmann::json good = nlohmann::json::parse(read(dir.file("manifest.json")));
  const std::vector<nlohmann::json> hostile = {
      nullptr, true, false, 0, 1, -1, 2.5, -0.0, 1e300, -1e300, 1e39,
      std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::min(),
      std::numeric_limits<uint64_t>::max(), "", "x", "0.1",
      nlohmann::json::array(), nlohmann::json::array({-1}), nlohmann::json::array({0.0}),
      nlohmann::json::array({1, 2, 3}), nlohmann::json::object(), nlohmann::json::object({{"a", 1}})};
  auto positive_float = [](const nlohmann::json& v) {
    return v.is_number() && v.get<double>() > 0 && v.get<double>() <= std::numeric_limits<float>::max();
  };
  auto means_the_same = [&](const std::string& key, const nlohmann::json& v, const nlohmann::json& original) {
    if (key == "method") return v.is_string() && !v.get<std::string>().empty();
    if (key == "scale" && original.is_array())
      return v.is_array() && v.size() == original.size() && std::all_of(v.begin(), v.end(), positive_float);
    if (key == "scale") return positive_float(v);
    return v == original;
  };
  size_t tried = 0, accepted = 0;
  auto check = [&](const nlohmann::json& edited, const nlohmann::json& original, const std::string& where,
                   const std::string& key, const nlohmann::json& value) {
    write(dir.file("manifest.json"), edited.dump());
    ModulePtr fresh = lenet(21);
    const std::string e = error_of([&] { load_exported_into(*fresh, d); });
    INFO(where << " = " << value.dump() << " (was " << original.dump() << "): " << e);
    ++tried;
    if (e == "(no error)") {
      ++accepted;
      CHECK(means_the_same(key, value, original));
    } else {
      CHECK(has(e, d));
    }
  };
  for (const char* section : {"tensors", "activations"}) {
    REQUIRE(good.contains(section));
    for (size_t i = 0; i < good[section].size(); ++i) {
      for (const auto& [key, original] : good[section][i].items()) {
        for (const nlohmann::json& v : hostile) {
          nlohmann::json m = good;
          m[section][i][key] = v;
          check(m, original, std::string(section) + "[" + std::to_string(i) + "]." + key, key, v);
        }
      }
    }
  }
  for (const auto& [key, original] : good.items()) {
    if (original.is_array()) continue;  // the lists are covered entry by entry above
    for (const nlohmann::json& v : hostile) {
      nlohmann::json m = good;
      m[key] = v;
      check(m, original, key, key, v);
    }
  }
  INFO(tried << " edits, " << accepted << " accepted");
  CHECK(tried > 500);
}
