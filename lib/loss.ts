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
