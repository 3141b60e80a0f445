// WASM SIMD kernels for training on TensorFlow.js's WASM backend.
//
// Built by kernels/build.sh into lib/wasm/simd_binary.ts. The module imports the
// backend's own memory, so every pointer below is an offset into the
// backend's heap (a tensor's data or scratch space the caller allocated).
// It has no data and uses no stack in linear memory: all state lives in
// locals, and build.sh fails if the output touches the stack pointer.
//
// Layouts are channels-last: `rows` rows of `C` floats, C a multiple of 4.
#include <wasm_simd128.h>

#define EXPORT(name) __attribute__((export_name(#name))) 

static inline v128_t high_half(v128_t v) { return wasm_i32x4_shuffle(v, v, 2, 3, 0, 1); }

// acc[0..3] += the four floats of v, in double precision.
static inline void accumulate(double* acc, v128_t v) {
  wasm_v128_store(acc, wasm_f64x2_add(wasm_v128_load(acc), wasm_f64x2_promote_low_f32x4(v)));
  wasm_v128_store(acc + 2, wasm_f64x2_add(wasm_v128_load(acc + 2),
                                          wasm_f64x2_promote_low_f32x4(high_half(v))));
}

// Per lane, which value of a 2×2 window (a b / c d) is the largest, the first
// in reading order on ties: one all-ones mask per position, exactly one set.
typedef struct { v128_t a, b, c, d; } window_masks;
static inline __attribute__((always_inline)) window_masks largest_of_window(v128_t a, v128_t b,
                                                                           v128_t c, v128_t d) {
  v128_t mb = wasm_f32x4_gt(b, a);
  v128_t best = wasm_v128_bitselect(b, a, mb);
  v128_t mc = wasm_f32x4_gt(c, best);
  best = wasm_v128_bitselect(c, best, mc);
  v128_t md = wasm_f32x4_gt(d, best);
  v128_t later = wasm_v128_or(mc, md);
  return (window_masks){
    .a = wasm_v128_not(wasm_v128_or(mb, later)),
    .b = wasm_v128_andnot(mb, later),
    .c = wasm_v128_andnot(mc, md),
    .d = md,
  };
}

// Per-channel statistics of x into scratch (sum, squares as doubles), then
// mean, variance, 1/std, and z = x·scale + shift = γ x̂ + β's scale and shift.
static void channel_stats(const float* x, int rows, int C, const float* gamma, const float* beta,
                          float epsilon, double* sums, float* scale, float* shift, float* mean,
                          float* variance, float* inv_std) {
  double* squares = sums + C;
  // Four channels at a time down all rows, the sums in registers: the same
  // additions per channel, in the same order, as row by row over all
  // channels with the sums in memory, in less time (measured in
  // bench:profile; a backward pass ordered so took longer: it writes as well).
  for (int c = 0; c < C; c += 4) {
    v128_t sum_lo = wasm_f64x2_splat(0), sum_hi = sum_lo, sq_lo = sum_lo, sq_hi = sum_lo;
    for (int o = c; o < rows * C; o += C) {
      v128_t v = wasm_v128_load(x + o);
      v128_t lo = wasm_f64x2_promote_low_f32x4(v), hi = wasm_f64x2_promote_low_f32x4(high_half(v));
      sum_lo = wasm_f64x2_add(sum_lo, lo), sum_hi = wasm_f64x2_add(sum_hi, hi);
      sq_lo = wasm_f64x2_add(sq_lo, wasm_f64x2_mul(lo, lo));
      sq_hi = wasm_f64x2_add(sq_hi, wasm_f64x2_mul(hi, hi));
    }
    wasm_v128_store(sums + c, sum_lo), wasm_v128_store(sums + c + 2, sum_hi);
    wasm_v128_store(squares + c, sq_lo), wasm_v128_store(squares + c + 2, sq_hi);
  }
  for (int c = 0; c < C; c++) {
    double m = sums[c] / rows, v = squares[c] / rows - m * m;
    if (v < 0) v = 0;
    float inv = (float)(1.0 / __builtin_sqrt(v + epsilon));
    mean[c] = (float)m;
    variance[c] = (float)v;
    inv_std[c] = inv;
    scale[c] = gamma[c] * inv;
    shift[c] = beta[c] - (float)m * gamma[c] * inv;
  }
}

// Batch norm, training mode, forward. scratch: 2*C doubles, then 2*C floats.
// Writes x̂ = (x − μ)/√(σ² + ε), y = γ x̂ + β, and per channel μ, σ² (biased), 1/√(σ² + ε).
EXPORT(bn_forward)
void bn_forward(const float* x, int rows, int C, const float* gamma, const float* beta,
                float epsilon, double* scratch, float* y, float* xhat, float* mean,
                float* variance, float* inv_std) {
  float* scale = (float*)(scratch + 2 * C);
  channel_stats(x, rows, C, gamma, beta, epsilon, scratch, scale, scale + C, mean, variance,
                inv_std);
  for (int r = 0; r < rows; r++) {
    const int o = r * C;
    for (int c = 0; c < C; c += 4) {
      v128_t h = wasm_f32x4_mul(wasm_f32x4_sub(wasm_v128_load(x + o + c), wasm_v128_load(mean + c)),
                                wasm_v128_load(inv_std + c));
      wasm_v128_store(xhat + o + c, h);
      wasm_v128_store(y + o + c, wasm_f32x4_add(wasm_f32x4_mul(h, wasm_v128_load(gamma + c)),
                                                wasm_v128_load(beta + c)));
    }
  }
}

// Batch norm, training mode, gradient. scratch: 2*C doubles, then 3*C floats.
// ∂β = Σ ∂y, ∂γ = Σ ∂y x̂, ∂x = γ/(N√(σ² + ε)) (N ∂y − ∂β − x̂ ∂γ).
EXPORT(bn_backward)
void bn_backward(const float* dy, const float* xhat, int rows, int C, const float* gamma,
                 const float* inv_std, double* scratch, float* dx, float* dgamma, float* dbeta) {
  double* sum_dy = scratch;
  double* sum_dyh = scratch + C;
  float* k = (float*)(scratch + 2 * C);
  float* a = k + C;
  float* b = a + C;
  for (int c = 0; c < 2 * C; c++) scratch[c] = 0;
  for (int r = 0; r < rows; r++) {
    const int o = r * C;
    for (int c = 0; c < C; c += 4) {
      v128_t d = wasm_v128_load(dy + o + c);
      accumulate(sum_dy + c, d);
      accumulate(sum_dyh + c, wasm_f32x4_mul(d, wasm_v128_load(xhat + o + c)));
    }
  }
  for (int c = 0; c < C; c++) {
    dbeta[c] = (float)sum_dy[c];
    dgamma[c] = (float)sum_dyh[c];
    k[c] = gamma[c] * inv_std[c];
    a[c] = (float)(sum_dy[c] / rows);
    b[c] = (float)(sum_dyh[c] / rows);
  }
  for (int r = 0; r < rows; r++) {
    const int o = r * C;
    for (int c = 0; c < C; c += 4) {
      v128_t t = wasm_f32x4_sub(wasm_f32x4_sub(wasm_v128_load(dy + o + c), wasm_v128_load(a + c)),
                                wasm_f32x4_mul(wasm_v128_load(xhat + o + c), wasm_v128_load(b + c)));
      wasm_v128_store(dx + o + c, wasm_f32x4_mul(t, wasm_v128_load(k + c)));
    }
  }
}

// Max-pool gradient for 2×2 windows, stride 2, no padding, every window
// inside the input. Each output gradient goes to the largest of its window's
// four inputs, the first in reading order on ties.
EXPORT(max_pool_grad_2x2)
void max_pool_grad_2x2(const float* x, const float* dy, float* dx, int batch, int H, int W, int C,
                       int OH, int OW) {
  const int size = batch * H * W * C;
  const v128_t zero = wasm_f32x4_splat(0);
  for (int i = 0; i < size; i += 4) wasm_v128_store(dx + i, zero);
  const int row = W * C;
  for (int n = 0; n < batch; n++) {
    for (int oh = 0; oh < OH; oh++) {
      const float* g = dy + ((n * OH + oh) * OW) * C;
      int i00 = n * H * row + 2 * oh * row;
      for (int ow = 0; ow < OW; ow++, i00 += 2 * C, g += C) {
        for (int c = 0; c < C; c += 4) {
          const int ia = i00 + c, ib = ia + C, ic = ia + row, id = ic + C;
          v128_t a = wasm_v128_load(x + ia), b = wasm_v128_load(x + ib);
          v128_t cc = wasm_v128_load(x + ic), d = wasm_v128_load(x + id);
          const window_masks w = largest_of_window(a, b, cc, d);
          v128_t v = wasm_v128_load(g + c);
          wasm_v128_store(dx + ia, wasm_v128_and(v, w.a));
          wasm_v128_store(dx + ib, wasm_v128_and(v, w.b));
          wasm_v128_store(dx + ic, wasm_v128_and(v, w.c));
          wasm_v128_store(dx + id, wasm_v128_and(v, w.d));
        }
      }
    }
  }
}

// Patches of a stride-1 convolution, transposed, for its filter gradient:
// out[(ky·KW + kx)·Ci + ci][m] = x[ci][n][oy + ky − top][ox + kx − left] (0 outside),
// m = (n·OH + oy)·OW + ox, from the input in channel-major order
// xt[ci][n][y][x]. Then dW = out · dy, one matrix product.
EXPORT(im2col_t)
void im2col_t(const float* xt, int N, int H, int W, int Ci, int KH, int KW, int top, int left,
              int OH, int OW, float* out) {
  const int M = N * OH * OW;
  for (int ky = 0; ky < KH; ky++) {
    for (int kx = 0; kx < KW; kx++) {
      // Columns ox with 0 ≤ ox + kx − left < W.
      int from = left - kx, to = W + left - kx;
      if (from < 0) from = 0;
      if (to > OW) to = OW;
      if (to < from) to = from;
      for (int ci = 0; ci < Ci; ci++) {
        float* dst = out + ((ky * KW + kx) * Ci + ci) * M;
        const float* plane = xt + ci * N * H * W;
        for (int n = 0; n < N; n++) {
          for (int oy = 0; oy < OH; oy++, dst += OW) {
            const int iy = oy + ky - top;
            if (iy < 0 || iy >= H) {
              for (int ox = 0; ox < OW; ox++) dst[ox] = 0;
              continue;
            }
            const float* src = plane + (n * H + iy) * W + kx - left;
            for (int ox = 0; ox < from; ox++) dst[ox] = 0;
            for (int ox = from; ox < to; ox++) dst[ox] = src[ox];
            for (int ox = to; ox < OW; ox++) dst[ox] = 0;
          }
        }
      }
    }
  }
}

// Batch norm (training), ReLU and 2×2 max-pool (stride 2) in one:
// pooled = max over each window of relu(γ x̂ + β). x is [N,H,W,C]; pooled
// [N,H/2,W/2,C], rounded down (no padding, "valid"), or with ceil_mode set
// rounded up ("same" padding: an odd last row or column is a window of its
// own; after ReLU, max over the padded window equals max over its values).
// An edge window loads its missing values from the one it has (a twice).
// scratch: 2*C doubles, then 2*C floats.
EXPORT(bn_relu_pool_forward)
void bn_relu_pool_forward(const float* x, int N, int H, int W, int C, int ceil_mode, const float* gamma,
                          const float* beta, float epsilon, double* scratch, float* pooled,
                          float* mean, float* variance, float* inv_std) {
  float* scale = (float*)(scratch + 2 * C);
  float* shift = scale + C;
  channel_stats(x, N * H * W, C, gamma, beta, epsilon, scratch, scale, shift, mean, variance,
                inv_std);
  const int OH = ceil_mode ? (H + 1) / 2 : H / 2, OW = ceil_mode ? (W + 1) / 2 : W / 2;
  const int row = W * C;
  const v128_t zero = wasm_f32x4_splat(0);
  float* out = pooled;
  for (int n = 0; n < N; n++) {
    for (int oh = 0; oh < OH; oh++) {
      const int down = 2 * oh + 1 < H ? row : 0;
      int i00 = n * H * row + 2 * oh * row;
      for (int ow = 0; ow < OW; ow++, i00 += 2 * C, out += C) {
        const int right = 2 * ow + 1 < W ? C : 0;
        for (int c = 0; c < C; c += 4) {
          const v128_t s = wasm_v128_load(scale + c), t = wasm_v128_load(shift + c);
          const int ia = i00 + c;
          v128_t a = wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(x + ia), s), t);
          v128_t b = wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(x + ia + right), s), t);
          v128_t cc = wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(x + ia + down), s), t);
          v128_t d = wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(x + ia + down + right), s), t);
          v128_t m = wasm_f32x4_max(wasm_f32x4_max(a, b), wasm_f32x4_max(cc, d));
          wasm_v128_store(out + c, wasm_f32x4_max(m, zero));
        }
      }
    }
  }
}

// Gradient of bn_relu_pool_forward. The pooled gradient goes to the largest
// z = γ x̂ + β of each window (the first on ties, so a value loaded twice in
// an edge window wins as its first copy; the stores run last to first so
// that the winning copy is written last) where that z > 0; then the
// batch-norm gradient of that sparse ∂z, to every element of x:
// ∂x = γ/(N√(σ² + ε)) (N ∂z − Σ∂z − x̂ Σ∂z x̂), ∂γ = Σ ∂z x̂, ∂β = Σ ∂z.
// scratch: 2*C doubles, then 5*C floats.
EXPORT(bn_relu_pool_backward)
void bn_relu_pool_backward(const float* x, const float* dpooled, int N, int H, int W, int C,
                           int ceil_mode, const float* gamma, const float* beta, const float* mean,
                           const float* inv_std, double* scratch, float* dx, float* dgamma,
                           float* dbeta) {
  double* sum_dz = scratch;
  double* sum_dzh = scratch + C;
  float* scale = (float*)(scratch + 2 * C);
  float* shift = scale + C;
  float* k = shift + C;
  float* a = k + C;
  float* b = a + C;
  for (int c = 0; c < 2 * C; c++) scratch[c] = 0;
  for (int c = 0; c < C; c++) {
    scale[c] = gamma[c] * inv_std[c];
    shift[c] = beta[c] - mean[c] * gamma[c] * inv_std[c];
  }
  const int OH = ceil_mode ? (H + 1) / 2 : H / 2, OW = ceil_mode ? (W + 1) / 2 : W / 2;
  const int row = W * C, size = N * H * W * C;
  const v128_t zero = wasm_f32x4_splat(0);
  if (2 * OH < H || 2 * OW < W) { // a row or column that no window covers
    for (int i = 0; i < size; i += 4) wasm_v128_store(dx + i, zero);
  }
  // Pass 1: ∂z into dx, per window; its sums.
  const float* g = dpooled;
  for (int n = 0; n < N; n++) {
    for (int oh = 0; oh < OH; oh++) {
      const int down = 2 * oh + 1 < H ? row : 0;
      int i00 = n * H * row + 2 * oh * row;
      for (int ow = 0; ow < OW; ow++, i00 += 2 * C, g += C) {
        const int right = 2 * ow + 1 < W ? C : 0;
        for (int c = 0; c < C; c += 4) {
          const v128_t s = wasm_v128_load(scale + c), t = wasm_v128_load(shift + c);
          const int ia = i00 + c, ib = ia + right, ic = ia + down, id = ic + right;
          v128_t xa = wasm_v128_load(x + ia), xb = wasm_v128_load(x + ib);
          v128_t xc = wasm_v128_load(x + ic), xd = wasm_v128_load(x + id);
          v128_t za = wasm_f32x4_add(wasm_f32x4_mul(xa, s), t);
          v128_t zb = wasm_f32x4_add(wasm_f32x4_mul(xb, s), t);
          v128_t zc = wasm_f32x4_add(wasm_f32x4_mul(xc, s), t);
          v128_t zd = wasm_f32x4_add(wasm_f32x4_mul(xd, s), t);
          const window_masks w = largest_of_window(za, zb, zc, zd);
          v128_t best = wasm_f32x4_max(wasm_f32x4_max(za, zb), wasm_f32x4_max(zc, zd));
          // ReLU: nothing flows back where the window's largest z is ≤ 0.
          v128_t v = wasm_v128_and(wasm_v128_load(g + c), wasm_f32x4_gt(best, zero));
          wasm_v128_store(dx + id, wasm_v128_and(v, w.d));
          wasm_v128_store(dx + ic, wasm_v128_and(v, w.c));
          wasm_v128_store(dx + ib, wasm_v128_and(v, w.b));
          wasm_v128_store(dx + ia, wasm_v128_and(v, w.a));
          // The winner's x̂ = (z − β)/γ would divide by γ: use (x − μ)·r instead.
          v128_t xw = wasm_v128_or(wasm_v128_or(wasm_v128_and(xa, w.a), wasm_v128_and(xb, w.b)),
                                   wasm_v128_or(wasm_v128_and(xc, w.c), wasm_v128_and(xd, w.d)));
          v128_t m = wasm_v128_load(mean + c), r = wasm_v128_load(inv_std + c);
          accumulate(sum_dz + c, v);
          accumulate(sum_dzh + c, wasm_f32x4_mul(v, wasm_f32x4_mul(wasm_f32x4_sub(xw, m), r)));
        }
      }
    }
  }
  const int rows = N * H * W;
  for (int c = 0; c < C; c++) {
    dbeta[c] = (float)sum_dz[c];
    dgamma[c] = (float)sum_dzh[c];
    k[c] = gamma[c] * inv_std[c];
    a[c] = (float)(sum_dz[c] / rows);
    b[c] = (float)(sum_dzh[c] / rows);
  }
  // Pass 2: ∂x = k (∂z − a − x̂ b), x̂ = (x − μ) r.
  for (int i = 0; i < size; i += C) {
    for (int c = 0; c < C; c += 4) {
      v128_t h = wasm_f32x4_mul(wasm_f32x4_sub(wasm_v128_load(x + i + c), wasm_v128_load(mean + c)),
                                wasm_v128_load(inv_std + c));
      v128_t t = wasm_f32x4_sub(wasm_f32x4_sub(wasm_v128_load(dx + i + c), wasm_v128_load(a + c)),
                                wasm_f32x4_mul(h, wasm_v128_load(b + c)));
      wasm_v128_store(dx + i + c, wasm_f32x4_mul(t, wasm_v128_load(k + c)));
    }
  }
}
