/**
 * Training steps shared between data-parallel Web Workers: each worker
 * augments its shard of the batch and returns its gradients; this thread
 * averages them and applies one Adam update to a flat copy of the weights.
 *
 * @module
 */
import { FlatAdam } from "./adam.ts";
import { gatherImages } from "./images.ts";
import { GradientWorkers, readFlat, type Shard, writeFlat } from "./parallel.ts";
import type { StepContext, TrainingStep } from "./training_step.ts";

/** Whether some value of `flat` is not finite. */
function anyNonFinite(flat: Float32Array): boolean {
  for (let i = 0; i < flat.length; i++) if (!Number.isFinite(flat[i])) return true;
  return false;
}

/**
 * Start `workers` gradient workers and return the step that uses them. The
 * loss, every weight and every batch-norm statistic are checked at every step
 * (a scan of the weights takes about 20 µs). Internal.
 *
 * @param workers Workers (≥ 1); each batch is split into at most this many shards.
 * @param context The model, data and loss settings.
 * @returns The step; its `finish` stops the workers and writes the weights back.
 * @throws {BackendError} When a worker cannot start.
 */
export async function startWorkerStep(
  workers: number,
  context: StepContext,
): Promise<TrainingStep> {
  const { net, data, rng, tracker } = context;
  const pool = await GradientWorkers.start(
    workers,
    net,
    context.smoothing,
    context.teacher,
    rng.int(2 ** 31),
  );
  const params = readFlat(net.trainableWeights);
  let state = readFlat(net.nonTrainableWeights);
  const adam = new FlatAdam(params.length);
  return {
    async take(ids, learningRate, augment) {
      // Each worker augments its own shard, with a seed drawn here.
      const shards: Shard[] = [];
      const parts = Math.min(workers, ids.length);
      for (let w = 0; w < parts; w++) {
        const shard = ids.subarray(
          Math.floor((w * ids.length) / parts),
          Math.floor(((w + 1) * ids.length) / parts),
        );
        shards.push({
          pixels: gatherImages(data.images, shard),
          labels: Int32Array.from(shard, (id) => data.labels[id]),
          augment: augment && { options: augment, seed: rng.int(2 ** 31) },
        });
      }
      const result = await pool.step(params, state, shards);
      adam.step(params, result.gradients, learningRate);
      state = result.state;
      const loss = result.losses.reduce((a, b) => a + b, 0) / ids.length;
      if (!Number.isFinite(loss)) context.diverged("loss");
      if (anyNonFinite(params)) context.diverged("weight");
      if (anyNonFinite(state)) context.diverged("batch-norm moving statistic");
      tracker?.record(ids, result.losses);
      return loss;
    },
    weightsFinite: () => Promise.resolve(true),
    finish() {
      pool.close();
      writeFlat(net.trainableWeights, params);
      writeFlat(net.nonTrainableWeights, state);
    },
  };
}
