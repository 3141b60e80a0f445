// 3×3 stride-1 convolution (NHWC) by Winograd's minimal filtering F(2×2, 3×3)
// (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR
// 2016): each 2×2 block of outputs ("tile") is Y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A
// for its 4×4 input patch d and the 3×3 filter g, so the 36 multiply-adds per
// tile, input and output channel of the direct convolution become 16. The 16
// element-wise products are summed over the input channels as 16 matrix
// products [tiles × Ci]·[Ci × Co], which conv_forward (conv.c) runs as
// 1×1 convolutions; the transforms are additions, vectorised over channels.
//
//   Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1]
//   G  = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1]
//   Aᵀ = [1 1 1 0; 0 1 −1 −1]
//
// The filter gradient follows by the chain rule through the same formula:
// dL/dg = Gᵀ[Σ_tiles (Bᵀ d B) ⊙ (A dY Aᵀ)]G for the 2×2 output-gradient tile dY
// of each tile, the sum over tiles again 16 matrix products [Ci × tiles]·[tiles × Co].
#include <wasm_simd128.h>

#define EXPORT(name) __attribute__((export_name(#name)))

void conv_forward(const float* xp, int N, int Hp, int Wp, int Ci, int KH, int KW, const float* w,
                  int Co, float* y);
void filter_grad(const float* xp, int N, int Hp, int Wp, int Ci, int KH, int KW, const float* dy,
                 int Co, float* dw, int accumulate);

#define ADD wasm_f32x4_add
#define SUB wasm_f32x4_sub

// u[e][ci][co] = (G g Gᵀ)[e] for each filter g = w[·][·][ci][co], w [3][3][Ci][Co].
static void transform_filter(const float* w, int Ci, int Co, float* u) {
  const v128_t half = wasm_f32x4_splat(0.5f);
  const int plane = Ci * Co;
  for (int i = 0; i < plane; i += 4) {
    v128_t g[3][3], t[4][3];
    for (int r = 0; r < 3; r++)
      for (int c = 0; c < 3; c++) g[r][c] = wasm_v128_load(w + (r * 3 + c) * plane + i);
    for (int c = 0; c < 3; c++) {  // t = G g
      t[0][c] = g[0][c];
      t[1][c] = wasm_f32x4_mul(half, ADD(ADD(g[0][c], g[1][c]), g[2][c]));
      t[2][c] = wasm_f32x4_mul(half, ADD(SUB(g[0][c], g[1][c]), g[2][c]));
      t[3][c] = g[2][c];
    }
    for (int r = 0; r < 4; r++) {  // u = t Gᵀ
      float* row = u + (r * 4) * plane + i;
      wasm_v128_store(row, t[r][0]);
      wasm_v128_store(row + plane, wasm_f32x4_mul(half, ADD(ADD(t[r][0], t[r][1]), t[r][2])));
      wasm_v128_store(row + 2 * plane, wasm_f32x4_mul(half, ADD(SUB(t[r][0], t[r][1]), t[r][2])));
      wasm_v128_store(row + 3 * plane, t[r][2]);
    }
  }
}

// Floats between the 16 planes of a chunk's scratch beyond the plane itself: with 32 tiles and 32
// channels a plane is 4 KiB, and 16 stores (or loads) 4 KiB apart fall in one set of the L1 cache
// and evict each other (measured: the transforms took 3× as long); 16 floats (one 64-byte line)
// put the planes in 16 sets.
#define SKEW 16

// v[e][t][ci] = (Bᵀ d B)[e] for the 4×4 patch d of each tile t of a chunk, planes e
// count·Ci + SKEW floats apart.
static void transform_input(const float* xp, int Hp, int Wp, int Ci, int TH, int TW, int first,
                            int count, float* v) {
  const int plane = count * Ci + SKEW;
  for (int t = 0; t < count; t++) {
    const int tile = first + t, n = tile / (TH * TW), ty = tile / TW % TH, tx = tile % TW;
    const float* patch = xp + ((n * Hp + 2 * ty) * Wp + 2 * tx) * Ci;
    for (int ci = 0; ci < Ci; ci += 4) {
      v128_t d[4][4], s[4][4];
      for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++) d[r][c] = wasm_v128_load(patch + (r * Wp + c) * Ci + ci);
      for (int c = 0; c < 4; c++) {  // s = Bᵀ d
        s[0][c] = SUB(d[0][c], d[2][c]);
        s[1][c] = ADD(d[1][c], d[2][c]);
        s[2][c] = SUB(d[2][c], d[1][c]);
        s[3][c] = SUB(d[1][c], d[3][c]);
      }
      for (int r = 0; r < 4; r++) {  // v = s B
        float* out = v + (r * 4) * plane + t * Ci + ci;
        wasm_v128_store(out, SUB(s[r][0], s[r][2]));
        wasm_v128_store(out + plane, ADD(s[r][1], s[r][2]));
        wasm_v128_store(out + 2 * plane, SUB(s[r][2], s[r][1]));
        wasm_v128_store(out + 3 * plane, SUB(s[r][1], s[r][3]));
      }
    }
  }
}

// The 2×2 outputs Aᵀ m A of each tile of a chunk from m[e][t][co] (planes e
// count·Co + SKEW floats apart), where they fall inside the OH × OW output y,
// plus bias[co] when bias is not null, then max(·, 0) when relu is set.
static void transform_output(const float* m, int Co, int TH, int TW, int OH, int OW, int first,
                             int count, const float* bias, int relu, float* y) {
  const int plane = count * Co + SKEW;
  for (int t = 0; t < count; t++) {
    const int tile = first + t, n = tile / (TH * TW), ty = tile / TW % TH, tx = tile % TW;
    const int oy = 2 * ty, ox = 2 * tx;
    const int rows = OH - oy < 2 ? 1 : 2, cols = OW - ox < 2 ? 1 : 2;
    float* out = y + ((n * OH + oy) * OW + ox) * Co;
    for (int co = 0; co < Co; co += 4) {
      const float* at = m + t * Co + co;
      v128_t s0[4], s1[4];
      for (int c = 0; c < 4; c++) {  // s = Aᵀ p, p[r][c] = m[4r + c]
        const v128_t p0 = wasm_v128_load(at + c * plane), p1 = wasm_v128_load(at + (4 + c) * plane);
        const v128_t p2 = wasm_v128_load(at + (8 + c) * plane);
        const v128_t p3 = wasm_v128_load(at + (12 + c) * plane);
        s0[c] = ADD(ADD(p0, p1), p2);
        s1[c] = SUB(SUB(p1, p2), p3);
      }
      // y = s A, the rows and columns inside the output
      // pmax(v, 0) = v < 0 ? 0 : v keeps a NaN, as TensorFlow.js's ReLU does.
      const v128_t zero = wasm_f32x4_splat(0), b = bias ? wasm_v128_load(bias + co) : zero;
#define OUT(at, v)                                  \
  do {                                              \
    const v128_t z = ADD(v, b);                     \
    wasm_v128_store(at, relu ? wasm_f32x4_pmax(z, zero) : z); \
  } while (0)
      OUT(out + co, ADD(ADD(s0[0], s0[1]), s0[2]));
      if (cols > 1) OUT(out + Co + co, SUB(SUB(s0[1], s0[2]), s0[3]));
      if (rows > 1) {
        OUT(out + OW * Co + co, ADD(ADD(s1[0], s1[1]), s1[2]));
        if (cols > 1) OUT(out + (OW + 1) * Co + co, SUB(SUB(s1[1], s1[2]), s1[3]));
      }
#undef OUT
    }
  }
}

// y [N][OH][OW][Co] = the 3×3 convolution of a padded input xp [N][Hp][Wp][Ci]
// with Hp ≥ 2⌈OH/2⌉ + 2 and Wp ≥ 2⌈OW/2⌉ + 2 (zeros past the input), and
// w [3][3][Ci][Co]; Ci a multiple of 4, Co of 8; plus bias [Co] when bias is
// not null, then ReLU when relu is set (TensorFlow.js's FusedConv2D). scratch:
// 16·Ci·Co floats for the transformed filter, then 16·(chunk·(Ci + Co) + 2·SKEW)
// for a chunk of tiles.
EXPORT(winograd_conv3x3)
void winograd_conv3x3(const float* xp, int N, int Hp, int Wp, int Ci, const float* w, int Co,
                      const float* bias, int relu, float* y, int OH, int OW, int chunk,
                      float* scratch) {
  const int TH = (OH + 1) / 2, TW = (OW + 1) / 2, tiles = N * TH * TW;
  float* u = scratch;
  float* v = u + 16 * Ci * Co;
  float* m = v + 16 * (chunk * Ci + SKEW);
  transform_filter(w, Ci, Co, u);
  for (int first = 0; first < tiles; first += chunk) {
    const int count = tiles - first < chunk ? tiles - first : chunk;
    transform_input(xp, Hp, Wp, Ci, TH, TW, first, count, v);
    for (int e = 0; e < 16; e++) {
      // [count × Ci]·[Ci × Co] as a 1×1 convolution of a 1 × count image.
      conv_forward(v + e * (count * Ci + SKEW), 1, 1, count, Ci, 1, 1, u + e * Ci * Co, Co,
                   m + e * (count * Co + SKEW));
    }
    transform_output(m, Co, TH, TW, OH, OW, first, count, bias, relu, y);
  }
}

// w[e][t][co] = (A dY Aᵀ)[e] for the 2×2 output-gradient tile dY of each tile t
// of a chunk (entries outside the OH × OW output are 0), planes e count·Co + SKEW
// floats apart.
static void transform_output_grad(const float* dy, int Co, int TH, int TW, int OH, int OW,
                                  int first, int count, float* w) {
  const int plane = count * Co + SKEW;
  const v128_t zero = wasm_f32x4_splat(0);
  for (int t = 0; t < count; t++) {
    const int tile = first + t, n = tile / (TH * TW), ty = tile / TW % TH, tx = tile % TW;
    const int oy = 2 * ty, ox = 2 * tx;
    const int down = OH - oy > 1, right = OW - ox > 1;
    const float* at = dy + ((n * OH + oy) * OW + ox) * Co;
    for (int co = 0; co < Co; co += 4) {
      // dY = [p q; r s]; T = A dY: [p q], [p+r q+s], [p−r q−s], [−r −s]
      const v128_t p = wasm_v128_load(at + co);
      const v128_t q = right ? wasm_v128_load(at + Co + co) : zero;
      const v128_t r = down ? wasm_v128_load(at + OW * Co + co) : zero;
      const v128_t u = down && right ? wasm_v128_load(at + (OW + 1) * Co + co) : zero;
      const v128_t t0[4] = {p, ADD(p, r), SUB(p, r), SUB(zero, r)};
      const v128_t t1[4] = {q, ADD(q, u), SUB(q, u), SUB(zero, u)};
      for (int i = 0; i < 4; i++) {  // row i of T Aᵀ: [a, a+b, a−b, −b]
        float* out = w + (i * 4) * plane + t * Co + co;
        wasm_v128_store(out, t0[i]);
        wasm_v128_store(out + plane, ADD(t0[i], t1[i]));
        wasm_v128_store(out + 2 * plane, SUB(t0[i], t1[i]));
        wasm_v128_store(out + 3 * plane, SUB(zero, t1[i]));
      }
    }
  }
}

// dw [3][3][Ci][Co] = Gᵀ M G from the summed products m[e][ci][co].
static void transform_filter_grad(const float* m, int Ci, int Co, float* dw) {
  const v128_t half = wasm_f32x4_splat(0.5f);
  const int plane = Ci * Co;
  for (int i = 0; i < plane; i += 4) {
    v128_t p[4][4], r[3][4];
    for (int e = 0; e < 16; e++) p[e / 4][e % 4] = wasm_v128_load(m + e * plane + i);
    for (int c = 0; c < 4; c++) {  // R = Gᵀ M
      r[0][c] = ADD(p[0][c], wasm_f32x4_mul(half, ADD(p[1][c], p[2][c])));
      r[1][c] = wasm_f32x4_mul(half, SUB(p[1][c], p[2][c]));
      r[2][c] = ADD(wasm_f32x4_mul(half, ADD(p[1][c], p[2][c])), p[3][c]);
    }
    for (int y = 0; y < 3; y++) {  // dW = R G
      float* row = dw + (y * 3) * plane + i;
      const v128_t mid = wasm_f32x4_mul(half, ADD(r[y][1], r[y][2]));
      wasm_v128_store(row, ADD(r[y][0], mid));
      wasm_v128_store(row + plane, wasm_f32x4_mul(half, SUB(r[y][1], r[y][2])));
      wasm_v128_store(row + 2 * plane, ADD(mid, r[y][3]));
    }
  }
}

// dw [3][3][Ci][Co] = the filter gradient of the 3×3 stride-1 convolution of
// winograd_conv3x3 (same padded input xp), given its output gradient dy
// [N][OH][OW][Co]; Ci a multiple of 4, Co of 8. scratch: 16·Ci·Co floats for
// the summed products, then 16·(chunk·(Ci + Co) + 2·SKEW) for a chunk of tiles.
EXPORT(winograd_filter_grad3x3)
void winograd_filter_grad3x3(const float* xp, int N, int Hp, int Wp, int Ci, const float* dy,
                             int Co, float* dw, int OH, int OW, int chunk, float* scratch) {
  const int TH = (OH + 1) / 2, TW = (OW + 1) / 2, tiles = N * TH * TW;
  float* m = scratch;
  float* v = m + 16 * Ci * Co;
  float* w = v + 16 * (chunk * Ci + SKEW);
  for (int first = 0; first < tiles; first += chunk) {
    const int count = tiles - first < chunk ? tiles - first : chunk;
    transform_input(xp, Hp, Wp, Ci, TH, TW, first, count, v);
    transform_output_grad(dy, Co, TH, TW, OH, OW, first, count, w);
    for (int e = 0; e < 16; e++) {
      // m[e] (+)= v[e]ᵀ·w[e]: the filter gradient of a 1×1 convolution of a 1 × count image.
      filter_grad(v + e * (count * Ci + SKEW), 1, 1, count, Ci, 1, 1, w + e * (count * Co + SKEW),
                  Co, m + e * Ci * Co, first > 0);
    }
  }
  transform_filter_grad(m, Ci, Co, dw);
}
