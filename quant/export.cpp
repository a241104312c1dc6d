// Export of a quantized model (packed codes + manifest + safetensors) and loading it back.
#include "export.h"

#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "../core/autograd.h"
#include "../core/private/json_fields.h"
#include "../core/safetensors.h"
#include "qlinear.h"
#include "quantize_model.h"
#include "ste_uniform.h"

namespace lowbit {

namespace {

constexpr int kFormatVersion = 1;
const char* kManifest = "manifest.json";
const char* kBlob = "weights.bin";
const char* kFloats = "tensors.safetensors";
const char* kPacking =
    "codes of `bits` bits, two's complement when signed, LSB first within bytes, each tensor on a byte boundary";

bool inside_quantizer(const std::string& n) {
  return n.find(".wq.") != std::string::npos || n.find(".aq.") != std::string::npos || n.rfind("wq.", 0) == 0 ||
         n.rfind("aq.", 0) == 0;
}

std::string weight_name(const std::string& layer) { return layer.empty() ? "weight" : layer + ".weight"; }

uint32_t crc_of(const uint8_t* p, size_t n) {
  return static_cast<uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(p), static_cast<uInt>(n)));
}

// Codes -> bits LSB-first (see export.h).
std::vector<uint8_t> pack(const Tensor& codes, int bits) {
  const int64_t n = codes.numel();
  std::vector<uint8_t> out(static_cast<size_t>((n * bits + 7) / 8), 0);
  const int32_t* c = codes.data<int32_t>();
  const uint32_t mask = bits == 32 ? ~0u : ((1u << bits) - 1);
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t v = static_cast<uint32_t>(c[i]) & mask;
    for (int j = 0; j < bits; ++j)
      if (v >> j & 1u) {
        const int64_t bit = i * bits + j;
        out[static_cast<size_t>(bit / 8)] |= static_cast<uint8_t>(1u << (bit % 8));
      }
  }
  return out;
}

Tensor unpack(const uint8_t* p, const Shape& shape, int bits, bool is_signed) {
  Tensor codes = Tensor::empty(shape, DType::i32);
  int32_t* c = codes.data<int32_t>();
  for (int64_t i = 0, n = codes.numel(); i < n; ++i) {
    uint32_t v = 0;
    for (int j = 0; j < bits; ++j) {
      const int64_t bit = i * bits + j;
      v |= static_cast<uint32_t>(p[bit / 8] >> (bit % 8) & 1u) << j;
    }
    if (is_signed && (v >> (bits - 1) & 1u)) v |= ~((1u << bits) - 1);  // sign-extend
    c[i] = static_cast<int32_t>(v);
  }
  return codes;
}

// An exported activation quantizer: a fixed uniform grid (eval-only in spirit; trains as STE).
class ExportedActQuantizer : public Quantizer {
 public:
  ExportedActQuantizer(const QuantSpec& spec, GridRange range, float alpha)
      : Quantizer(spec, "ExportedActQuantizer"), range_(range) {
    register_buffer("alpha", Tensor::scalar(alpha));
    set_signed(range.qmin < 0);
    mark_initialized(true);
  }
  void init_from(const Tensor&) override {}
  Tensor step() const override { return buffer("alpha"); }
  GridRange range() const override { return range_; }

 protected:
  Tensor quantize(const Tensor& x) override {
    return CustomFunction::apply<SteUniformSte>({x}, buffer("alpha"), range_);
  }

 private:
  GridRange range_;
};

// The grids a version-1 export may name: those of grid.h (every built-in quantizer's).
bool is_export_grid(GridRange r, int bits, bool is_signed) {
  return r == grid_range(bits, is_signed) ||
         (is_signed && bits >= 2 && r == grid_range(bits, true, GridKind::symmetric));
}

std::string grid_str(GridRange r, int bits, bool is_signed) {
  auto str = [](GridRange g) { return "[" + std::to_string(g.qmin) + ", " + std::to_string(g.qmax) + "]"; };
  std::string out = str(r) + " is not a " + std::to_string(bits) + "-bit " + (is_signed ? "signed" : "unsigned") +
                    " grid (expected " + str(grid_range(bits, is_signed));
  if (is_signed && bits >= 2) out += " or the symmetric " + str(grid_range(bits, true, GridKind::symmetric));
  return out + ")";
}

// A grid [qmin, qmax] read from a manifest entry and checked against its bits and sign.
GridRange read_grid(const JsonFields& f, const std::string& mpath, const std::string& label, int bits, bool is_signed) {
  const int64_t levels = int64_t{1} << bits;
  GridRange r{f.integer("qmin", -levels, 0), f.integer("qmax", 0, levels - 1)};
  LOWBIT_CHECK(is_export_grid(r, bits, is_signed), mpath, label, ": the grid ", grid_str(r, bits, is_signed));
  return r;
}

// A field this version writes with one fixed value: absent is fine (hand-made manifests),
// anything else means a format this reader does not know.
void check_constant(const nlohmann::json& m, const char* key, const std::string& expected, const std::string& path) {
  if (!m.contains(key)) return;
  LOWBIT_CHECK(m[key].is_string() && m[key].get<std::string>() == expected, path, "\"", key, "\" must be \"", expected,
               "\" in a version-1 export, got ", json_brief(m[key]));
}

// "method" is informational (the loader re-creates the grid, not the method, so a custom
// method need not be registered), but must name one.
void check_method(const JsonFields& f, const std::string& mpath, const std::string& label) {
  if (!f.has("method")) return;
  LOWBIT_CHECK(f.raw("method").is_string() && !f.raw("method").get<std::string>().empty(), mpath, label,
               ": \"method\" must be a non-empty string, got ", json_brief(f.raw("method")));
}

nlohmann::json read_manifest(const std::string& path) {
  std::ifstream in(path);
  LOWBIT_CHECK(in.good(), path, "cannot open the export manifest");
  nlohmann::json j;
  try {
    in >> j;
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("corrupt manifest (not valid JSON): ") + e.what(), path);
  }
  LOWBIT_CHECK(j.is_object() && j.contains("format") && j["format"] == "lowbit-export", path,
               "not a lowbit export manifest (format is not \"lowbit-export\")");
  LOWBIT_CHECK(j.contains("version") && j["version"].is_number_integer(), path, "manifest has no integer version");
  const nlohmann::json& v = j["version"];
  const bool known = v.is_number_unsigned() ? v.get<uint64_t>() >= 1 && v.get<uint64_t>() <= kFormatVersion
                                            : v.get<int64_t>() >= 1 && v.get<int64_t>() <= kFormatVersion;
  LOWBIT_CHECK(known, path, "manifest version ", json_brief(v), " is not supported (this build reads 1..",
               kFormatVersion, ")");
  LOWBIT_CHECK(j.contains("tensors") && j["tensors"].is_array() && j.contains("activations") &&
                   j["activations"].is_array() && j.contains("blob_bytes") && j["blob_bytes"].is_number_unsigned(),
               path, "manifest lacks tensors, activations or blob_bytes");
  check_constant(j, "blob", kBlob, path);
  check_constant(j, "floats", kFloats, path);
  check_constant(j, "packing", kPacking, path);
  return j;
}

}  // namespace

void export_quantized(Module& root, const std::string& dir) {
  NoGradGuard guard;
  std::filesystem::create_directories(dir);
  const std::string blob_path = (std::filesystem::path(dir) / kBlob).string();
  nlohmann::json manifest;
  manifest["format"] = "lowbit-export";
  manifest["version"] = kFormatVersion;
  manifest["blob"] = kBlob;
  manifest["floats"] = kFloats;
  manifest["packing"] = kPacking;
  nlohmann::json tensors = nlohmann::json::array(), acts = nlohmann::json::array();
  std::vector<uint8_t> blob;
  std::set<std::string> packed;
  for (const auto& q : quantized_layers(root)) {
    if (q.wq) {
      Tensor w = q.layer->parameter("weight");
      IntTensor it = q.wq->export_int(w);
      LOWBIT_CHECK(it.bits >= 1 && it.bits <= 16, "export_quantized", weight_name(q.name), ": ", it.bits,
                   " bits cannot be packed");
      {
        const int64_t lo = it.is_signed ? -(int64_t{1} << (it.bits - 1)) : 0;
        const int64_t hi = it.is_signed ? (int64_t{1} << (it.bits - 1)) - 1 : (int64_t{1} << it.bits) - 1;
        for (int32_t c : it.codes.to_vector<int32_t>())
          LOWBIT_CHECK(c >= lo && c <= hi, "export_quantized", weight_name(q.name), ": code ", c, " does not fit ",
                       it.bits, it.is_signed ? " signed" : " unsigned", " bits");
      }
      std::vector<uint8_t> bytes = pack(it.codes, it.bits);
      nlohmann::json e;
      e["name"] = weight_name(q.name);
      e["method"] = q.wq->spec().method;
      e["shape"] = w.shape();
      e["bits"] = it.bits;
      e["signed"] = it.is_signed;
      if (it.codebook.defined()) {
        e["codebook"] = it.codebook.to_vector<float>();
      } else {
        const GridRange r = q.wq->range();
        LOWBIT_CHECK(is_export_grid(r, it.bits, it.is_signed), "export_quantized", weight_name(q.name), ": the grid ",
                     grid_str(r, it.bits, it.is_signed));
        e["qmin"] = r.qmin;  // lets the reader check signed and every code against the grid
        e["qmax"] = r.qmax;
        e["scale"] = it.scale.to_vector<float>();
      }
      e["offset"] = blob.size();
      e["length"] = bytes.size();
      e["crc32"] = crc_of(bytes.data(), bytes.size());
      blob.insert(blob.end(), bytes.begin(), bytes.end());
      tensors.push_back(e);
      packed.insert(weight_name(q.name));
    }
    if (q.aq) {
      LOWBIT_CHECK(q.aq->initialized(), "export_quantized", "the activation quantizer of layer '", q.name,
                   "' is not calibrated; run a calibration pass (or train) first");
      GridRange r = q.aq->range();
      LOWBIT_CHECK(is_export_grid(r, q.aq->bits(), r.qmin < 0), "export_quantized",
                   "the activation quantizer of layer '", q.name, "': the grid ",
                   grid_str(r, q.aq->bits(), r.qmin < 0));
      std::vector<float> a = q.aq->step().to_vector<float>();
      LOWBIT_CHECK(a.size() == 1, "export_quantized", "layer '", q.name,
                   "': per-channel activation scales are not exportable");
      acts.push_back({{"layer", q.name},
                      {"method", q.aq->spec().method},
                      {"bits", q.aq->bits()},
                      {"signed", r.qmin < 0},
                      {"qmin", r.qmin},
                      {"qmax", r.qmax},
                      {"scale", a[0]}});
    }
  }
  manifest["blob_bytes"] = blob.size();
  manifest["tensors"] = tensors;
  manifest["activations"] = acts;

  NamedTensors floats;
  for (const auto& [name, t] : root.state_dict())
    if (!inside_quantizer(name) && !packed.count(name)) floats.emplace_back(name, t.detach().to(Device::cpu()));
  save_safetensors((std::filesystem::path(dir) / kFloats).string(), floats, {{"format", "lowbit-export"}});
  {
    std::ofstream out(blob_path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(blob.data()), static_cast<std::streamsize>(blob.size()));
    LOWBIT_CHECK(out.good(), blob_path, "write failed");
  }
  // The manifest last: a directory with a manifest holds a complete export.
  const std::string mpath = (std::filesystem::path(dir) / kManifest).string();
  std::ofstream out(mpath, std::ios::trunc);
  out << manifest.dump(2) << "\n";
  LOWBIT_CHECK(out.good(), mpath, "write failed");
}

NamedTensors load_exported(const std::string& dir) {
  const std::string mpath = (std::filesystem::path(dir) / kManifest).string();
  const std::string bpath = (std::filesystem::path(dir) / kBlob).string();
  nlohmann::json m = read_manifest(mpath);
  std::ifstream in(bpath, std::ios::binary);
  LOWBIT_CHECK(in.good(), bpath, "cannot open the export blob");
  std::vector<uint8_t> blob((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const uint64_t expected = m["blob_bytes"].get<uint64_t>();
  LOWBIT_CHECK(blob.size() == expected, bpath, "blob is ", blob.size(), " bytes, the manifest says ", expected,
               " (truncated or replaced)");

  NamedTensors out;
  SafetensorsFile floats = load_safetensors((std::filesystem::path(dir) / kFloats).string());
  for (auto& [name, t] : floats.tensors) out.emplace_back(name, t);
  for (size_t i = 0; i < m["tensors"].size(); ++i) {
    const auto& e = m["tensors"][i];
    const std::string label = e.is_object() && e.contains("name") && e["name"].is_string()
                                  ? e["name"].get<std::string>()
                                  : "tensors[" + std::to_string(i) + "]";
    const JsonFields f(e, mpath, label);
    const Shape shape = f.shape("shape");
    const int bits = static_cast<int>(f.integer("bits", 1, 16));
    const bool is_signed = f.boolean("signed");
    const uint64_t offset = f.count("offset"), length = f.count("length");
    const int64_t n = numel(shape);
    LOWBIT_CHECK(n <= std::numeric_limits<int64_t>::max() / bits, mpath, label, ": ", shape_str(shape),
                 " holds more codes than can be addressed");
    LOWBIT_CHECK(length == static_cast<uint64_t>((n * bits + 7) / 8), mpath, label, ": length ", length,
                 " does not hold ", n, " codes of ", bits, " bits");
    LOWBIT_CHECK(offset <= blob.size() && length <= blob.size() - offset, bpath, label, ": bytes [", offset, ", +",
                 length, ") lie outside the blob of ", blob.size(), " bytes");
    LOWBIT_CHECK(crc_of(blob.data() + offset, length) == f.integer("crc32", 0, UINT32_MAX), bpath, label,
                 ": checksum mismatch (the blob is corrupt)");
    check_method(f, mpath, label);
    IntTensor it;
    it.bits = bits;
    it.is_signed = is_signed;
    it.codes = unpack(blob.data() + offset, shape, bits, is_signed);
    if (f.has("qmin") || f.has("qmax")) {  // absent in exports written before 2026-12-04
      const GridRange r = read_grid(f, mpath, label, bits, is_signed);
      const int32_t* c = it.codes.data<int32_t>();
      for (int64_t k = 0; k < n; ++k)
        LOWBIT_CHECK(c[k] >= r.qmin && c[k] <= r.qmax, bpath, label, ": code ", c[k], " at index ", k,
                     " lies outside the grid [", r.qmin, ", ", r.qmax, "] (the blob is corrupt)");
    }
    if (f.has("codebook")) {
      it.codebook = Tensor::from_vector(f.finite_floats("codebook"));
      LOWBIT_CHECK(it.codebook.numel() == (int64_t{1} << bits), mpath, label, ": codebook needs 2^bits entries");
    } else {
      std::vector<float> s = f.positive_floats("scale");
      LOWBIT_CHECK(s.size() == 1 || (!shape.empty() && static_cast<int64_t>(s.size()) == shape[0]), mpath, label, ": ",
                   s.size(), " scales for shape ", shape_str(shape));
      it.scale = s.size() == 1 ? Tensor::scalar(s[0]) : Tensor::from_vector(s);
    }
    out.emplace_back(label, it.dequantize());
  }
  return out;
}

void load_exported_into(Module& float_model, const std::string& dir) {
  const std::string mpath = (std::filesystem::path(dir) / kManifest).string();
  NamedTensors tensors = load_exported(dir);
  nlohmann::json m = read_manifest(mpath);
  // Only conv/linear layers apply an input quantizer; attached to anything else it would be ignored.
  std::map<std::string, Module*> layers;
  for (const auto& q : quantized_layers(float_model)) layers[q.name] = q.layer;
  std::set<std::string> seen;
  for (size_t i = 0; i < m["activations"].size(); ++i) {
    const std::string label = "activations[" + std::to_string(i) + "]";
    const JsonFields f(m["activations"][i], mpath, label);
    const std::string layer = f.string("layer");
    auto it = layers.find(layer);
    LOWBIT_CHECK(it != layers.end(), mpath, label, ": activation quantizer of layer '", layer,
                 "': no conv or linear layer of that name in the model");
    LOWBIT_CHECK(seen.insert(layer).second, mpath, label, ": a second activation quantizer for layer '", layer, "'");
    LOWBIT_CHECK(!activation_quantizer(*it->second) && !weight_quantizer(*it->second), mpath, label, ": layer '", layer,
                 "' already has quantizers; load an export into a float model");
    check_method(f, mpath, label);
    QuantSpec spec;
    spec.method = f.string("method");
    spec.role = QuantRole::activation;
    spec.bits = static_cast<int>(f.integer("bits", 1, 16));
    spec.is_signed = f.boolean("signed");
    const GridRange r = read_grid(f, mpath, layer, spec.bits, spec.is_signed);
    const float alpha = f.positive_float("scale");
    attach_quantizers(*it->second, nullptr, std::make_shared<ExportedActQuantizer>(spec, r, alpha));
  }
  LoadReport rep = float_model.load_state_dict(tensors, false);
  std::string problems;
  for (const auto& n : rep.missing)
    if (!inside_quantizer(n)) problems += " missing " + n + ";";
  for (const auto& n : rep.unexpected) problems += " unexpected " + n + ";";
  for (const auto& s : rep.shape_mismatch) problems += " shape of " + s.name + ";";
  LOWBIT_CHECK(problems.empty(), dir, "the export does not fit the model:", problems);
}

}  // namespace lowbit
