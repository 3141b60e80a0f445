/**
 * `MaxPoolGrad` on the WASM backend, in JavaScript (and SIMD where it
 * applies). Internal.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { type KernelArgs, replaceKernel, type WasmHeapBackend } from "./kernel.ts";
import { simdKernels } from "./simd.ts";

/**
 * Max-pool gradient on the WASM backend in plain JavaScript over the wasm
 * heap: each output's gradient goes to the first largest input of its window
 * (the cpu backend's rule). Several times faster than the backend's kernel.
 */
function maxPoolGradWasm(args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as WasmHeapBackend;
  const dy = args.inputs.dy as tf.TensorInfo, x = args.inputs.input as tf.TensorInfo;
  const attrs = args.attrs as unknown as tf.MaxPoolGradAttrs;
  const info = tf.backend_util.computePool2DInfo(
    x.shape as [number, number, number, number],
    attrs.filterSize,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
  );
  const out = backend.makeOutput(x.shape, "float32");
  const dx = backend.typedArrayFromHeap(out) as Float32Array;
  const xs = backend.typedArrayFromHeap(x) as Float32Array;
  const dys = backend.typedArrayFromHeap(dy) as Float32Array;
  const { batchSize, inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW } = info;
  const { strideHeight: sh, strideWidth: sw, filterHeight: fh, filterWidth: fw } = info;
  const top = info.padInfo.top, left = info.padInfo.left;
  const inside = 2 * OH <= H && 2 * OW <= W; // every window within the input
  if (fh === 2 && fw === 2 && sh === 2 && sw === 2 && top === 0 && left === 0 && inside) {
    const simd = simdKernels(backend, C);
    if (simd) {
      const at = simd.offset;
      simd.exports.max_pool_grad_2x2(at(x), at(dy), at(out), batchSize, H, W, C, OH, OW);
    } else {
      dx.fill(0);
      maxPoolGrad2x2(xs, dys, dx, batchSize, H, W, C, OH, OW);
    }
    return out;
  }
  dx.fill(0);
  let o = 0;
  for (let b = 0; b < batchSize; b++) {
    const base = b * H * W * C;
    for (let oh = 0; oh < OH; oh++) {
      const r0 = Math.max(0, oh * sh - top), r1 = Math.min(H, oh * sh - top + fh);
      for (let ow = 0; ow < OW; ow++) {
        const c0 = Math.max(0, ow * sw - left), c1 = Math.min(W, ow * sw - left + fw);
        for (let c = 0; c < C; c++, o++) {
          let best = -Infinity, at = -1;
          for (let r = r0; r < r1; r++) {
            for (let col = c0; col < c1; col++) {
              const i = base + (r * W + col) * C + c;
              if (xs[i] > best) {
                best = xs[i];
                at = i;
              }
            }
          }
          if (at >= 0) dx[at] += dys[o];
        }
      }
    }
  }
  return out;
}

/**
 * The common case of {@linkcode maxPoolGradWasm}: 2×2 windows, stride 2, no
 * padding. Windows do not overlap, so each output gradient goes to the
 * largest of its four inputs (the first one on ties, as the general loop).
 */
function maxPoolGrad2x2(
  xs: Float32Array,
  dys: Float32Array,
  dx: Float32Array,
  batchSize: number,
  H: number,
  W: number,
  C: number,
  OH: number,
  OW: number,
): void {
  const rowStride = W * C;
  let o = 0;
  for (let b = 0; b < batchSize; b++) {
    for (let oh = 0; oh < OH; oh++) {
      let i00 = b * H * rowStride + 2 * oh * rowStride;
      for (let ow = 0; ow < OW; ow++, i00 += 2 * C) {
        for (let c = 0; c < C; c++, o++) {
          const a = i00 + c, bb = a + C, cc = a + rowStride, d = cc + C;
          let at = a, best = xs[a];
          if (xs[bb] > best) best = xs[at = bb];
          if (xs[cc] > best) best = xs[at = cc];
          if (xs[d] > best) at = d;
          dx[at] += dys[o];
        }
      }
    }
  }
}

/** Register the `MaxPoolGrad` kernel. Internal. */
export function registerMaxPoolGradKernel(): void {
  replaceKernel("MaxPoolGrad", maxPoolGradWasm);
}
