#ifndef BLOCK_4X8_H
#define BLOCK_4X8_H
#include <wasm_simd128.h>

// The 4 × 8 register block of sums that the convolution (conv.c) and matrix
// product (matmul.c) kernels share: 4 rows × 8 output channels in 8 vector
// registers, updated with one multiply-add per input value and weight vector.
//
// MADD is relaxed SIMD's f32x4.relaxed_madd when built with -DRELAXED_SIMD
// (one fused multiply-add on hardware that has it), else a multiply and an add.
#ifdef RELAXED_SIMD
#define MADD(a, b, c) wasm_f32x4_relaxed_madd(a, b, c)
#else
#define MADD(a, b, c) wasm_f32x4_add(wasm_f32x4_mul(a, b), c)
#endif

// The 4 × 8 block of sums the kernels keep in registers: a<row><half>.
#define ZERO_4x8()                                                    \
  v128_t a00 = wasm_f32x4_splat(0), a01 = a00, a10 = a00, a11 = a00; \
  v128_t a20 = a00, a21 = a00, a30 = a00, a31 = a00

// Row j of the block += the float at xj times the 8 floats v0, v1.
#define UPDATE_4x8(v0, v1, x0, x1, x2, x3)                         \
  do {                                                             \
    v128_t s = wasm_v128_load32_splat(x0);                         \
    a00 = MADD(s, v0, a00), a01 = MADD(s, v1, a01);                \
    s = wasm_v128_load32_splat(x1);                                \
    a10 = MADD(s, v0, a10), a11 = MADD(s, v1, a11);                \
    s = wasm_v128_load32_splat(x2);                                \
    a20 = MADD(s, v0, a20), a21 = MADD(s, v1, a21);                \
    s = wasm_v128_load32_splat(x3);                                \
    a30 = MADD(s, v0, a30), a31 = MADD(s, v1, a31);                \
  } while (0)

// Store the block's first `rows` rows, `stride` floats apart, at out.
#define STORE_4x8(out, stride, rows)                                              \
  do {                                                                            \
    wasm_v128_store(out, a00), wasm_v128_store(out + 4, a01);                     \
    if (rows > 1) wasm_v128_store(out + stride, a10), wasm_v128_store(out + stride + 4, a11); \
    if (rows > 2)                                                                 \
      wasm_v128_store(out + 2 * stride, a20), wasm_v128_store(out + 2 * stride + 4, a21); \
    if (rows > 3)                                                                 \
      wasm_v128_store(out + 3 * stride, a30), wasm_v128_store(out + 3 * stride + 4, a31); \
  } while (0)

// Load the block's first `rows` rows, `stride` floats apart, from at (the
// sums so far; a missing row keeps its zeros and is never stored).
#define LOAD_4x8(at, stride, rows)                                                  \
  do {                                                                              \
    a00 = wasm_v128_load(at), a01 = wasm_v128_load(at + 4);                         \
    if (rows > 1) a10 = wasm_v128_load(at + stride), a11 = wasm_v128_load(at + stride + 4); \
    if (rows > 2)                                                                   \
      a20 = wasm_v128_load(at + 2 * stride), a21 = wasm_v128_load(at + 2 * stride + 4); \
    if (rows > 3)                                                                   \
      a30 = wasm_v128_load(at + 3 * stride), a31 = wasm_v128_load(at + 3 * stride + 4); \
  } while (0)

#endif
