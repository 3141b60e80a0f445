// 3×3 stride-1 convolution (NHWC) by Winograd's minimal filtering F(4×4, 3×3)
// (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR
// 2016): each 4×4 block of outputs ("tile") is Y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A
// for its 6×6 input patch d and the 3×3 filter g, so the 144 multiply-adds per
// tile, input and output channel of the direct convolution become 36. The 36
// element-wise products are summed over the input channels as 36 matrix
// products [tiles × Ci]·[Ci × Co] (matmul.c); the transforms are additions
// and multiplications by constants, vectorised over channels.
//
//   Bᵀ = [4  0 −5  0 1 0;  0 −4 −4  1 1 0;  0 4 −4 −1 1 0;
//         0 −2 −1  2 1 0;  0  2 −1 −2 1 0;  0 4  0 −5 0 1]
//   G  = [¼ 0 0; −⅙ −⅙ −⅙; −⅙ ⅙ −⅙; 1/24 1/12 ⅙; 1/24 −1/12 ⅙; 0 0 1]
//   Aᵀ = [1 1 1 1 1 0; 0 1 −1 2 −2 0; 0 1 1 4 4 0; 0 1 −1 8 −8 1]
//
// The filter gradient follows by the chain rule through the same formula:
// dL/dg = Gᵀ[Σ_tiles (Bᵀ d B) ⊙ (A dY Aᵀ)]G for the 4×4 output-gradient tile dY
// of each tile, the sum over tiles again 36 matrix products [Ci × tiles]·[tiles × Co].
//
// Each 2-D transform X ↦ L X Rᵀ runs as the 1-D one on the columns, then on the rows.
#include <wasm_simd128.h>

#define EXPORT(name) __attribute__((export_name(#name)))
#define INLINE static inline __attribute__((always_inline))

void matmul(const float* a, int M, int K, const float* b, int N, float* c);
void matmul_tn(const float* a, int M, int K, const float* b, int N, float* c, int accumulate);

#define ADD wasm_f32x4_add
#define SUB wasm_f32x4_sub
#define MUL wasm_f32x4_mul
#define SPLAT wasm_f32x4_splat

// s = Bᵀ d for a column (or row) d0..d5 of an input patch.
INLINE void input_1d(v128_t d0, v128_t d1, v128_t d2, v128_t d3, v128_t d4, v128_t d5, v128_t* s) {
  const v128_t four = SPLAT(4.0f);
  const v128_t t0 = SUB(d4, MUL(four, d2)), t1 = SUB(d3, MUL(four, d1));
  const v128_t t2 = SUB(d4, d2), t3 = MUL(SPLAT(2.0f), SUB(d3, d1));
  s[0] = ADD(MUL(four, SUB(d0, d2)), t2);
  s[1] = ADD(t0, t1), s[2] = SUB(t0, t1);
  s[3] = ADD(t2, t3), s[4] = SUB(t2, t3);
  s[5] = ADD(MUL(four, SUB(d1, d3)), SUB(d5, d3));
}

// o = Aᵀ m for a column (or row) m0..m5 of the products.
INLINE void output_1d(v128_t m0, v128_t m1, v128_t m2, v128_t m3, v128_t m4, v128_t m5, v128_t* o) {
  const v128_t a = ADD(m1, m2), b = SUB(m1, m2), c = ADD(m3, m4), d = SUB(m3, m4);
  o[0] = ADD(ADD(m0, a), c);
  o[1] = ADD(b, MUL(SPLAT(2.0f), d));
  o[2] = ADD(a, MUL(SPLAT(4.0f), c));
  o[3] = ADD(ADD(b, MUL(SPLAT(8.0f), d)), m5);
}

// u = G g for a column (or row) g0..g2 of a filter.
INLINE void filter_1d(v128_t g0, v128_t g1, v128_t g2, v128_t* u) {
  const v128_t e = ADD(g0, g2), sixth = SPLAT(1.0f / 6);
  const v128_t f = ADD(MUL(SPLAT(1.0f / 24), g0), MUL(sixth, g2)), h = MUL(SPLAT(1.0f / 12), g1);
  u[0] = MUL(SPLAT(0.25f), g0);
  u[1] = MUL(sixth, SUB(SPLAT(0), ADD(e, g1))), u[2] = MUL(sixth, SUB(g1, e));
  u[3] = ADD(f, h), u[4] = SUB(f, h);
  u[5] = g2;
}

// o = A p for a column (or row) p0..p3 of an output-gradient tile.
INLINE void output_grad_1d(v128_t p0, v128_t p1, v128_t p2, v128_t p3, v128_t* o) {
  const v128_t e = ADD(p0, p2), f = ADD(p1, p3);
  const v128_t g = ADD(p0, MUL(SPLAT(4.0f), p2));
  const v128_t h = ADD(MUL(SPLAT(2.0f), p1), MUL(SPLAT(8.0f), p3));
  o[0] = p0, o[1] = ADD(e, f), o[2] = SUB(e, f), o[3] = ADD(g, h), o[4] = SUB(g, h), o[5] = p3;
}

// r = Gᵀ m for a column (or row) m0..m5 of the summed products.
INLINE void filter_grad_1d(v128_t m0, v128_t m1, v128_t m2, v128_t m3, v128_t m4, v128_t m5,
                           v128_t* r) {
  const v128_t a = ADD(m1, m2), c = ADD(m3, m4), sixth = SPLAT(1.0f / 6);
  r[0] = ADD(SUB(MUL(SPLAT(0.25f), m0), MUL(sixth, a)), MUL(SPLAT(1.0f / 24), c));
  r[1] = ADD(MUL(sixth, SUB(m2, m1)), MUL(SPLAT(1.0f / 12), SUB(m3, m4)));
  r[2] = ADD(MUL(sixth, SUB(c, a)), m5);
}

// u[e][ci][co] = (G g Gᵀ)[e] for each filter g = w[·][·][ci][co], w [3][3][Ci][Co].
static void transform_filter(const float* w, int Ci, int Co, float* u) {
  const int plane = Ci * Co;
  for (int i = 0; i < plane; i += 4) {
    v128_t t[6][3];  // t = G g
    for (int c = 0; c < 3; c++) {
      v128_t col[6];
      filter_1d(wasm_v128_load(w + c * plane + i), wasm_v128_load(w + (3 + c) * plane + i),
                wasm_v128_load(w + (6 + c) * plane + i), col);
      for (int r = 0; r < 6; r++) t[r][c] = col[r];
    }
    for (int r = 0; r < 6; r++) {  // u = t Gᵀ
      v128_t row[6];
      filter_1d(t[r][0], t[r][1], t[r][2], row);
      for (int c = 0; c < 6; c++) wasm_v128_store(u + (r * 6 + c) * plane + i, row[c]);
    }
  }
}

// Floats between the 36 planes of a chunk's scratch beyond the plane itself: with 32 tiles and 32
// channels a plane is 4 KiB, and stores (or loads) 4 KiB apart fall in one set of the L1 cache
// and evict each other (measured with F(2×2, 3×3): the transforms took 3× as long); 16 floats
// (one 64-byte line) spread the planes over the sets.
#define SKEW 16

// Where tile `tile` of an N × TH × TW grid starts: image n, tile row ty, tile column tx.
#define TILE_AT(tile) \
  const int n = (tile) / (TH * TW), ty = (tile) / TW % TH, tx = (tile) % TW

// TILE_AT, and the tile's 4×4 block of an OH × OW output: first row oy and column ox, and how
// many of its rows and columns fall inside the output.
#define OUTPUT_TILE_AT(tile)                                              \
  TILE_AT(tile);                                                          \
  const int oy = 4 * ty, ox = 4 * tx;                                     \
  const int rows = OH - oy < 4 ? OH - oy : 4, cols = OW - ox < 4 ? OW - ox : 4

// v[e][t][ci] = (Bᵀ d B)[e] for the 6×6 patch d of each tile t of a chunk, planes e
// count·Ci + SKEW floats apart.
static void transform_input(const float* xp, int Hp, int Wp, int Ci, int TH, int TW, int first,
                            int count, float* v) {
  const int plane = count * Ci + SKEW, step = Wp * Ci;
  for (int t = 0; t < count; t++) {
    TILE_AT(first + t);
    const float* patch = xp + ((n * Hp + 4 * ty) * Wp + 4 * tx) * Ci;
    for (int ci = 0; ci < Ci; ci += 4) {
      v128_t s[6][6];  // s = Bᵀ d
      for (int c = 0; c < 6; c++) {
        const float* p = patch + c * Ci + ci;
        v128_t col[6];
        input_1d(wasm_v128_load(p), wasm_v128_load(p + step), wasm_v128_load(p + 2 * step),
                 wasm_v128_load(p + 3 * step), wasm_v128_load(p + 4 * step),
                 wasm_v128_load(p + 5 * step), col);
        for (int r = 0; r < 6; r++) s[r][c] = col[r];
      }
      for (int r = 0; r < 6; r++) {  // v = s B
        v128_t row[6];
        input_1d(s[r][0], s[r][1], s[r][2], s[r][3], s[r][4], s[r][5], row);
        float* out = v + (r * 6) * plane + t * Ci + ci;
        for (int c = 0; c < 6; c++) wasm_v128_store(out + c * plane, row[c]);
      }
    }
  }
}

// The 4×4 outputs Aᵀ m A of each tile of a chunk from m[e][t][co] (planes e
// count·Co + SKEW floats apart), where they fall inside the OH × OW output y,
// plus bias[co] when bias is not null, then max(·, 0) when relu is set.
static void transform_output(const float* m, int Co, int TH, int TW, int OH, int OW, int first,
                             int count, const float* bias, int relu, float* y) {
  const int plane = count * Co + SKEW;
  const v128_t zero = SPLAT(0);
  for (int t = 0; t < count; t++) {
    OUTPUT_TILE_AT(first + t);
    float* out = y + ((n * OH + oy) * OW + ox) * Co;
    for (int co = 0; co < Co; co += 4) {
      const float* at = m + t * Co + co;
      v128_t q[4][6];  // q = Aᵀ m
      for (int c = 0; c < 6; c++) {
        v128_t col[4];
        output_1d(wasm_v128_load(at + c * plane), wasm_v128_load(at + (6 + c) * plane),
                  wasm_v128_load(at + (12 + c) * plane), wasm_v128_load(at + (18 + c) * plane),
                  wasm_v128_load(at + (24 + c) * plane), wasm_v128_load(at + (30 + c) * plane),
                  col);
        for (int r = 0; r < 4; r++) q[r][c] = col[r];
      }
      const v128_t b = bias ? wasm_v128_load(bias + co) : zero;
      for (int r = 0; r < rows; r++) {  // y = q A, the rows and columns inside the output
        v128_t row[4];
        output_1d(q[r][0], q[r][1], q[r][2], q[r][3], q[r][4], q[r][5], row);
#pragma clang loop unroll(full)
        for (int c = 0; c < 4; c++) {
          // pmax(v, 0) = v < 0 ? 0 : v keeps a NaN, as TensorFlow.js's ReLU does.
          const v128_t z = ADD(row[c], b);
          if (c < cols)
            wasm_v128_store(out + (r * OW + c) * Co + co, relu ? wasm_f32x4_pmax(z, zero) : z);
        }
      }
    }
  }
}

// y [N][OH][OW][Co] = the 3×3 convolution of a padded input xp [N][Hp][Wp][Ci]
// with Hp ≥ 4⌈OH/4⌉ + 2 and Wp ≥ 4⌈OW/4⌉ + 2 (zeros past the input), and
// w [3][3][Ci][Co]; Ci a multiple of 4, Co of 8; plus bias [Co] when bias is
// not null, then ReLU when relu is set (TensorFlow.js's FusedConv2D). scratch:
// 36·Ci·Co floats for the transformed filter, then 36·(chunk·(Ci + Co) + 2·SKEW)
// for a chunk of tiles.
EXPORT(winograd_conv3x3)
void winograd_conv3x3(const float* xp, int N, int Hp, int Wp, int Ci, const float* w, int Co,
                      const float* bias, int relu, float* y, int OH, int OW, int chunk,
                      float* scratch) {
  const int TH = (OH + 3) / 4, TW = (OW + 3) / 4, tiles = N * TH * TW;
  float* u = scratch;
  float* v = u + 36 * Ci * Co;
  float* m = v + 36 * (chunk * Ci + SKEW);
  transform_filter(w, Ci, Co, u);
  for (int first = 0; first < tiles; first += chunk) {
    const int count = tiles - first < chunk ? tiles - first : chunk;
    transform_input(xp, Hp, Wp, Ci, TH, TW, first, count, v);
    for (int e = 0; e < 36; e++) {  // m[e] = v[e]·u[e]: [count × Ci]·[Ci × Co]
      matmul(v + e * (count * Ci + SKEW), count, Ci, u + e * Ci * Co, Co,
             m + e * (count * Co + SKEW));
    }
    transform_output(m, Co, TH, TW, OH, OW, first, count, bias, relu, y);
  }
}

// w[e][t][co] = (A dY Aᵀ)[e] for the 4×4 output-gradient tile dY of each tile t
// of a chunk (entries outside the OH × OW output are 0), planes e count·Co + SKEW
// floats apart.
static void transform_output_grad(const float* dy, int Co, int TH, int TW, int OH, int OW,
                                  int first, int count, float* w) {
  const int plane = count * Co + SKEW;
  const v128_t zero = SPLAT(0);
  for (int t = 0; t < count; t++) {
    OUTPUT_TILE_AT(first + t);
    const float* at = dy + ((n * OH + oy) * OW + ox) * Co;
    for (int co = 0; co < Co; co += 4) {
      v128_t s[6][4];  // s = A dY
      for (int c = 0; c < 4; c++) {
        v128_t p[4], col[6];
        for (int r = 0; r < 4; r++)
          p[r] = r < rows && c < cols ? wasm_v128_load(at + (r * OW + c) * Co + co) : zero;
        output_grad_1d(p[0], p[1], p[2], p[3], col);
        for (int r = 0; r < 6; r++) s[r][c] = col[r];
      }
      for (int r = 0; r < 6; r++) {  // w = s Aᵀ
        v128_t row[6];
        output_grad_1d(s[r][0], s[r][1], s[r][2], s[r][3], row);
        float* out = w + (r * 6) * plane + t * Co + co;
        for (int c = 0; c < 6; c++) wasm_v128_store(out + c * plane, row[c]);
      }
    }
  }
}

// dw [3][3][Ci][Co] = Gᵀ M G from the summed products m[e][ci][co].
static void transform_filter_grad(const float* m, int Ci, int Co, float* dw) {
  const int plane = Ci * Co;
  for (int i = 0; i < plane; i += 4) {
    v128_t r[3][6];  // r = Gᵀ M
    for (int c = 0; c < 6; c++) {
      const float* p = m + c * plane + i;
      v128_t col[3];
      filter_grad_1d(wasm_v128_load(p), wasm_v128_load(p + 6 * plane),
                     wasm_v128_load(p + 12 * plane), wasm_v128_load(p + 18 * plane),
                     wasm_v128_load(p + 24 * plane), wasm_v128_load(p + 30 * plane), col);
      for (int y = 0; y < 3; y++) r[y][c] = col[y];
    }
    for (int y = 0; y < 3; y++) {  // dW = r G
      v128_t row[3];
      filter_grad_1d(r[y][0], r[y][1], r[y][2], r[y][3], r[y][4], r[y][5], row);
      for (int x = 0; x < 3; x++) wasm_v128_store(dw + (y * 3 + x) * plane + i, row[x]);
    }
  }
}

// dw [3][3][Ci][Co] = the filter gradient of the 3×3 stride-1 convolution of
// winograd_conv3x3 (same padded input xp), given its output gradient dy
// [N][OH][OW][Co]; Ci a multiple of 4, Co of 8. scratch: 36·Ci·Co floats for
// the summed products, then 36·(chunk·(Ci + Co) + 2·SKEW) for a chunk of tiles.
EXPORT(winograd_filter_grad3x3)
void winograd_filter_grad3x3(const float* xp, int N, int Hp, int Wp, int Ci, const float* dy,
                             int Co, float* dw, int OH, int OW, int chunk, float* scratch) {
  const int TH = (OH + 3) / 4, TW = (OW + 3) / 4, tiles = N * TH * TW;
  float* m = scratch;
  float* v = m + 36 * Ci * Co;
  float* w = v + 36 * (chunk * Ci + SKEW);
  for (int first = 0; first < tiles; first += chunk) {
    const int count = tiles - first < chunk ? tiles - first : chunk;
    transform_input(xp, Hp, Wp, Ci, TH, TW, first, count, v);
    transform_output_grad(dy, Co, TH, TW, OH, OW, first, count, w);
    for (int e = 0; e < 36; e++) {  // m[e] (+)= v[e]ᵀ·w[e]: [Ci × count]·[count × Co]
      matmul_tn(v + e * (count * Ci + SKEW), count, Ci, w + e * (count * Co + SKEW), Co,
                m + e * Ci * Co, first > 0);
    }
  }
  transform_filter_grad(m, Ci, Co, dw);
}
