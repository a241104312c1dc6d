// CUDA logistic-bin quantizer kernels: CPQ forward (nearest surviving code: the CPU's value bit
// for bit) and the multi-class STE backward fused in one pass over the grid boundaries per
// element (no 2^b-wide temporaries), DropBits masks from the CPU's Philox counters (bit for bit)
// and RQ's concrete sample and gradient with the CPU's Gumbel draws. Parameter gradients are
// summed per block of 4096 elements of one channel (as the CPU's items) by a fixed-order tree
// in shared memory, then per channel in item order on the host: deterministic, no atomics.
// The backward visits every boundary of the grid (the CPU skips those beyond 20 sigmas, whose
// masses are below float resolution), so it matches the CPU to rounding, not bit for bit.
#include <cfloat>

#include "../../core/cuda/common.cuh"
#include "../../core/cuda/philox.cuh"
#include "../kernels/cpq.h"

namespace lowbit::cuda {
namespace {

constexpr int64_t kItem = 4096;  // elements per reduction block (the CPU's items)
constexpr float kTinyMass = 1e-30f;
constexpr int kMaxGroups = 16;

// The tables of one call, uploaded as one f32 tensor: alpha, sigma, then per code the weight,
// the drop bit and the gate group (small integers, exact in f32).
struct Tables {
  const float* alpha;
  const float* sigma;
  const float* weight;  // null: all 1
  const float* drop;    // null: none dropped
  const float* group;   // null: no gate gradients
  int64_t alpha_size, sigma_size, inner;
  int n;  // codes
  float qmin, qmax;
  const uint8_t* elem_mask;
  int tensor_mask;
  bool any;  // CodeMask::any()
};

struct Uploaded {
  Tensor storage;
  Tables t{};
};

Uploaded upload(const Tensor& x, const CpqArgs& a, const Tensor& elem_mask, const int32_t* group) {
  const int n = static_cast<int>(a.range.levels());
  LOWBIT_CHECK(a.alpha_size == 1 || a.alpha_size == a.channels, "cpq kernel", "alpha has ", a.alpha_size,
               " entries for ", a.channels, " channels");
  LOWBIT_CHECK(a.sigma_size == 1 || a.sigma_size == a.channels, "cpq kernel", "sigma has ", a.sigma_size,
               " entries for ", a.channels, " channels");
  LOWBIT_CHECK(a.channels >= 1 && x.numel() % a.channels == 0, "cpq kernel", x.numel(), " elements do not split into ",
               a.channels, " channels");
  LOWBIT_CHECK(!elem_mask.defined() || (elem_mask.device() == x.device() && elem_mask.numel() == x.numel()),
               "cpq kernel", "the element mask must match x (size and device)");
  std::vector<float> v(a.alpha, a.alpha + a.alpha_size);
  v.insert(v.end(), a.sigma, a.sigma + a.sigma_size);
  const size_t w_off = v.size();
  if (a.mask.weight) v.insert(v.end(), a.mask.weight, a.mask.weight + n);
  const size_t d_off = v.size();
  if (a.mask.drop_bit)
    for (int k = 0; k < n; ++k) v.push_back(static_cast<float>(a.mask.drop_bit[k]));
  const size_t g_off = v.size();
  if (group)
    for (int k = 0; k < n; ++k) v.push_back(static_cast<float>(group[k]));
  Uploaded u;
  u.storage = Tensor::from_vector(v).to(x.device());
  const float* p = u.storage.data<float>();
  Tables& t = u.t;
  t.alpha = p;
  t.sigma = p + a.alpha_size;
  t.weight = a.mask.weight ? p + w_off : nullptr;
  t.drop = a.mask.drop_bit ? p + d_off : nullptr;
  t.group = group ? p + g_off : nullptr;
  t.alpha_size = a.alpha_size;
  t.sigma_size = a.sigma_size;
  t.inner = x.numel() / a.channels;
  t.n = n;
  t.qmin = static_cast<float>(a.range.qmin);
  t.qmax = static_cast<float>(a.range.qmax);
  t.elem_mask = elem_mask.defined() ? elem_mask.data<uint8_t>() : nullptr;
  t.tensor_mask = a.mask.tensor_mask;
  t.any = a.mask.weight || (a.mask.drop_bit && (t.elem_mask || a.mask.tensor_mask));
  return u;
}

// code_v of quant/cpq_lane_kernel.h: the weight of code k for mask byte mk.
__device__ __forceinline__ float code_v(const Tables& t, int k, int mk) {
  const float w = t.weight ? t.weight[k] : 1.0f;
  return (t.drop && (mk & static_cast<int>(t.drop[k]))) ? 0.0f : w;
}

// nearest_codes of quant/cpq_lane_kernel.h for one element: the 0-based code.
__device__ __forceinline__ float nearest_code(const Tables& t, float u, int mk) {
  const float lo = t.qmin, hi = t.qmax;
  const float mx = u < lo ? lo : u;  // std::max(u, lo): NaN stays NaN
  const float cl = hi < mx ? hi : mx;
  float c = rintf(cl) - lo;
  c = c == c ? c : 0.0f;
  if (!t.any || code_v(t, static_cast<int>(c), mk) > 0) return c;
  float best = INFINITY;
  for (int k = 0; k < t.n; ++k) {
    const float d = fabsf(u - (lo + static_cast<float>(k)));
    if (code_v(t, k, mk) > 0 && d < best) {
      best = d;
      c = static_cast<float>(k);
    }
  }
  return c;
}

__device__ __forceinline__ int mask_of(const Tables& t, int64_t i) {
  return t.elem_mask ? static_cast<int>(t.elem_mask[i]) : t.tensor_mask;
}

__global__ void cpq_forward_kernel(const float* x, Tables t, float* y, int64_t numel) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < numel; i += int64_t{blockDim.x} * gridDim.x) {
    const float alpha = t.alpha[t.alpha_size == 1 ? 0 : i / t.inner];
    const float u = x[i] / alpha;
    const float code = nearest_code(t, u, mask_of(t, i));
    y[i] = isnan(u) ? u : (code + t.qmin) * alpha;  // NaN stays NaN
  }
}

// Sums `count` per-thread doubles acc[0..count) over the block by a fixed tree; thread 0 writes
// them to out[0..count).
__device__ void block_sums(const double* acc, int count, double* red, double* out) {
  for (int q = 0; q < count; ++q) {
    red[threadIdx.x] = acc[q];
    __syncthreads();
    for (int s = static_cast<int>(blockDim.x) / 2; s > 0; s >>= 1) {  // blockDim.x: a power of 2
      if (static_cast<int>(threadIdx.x) < s) red[threadIdx.x] += red[threadIdx.x + s];
      __syncthreads();
    }
    if (threadIdx.x == 0) out[q] = red[0];
    __syncthreads();
  }
}

// One block per item (up to kItem elements of one channel). Per element, the boundary pass of
// lane_sums (quant/cpq_lane_kernel.h) over the whole grid, then the gradients of cpq_backward.
__global__ void cpq_backward_kernel(const float* x, const float* dy, Tables t, int64_t items_per_channel,
                                    bool alpha_direct, int groups, float* dx, double* partial) {
  __shared__ double red[kThreads];
  const int64_t item = blockIdx.x;
  const int64_t c = item / items_per_channel;
  const int64_t begin = c * t.inner + (item % items_per_channel) * kItem;
  const int64_t end = begin + kItem < (c + 1) * t.inner ? begin + kItem : (c + 1) * t.inner;
  const float alpha = t.alpha[t.alpha_size == 1 ? 0 : c], sigma = t.sigma[t.sigma_size == 1 ? 0 : c];
  const float s = sigma / alpha, inv_s = alpha / sigma, inv_sc = 1.0f / s;
  const float fn = static_cast<float>(t.n), qmin = t.qmin;
  double acc[2 + kMaxGroups];
  for (int q = 0; q < 2 + groups; ++q) acc[q] = 0;
  float Sg[kMaxGroups], Kg[kMaxGroups];
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    const int mk = mask_of(t, i);
    const float u = x[i] / alpha, z = u - qmin;
    // the bin holding x (either one on a boundary), clamped to [-1, n]; NaN -> -1
    const float kxr = rintf(fminf(fmaxf(z, -2.0f), fn + 1.0f));
    const float kx = kxr == kxr ? fminf(fmaxf(kxr, -1.0f), fn) : -1.0f;
    const float code = nearest_code(t, u, mk);
    const float om = fmaxf(fabsf(z - code) - 0.5f, 0.0f) * inv_s;
    const float eom = fast_exp(-om);
    float tp = 0, vp = 0, R = 0, N = 0, A0 = 0, B0 = 0, A1 = 0, B1 = 0;
    for (int g = 0; g < groups; ++g) Sg[g] = Kg[g] = 0.0f;
    for (int j = 0; j <= t.n; ++j) {
      const bool has_bin = j < t.n;
      const float vj = has_bin ? code_v(t, j, mk) : 0.0f;
      const float fj = static_cast<float>(j), fk = fj - 1.0f;
      const float d = fj - 0.5f - z;
      const float w = tail_exp(om - fabsf(d) * inv_s);
      const float i1 = 1.0f / (1.0f + w * eom);
      const float T = w * i1, P = T * i1;
      const float vk = vp;
      const float raw = j == 0 ? 0.0f : (fk < kx ? T - tp : (fk > kx ? tp - T : 1.0f - tp - T));
      const float r = raw * vk;
      const float fkc = fk - code, fjc = fj - code;  // relative to the nearest code, as the CPU
      R += r;
      N += fkc * r;
      if (groups > 0 && j > 0) {
        const int gk = static_cast<int>(t.group[j - 1]);
        if (gk >= 0 && gk < groups && vk > 0.0f) {
          Sg[gk] += raw;
          Kg[gk] += fkc * raw;
        }
      }
      const float cA = vk * fkc - vj * fjc, cB = vk - vj;
      A0 += P * cA;
      B0 += P * cB;
      A1 += P * cA * d;
      B1 += P * cB * d;
      tp = T;
      vp = vj;
    }
    // dm/dx = -D0/(sR), dm/dalpha = (D1 + u D0)/(sR), dm/dsigma = -D1/(s^2 R)
    const bool ok = R > kTinyMass && R <= FLT_MAX;  // also rejects NaN
    const float Rs = ok ? R : 1.0f;
    const float mu = N / Rs;
    const float d0 = A0 - mu * B0, d1 = A1 - mu * B1;
    const float inv = ok ? inv_sc / Rs : 0.0f;
    const float g = dy[i];
    if (dx) dx[i] = g * (-d0 * inv);
    float ga = (d1 + u * d0) * inv;
    const float gs = -d1 * inv * inv_sc;
    if (alpha_direct) ga += code + qmin;
    acc[0] += static_cast<double>(g * ga);
    acc[1] += static_cast<double>(g * gs);
    if (ok)
      for (int q = 0; q < groups; ++q) acc[2 + q] += static_cast<double>(g * alpha * (Kg[q] - N / R * Sg[q]) / R);
  }
  block_sums(acc, 2 + groups, red, partial + item * (2 + groups));
}

__global__ void dropbits_kernel(uint64_t key, uint64_t stream_id, uint64_t base, DropBitsDraw d, uint8_t* out,
                                int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{blockDim.x} * gridDim.x) {
    const uint4 r = philox4x32_device(key, stream_id, base + static_cast<uint64_t>(i));
    out[i] = dropbits_mask(r.x, r.y, r.z, r.w, d.bits, d.threshold);
  }
}

struct RqParams {
  const float* alpha;
  const float* sigma;
  int64_t alpha_size, sigma_size, inner, items_per_channel;
  RqElementSetup e;
  uint64_t key, stream_id, base;
};

// One block per item; per element rq_element (quant/kernels/logistic_math.h, as the CPU's
// rq_run): y when y is given, else dx and the item's alpha/sigma sums.
__global__ void rq_kernel(const float* x, const float* dy, RqParams p, float* y, float* dx, double* partial) {
  __shared__ double red[kThreads];
  const int64_t item = blockIdx.x;
  const int64_t c = item / p.items_per_channel;
  const int64_t begin = c * p.inner + (item % p.items_per_channel) * kItem;
  const int64_t end = begin + kItem < (c + 1) * p.inner ? begin + kItem : (c + 1) * p.inner;
  const float alpha = p.alpha[p.alpha_size == 1 ? 0 : c], sigma = p.sigma[p.sigma_size == 1 ? 0 : c];
  const uint64_t nb = static_cast<uint64_t>((p.e.levels + 3) / 4);
  double acc[2] = {0, 0};
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    const uint64_t first = p.base + static_cast<uint64_t>(i) * nb;
    const RqElementResult r =
        rq_element(x[i], dy ? dy[i] : 0.0f, dy != nullptr, alpha, sigma, p.e, [&](int j, uint32_t* w) {
          const uint4 b = philox4x32_device(p.key, p.stream_id, first + static_cast<uint64_t>(j));
          w[0] = b.x, w[1] = b.y, w[2] = b.z, w[3] = b.w;
        });
    if (y) y[i] = r.y;
    if (dx) dx[i] = r.dx;
    acc[0] += static_cast<double>(r.dalpha);
    acc[1] += static_cast<double>(r.dsigma);
  }
  if (partial) block_sums(acc, 2, red, partial + item * 2);
}

// Per channel (or the one alpha/sigma entry) sums of the items' partials, in item order.
void add_partials(const Tensor& partial, int64_t per, int64_t channels, int stride, int q, double* out,
                  int64_t out_size) {
  const double* hp = static_cast<const double*>(partial.raw_data());
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t k = 0; k < per; ++k) out[out_size == 1 ? 0 : c] += hp[(c * per + k) * stride + q];
}

}  // namespace

void cpq_forward(const Tensor& x, const CpqArgs& a, const Tensor& elem_mask, Tensor& y) {
  const int64_t n = x.numel();
  const Uploaded u = upload(x, a, elem_mask, nullptr);
  if (n == 0) return;
  const int dev = x.device().index;
  DeviceGuard g(dev);
  cpq_forward_kernel<<<blocks_for(n), kThreads, 0, stream(dev)>>>(x.data<float>(), u.t, y.data<float>(), n);
  LOWBIT_CUDA_LAUNCH_CHECK();
}

void cpq_backward(const Tensor& x, const Tensor& dy, const CpqArgs& a, const Tensor& elem_mask, const CpqGradOut& out,
                  Tensor& dx) {
  LOWBIT_CHECK(!out.dweight || (out.group && out.groups >= 1 && out.groups <= kMaxGroups), "cpq kernel",
               "weight gradients need a code group table of at most ", kMaxGroups, " groups");
  const int groups = out.dweight ? out.groups : 0;
  const Uploaded u = upload(x, a, elem_mask, out.dweight ? out.group : nullptr);
  if (out.dalpha) std::fill(out.dalpha, out.dalpha + a.alpha_size, 0.0);
  if (out.dsigma) std::fill(out.dsigma, out.dsigma + a.sigma_size, 0.0);
  if (out.dweight) std::fill(out.dweight, out.dweight + groups, 0.0);
  const int64_t n = x.numel();
  if (n == 0) return;
  const int dev = x.device().index;
  DeviceGuard g(dev);
  const int64_t per = (u.t.inner + kItem - 1) / kItem, items = per * a.channels;
  const int stride = 2 + groups;
  Tensor partial = Tensor::empty({items * stride}, DType::i64, x.device());  // 8-byte storage for the doubles
  cpq_backward_kernel<<<static_cast<unsigned>(items), kThreads, 0, stream(dev)>>>(
      x.data<float>(), dy.data<float>(), u.t, per, out.alpha_direct, groups, dx.defined() ? dx.data<float>() : nullptr,
      static_cast<double*>(partial.raw_data()));
  LOWBIT_CUDA_LAUNCH_CHECK();
  const Tensor host = partial.to(Device::cpu());
  if (out.dalpha) add_partials(host, per, a.channels, stride, 0, out.dalpha, a.alpha_size);
  if (out.dsigma) add_partials(host, per, a.channels, stride, 1, out.dsigma, a.sigma_size);
  for (int q = 0; q < groups; ++q) {
    double s = 0;
    add_partials(host, per, a.channels, stride, 2 + q, &s, 1);
    out.dweight[q] = s;
  }
}

void dropbits_masks(const Generator& gen, uint64_t base, const DropBitsDraw& d, Tensor& out) {
  const int64_t n = out.numel();
  if (n == 0) return;
  const int dev = out.device().index;
  DeviceGuard g(dev);
  dropbits_kernel<<<blocks_for(n), kThreads, 0, stream(dev)>>>(gen.key(), gen.stream(), base, d, out.data<uint8_t>(),
                                                               n);
  LOWBIT_CUDA_LAUNCH_CHECK();
}

namespace {
void rq_launch(const Tensor& x, const Tensor* dy, const RqArgs& a, float* y, float* dx, std::vector<double>* da,
               std::vector<double>* ds) {
  LOWBIT_CHECK(a.range.levels() <= kRqMaxLevels, "rq_concrete", "supports up to 8 bits");
  const int64_t n = x.numel(), channels = std::max(a.alpha_size, a.sigma_size);
  LOWBIT_CHECK(channels >= 1 && n % channels == 0, "rq_concrete", n, " elements do not split into ", channels,
               " channels");
  if (n == 0) return;
  std::vector<float> v(a.alpha, a.alpha + a.alpha_size);
  v.insert(v.end(), a.sigma, a.sigma + a.sigma_size);
  const Tensor tables = Tensor::from_vector(v).to(x.device());
  RqParams p;
  p.alpha = tables.data<float>();
  p.sigma = p.alpha + a.alpha_size;
  p.alpha_size = a.alpha_size;
  p.sigma_size = a.sigma_size;
  p.inner = n / channels;
  p.items_per_channel = (p.inner + kItem - 1) / kItem;
  p.e = rq_element_setup(a);
  p.key = a.gen.key();
  p.stream_id = a.gen.stream();
  p.base = a.base;
  const int64_t items = p.items_per_channel * channels;
  const int dev = x.device().index;
  DeviceGuard g(dev);
  Tensor partial = dy ? Tensor::empty({items * 2}, DType::i64, x.device()) : Tensor();
  rq_kernel<<<static_cast<unsigned>(items), kThreads, 0, stream(dev)>>>(
      x.data<float>(), dy ? dy->data<float>() : nullptr, p, y, dx,
      dy ? static_cast<double*>(partial.raw_data()) : nullptr);
  LOWBIT_CUDA_LAUNCH_CHECK();
  if (!dy) return;
  const Tensor host = partial.to(Device::cpu());
  add_partials(host, p.items_per_channel, channels, 2, 0, da->data(), static_cast<int64_t>(da->size()));
  add_partials(host, p.items_per_channel, channels, 2, 1, ds->data(), static_cast<int64_t>(ds->size()));
}
}  // namespace

void rq_forward(const Tensor& x, const RqArgs& a, Tensor& y) {
  rq_launch(x, nullptr, a, y.data<float>(), nullptr, nullptr, nullptr);
}

void rq_backward(const Tensor& x, const Tensor& dy, const RqArgs& a, Tensor& dx, std::vector<double>& dalpha,
                 std::vector<double>& dsigma) {
  rq_launch(x, &dy, a, nullptr, dx.data<float>(), &dalpha, &dsigma);
}

}  // namespace lowbit::cuda
