/**
 * Batch normalisation for training as one op with its gradient written out,
 * and, for the WASM backend, both directions as two kernels of two passes each
 * in plain JavaScript over the backend's memory. TensorFlow.js composes the
 * layer's training mode from `moments` and `batchNorm`: about 50 kernels
 * forward and backward per layer, most of them broadcasting element-wise ops
 * that the WASM backend runs element by element. The two kernels use the SIMD
 * module of `simd.ts` when the channels are a multiple of 4.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { KernelArgs, WasmHeapBackend } from "./backend.ts";
import { simdKernels } from "./simd.ts";

/**
 * Name of the forward kernel: inputs `x`, `gamma`, `beta` (and `movingMean`,
 * `movingVariance` with attribute `momentum` ≥ 0); outputs y, mean, variance,
 * 1/std, x̂ (and the updated moving mean and variance).
 */
export const BATCH_NORM_TRAIN = "TinymnistBatchNormTrain";
/** Name of the gradient kernel: inputs `dy`, `normalised`, `gamma`, `invStd`; outputs ∂x, ∂γ, ∂β. */
export const BATCH_NORM_TRAIN_GRAD = "TinymnistBatchNormTrainGrad";
/** Batch norm, ReLU and 2×2 max-pool: inputs and outputs as the plain kernel's, without x̂. */
export const BATCH_NORM_RELU_POOL = "TinymnistBatchNormReluPool";
/** Its gradient: inputs `x`, `dy`, `gamma`, `beta`, `mean`, `invStd`; outputs ∂x, ∂γ, ∂β. */
export const BATCH_NORM_RELU_POOL_GRAD = "TinymnistBatchNormReluPoolGrad";

/** Moving statistics that a batch-norm op updates, as the layer does. Internal. */
export interface MovingStatistics {
  /** The moving mean. */
  mean: tf.Tensor;
  /** The moving variance. */
  variance: tf.Tensor;
  /** moving ← moving − (moving − batch) × (1 − momentum). */
  momentum: number;
  /** Receives the updated moving mean and variance. */
  update(mean: tf.Tensor, variance: tf.Tensor): void;
}

/** Options of {@linkcode batchNormTraining}. Internal. */
export interface BatchNormOptions {
  /** Added to the variance. */
  epsilon: number;
  /** Moving statistics to update with this batch's. */
  moving?: MovingStatistics;
  /** Receives the batch mean and (biased) variance; they are freed afterwards unless kept. */
  onStatistics?: (mean: tf.Tensor, variance: tf.Tensor) => void;
}

/** Inputs and attributes for a kernel that also updates moving statistics. */
function movingArgs(options: BatchNormOptions): {
  inputs: tf.NamedTensorMap;
  attrs: tf.NamedAttrMap;
} {
  const m = options.moving;
  return {
    inputs: m ? { movingMean: m.mean, movingVariance: m.variance } : {},
    attrs: { epsilon: options.epsilon, momentum: m ? m.momentum : -1 },
  };
}

/**
 * Batch normalisation over all axes but the last, in training mode, as one op
 * with its gradient written out:
 *
 *   x̂ = (x − μ) / √(σ² + ε),  y = γ x̂ + β
 *   ∂β = Σ ∂y,  ∂γ = Σ ∂y x̂,  ∂x = γ / (N √(σ² + ε)) · (N ∂y − ∂β − x̂ ∂γ)
 *
 * where μ and σ² are the batch mean and biased variance and N the number of
 * values per channel. Internal.
 *
 * @param x Input, channels last.
 * @param gamma Scale, one per channel.
 * @param beta Shift, one per channel.
 * @param options ε and a hook for the batch statistics.
 * @returns The normalised, scaled and shifted input.
 */
export function batchNormTraining(
  x: tf.Tensor,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  options: BatchNormOptions,
): tf.Tensor {
  if (tf.getKernel(BATCH_NORM_TRAIN, tf.getBackend())) {
    return kernelBatchNorm(BATCH_NORM_TRAIN, BATCH_NORM_TRAIN_GRAD, x, gamma, beta, options);
  }
  const axes = Array.from({ length: x.rank - 1 }, (_, i) => i);
  const n = x.size / x.shape[x.rank - 1];
  const op = tf.customGrad((x, gamma, beta, save) => {
    const mean = tf.mean(x as tf.Tensor, axes);
    const centered = tf.sub(x as tf.Tensor, mean);
    const variance = tf.mean(tf.square(centered), axes);
    options.onStatistics?.(mean, variance);
    const moving = options.moving;
    if (moving) {
      const decay = 1 - moving.momentum;
      moving.update(
        tf.sub(moving.mean, tf.mul(tf.sub(moving.mean, mean), decay)),
        tf.sub(moving.variance, tf.mul(tf.sub(moving.variance, variance), decay)),
      );
    }
    const invStd = tf.rsqrt(tf.add(variance, options.epsilon));
    const normalised = tf.mul(centered, invStd);
    (save as tf.GradSaveFunc)([normalised, invStd, gamma as tf.Tensor]);
    return {
      value: tf.add(tf.mul(normalised, gamma as tf.Tensor), beta as tf.Tensor),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [normalised, invStd, gamma] = saved;
        const dBeta = tf.sum(dy, axes);
        const dGamma = tf.sum(tf.mul(dy, normalised), axes);
        const dx = tf.mul(
          tf.sub(tf.sub(dy, tf.div(dBeta, n)), tf.mul(normalised, tf.div(dGamma, n))),
          tf.mul(gamma, invStd),
        );
        return [dx, dGamma, dBeta];
      },
    };
  });
  return op(x, gamma, beta);
}

/**
 * A batch-norm op run by two kernels of the backend: `forward` returns
 * `[value, mean, variance, invStd, normalised?, movingMean?, movingVariance?]`
 * (`normalised` for the plain op only, the moving statistics when given) and
 * `grad` reads what it needs of `dy, x, gamma, beta, mean, invStd, normalised`
 * and returns `[∂x, ∂γ, ∂β]`.
 */
function kernelBatchNorm(
  forward: string,
  grad: string,
  x: tf.Tensor,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  options: BatchNormOptions,
): tf.Tensor {
  const op = tf.customGrad((x, gamma, beta, save) => {
    const { inputs, attrs } = movingArgs(options);
    const outs = tf.engine().runKernel(
      forward,
      { x: x as tf.Tensor, gamma: gamma as tf.Tensor, beta: beta as tf.Tensor, ...inputs },
      attrs,
    ) as tf.Tensor[];
    const [value, mean, variance, invStd] = outs;
    options.onStatistics?.(mean, variance);
    if (options.moving) options.moving.update(outs[outs.length - 2], outs[outs.length - 1]);
    const normalised = forward === BATCH_NORM_TRAIN ? outs[4] : mean; // a placeholder when unused
    (save as tf.GradSaveFunc)([
      x as tf.Tensor,
      gamma as tf.Tensor,
      beta as tf.Tensor,
      mean,
      invStd,
      normalised,
    ]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [x, gamma, beta, mean, invStd, normalised] = saved;
        return tf.engine().runKernel(
          grad,
          { dy, x, gamma, beta, mean, invStd, normalised },
          {},
        ) as tf.Tensor[];
      },
    };
  });
  return op(x, gamma, beta);
}

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

/**
 * Whether {@linkcode batchNormReluPoolTraining} can run on the active backend
 * for an input of this shape: the WASM backend with its SIMD module, channels
 * last, a multiple of 4 of them. Internal.
 */
export function canFuseBatchNormReluPool(shape: readonly number[]): boolean {
  return shape.length === 4 && shape[1] >= 2 && shape[2] >= 2 &&
    tf.getKernel(BATCH_NORM_RELU_POOL, tf.getBackend()) !== undefined &&
    simdKernels(tf.backend(), shape[3]) !== null;
}

/**
 * `maxPool(relu(batchNormTraining(x)), 2, 2, "valid")` as one op, for the
 * conv → batch norm → ReLU → max-pool blocks of the presets: two passes over
 * `x` forward and two backward, where the three ops make about ten, and no
 * normalised copy of `x` is kept (it is recomputed from `x`). Only where
 * {@linkcode canFuseBatchNormReluPool} says so. Internal.
 *
 * @param x Input `[n, h, w, c]`.
 * @param gamma Scale, one per channel.
 * @param beta Shift, one per channel.
 * @param options ε and a hook for the batch statistics.
 * @returns `[n, ⌊h/2⌋, ⌊w/2⌋, c]`.
 */
export function batchNormReluPoolTraining(
  x: tf.Tensor,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  options: BatchNormOptions,
): tf.Tensor {
  return kernelBatchNorm(BATCH_NORM_RELU_POOL, BATCH_NORM_RELU_POOL_GRAD, x, gamma, beta, options);
}

function batchNormReluPoolWasm(args: KernelArgs): tf.TensorInfo[] {
  const backend = args.backend as WasmHeapBackend;
  const { x, gamma, beta } = args.inputs as Record<string, tf.TensorInfo>;
  const epsilon = (args.attrs as { epsilon: number }).epsilon;
  const [N, H, W, C] = x.shape;
  const simd = simdKernels(backend)!;
  const outs = [[N, Math.floor(H / 2), Math.floor(W / 2), C], [C], [C], [C]].map((s) =>
    backend.makeOutput(s, "float32")
  );
  const at = simd.offset;
  simd.exports.bn_relu_pool_forward(
    at(x),
    N,
    H,
    W,
    C,
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
  for (
    const [kernelName, kernelFunc] of [
      [BATCH_NORM_TRAIN, batchNormTrainWasm],
      [BATCH_NORM_TRAIN_GRAD, batchNormTrainGradWasm],
      [BATCH_NORM_RELU_POOL, batchNormReluPoolWasm],
      [BATCH_NORM_RELU_POOL_GRAD, batchNormReluPoolGradWasm],
    ] as const
  ) {
    if (tf.getKernel(kernelName, "wasm")) continue;
    tf.registerKernel({
      kernelName,
      backendName: "wasm",
      kernelFunc: kernelFunc as unknown as tf.KernelFunc,
    });
  }
}
