// Direct 2-D convolution kernels (NHWC, stride 1) for training small
// convolutional networks: the forward convolution (and, with the filter
// rotated, the input gradient; with a bias and a ReLU for inference's folded
// layers) and the filter gradient.
//
// Both are one register-blocked loop over the same patch structure: output
// pixel m = (n, oy, ox) and filter row k = (ky, kx, ci) meet at
// xp[n][oy + ky][ox + kx][ci] of the input padded beforehand (pad_nhwc), so
// no bounds are checked inside. The output channels are the vector axis
// (Co a multiple of 8); each block keeps 4 × 8 sums in 8 registers and
// updates them with one multiply-add per input value and weight vector
// (block_4x8.h).
#include <wasm_simd128.h>

#include "block_4x8.h"

#define EXPORT(name) __attribute__((export_name(#name)))

// xp[n][y + top][x + left][c] = x[n][y][x][c], 0 elsewhere; xp is [N][Hp][Wp][C].
EXPORT(pad_nhwc)
void pad_nhwc(const float* x, int N, int H, int W, int C, int top, int left, int Hp, int Wp,
              float* xp) {
  const int row = Wp * C;
  for (int n = 0; n < N; n++) {
    for (int y = 0; y < Hp; y++) {
      float* dst = xp + (n * Hp + y) * row;
      const int iy = y - top;
      if (iy < 0 || iy >= H) {
        for (int i = 0; i < row; i++) dst[i] = 0;
        continue;
      }
      const float* src = x + (n * H + iy) * W * C;
      const int head = left * C, body = W * C;
      for (int i = 0; i < head; i++) dst[i] = 0;
      for (int i = 0; i < body; i++) dst[head + i] = src[i];
      for (int i = head + body; i < row; i++) dst[i] = 0;
    }
  }
}

// y[n][oy][ox][co] = Σ_{ky,kx,ci} xp[n][oy+ky][ox+kx][ci] · w[ky][kx][ci][co]
// for a padded input xp [N][Hp][Wp][Ci] (OH = Hp − KH + 1, OW = Wp − KW + 1),
// plus bias[co] when bias is not null, then max(·, 0) when relu is set
// (TensorFlow.js's FusedConv2D; the maximum keeps a NaN, as winograd.c's).
EXPORT(conv_forward)
void conv_forward(const float* xp, int N, int Hp, int Wp, int Ci, int KH, int KW,
                  const float* w, int Co, const float* bias, int relu, float* y) {
  const int OH = Hp - KH + 1, OW = Wp - KW + 1;
  const int tap = Ci * Co;  // weights of one (ky, kx)
  const v128_t zero = wasm_f32x4_splat(0);
  for (int n = 0; n < N; n++) {
    for (int oy = 0; oy < OH; oy++) {
      float* yrow = y + ((n * OH + oy) * OW) * Co;
      const float* xrow = xp + ((n * Hp + oy) * Wp) * Ci;
      for (int ox = 0; ox < OW; ox += 4) {
        // Up to 4 pixels; a missing one repeats the last and is not stored.
        const int px = OW - ox < 4 ? OW - ox : 4;
        const int p1 = (px > 1) * Ci, p2 = (px > 2 ? 2 : px - 1) * Ci;
        const int p3 = (px > 3 ? 3 : px - 1) * Ci;
        for (int co = 0; co < Co; co += 8) {
          ZERO_4x8();
          if (KH == 3 && KW == 3 && Ci == 1) {
            // A first layer's 3×3 filter over one channel: 9 taps, unrolled.
            for (int t = 0; t < 9; t++) {
              const float* xs = xrow + (t / 3) * Wp + ox + t % 3;
              const float* ws = w + t * Co + co;
              const v128_t w0 = wasm_v128_load(ws), w1 = wasm_v128_load(ws + 4);
              UPDATE_4x8(w0, w1, xs, xs + p1, xs + p2, xs + p3);
            }
          } else {
            for (int ky = 0; ky < KH; ky++) {
              for (int kx = 0; kx < KW; kx++) {
                const float* xs = xrow + (ky * Wp + ox + kx) * Ci;
                const float* ws = w + (ky * KW + kx) * tap + co;
                for (int ci = 0; ci < Ci; ci++, xs++, ws += Co) {
                  const v128_t w0 = wasm_v128_load(ws), w1 = wasm_v128_load(ws + 4);
                  UPDATE_4x8(w0, w1, xs, xs + p1, xs + p2, xs + p3);
                }
              }
            }
          }
          if (bias) {
            const v128_t b0 = wasm_v128_load(bias + co), b1 = wasm_v128_load(bias + co + 4);
            a00 = wasm_f32x4_add(a00, b0), a01 = wasm_f32x4_add(a01, b1);
            a10 = wasm_f32x4_add(a10, b0), a11 = wasm_f32x4_add(a11, b1);
            a20 = wasm_f32x4_add(a20, b0), a21 = wasm_f32x4_add(a21, b1);
            a30 = wasm_f32x4_add(a30, b0), a31 = wasm_f32x4_add(a31, b1);
          }
          if (relu) {
            a00 = wasm_f32x4_pmax(a00, zero), a01 = wasm_f32x4_pmax(a01, zero);
            a10 = wasm_f32x4_pmax(a10, zero), a11 = wasm_f32x4_pmax(a11, zero);
            a20 = wasm_f32x4_pmax(a20, zero), a21 = wasm_f32x4_pmax(a21, zero);
            a30 = wasm_f32x4_pmax(a30, zero), a31 = wasm_f32x4_pmax(a31, zero);
          }
          float* out = yrow + ox * Co + co;
          STORE_4x8(out, Co, px);
        }
      }
    }
  }
}

// Offset of filter row k = (ky, kx, ci) from a pixel's corner in xp.
static inline int patch_offset(int k, int KW, int Ci, int Wp) {
  const int ci = k % Ci, t = k / Ci;
  return ((t / KW) * Wp + t % KW) * Ci + ci;
}

// Bytes of dy and xp rows that one band of output rows of conv_filter_grad
// reads, at most (unless one row is more): small enough to stay in a 48 KiB L1
// cache while every block of the filter gradient passes over the band.
#define BAND_BYTES 16384

// dw[ky][kx][ci][co] = Σ_{n,oy,ox} xp[n][oy+ky][ox+kx][ci] · dy[n][oy][ox][co]
// for a padded input xp [N][Hp][Wp][Ci] and dy [N][OH][OW][Co]. The sum runs
// band by band of output rows: each 4 × 8 block of dw passes over the band
// (from the L1 cache) and adds it to its sums, kept in dw between bands.
EXPORT(conv_filter_grad)
void conv_filter_grad(const float* xp, int N, int Hp, int Wp, int Ci, int KH, int KW,
                      const float* dy, int Co, float* dw) {
  const int OH = Hp - KH + 1, OW = Wp - KW + 1, K = KH * KW * Ci;
  const int row_bytes = 4 * (OW * Co + Wp * Ci);
  const int band = BAND_BYTES / row_bytes > 1 ? BAND_BYTES / row_bytes : 1;
  for (int n = 0; n < N; n++) {
    for (int oy0 = 0; oy0 < OH; oy0 += band) {
      const int oy1 = OH - oy0 < band ? OH : oy0 + band;
      const int first = n == 0 && oy0 == 0;
      for (int k = 0; k < K; k += 4) {
        // Up to 4 filter rows; a missing one repeats the last and is not stored.
        const int rows = K - k < 4 ? K - k : 4;
        const int o0 = patch_offset(k, KW, Ci, Wp);
        const int o1 = patch_offset(k + (rows > 1), KW, Ci, Wp);
        const int o2 = patch_offset(k + (rows > 2 ? 2 : rows - 1), KW, Ci, Wp);
        const int o3 = patch_offset(k + (rows > 3 ? 3 : rows - 1), KW, Ci, Wp);
        for (int co = 0; co < Co; co += 8) {
          float* out = dw + k * Co + co;
          ZERO_4x8();
          if (!first) LOAD_4x8(out, Co, rows);
          for (int oy = oy0; oy < oy1; oy++) {
            const float* xs = xp + ((n * Hp + oy) * Wp) * Ci;
            const float* d = dy + ((n * OH + oy) * OW) * Co + co;
            for (int ox = 0; ox < OW; ox++, xs += Ci, d += Co) {
              const v128_t d0 = wasm_v128_load(d), d1 = wasm_v128_load(d + 4);
              UPDATE_4x8(d0, d1, xs + o0, xs + o1, xs + o2, xs + o3);
            }
          }
          STORE_4x8(out, Co, rows);
        }
      }
    }
  }
}
