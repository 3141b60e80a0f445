/**
 * The training loss, shared by the single-thread trainer and the
 * data-parallel workers so that both optimise the same thing.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { NUM_CLASSES } from "./images.ts";

/**
 * Name of the fused softmax cross-entropy kernel: inputs `logits` `[n, 10]`
 * and `labels` `[n]` int32, attribute `smoothing`; outputs the `[n]` losses
 * and the `[n, 10]` probabilities.
 */
export const SOFTMAX_CROSS_ENTROPY = "TinymnistSoftmaxCrossEntropy";
/**
 * Name of its gradient kernel: inputs `dy` `[n]`, `probs` `[n, 10]`, `labels`
 * `[n]`, attribute `smoothing`; output ∂logits = dy · (p − t), `[n, 10]`
 * (dy · (s·p − t) for a label outside 0–9, whose targets sum to s).
 */
export const SOFTMAX_CROSS_ENTROPY_GRAD = "TinymnistSoftmaxCrossEntropyGrad";

/**
 * Per-sample cross-entropy of softmax(logits) against label-smoothed one-hot
 * targets t (`1 − s + s/10` on the true class, `s/10` on each other), computed from the logits
 * z: loss = −Σⱼ tⱼ log softmax(z)ⱼ = logsumexp(z) − Σⱼ tⱼ zⱼ, whose gradient
 * is softmax(z) − t. A row with a non-finite logit gets a NaN or infinite
 * loss. Where the backend has the kernels named above (wasm,
 * `wasm/softmax_cross_entropy.ts`) each direction is one kernel; elsewhere it
 * is composed from `logSoftmax`. Internal.
 *
 * @param logits `[n, 10]` logits (the last layer before its softmax).
 * @param labels `[n]` int32 digits; one outside 0–9 has no hot class.
 * @param smoothing Label smoothing `s` in [0, 1).
 * @returns `[n]` losses, in nats.
 */
export function softmaxCrossEntropy(
  logits: tf.Tensor,
  labels: tf.Tensor1D,
  smoothing: number,
): tf.Tensor1D {
  if (!tf.getKernel(SOFTMAX_CROSS_ENTROPY, tf.getBackend())) {
    return tf.tidy(() => {
      const y = tf.oneHot(labels, NUM_CLASSES);
      const target = smoothing > 0 ? y.mul(1 - smoothing).add(smoothing / NUM_CLASSES) : y;
      return tf.neg(tf.sum(target.mul(tf.logSoftmax(logits)), 1)) as tf.Tensor1D;
    });
  }
  const op = tf.customGrad((logits, save) => {
    const [losses, probs] = tf.engine().runKernel(
      SOFTMAX_CROSS_ENTROPY,
      { logits: logits as tf.Tensor, labels },
      { smoothing },
    ) as tf.Tensor[];
    // Saved, not captured: the caller's tidy may free the labels before the gradient runs.
    (save as tf.GradSaveFunc)([probs, labels]);
    return {
      value: losses,
      gradFunc: (dy: tf.Tensor, [probs, labels]: tf.Tensor[]) =>
        tf.engine().runKernel(
          SOFTMAX_CROSS_ENTROPY_GRAD,
          { dy, probs, labels },
          { smoothing },
        ) as tf.Tensor,
    };
  });
  return op(logits) as tf.Tensor1D;
}

/** Knowledge distillation's settings (Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a Neural Network", arXiv:1503.02531). */
export interface Distillation {
  /** Softmax temperature T of the soft targets and of the student's soft output. */
  temperature: number;
  /** Weight α of the soft-target term; the label term gets 1 − α. */
  weight: number;
}

/**
 * A teacher's probabilities softened at temperature T: softmax(log p / T).
 * Internal.
 *
 * @param probs `[n, 10]` teacher probabilities.
 * @param temperature T ≥ 1.
 * @returns `[n, 10]` soft targets.
 */
export function softTargets(probs: tf.Tensor, temperature: number): tf.Tensor {
  return tf.tidy(() => tf.softmax(tf.log(probs.clipByValue(1e-7, 1)).div(temperature)));
}

/**
 * The training loss per sample, from the student's logits: label-smoothed
 * cross-entropy ({@linkcode softmaxCrossEntropy}), or with `soft` targets (a
 * teacher's probabilities, already softened at temperature T) the
 * distillation loss α·T²·CE(soft, softmax(z / T)) + (1 − α)·CE(labels,
 * softmax(z)) of Hinton et al. (the T² keeps the soft term's gradients on the
 * same scale as T changes). Internal.
 *
 * @param logits `[n, 10]` the student's logits.
 * @param labels `[n]` int32 digits.
 * @param smoothing Label smoothing of the label term.
 * @param soft `[n, 10]` softened teacher probabilities, or null.
 * @param distillation T and α; needed with `soft`.
 * @returns `[n]` losses.
 */
export function trainingLoss(
  logits: tf.Tensor,
  labels: tf.Tensor1D,
  smoothing: number,
  soft: tf.Tensor | null,
  distillation: Distillation | null,
): tf.Tensor1D {
  if (!soft || !distillation) return softmaxCrossEntropy(logits, labels, smoothing);
  return tf.tidy(() => {
    const { temperature: t, weight } = distillation;
    const logSoft = tf.logSoftmax(logits.div(t));
    const softTerm = tf.neg(tf.sum(soft.mul(logSoft), 1)).mul(weight * t * t);
    const hardTerm = softmaxCrossEntropy(logits, labels, smoothing).mul(1 - weight);
    return softTerm.add(hardTerm) as tf.Tensor1D;
  });
}
