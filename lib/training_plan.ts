/**
 * The plan of a training run: how each pass splits into mini-epochs, how many
 * fresh and difficult presentations each holds, and the learning rate of
 * every step (one-cycle or constant).
 *
 * @module
 */

/** One mini-epoch of a pass: fresh images first, then re-presented difficult ones. */
export interface Chunk {
  /** Fresh (not yet presented this pass) images. */
  readonly fresh: number;
  /** Re-presentations of the most difficult examples seen so far. */
  readonly hard: number;
  /** Gradient steps: `ceil(fresh / batchSize) + ceil(hard / batchSize)`. */
  readonly steps: number;
}

/** The settings {@linkcode planTraining} needs, already checked. */
export interface PlanSettings {
  /** Full passes over the training images (≥ 1). */
  epochs: number;
  /** Images per gradient step (≥ 1). */
  batchSize: number;
  /** Mini-epochs per pass (≥ 1). */
  miniEpochs: number;
  /** Share of presentations that re-present difficult examples, in [0, 0.5]. */
  hardExamples: number;
  /** Peak learning rate (> 0). */
  learningRate: number;
  /** Peak of each mini-epoch relative to the one before, in (0, 1]. */
  miniEpochDecay: number;
  /** The learning-rate schedule. */
  schedule: "one-cycle" | "constant";
}

/** What {@linkcode planTraining} returns. */
export interface TrainingPlan {
  /** The mini-epochs of one pass, in order. */
  readonly chunks: readonly Chunk[];
  /** Steps in one pass. */
  readonly stepsPerEpoch: number;
  /** Steps in the whole run. */
  readonly totalSteps: number;
  /**
   * The learning rate of a step.
   * @param epoch 0-based pass.
   * @param chunk 0-based mini-epoch in the pass.
   * @param stepInChunk 0-based step within that mini-epoch.
   */
  learningRate(epoch: number, chunk: number, stepInChunk: number): number;
}

/**
 * The learning rate of step `step` out of `total` for a schedule.
 *
 * One-cycle (Smith & Topin 2017, "Super-Convergence", arXiv:1708.07120):
 * linear warm-up from `peak / 25` over the first 20% of steps, then cosine
 * decay to `peak / 1000`.
 *
 * @param step 0-based step.
 * @param total Number of steps.
 * @param peak Peak learning rate.
 * @param schedule The schedule's name.
 * @returns The learning rate for that step.
 *
 * @example One-cycle starts low, peaks at 20%, ends near zero
 * ```ts
 * import { learningRateAt } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * assert.equal(learningRateAt(200, 1000, 0.01, "one-cycle"), 0.01);
 * assert.ok(learningRateAt(0, 1000, 0.01, "one-cycle") < 0.001);
 * assert.ok(learningRateAt(999, 1000, 0.01, "one-cycle") < 0.0001);
 * ```
 */
export function learningRateAt(
  step: number,
  total: number,
  peak: number,
  schedule: "one-cycle" | "constant",
): number {
  if (schedule === "constant") return peak;
  const warm = Math.max(1, Math.round(0.2 * total));
  const start = peak / 25, end = peak / 1000;
  if (step < warm) return start + (peak - start) * (step / warm);
  const t = (step - warm) / Math.max(1, total - 1 - warm);
  return end + (peak - end) * 0.5 * (1 + Math.cos(Math.PI * Math.min(1, t)));
}

/**
 * Plan a run over `count` training images. Each pass is `miniEpochs` chunks;
 * each chunk presents its share of fresh images, then its share of difficult
 * ones, so that a pass presents `count` images in all. With one mini-epoch
 * the schedule spans the whole run; with several, each chunk has its own
 * schedule whose peak is `miniEpochDecay` times the one before (warm
 * restarts, Loshchilov & Hutter 2017, "SGDR", arXiv:1608.03983). Internal.
 *
 * @param count Training images (≥ 1).
 * @param settings The checked recipe settings.
 * @returns The chunks, step counts and learning rate of each step.
 *
 * @example One pass of 1,000 images in batches of 100, 10% difficult
 * ```ts
 * import { planTraining } from "./training_plan.ts";
 * import assert from "node:assert/strict";
 *
 * const plan = planTraining(1000, {
 *   epochs: 1, batchSize: 100, miniEpochs: 1, hardExamples: 0.1,
 *   learningRate: 0.01, miniEpochDecay: 0.7, schedule: "one-cycle",
 * });
 * assert.deepEqual(plan.chunks, [{ fresh: 900, hard: 100, steps: 10 }]);
 * assert.equal(plan.learningRate(0, 0, 2), 0.01); // the peak, at 20% of 10 steps
 * ```
 */
export function planTraining(count: number, settings: PlanSettings): TrainingPlan {
  const { epochs, batchSize, miniEpochs, hardExamples, learningRate: peak, schedule } = settings;
  const chunks: Chunk[] = [];
  for (let m = 0; m < miniEpochs; m++) {
    const size = Math.floor(((m + 1) * count) / miniEpochs) - Math.floor((m * count) / miniEpochs);
    const wanted = m === 0 && miniEpochs > 1 && hardExamples > 0
      ? 0 // nothing seen yet: the first chunk is all fresh, the others make up for it
      : Math.round(size * hardExamples * (miniEpochs > 1 ? miniEpochs / (miniEpochs - 1) : 1));
    const hard = Math.min(wanted, size), fresh = size - hard;
    chunks.push({
      fresh,
      hard,
      steps: Math.ceil(fresh / batchSize) + Math.ceil(hard / batchSize),
    });
  }
  const stepsPerEpoch = chunks.reduce((a, c) => a + c.steps, 0);
  const totalSteps = epochs * stepsPerEpoch;
  return {
    chunks,
    stepsPerEpoch,
    totalSteps,
    learningRate: (epoch, chunk, stepInChunk) =>
      miniEpochs === 1
        ? learningRateAt(epoch * stepsPerEpoch + stepInChunk, totalSteps, peak, schedule)
        : learningRateAt(
          stepInChunk,
          chunks[chunk].steps,
          peak * settings.miniEpochDecay ** chunk,
          schedule,
        ),
  };
}
