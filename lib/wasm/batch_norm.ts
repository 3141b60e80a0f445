/**
 * The batch-norm kernels of `batch_norm.ts` on the WASM backend: forward and
 * backward as two passes each in plain JavaScript over the backend's memory,
 * with the SIMD module when the channels are a multiple of 4, and the fused
 * batch norm → ReLU → 2×2 max-pool. Internal.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import {
  BATCH_NORM_RELU_POOL,
  BATCH_NORM_RELU_POOL_GRAD,
  BATCH_NORM_TRAIN,
  BATCH_NORM_TRAIN_GRAD,
} from "../batch_norm.ts";
import { type KernelArgs, registerNewKernels, type WasmHeapBackend } from "./kernel.ts";
import { simdKernels } from "./simd.ts";

/** Forward pass on the WASM heap: one pass for the statistics, one for the outputs. */
function batchNormTrainWasm(args: KernelArgs): tf.TensorInfo[] {
  const [y, normalised, mean, variance, invStd] = batchNormTrainStatsWasm(args);
  return [y, mean, variance, invStd, normalised, ...updateMovingWasm(args, mean, variance)];
}

/**
 * The updated moving mean and variance, when the kernel was given them
 * (`momentum` ≥ 0), computed on the host: a handful of channels.
 */
function updateMovingWasm(
  args: KernelArgs,
  mean: tf.TensorInfo,
  variance: tf.TensorInfo,
): tf.TensorInfo[] {
  const backend = args.backend as WasmHeapBackend;
  const momentum = (args.attrs as { momentum: number }).momentum;
  const { movingMean, movingVariance } = args.inputs as Record<string, tf.TensorInfo>;
  if (!(momentum >= 0) || !movingMean || !movingVariance) return [];
  const decay = Math.fround(1 - momentum);
  return [[movingMean, mean], [movingVariance, variance]].map(([moving, batch]) => {
    const out = backend.makeOutput(moving.shape, "float32");
    const values = backend.typedArrayFromHeap(out) as Float32Array;
    const old = backend.typedArrayFromHeap(moving) as Float32Array;
    const now = backend.typedArrayFromHeap(batch) as Float32Array;
    for (let c = 0; c < values.length; c++) values[c] = old[c] - (old[c] - now[c]) * decay;
    return out;
  });
}

function batchNormTrainStatsWasm(args: KernelArgs): tf.TensorInfo[] {
  const backend = args.backend as WasmHeapBackend;
  const { x, gamma, beta } = args.inputs as Record<string, tf.TensorInfo>;
  const epsilon = (args.attrs as { epsilon: number }).epsilon;
  const C = x.shape[x.shape.length - 1], size = tf.util.sizeFromShape(x.shape), n = size / C;
  const outs = [x.shape, x.shape, [C], [C], [C]].map((s) => backend.makeOutput(s, "float32"));
  const simd = simdKernels(backend, C);
  if (simd) {
    const at = simd.offset;
    simd.exports.bn_forward(
      at(x),
      n,
      C,
      at(gamma),
      at(beta),
      epsilon,
      simd.scratch,
      ...outs.map(at) as [number, number, number, number, number],
    );
    return outs;
  }
  const xs = backend.typedArrayFromHeap(x) as Float32Array;
  const g = backend.typedArrayFromHeap(gamma) as Float32Array;
  const b = backend.typedArrayFromHeap(beta) as Float32Array;
  const sum = new Float64Array(C), squares = new Float64Array(C);
  for (let i = 0; i < size; i += C) {
    for (let c = 0; c < C; c++) {
      const v = xs[i + c];
      sum[c] += v;
      squares[c] += v * v;
    }
  }
  const [y, xhat, mean, variance, invStd] = outs.map((t) =>
    backend.typedArrayFromHeap(t) as Float32Array
  );
  for (let c = 0; c < C; c++) {
    mean[c] = sum[c] / n;
    variance[c] = Math.max(0, squares[c] / n - (sum[c] / n) ** 2);
    invStd[c] = 1 / Math.sqrt(variance[c] + epsilon);
  }
  for (let i = 0; i < size; i += C) {
    for (let c = 0; c < C; c++) {
      const h = (xs[i + c] - mean[c]) * invStd[c];
      xhat[i + c] = h;
      y[i + c] = h * g[c] + b[c];
    }
  }
  return outs;
}

/** Gradient on the WASM heap: one pass for ∂β and ∂γ, one for ∂x. */
function batchNormTrainGradWasm(args: KernelArgs): tf.TensorInfo[] {
  const backend = args.backend as WasmHeapBackend;
  const { dy, normalised, gamma, invStd } = args.inputs as Record<string, tf.TensorInfo>;
  const C = dy.shape[dy.shape.length - 1], size = tf.util.sizeFromShape(dy.shape), n = size / C;
  const outs = [dy.shape, [C], [C]].map((s) => backend.makeOutput(s, "float32"));
  const simd = simdKernels(backend, C);
  if (simd) {
    const at = simd.offset;
    simd.exports.bn_backward(
      at(dy),
      at(normalised),
      n,
      C,
      at(gamma),
      at(invStd),
      simd.scratch,
      ...outs.map(at) as [number, number, number],
    );
    return outs;
  }
  const dys = backend.typedArrayFromHeap(dy) as Float32Array;
  const h = backend.typedArrayFromHeap(normalised) as Float32Array;
  const g = backend.typedArrayFromHeap(gamma) as Float32Array;
  const r = backend.typedArrayFromHeap(invStd) as Float32Array;
  const sumDy = new Float64Array(C), sumDyH = new Float64Array(C);
  for (let i = 0; i < size; i += C) {
    for (let c = 0; c < C; c++) {
      const d = dys[i + c];
      sumDy[c] += d;
      sumDyH[c] += d * h[i + c];
    }
  }
  const [dx, dGamma, dBeta] = outs.map((t) => backend.typedArrayFromHeap(t) as Float32Array);
  const k = new Float32Array(C), a = new Float32Array(C), bh = new Float32Array(C);
  for (let c = 0; c < C; c++) {
    dGamma[c] = sumDyH[c];
    dBeta[c] = sumDy[c];
    k[c] = g[c] * r[c];
    a[c] = sumDy[c] / n;
    bh[c] = sumDyH[c] / n;
  }
  for (let i = 0; i < size; i += C) {
    for (let c = 0; c < C; c++) dx[i + c] = k[c] * (dys[i + c] - a[c] - h[i + c] * bh[c]);
  }
  return outs;
}

function batchNormReluPoolWasm(args: KernelArgs): tf.TensorInfo[] {
  const backend = args.backend as WasmHeapBackend;
  const { x, gamma, beta } = args.inputs as Record<string, tf.TensorInfo>;
  const { epsilon, ceilMode } = args.attrs as { epsilon: number; ceilMode: boolean };
  const [N, H, W, C] = x.shape;
  const simd = simdKernels(backend)!;
  const round = ceilMode ? Math.ceil : Math.floor;
  const outs = [[N, round(H / 2), round(W / 2), C], [C], [C], [C]].map((s) =>
    backend.makeOutput(s, "float32")
  );
  const at = simd.offset;
  simd.exports.bn_relu_pool_forward(
    at(x),
    N,
    H,
    W,
    C,
    ceilMode ? 1 : 0,
    at(gamma),
    at(beta),
    epsilon,
    simd.scratch,
    ...outs.map(at) as [number, number, number, number],
  );
  return [...outs, ...updateMovingWasm(args, outs[1], outs[2])];
}

function batchNormReluPoolGradWasm(args: KernelArgs): tf.TensorInfo[] {
  const backend = args.backend as WasmHeapBackend;
  const { x, dy, gamma, beta, mean, invStd } = args.inputs as Record<string, tf.TensorInfo>;
  const { ceilMode } = args.attrs as { ceilMode: boolean };
  const [N, H, W, C] = x.shape;
  const simd = simdKernels(backend)!;
  const outs = [x.shape, [C], [C]].map((s) => backend.makeOutput(s, "float32"));
  const at = simd.offset;
  simd.exports.bn_relu_pool_backward(
    at(x),
    at(dy),
    N,
    H,
    W,
    C,
    ceilMode ? 1 : 0,
    at(gamma),
    at(beta),
    at(mean),
    at(invStd),
    simd.scratch,
    ...outs.map(at) as [number, number, number],
  );
  return outs;
}

/** Register the batch-norm kernels for the WASM backend. Internal. */
export function registerBatchNormKernels(): void {
  registerNewKernels([
    [BATCH_NORM_TRAIN, batchNormTrainWasm],
    [BATCH_NORM_TRAIN_GRAD, batchNormTrainGradWasm],
    [BATCH_NORM_RELU_POOL, batchNormReluPoolWasm],
    [BATCH_NORM_RELU_POOL_GRAD, batchNormReluPoolGradWasm],
  ]);
}
