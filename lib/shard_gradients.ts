/**
 * One data-parallel worker's share of a training step: its shard augmented
 * from the run's banks, forward and backward through its replica of the
 * model, and the gradient of the shard's mean loss, the per-sample losses and
 * the updated batch-norm statistics read out flat. The workers run it on
 * their own wasm backends (`parallel_worker.ts`); the pipeline's test runs it
 * in its own thread for a reference. Internal.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { type AugmentBanks, augmentFromBanks } from "./augment.ts";
import { trainingLogits } from "./forward.ts";
import { IMAGE_SIZE } from "./images.ts";
import { type Distillation, softTargets, trainingLoss } from "./loss.ts";
import { readFlat, type ShardAugmentation } from "./parallel.ts";
import { createRng } from "./rng.ts";
import type { ShardInput, ShardResult } from "./train_pipeline.ts";

/** A replica of the model and what its steps need. Internal. */
export interface ShardTrainer {
  /** The replica, trained in place. */
  net: tf.LayersModel;
  /** Its trainable variables, in `trainableWeights` order. */
  vars: tf.Variable[];
  /** Label smoothing, in [0, 1). */
  smoothing: number;
  /** The run's augmentation banks, the same in every worker. */
  banks: AugmentBanks;
  /** The teacher's replica and T, α, when distilling; else `null`. */
  teacher: { net: tf.LayersModel; settings: Distillation } | null;
}

/**
 * Gradient, per-sample losses and updated statistics of one shard, at the
 * replica's weights. Internal.
 * @param trainer The replica and its settings.
 * @param shard The shard, with its augmentation (`ShardAugmentation`) or `null`.
 */
export function shardGradients(trainer: ShardTrainer, shard: ShardInput): ShardResult {
  const { net, vars, smoothing, banks, teacher } = trainer;
  const augment = shard.augment as ShardAugmentation | null;
  const pixels = augment
    ? augmentFromBanks(shard.pixels, augment.options, createRng(augment.seed), banks)
    : shard.pixels;
  const x = tf.tensor4d(pixels, [shard.count, IMAGE_SIZE, IMAGE_SIZE, 1]);
  const labels = tf.tensor1d(shard.labels, "int32");
  // The teacher sees the same augmented images as the student (inference mode, no gradient).
  const soft = teacher &&
    tf.tidy(() => softTargets(teacher.net.predict(x) as tf.Tensor, teacher.settings.temperature));
  let perSample: tf.Tensor | undefined;
  const { value, grads } = tf.variableGrads(() =>
    tf.tidy(() => {
      const logits = trainingLogits(net, x);
      const each = trainingLoss(logits, labels, smoothing, soft, teacher?.settings ?? null);
      perSample = tf.keep(each);
      return each.mean().asScalar();
    }), vars);
  const gradients = new Float32Array(vars.reduce((a, v) => a + v.size, 0));
  let offset = 0;
  for (const v of vars) {
    const g = grads[v.name].dataSync() as Float32Array;
    gradients.set(g, offset);
    offset += g.length;
  }
  const losses = (perSample!.dataSync() as Float32Array).slice();
  tf.dispose([x, labels, value, perSample!, ...Object.values(grads)]);
  soft?.dispose();
  return { gradients, losses, state: readFlat(net.nonTrainableWeights) };
}
