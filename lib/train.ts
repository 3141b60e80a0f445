/**
 * The training loop: one true pass over the training images by default,
 * Adam with a one-cycle learning-rate schedule, label smoothing, and
 * progress through callbacks.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { type Classifier, IMAGE_PIXELS, IMAGE_SIZE, layersModelOf, NUM_CLASSES } from "./model.ts";
import { createRng, shuffle } from "./rng.ts";

/** Labelled images: `count` images of 28×28 pixels in [0, 1], and their digits. */
export interface LabelledImages {
  /** `count * 784` pixels in [0, 1], row-major `[count, 28, 28, 1]`. */
  images: Float32Array;
  /** `count` labels, 0–9. */
  labels: Uint8Array;
  /** Number of images. */
  count: number;
}

/** Progress after one batch, passed to `onBatchEnd`. */
export interface BatchEvent {
  /** 0-based epoch. */
  epoch: number;
  /** 0-based batch within the epoch. */
  batch: number;
  /** Batches in one epoch. */
  batchesPerEpoch: number;
  /** Images presented so far, all epochs. */
  images: number;
  /** Images that the whole run will present. */
  totalImages: number;
  /** Learning rate used for this batch. */
  learningRate: number;
  /**
   * Mean training loss of the most recently read batch. The loss is read back
   * only every `lossEvery` batches (a read-back stalls the device), so this is
   * the latest value read, or `NaN` before the first read.
   */
  loss: number;
  /** Seconds since training started. */
  seconds: number;
}

/** Summary of one epoch, passed to `onEpochEnd`. */
export interface EpochEvent {
  /** 0-based epoch. */
  epoch: number;
  /** Mean of the training losses read during the epoch. */
  loss: number;
  /** Seconds this epoch took. */
  seconds: number;
  /** Training images per second during this epoch. */
  imagesPerSecond: number;
}

/** Options for {@linkcode train}. Defaults are the recipe `deno task train` uses. */
export interface TrainOptions {
  /**
   * Full passes over the training images.
   * @default {1}
   */
  epochs?: number;
  /**
   * Images per gradient step. 64 gives ~940 steps per pass: enough updates
   * for one epoch to converge, while batches stay large enough to be fast.
   * @default {64}
   */
  batchSize?: number;
  /**
   * Peak learning rate of the one-cycle schedule (Adam).
   * @default {0.01}
   */
  learningRate?: number;
  /**
   * `"one-cycle"`: linear warm-up from lr/25 over the first 20% of steps,
   * then cosine decay to lr/1000; `"constant"`: lr throughout.
   * @default {"one-cycle"}
   */
  schedule?: "one-cycle" | "constant";
  /**
   * Label smoothing: the target puts `1 - s + s/10` on the true class, `s/10`
   * on each other class. Helps a small net calibrate in one pass.
   * @default {0.1}
   */
  labelSmoothing?: number;
  /**
   * Seed of the shuffling order.
   * @default {42}
   */
  seed?: number;
  /**
   * Read the loss back every this many batches. A read-back waits for the
   * device, so reading every batch costs speed on a GPU.
   * @default {20}
   */
  lossEvery?: number;
  /** Called after every batch. */
  onBatchEnd?: (event: BatchEvent) => void;
  /** Called after every epoch. */
  onEpochEnd?: (event: EpochEvent) => void;
}

/** What {@linkcode train} returns. */
export interface TrainResult {
  /** Training wall time in seconds (data loading excluded). */
  seconds: number;
  /** Images presented (epochs × training images). */
  images: number;
  /** `images / seconds`. */
  imagesPerSecond: number;
  /** One entry per epoch. */
  epochs: EpochEvent[];
}

/**
 * The learning rate of step `step` out of `total` for a schedule.
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

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(
      `Cannot train: expected ${name} to be a positive integer, got ${value}`,
    );
  }
  return value;
}

/** Check that a labelled set is consistent; returns its size. */
export function checkLabelled(data: LabelledImages, action: string): number {
  const { images, labels, count } = data ?? {};
  if (!(images instanceof Float32Array) || !(labels instanceof Uint8Array)) {
    throw new TypeError(
      `Cannot ${action}: expected images as a Float32Array and labels as a Uint8Array`,
    );
  }
  if (!Number.isInteger(count) || count < 1) {
    throw new RangeError(
      `Cannot ${action}: expected a positive image count, got ${count}`,
    );
  }
  if (images.length !== count * IMAGE_PIXELS) {
    throw new RangeError(
      `Cannot ${action}: expected ${
        count * IMAGE_PIXELS
      } pixels for ${count} images, got ${images.length}`,
    );
  }
  if (labels.length !== count) {
    throw new RangeError(
      `Cannot ${action}: expected ${count} labels, got ${labels.length}`,
    );
  }
  return count;
}

/**
 * Train a classifier in place. The whole training set is uploaded to the
 * backend once; each batch is gathered there, so nothing but the batch
 * indices crosses to the device per step, and the loss is read back only
 * every `lossEvery` batches.
 *
 * @param model A classifier from `createModel` or `loadModel`.
 * @param data The training images and labels.
 * @param options Recipe and callbacks.
 * @returns Timing and per-epoch loss.
 * @throws {RangeError} For invalid options or inconsistent data.
 *
 * @example Train briefly on random images
 * ```ts
 * import { createModel, selectBackend, train } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * await selectBackend("cpu");
 * const model = createModel({ preset: "seed" });
 * const count = 32;
 * const images = new Float32Array(count * 784).map((_, i) => (i % 7) / 7);
 * const labels = new Uint8Array(count).map((_, i) => i % 10);
 * const result = await train(model, { images, labels, count }, { batchSize: 16 });
 * assert.equal(result.images, 32);
 * model.dispose();
 * ```
 */
export async function train(
  model: Classifier,
  data: LabelledImages,
  options: TrainOptions = {},
): Promise<TrainResult> {
  const net = layersModelOf(model);
  const count = checkLabelled(data, "train");
  const epochs = positiveInteger("epochs", options.epochs ?? 1);
  const batchSize = positiveInteger("batchSize", options.batchSize ?? 64);
  const lossEvery = positiveInteger("lossEvery", options.lossEvery ?? 20);
  const peak = options.learningRate ?? 0.01;
  if (!(peak > 0)) {
    throw new RangeError(
      `Cannot train: expected a positive learningRate, got ${peak}`,
    );
  }
  const smoothing = options.labelSmoothing ?? 0.1;
  if (!(smoothing >= 0 && smoothing < 1)) {
    throw new RangeError(
      `Cannot train: expected labelSmoothing in [0, 1), got ${smoothing}`,
    );
  }
  const schedule = options.schedule ?? "one-cycle";
  const rng = createRng(options.seed ?? 42);
  const batchesPerEpoch = Math.ceil(count / batchSize);
  const totalSteps = epochs * batchesPerEpoch;

  const optimizer = tf.train.adam(
    learningRateAt(0, totalSteps, peak, schedule),
  );
  const allImages = tf.tensor4d(data.images, [
    count,
    IMAGE_SIZE,
    IMAGE_SIZE,
    1,
  ]);
  const allLabels = tf.tensor1d(data.labels, "int32");
  const order = new Int32Array(count).map((_, i) => i);
  const history: EpochEvent[] = [];
  const started = performance.now();
  let step = 0, lastLoss = NaN;
  try {
    for (let epoch = 0; epoch < epochs; epoch++) {
      const epochStart = performance.now();
      shuffle(order, rng);
      const losses: number[] = [];
      for (let batch = 0; batch < batchesPerEpoch; batch++) {
        const lr = learningRateAt(step, totalSteps, peak, schedule);
        // The optimizer reads this field on every step.
        (optimizer as unknown as { learningRate: number }).learningRate = lr;
        const indices = tf.tensor1d(
          order.subarray(
            batch * batchSize,
            Math.min(count, (batch + 1) * batchSize),
          ),
          "int32",
        );
        const loss = optimizer.minimize(() =>
          tf.tidy(() => {
            const x = tf.gather(allImages, indices);
            const y = tf.oneHot(tf.gather(allLabels, indices), NUM_CLASSES);
            const target = smoothing > 0 ? y.mul(1 - smoothing).add(smoothing / NUM_CLASSES) : y;
            const probs = net.apply(x, { training: true }) as tf.Tensor;
            // Cross-entropy on probabilities clipped away from 0.
            return tf.neg(
              tf.sum(target.mul(tf.log(probs.clipByValue(1e-7, 1))), 1),
            ).mean()
              .asScalar();
          }), true) as tf.Scalar;
        indices.dispose();
        step++;
        if (step % lossEvery === 0 || batch === batchesPerEpoch - 1) {
          lastLoss = (await loss.data())[0];
          losses.push(lastLoss);
        }
        loss.dispose();
        options.onBatchEnd?.({
          epoch,
          batch,
          batchesPerEpoch,
          images: epoch * count + Math.min(count, (batch + 1) * batchSize),
          totalImages: epochs * count,
          learningRate: lr,
          loss: lastLoss,
          seconds: (performance.now() - started) / 1000,
        });
      }
      const seconds = (performance.now() - epochStart) / 1000;
      const event: EpochEvent = {
        epoch,
        loss: losses.reduce((a, b) => a + b, 0) / losses.length,
        seconds,
        imagesPerSecond: count / seconds,
      };
      history.push(event);
      options.onEpochEnd?.(event);
    }
  } finally {
    allImages.dispose();
    allLabels.dispose();
    optimizer.dispose();
  }
  const seconds = (performance.now() - started) / 1000;
  return {
    seconds,
    images: epochs * count,
    imagesPerSecond: (epochs * count) / seconds,
    epochs: history,
  };
}
