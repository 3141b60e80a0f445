/**
 * The training history a report needs, collected through `train`'s
 * `onBatchEnd` callback: per batch, its step, the images seen so far, the
 * learning rate, and the loss when it was read back.
 *
 * @module
 */
import type { BatchEvent } from "./train.ts";

/** One training batch, as {@linkcode recordHistory} records it. */
export interface HistoryBatch {
  /** 1-based step: the number of batches trained so far, all epochs. */
  step: number;
  /** Images presented so far, all epochs (after this batch). */
  images: number;
  /** Learning rate this batch was trained with. */
  learningRate: number;
  /**
   * Mean training loss read back after this batch, or `null` when this batch's
   * loss was not read (`train` reads it every `lossEvery` batches and at the
   * end of each epoch). `null`, not `NaN`, so that a history survives `JSON.stringify`.
   */
  loss: number | null;
}

/** The batches of one training run, in order; see {@linkcode recordHistory}. */
export interface TrainingHistory {
  /** One entry per batch, steps 1, 2, 3, …. */
  batches: HistoryBatch[];
}

/** What {@linkcode recordHistory} returns: the history and the callback that fills it. */
export interface HistoryRecorder {
  /** The history, filled in as training runs (the same object throughout). */
  history: TrainingHistory;
  /** Pass as `train`'s `onBatchEnd` option (or call from your own callback). */
  onBatchEnd: (event: BatchEvent) => void;
}

/**
 * Start recording a training history. `BatchEvent.loss` is `NaN` until the
 * first read-back and then repeats the latest value read until the next one,
 * so a batch gets a loss only when the event's loss differs from the previous
 * batch's: every read-back is recorded, except one that returns exactly the
 * same number as the read-back before it (the plotted curve is the same).
 *
 * @returns An empty history and the `onBatchEnd` callback that appends to it.
 *
 * @example Record a short training run
 * ```ts
 * import { createModel, recordHistory, selectBackend, train } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * await selectBackend("cpu");
 * const model = createModel({ preset: "mini" });
 * const count = 32;
 * const images = new Float32Array(count * 784).map((_, i) => (i % 5) / 5);
 * const labels = new Uint8Array(count).map((_, i) => i % 10);
 * const { history, onBatchEnd } = recordHistory();
 * const options = { batchSize: 8, lossEvery: 2, hardExamples: 0, onBatchEnd };
 * await train(model, { images, labels, count }, options);
 * assert.deepEqual(history.batches.map((b) => b.step), [1, 2, 3, 4]);
 * // The loss is read back every 2 steps: after steps 2 and 4.
 * assert.deepEqual(history.batches.map((b) => b.loss !== null), [false, true, false, true]);
 * model.dispose();
 * ```
 */
export function recordHistory(): HistoryRecorder {
  const history: TrainingHistory = { batches: [] };
  let previous = NaN;
  const onBatchEnd = (event: BatchEvent): void => {
    const read = !Object.is(event.loss, previous);
    previous = event.loss;
    history.batches.push({
      step: history.batches.length + 1,
      images: event.images,
      learningRate: event.learningRate,
      loss: read ? event.loss : null,
    });
  };
  return { history, onBatchEnd };
}
