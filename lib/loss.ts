/**
 * The training loss, shared by the single-thread trainer and the
 * data-parallel workers so that both optimise the same thing.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { NUM_CLASSES } from "./model.ts";

/**
 * Per-sample cross-entropy of predicted probabilities against one-hot targets
 * with label smoothing: the target puts `1 - s + s/10` on the true class and
 * `s/10` on each other class. Probabilities are clipped away from 0 so that a
 * confident mistake costs a finite loss; a row with a non-finite probability
 * (diverged weights) gets a NaN loss, which the clip alone would hide as a
 * finite 16.1. Internal.
 *
 * @param probs `[n, 10]` class probabilities.
 * @param labels `[n]` int32 digits.
 * @param smoothing Label smoothing `s` in [0, 1).
 * @returns `[n]` losses.
 */
export function smoothedCrossEntropy(
  probs: tf.Tensor,
  labels: tf.Tensor1D,
  smoothing: number,
): tf.Tensor1D {
  return tf.tidy(() => {
    const y = tf.oneHot(labels, NUM_CLASSES);
    const target = smoothing > 0 ? y.mul(1 - smoothing).add(smoothing / NUM_CLASSES) : y;
    const loss = tf.neg(tf.sum(target.mul(tf.log(probs.clipByValue(1e-7, 1))), 1));
    // 0 for finite rows, NaN otherwise (NaN × 0 and ∞ × 0 are NaN); no gradient flows.
    const nonFinite = tf.sum(probs, 1).mul(0);
    return loss.add(nonFinite) as tf.Tensor1D;
  });
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
 * The training loss per sample: label-smoothed cross-entropy, or with
 * `soft` targets (a teacher's probabilities, already softened at
 * temperature T) the distillation loss α·T²·CE(soft, softmax(log p / T)) +
 * (1 − α)·CE(labels, p) of Hinton et al. (the T² keeps the soft term's
 * gradients on the same scale as T changes). Internal.
 *
 * @param probs `[n, 10]` the student's probabilities.
 * @param labels `[n]` int32 digits.
 * @param smoothing Label smoothing of the label term.
 * @param soft `[n, 10]` softened teacher probabilities, or null.
 * @param distillation T and α; needed with `soft`.
 * @returns `[n]` losses.
 */
export function trainingLoss(
  probs: tf.Tensor,
  labels: tf.Tensor1D,
  smoothing: number,
  soft: tf.Tensor | null,
  distillation: Distillation | null,
): tf.Tensor1D {
  if (!soft || !distillation) return smoothedCrossEntropy(probs, labels, smoothing);
  return tf.tidy(() => {
    const { temperature: t, weight } = distillation;
    // log p / T are the student's logits at temperature T (softmax is shift-invariant).
    const logSoft = tf.logSoftmax(tf.log(probs.clipByValue(1e-7, 1)).div(t));
    const softTerm = tf.neg(tf.sum(soft.mul(logSoft), 1)).mul(weight * t * t);
    const hardTerm = smoothedCrossEntropy(probs, labels, smoothing).mul(1 - weight);
    return softTerm.add(hardTerm) as tf.Tensor1D;
  });
}
