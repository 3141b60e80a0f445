/**
 * Batch normalisation for training as one op with its gradient written out.
 * TensorFlow.js composes the layer's training mode from `moments` and
 * `batchNorm`: about 50 kernels forward and backward per layer, most of them
 * broadcasting element-wise ops. Where a backend has the kernels named here
 * (the WASM backend, `wasm/batch_norm.ts`: two passes each way in plain
 * JavaScript over the backend's memory), each direction is one kernel; on the
 * others the op is composed from a few TensorFlow.js ops.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { simdKernels } from "./wasm/simd.ts";

/**
 * Name of the forward kernel: inputs `x`, `gamma`, `beta` (and `movingMean`,
 * `movingVariance` with attribute `momentum` ≥ 0); outputs y, mean, variance,
 * 1/std, x̂ (and the updated moving mean and variance).
 */
export const BATCH_NORM_TRAIN = "TinymnistBatchNormTrain";
/** Name of the gradient kernel: inputs `dy`, `normalised`, `gamma`, `invStd`; outputs ∂x, ∂γ, ∂β. */
export const BATCH_NORM_TRAIN_GRAD = "TinymnistBatchNormTrainGrad";
/**
 * Batch norm, ReLU and 2×2 max-pool: inputs and outputs as the plain kernel's,
 * without x̂; attribute `ceilMode` (the pool's "same" padding) rounds the
 * pooled size up instead of down.
 */
export const BATCH_NORM_RELU_POOL = "TinymnistBatchNormReluPool";
/**
 * Its gradient: inputs `x`, `dy`, `gamma`, `beta`, `mean`, `invStd`, attribute
 * `ceilMode`; outputs ∂x, ∂γ, ∂β.
 */
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
 * and returns `[∂x, ∂γ, ∂β]`; both get the attributes `shared`.
 */
function kernelBatchNorm(
  forward: string,
  grad: string,
  x: tf.Tensor,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  options: BatchNormOptions,
  shared: tf.NamedAttrMap = {},
): tf.Tensor {
  const op = tf.customGrad((x, gamma, beta, save) => {
    const { inputs, attrs } = movingArgs(options);
    const outs = tf.engine().runKernel(
      forward,
      { x: x as tf.Tensor, gamma: gamma as tf.Tensor, beta: beta as tf.Tensor, ...inputs },
      { ...attrs, ...shared },
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
          shared,
        ) as tf.Tensor[];
      },
    };
  });
  return op(x, gamma, beta);
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
 * `maxPool(relu(batchNormTraining(x)), 2, 2, padding)` as one op, for the
 * conv → batch norm → ReLU → max-pool blocks of the presets: two passes over
 * `x` forward and two backward, where the three ops make about ten, and no
 * normalised copy of `x` is kept (it is recomputed from `x`). Only where
 * {@linkcode canFuseBatchNormReluPool} says so. Internal.
 *
 * @param x Input `[n, h, w, c]`.
 * @param gamma Scale, one per channel.
 * @param beta Shift, one per channel.
 * @param options ε and a hook for the batch statistics.
 * @param padding The pool's padding: `"valid"` drops an odd last row or
 * column, `"same"` pools it on its own (TensorFlow's "same" for a 2×2 window
 * of stride 2 pads only at the end).
 * @returns `[n, ⌊h/2⌋, ⌊w/2⌋, c]` (`"valid"`) or `[n, ⌈h/2⌉, ⌈w/2⌉, c]` (`"same"`).
 */
export function batchNormReluPoolTraining(
  x: tf.Tensor,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  options: BatchNormOptions,
  padding: "valid" | "same" = "valid",
): tf.Tensor {
  return kernelBatchNorm(
    BATCH_NORM_RELU_POOL,
    BATCH_NORM_RELU_POOL_GRAD,
    x,
    gamma,
    beta,
    options,
    { ceilMode: padding === "same" },
  );
}
