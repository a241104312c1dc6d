// Broadcast iteration for CPU kernels: the output's index space with each operand's
// strides (0 on broadcast axes), adjacent axes merged where every operand allows it.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "../parallel.h"
#include "../shape.h"

namespace lowbit::cpu {

template <size_t N>
struct BroadcastPlan {
  Shape dims;                                  // coalesced output dims (at least one)
  std::array<std::vector<int64_t>, N> strides;  // per operand, in elements, per coalesced dim
  int64_t numel = 1;
};

// Operand strides of `in` broadcast to `out` (right-aligned, 0 where in has size 1).
inline std::vector<int64_t> broadcast_strides(const Shape& in, const Shape& out) {
  std::vector<int64_t> st(out.size(), 0);
  Shape cs = contiguous_strides(in);
  size_t off = out.size() - in.size();
  for (size_t i = 0; i < in.size(); ++i) st[off + i] = in[i] == 1 ? 0 : cs[i];
  return st;
}

template <size_t N>
BroadcastPlan<N> make_plan(const Shape& out, const std::array<const Shape*, N>& ins) {
  BroadcastPlan<N> p;
  std::array<std::vector<int64_t>, N> st;
  for (size_t k = 0; k < N; ++k) st[k] = broadcast_strides(*ins[k], out);
  p.numel = lowbit::numel(out);
  // Walk from the innermost axis outwards, merging axis i into the current one when
  // every operand's stride over axis i equals its stride times the current extent.
  for (size_t i = out.size(); i-- > 0;) {
    if (out[i] == 1) continue;
    if (!p.dims.empty()) {
      bool merge = true;
      for (size_t k = 0; k < N && merge; ++k) merge = st[k][i] == p.strides[k].back() * p.dims.back();
      if (merge) {
        p.dims.back() *= out[i];
        continue;
      }
    }
    p.dims.push_back(out[i]);
    for (size_t k = 0; k < N; ++k) p.strides[k].push_back(st[k][i]);
  }
  if (p.dims.empty()) {
    p.dims.push_back(1);
    for (size_t k = 0; k < N; ++k) p.strides[k].push_back(0);
  }
  // Stored innermost-first; flip to outermost-first.
  std::reverse(p.dims.begin(), p.dims.end());
  for (auto& s : p.strides) std::reverse(s.begin(), s.end());
  return p;
}

// Calls f(out_offset, {operand offsets}, inner_count, {operand inner strides}) for every
// run of the innermost dim, in parallel over runs (output is contiguous).
template <size_t N, class F>
void for_each_run(const BroadcastPlan<N>& p, int64_t grain, F&& f) {
  const size_t nd = p.dims.size();
  const int64_t inner = p.dims[nd - 1];
  const int64_t runs = p.numel / std::max<int64_t>(inner, 1);
  std::array<int64_t, N> inner_stride;
  for (size_t k = 0; k < N; ++k) inner_stride[k] = p.strides[k][nd - 1];
  parallel_for(runs, std::max<int64_t>(1, grain / std::max<int64_t>(inner, 1)), [&](int64_t b, int64_t e) {
    // Decompose the first run index into outer coordinates, then step an odometer.
    std::vector<int64_t> idx(nd, 0);
    int64_t r = b;
    for (size_t d = nd - 1; d-- > 0;) {
      idx[d] = r % p.dims[d];
      r /= p.dims[d];
    }
    std::array<int64_t, N> off{};
    for (size_t k = 0; k < N; ++k)
      for (size_t d = 0; d + 1 < nd; ++d) off[k] += idx[d] * p.strides[k][d];
    for (int64_t run = b; run < e; ++run) {
      f(run * inner, off, inner, inner_stride);
      for (size_t d = nd - 1; d-- > 0;) {
        ++idx[d];
        for (size_t k = 0; k < N; ++k) off[k] += p.strides[k][d];
        if (idx[d] < p.dims[d]) break;
        for (size_t k = 0; k < N; ++k) off[k] -= p.strides[k][d] * p.dims[d];
        idx[d] = 0;
      }
    }
  });
}

}  // namespace lowbit::cpu
