/**
 * Training steps in data-parallel Web Workers, pipelined: this thread posts
 * each batch's shards (with a seed for each worker's augmentation) to a
 * {@linkcode TrainPipeline} and goes on to the next batch while the workers
 * compute; the workers exchange gradients there and each applies the same
 * Adam update to its own copy of the weights. This thread reads each step's
 * per-sample losses when it is done, checks them and the weights, and hands
 * them to the difficulty tracker.
 *
 * @module
 */
import { gatherImages } from "./images.ts";
import { BackendError } from "./backend_error.ts";
import { GradientWorkers, readFlat, writeFlat } from "./parallel.ts";
import type { LossReading, StepContext, TrainingStep } from "./training_step.ts";

/** A posted step, until it is read. */
interface Pending {
  step: number;
  ids: Int32Array;
  learningRate: number;
  /** The batch's mean loss, once read. */
  loss?: number;
}

/**
 * Start `workers` gradient workers and return the step that uses them. The
 * loss, every weight and every batch-norm statistic are checked at every step
 * (worker 0 checks the weights and statistics after its update). Internal.
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
  let started;
  try {
    started = pool.train(
      readFlat(net.trainableWeights),
      readFlat(net.nonTrainableWeights),
      Math.ceil(context.batchSize / workers),
    );
  } catch (error) {
    pool.close();
    throw error;
  }
  const { pipeline, failure } = started;
  /** Posted steps not yet read, oldest first. */
  const pending: Pending[] = [];
  /** The last read, so that reads happen one at a time and in order. */
  let reading: Promise<void> = Promise.resolve();

  /** Read every posted step up to `step`, in order: losses, checks, tracker. */
  const settle = (step: number): Promise<void> => {
    reading = reading.then(async () => {
      while (pending.length > 0 && pending[0].step <= step) {
        const entry = pending[0];
        await Promise.race([pipeline.done(entry.step), failure]);
        const result = pipeline.result(entry.step);
        pending.shift();
        if (result.error !== null) {
          throw new BackendError(`Cannot train in a worker: ${result.error}`);
        }
        const at = { step: entry.step, learningRate: entry.learningRate };
        entry.loss = result.losses.reduce((a, b) => a + b, 0) / entry.ids.length;
        if (!Number.isFinite(entry.loss)) context.diverged("loss", at);
        if (result.weightsNonFinite) context.diverged("weight", at);
        if (result.statisticsNonFinite) context.diverged("batch-norm moving statistic", at);
        tracker?.record(entry.ids, result.losses);
      }
    });
    return reading;
  };

  return {
    async take(ids, learningRate, augment): Promise<LossReading> {
      const step = pipeline.posted;
      // The slot of step − 2 is this step's: read that step first.
      if (step >= 2) await settle(step - 2);
      // Each worker augments its own shard, with a seed drawn here.
      const parts = Math.min(workers, ids.length);
      const augments = [];
      for (let w = 0; w < parts; w++) {
        const shard = ids.subarray(
          Math.floor((w * ids.length) / parts),
          Math.floor(((w + 1) * ids.length) / parts),
        );
        const { pixels, labels } = pipeline.shardBuffers(step, w, shard.length);
        gatherImages(data.images, shard, pixels);
        for (let i = 0; i < shard.length; i++) labels[i] = data.labels[shard[i]];
        augments.push(augment && { options: augment, seed: rng.int(2 ** 31) });
      }
      pipeline.post(learningRate, augments);
      const entry: Pending = { step, ids: ids.slice(), learningRate };
      pending.push(entry);
      return {
        data: async () => {
          await settle(step);
          return [entry.loss!];
        },
        dispose() {},
      };
    },
    weightsFinite: () => Promise.resolve(true),
    drain: () => settle(pipeline.posted - 1),
    finish() {
      const { params, state } = pipeline.weights();
      pool.close();
      writeFlat(net.trainableWeights, params);
      writeFlat(net.nonTrainableWeights, state);
    },
  };
}
