/**
 * Which training examples are difficult: the per-example loss of each
 * example's latest presentation, relative to its batch's mean loss.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { type Rng, shuffle } from "./rng.ts";

/**
 * Tracks per-example losses during a run and picks the most difficult
 * examples for re-presentation (the `hardExamples` option of `train`).
 * Difficulty is an example's loss divided by the mean loss of its batch:
 * early in a pass every loss is high, so raw losses would just pick the
 * examples seen first. Losses still on the device are kept as tensors and
 * read back in one go by {@linkcode DifficultyTracker.flush}. Internal.
 *
 * @example The example with the highest relative loss comes first
 * ```ts
 * import { DifficultyTracker } from "./difficulty_tracker.ts";
 * import { createRng } from "./rng.ts";
 * import assert from "node:assert/strict";
 *
 * const tracker = new DifficultyTracker(4);
 * tracker.record(Int32Array.of(0, 1), Float32Array.of(1, 3)); // relative 0.5, 1.5
 * tracker.record(Int32Array.of(2), Float32Array.of(9)); // relative 1
 * assert.deepEqual([...tracker.hardest(1, Int32Array.of(0, 1, 2, 3), createRng(0))], [1]);
 * ```
 */
export class DifficultyTracker {
  /** Relative loss of each example's latest presentation; -1: not seen yet. */
  #relative: Float32Array;
  /** Losses still on the device, with the examples they belong to. */
  #pending: { indices: Int32Array; losses: tf.Tensor }[] = [];

  /**
   * Track `count` examples, none seen yet.
   * @param count Training examples, indexed 0 to `count - 1`.
   */
  constructor(count: number) {
    this.#relative = new Float32Array(count).fill(-1);
  }

  /**
   * Record the per-example losses of one batch.
   * @param indices The batch's example indices.
   * @param losses Their losses, in the same order.
   */
  record(indices: Int32Array, losses: Float32Array): void {
    let mean = 0;
    for (let j = 0; j < indices.length; j++) mean += losses[j] / indices.length;
    const divisor = Math.max(mean, 1e-12);
    indices.forEach((i, j) => this.#relative[i] = losses[j] / divisor);
  }

  /**
   * Record a batch whose losses are still a tensor; it is read back (and
   * disposed) at the next {@linkcode DifficultyTracker.flush}.
   * @param indices The batch's example indices (copied).
   * @param losses A `[batch]` tensor of per-example losses; the tracker owns it.
   */
  defer(indices: Int32Array, losses: tf.Tensor): void {
    this.#pending.push({ indices: indices.slice(), losses });
  }

  /** Read back every deferred batch in one transfer and record it. */
  async flush(): Promise<void> {
    if (this.#pending.length === 0) return;
    const all = tf.concat(this.#pending.map((p) => p.losses));
    const values = await all.data() as Float32Array;
    all.dispose();
    let k = 0;
    for (const p of this.#pending) {
      this.record(p.indices, values.subarray(k, k + p.indices.length));
      k += p.indices.length;
      p.losses.dispose();
    }
    this.#pending.length = 0;
  }

  /**
   * The `n` seen examples with the highest relative loss, in random order.
   * Call {@linkcode DifficultyTracker.flush} first so deferred losses count.
   * @param n How many to pick (fewer when fewer were seen).
   * @param candidates The examples to choose among, in a fixed order (ties keep it).
   * @param rng Shuffles the picked examples.
   * @returns Their indices.
   */
  hardest(n: number, candidates: Int32Array, rng: Rng): Int32Array {
    const relative = this.#relative;
    const seen = candidates.filter((i) => relative[i] >= 0);
    seen.sort((a, b) => relative[b] - relative[a]);
    return shuffle(seen.slice(0, n), rng);
  }

  /** Free the deferred loss tensors. */
  dispose(): void {
    for (const p of this.#pending) p.losses.dispose();
    this.#pending.length = 0;
  }
}
