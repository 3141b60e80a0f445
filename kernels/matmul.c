// Matrix products for the Winograd kernels (winograd.c): the 36 products a
// chunk of tiles needs, each small ([tiles × Ci]·[Ci × Co] forward,
// [Ci × tiles]·[tiles × Co] for the filter gradient), on the 4 × 8 register
// block of block_4x8.h. They add up in the same order as conv.c's kernels
// would as 1×1 convolutions, without their loops over filter taps and
// patches (measured 6–15% faster on these shapes).
#include <wasm_simd128.h>

#include "block_4x8.h"

// c [M][N] = a [M][K] · b [K][N], N a multiple of 8. A missing row of the
// last block of 4 repeats the one before and is not stored.
void matmul(const float* a, int M, int K, const float* b, int N, float* c) {
  for (int m = 0; m < M; m += 4) {
    const int rows = M - m < 4 ? M - m : 4;
    const float* r0 = a + m * K;
    const float* r1 = r0 + (rows > 1) * K;
    const float* r2 = r0 + (rows > 2 ? 2 : rows - 1) * K;
    const float* r3 = r0 + (rows > 3 ? 3 : rows - 1) * K;
    for (int n = 0; n < N; n += 8) {
      ZERO_4x8();
      const float* bk = b + n;
      for (int k = 0; k < K; k++, bk += N) {
        const v128_t b0 = wasm_v128_load(bk), b1 = wasm_v128_load(bk + 4);
        UPDATE_4x8(b0, b1, r0 + k, r1 + k, r2 + k, r3 + k);
      }
      float* out = c + m * N + n;
      STORE_4x8(out, N, rows);
    }
  }
}

// c [K][N] = aᵀ · b for a [M][K] and b [M][N], plus c's values when
// accumulate is set; K a multiple of 4, N of 8.
void matmul_tn(const float* a, int M, int K, const float* b, int N, float* c, int accumulate) {
  for (int k = 0; k < K; k += 4) {
    for (int n = 0; n < N; n += 8) {
      float* out = c + k * N + n;
      ZERO_4x8();
      if (accumulate) LOAD_4x8(out, N, 4);
      const float* am = a + k;
      const float* bm = b + n;
      for (int m = 0; m < M; m++, am += K, bm += N) {
        const v128_t b0 = wasm_v128_load(bm), b1 = wasm_v128_load(bm + 4);
        UPDATE_4x8(b0, b1, am, am + 1, am + 2, am + 3);
      }
      STORE_4x8(out, N, 4);
    }
  }
}
