/**
 * The training loop: one true pass over the training images by default,
 * Adam with a one-cycle learning-rate schedule, label smoothing, and
 * progress through callbacks.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { type Classifier, layersModelOf } from "./model.ts";
import { checkLabelled, IMAGE_PIXELS, IMAGE_SIZE, type LabelledImages } from "./images.ts";
import { augmentBatch, type AugmentOptions } from "./augment.ts";
import { createRng, shuffle } from "./rng.ts";
import { FlatAdam } from "./adam.ts";
import { DeviceAdam } from "./device_adam.ts";
import { DEFAULT_WASM_WORKERS } from "./backend.ts";
import { type Distillation, softTargets, trainingLoss } from "./loss.ts";
import { trainingForward } from "./forward.ts";
import { GradientWorkers, readFlat, type Shard, writeFlat } from "./parallel.ts";

/**
 * Mild augmentation for one-pass training: small rotations, shifts, scaling,
 * shear and some elastic distortion. One pass leaves no time to learn from
 * strong distortions (the original's ±30° cost it 2 points of accuracy).
 */
export const MILD_AUGMENTATION: Readonly<AugmentOptions> = Object.freeze({
  rotationDegrees: 10,
  translate: 0.1,
  scale: [0.9, 1.1] as const,
  shearDegrees: 10,
  elasticProbability: 0.2,
  noiseProbability: 0,
});

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
   * Peak learning rate of the one-cycle schedule (Adam). For one pass of the
   * default model with the default 2 workers, 0.03 measured better than 0.02
   * (mean of 4 seeds 99.23% vs 99.11%; see the README).
   * @default {0.03}
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
   * "Mini-epochs": split each pass into this many chunks, each with its own
   * learning-rate schedule whose peak is `miniEpochDecay` times the previous
   * one's (warm restarts). 1 means one schedule over the whole run.
   * @default {1}
   */
  miniEpochs?: number;
  /**
   * Peak of each mini-epoch's schedule relative to the previous one's.
   * @default {0.7}
   */
  miniEpochDecay?: number;
  /**
   * Focus on difficult examples: this fraction of each mini-epoch's
   * presentations re-presents the examples with the highest loss seen so far
   * (per-sample loss is tracked, relative to the mean loss of its batch so
   * that examples seen early are not favoured), in place of fresh ones, so the budget of
   * `epochs × count` presentations is unchanged. At most 0.5. The default
   * recipe uses 0.15 (see the README's tuning table).
   * @default {0.15}
   */
  hardExamples?: number;
  /**
   * Augmentation applied to each training batch in pixel space, or `false`.
   * @default {MILD_AUGMENTATION}
   */
  augment?: AugmentOptions | false;
  /**
   * `"decay"`: augmentation strength falls linearly from 1 to 0 over the run
   * (strong early, clean images at the end); `"constant"`: strength 1.
   * @default {"decay"}
   */
  augmentSchedule?: "constant" | "decay";
  /**
   * Read the loss back every this many batches. A read-back waits for the
   * device, so reading every batch costs speed on a GPU.
   * @default {20}
   */
  lossEvery?: number;
  /**
   * Data-parallel Web Workers. TensorFlow.js's wasm backend runs one thread
   * under Deno; with `workers: n` each batch is split into `n` shards, each
   * worker (with its own wasm backend, whatever backend is active here)
   * computes the gradient of its shard, and this thread averages them and
   * applies one Adam update. Batch-norm statistics are then those of each
   * shard. 0 trains in this thread on the active backend. The default uses
   * both cores of a small machine when wasm is active, and is the same on
   * every machine so that a seed gives the same model everywhere.
   * @default {2 when the active backend is wasm, else 0}
   */
  workers?: number;
  /**
   * A trained model to distil into this one (Hinton et al. 2015, "Distilling
   * the Knowledge in a Neural Network", arXiv:1503.02531): its probabilities
   * on each training batch (augmented as the student sees it), softened at
   * `distillTemperature`, are soft targets alongside the labels. With
   * workers, each worker holds a replica of the teacher.
   * @default {undefined} no teacher
   */
  teacher?: Classifier;
  /**
   * Softmax temperature T of the distillation (1–100). 2 (with α 0.5) had
   * the best validation accuracy of the settings measured for the `mini`
   * student in one pass (README, "Distillation").
   * @default {2}
   */
  distillTemperature?: number;
  /**
   * Weight α of the soft targets in the loss; the labels get 1 − α (0–1).
   * @default {0.5}
   */
  distillWeight?: number;
  /** Called after every batch. */
  onBatchEnd?: (event: BatchEvent) => void;
  /** Called after every epoch. */
  onEpochEnd?: (event: EpochEvent) => void;
  /** Called with the indices of the difficult examples chosen for re-presentation. */
  onHardExamples?: (indices: Int32Array) => void;
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
  /** Presentations that were re-presented difficult examples. */
  hardPresentations: number;
  /** Distinct training images presented at least once. */
  distinctImages: number;
  /**
   * Seconds of the first step (shader compilation, kernel set-up, starting
   * the workers), included in `seconds`.
   */
  warmupSeconds: number;
  /** Data-parallel workers that trained (0: this thread, on the active backend). */
  workers: number;
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

/** Thrown by {@linkcode train} when the loss or a weight stops being finite. */
export class DivergenceError extends Error {
  /** Always `"DivergenceError"`. */
  override name: string = "DivergenceError";
  /**
   * Create a divergence error.
   * @param message What became non-finite, when, and what to change.
   */
  constructor(message: string) {
    super(message);
  }
}

/** A non-number option is a TypeError naming what was passed. */
function checkNumber(name: string, value: unknown): void {
  if (typeof value !== "number") {
    throw new TypeError(
      `Cannot train: expected ${name} to be a number, got ${
        JSON.stringify(value)
      } (${typeof value})`,
    );
  }
}

/** An integer option in `[min, max]`, else a RangeError naming it. */
function integerIn(name: string, value: number, min: number, max: number): number {
  checkNumber(name, value);
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new RangeError(
      `Cannot train: expected ${name} to be an integer in [${min}, ${max}], got ${value}`,
    );
  }
  return value;
}

/** A number option in `[min, max]` (or `(min, max]` with `openMin`), else a RangeError. */
function numberIn(name: string, value: number, min: number, max: number, openMin = false): number {
  checkNumber(name, value);
  // Written so that NaN fails too; both bounds are finite, so Infinity fails.
  if (!((openMin ? value > min : value >= min) && value <= max)) {
    throw new RangeError(
      `Cannot train: expected ${name} in ${openMin ? "(" : "["}${min}, ${max}], got ${value}`,
    );
  }
  return value;
}

/** Whether some value of `flat` is not finite. */
function anyNonFinite(flat: Float32Array): boolean {
  for (let i = 0; i < flat.length; i++) if (!Number.isFinite(flat[i])) return true;
  return false;
}

/** Whether every weight of a model is finite; one small read-back. */
async function weightsFinite(net: tf.LayersModel): Promise<boolean> {
  // The sum of all weights is finite exactly when every weight is (barring
  // overflow to ±Infinity, which is itself divergence).
  const total = tf.tidy(() => tf.addN(net.weights.map((w) => w.read().sum())));
  const [value] = await total.data();
  total.dispose();
  return Number.isFinite(value);
}

/** The teacher's model and T, α, when `options.teacher` is given; else null. */
function distillationOf(
  options: TrainOptions,
): { net: tf.LayersModel; settings: Distillation } | null {
  const { teacher } = options;
  if (teacher === undefined) {
    for (const name of ["distillTemperature", "distillWeight"] as const) {
      if (options[name] !== undefined) {
        throw new TypeError(`Cannot train: expected ${name} only with a teacher, got no teacher`);
      }
    }
    return null;
  }
  const net = layersModelOf(teacher); // a TypeError for anything but a tinymnist classifier
  const temperature = numberIn("distillTemperature", options.distillTemperature ?? 2, 1, 100);
  const weight = numberIn("distillWeight", options.distillWeight ?? 0.5, 0, 1);
  return { net, settings: { temperature, weight } };
}

/** Every key of {@linkcode TrainOptions}: a misspelt option is an error, not ignored. */
const TRAIN_OPTION_NAMES: ReadonlySet<string> = new Set(
  [
    "epochs",
    "batchSize",
    "learningRate",
    "schedule",
    "labelSmoothing",
    "seed",
    "miniEpochs",
    "miniEpochDecay",
    "hardExamples",
    "augment",
    "augmentSchedule",
    "lossEvery",
    "workers",
    "teacher",
    "distillTemperature",
    "distillWeight",
    "onBatchEnd",
    "onEpochEnd",
    "onHardExamples",
  ] satisfies (keyof TrainOptions)[],
);

/** The largest learning rate accepted: above it Adam's steps leave any sensible range. */
const MAX_LEARNING_RATE = 1;

/**
 * Train a classifier in place. On wasm each batch is split between data-
 * parallel workers (see {@linkcode TrainOptions.workers}), which augment
 * their shards and return gradients; this thread applies one Adam update per
 * batch. Otherwise training runs in this thread on the active backend:
 * without augmentation the training set is uploaded once and each batch is
 * gathered there, and the loss is read back only every `lossEvery` batches.
 *
 * @param model A classifier from `createModel` or `loadModel`.
 * @param data The training images and labels.
 * @param options Recipe and callbacks.
 * @returns Timing and per-epoch loss.
 * @throws {TypeError} When the data is not images and labels, or an option has the wrong type.
 * @throws {RangeError} For options out of range (non-finite numbers
 * included) or inconsistent data: pixels outside [0, 1], labels above 9.
 * @throws {DivergenceError} As soon as a read-back loss or a weight is not
 * finite (as Keras's `TerminateOnNaN` stops); the model is then unusable.
 * @throws {BackendError} When a data-parallel worker cannot start or fails.
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
  const unknown = Object.keys(options).filter((key) => !TRAIN_OPTION_NAMES.has(key));
  if (unknown.length > 0) {
    throw new TypeError(
      `Cannot train: expected options among ${[...TRAIN_OPTION_NAMES].join(", ")}, got unknown ${
        unknown.map((key) => JSON.stringify(key)).join(", ")
      }`,
    );
  }
  const epochs = integerIn("epochs", options.epochs ?? 1, 1, 10_000);
  const batchSize = integerIn("batchSize", options.batchSize ?? 64, 1, 65_536);
  const lossEvery = integerIn("lossEvery", options.lossEvery ?? 20, 1, 1_000_000);
  const miniEpochs = integerIn("miniEpochs", options.miniEpochs ?? 1, 1, 1_000);
  const peak = numberIn("learningRate", options.learningRate ?? 0.03, 0, MAX_LEARNING_RATE, true);
  const smoothing = numberIn("labelSmoothing", options.labelSmoothing ?? 0.1, 0, 0.99);
  // At most half: the difficult examples are drawn from the fresh ones seen before.
  const hardFraction = numberIn("hardExamples", options.hardExamples ?? 0.15, 0, 0.5);
  const decay = numberIn("miniEpochDecay", options.miniEpochDecay ?? 0.7, 0, 1, true);
  integerIn("seed", options.seed ?? 42, 0, Number.MAX_SAFE_INTEGER);
  const augment = options.augment === undefined ? MILD_AUGMENTATION : options.augment || null;
  // Bad augmentation options fail here, not in a worker half-way through.
  if (augment) augmentBatch(new Float32Array(IMAGE_PIXELS), augment, createRng(0));
  const augmentSchedule = options.augmentSchedule ?? "decay";
  const schedule = options.schedule ?? "one-cycle";
  if (schedule !== "one-cycle" && schedule !== "constant") {
    throw new RangeError(
      `Cannot train: expected schedule "one-cycle" or "constant", got ${JSON.stringify(schedule)}`,
    );
  }
  if (augmentSchedule !== "decay" && augmentSchedule !== "constant") {
    throw new RangeError(
      `Cannot train: expected augmentSchedule "decay" or "constant", got ${
        JSON.stringify(augmentSchedule)
      }`,
    );
  }
  const rng = createRng(options.seed ?? 42);

  // The plan: each epoch is `miniEpochs` chunks; each chunk presents its
  // share of fresh images, then its share of difficult ones.
  const chunks: { fresh: number; hard: number; steps: number }[] = [];
  for (let m = 0; m < miniEpochs; m++) {
    const size = Math.floor(((m + 1) * count) / miniEpochs) - Math.floor((m * count) / miniEpochs);
    const hard = m === 0 && miniEpochs > 1 && hardFraction > 0
      ? 0 // nothing seen yet: the first chunk is all fresh, the others make up for it
      : Math.round(size * hardFraction * (miniEpochs > 1 ? miniEpochs / (miniEpochs - 1) : 1));
    chunks.push({ fresh: size - Math.min(hard, size), hard: Math.min(hard, size), steps: 0 });
  }
  for (const c of chunks) c.steps = Math.ceil(c.fresh / batchSize) + Math.ceil(c.hard / batchSize);
  const stepsPerEpoch = chunks.reduce((a, c) => a + c.steps, 0);
  const totalSteps = epochs * stepsPerEpoch;
  const learningRate = (epoch: number, m: number, stepInChunk: number) =>
    miniEpochs === 1
      ? learningRateAt(epoch * stepsPerEpoch + stepInChunk, totalSteps, peak, schedule)
      : learningRateAt(stepInChunk, chunks[m].steps, peak * decay ** m, schedule);

  const workers = integerIn(
    "workers",
    options.workers ?? (tf.getBackend() === "wasm" ? DEFAULT_WASM_WORKERS : 0),
    0,
    64,
  );
  const teacher = distillationOf(options);
  /** Stop with a DivergenceError: `what` became non-finite at 1-based step `at`. */
  const diverged = (what: string, lr: number, at: number): never => {
    throw new DivergenceError(
      `Cannot train: expected a finite ${what}, got a non-finite one at step ${at} of ${totalSteps} (learning rate ${lr}); lower the learning rate`,
    );
  };

  const batchPixels = new Float32Array(batchSize * IMAGE_PIXELS);
  /** The augmentation of step `step`, or `null`. */
  const augmentAt = (step: number): AugmentOptions | null => {
    if (!augment) return null;
    const strength = augmentSchedule === "decay" ? 1 - step / totalSteps : 1;
    return { ...augment, strength: (augment.strength ?? 1) * strength };
  };
  /** The pixels of a batch, into `pixels` (by default a reused buffer). */
  const gatherBatch = (
    ids: Int32Array,
    pixels = batchPixels.subarray(0, ids.length * IMAGE_PIXELS),
  ): Float32Array => {
    ids.forEach((id, j) =>
      pixels.set(data.images.subarray(id * IMAGE_PIXELS, (id + 1) * IMAGE_PIXELS), j * IMAGE_PIXELS)
    );
    return pixels;
  };

  const order = new Int32Array(count).map((_, i) => i);
  const sampleLoss = new Float32Array(count).fill(-1); // -1: not seen yet
  const timesSeen = new Uint16Array(count);
  const trackLoss = hardFraction > 0;
  /** Record per-sample losses of one batch. */
  const record = (indices: Int32Array, values: Float32Array) => {
    // Difficulty = loss relative to its batch's mean: early in a pass every
    // loss is high, so raw losses would just pick the examples seen first.
    let mean = 0;
    for (let j = 0; j < indices.length; j++) mean += values[j] / indices.length;
    indices.forEach((i, j) => sampleLoss[i] = values[j] / Math.max(mean, 1e-12));
  };
  const pending: { indices: Int32Array; losses: tf.Tensor }[] = [];
  const flush = async () => {
    if (pending.length === 0) return;
    const all = tf.concat(pending.map((p) => p.losses));
    const values = await all.data() as Float32Array;
    all.dispose();
    let k = 0;
    for (const p of pending) {
      record(p.indices, values.subarray(k, k + p.indices.length));
      k += p.indices.length;
      p.losses.dispose();
    }
    pending.length = 0;
  };
  const hardest = (n: number): Int32Array => {
    const seen = order.filter((i) => sampleLoss[i] >= 0);
    seen.sort((a, b) => sampleLoss[b] - sampleLoss[a]);
    return shuffle(seen.slice(0, n), rng);
  };

  const history: EpochEvent[] = [];
  const started = performance.now();
  // One of two ways to take a step; each returns the batch's mean loss,
  // as a tensor (read back only now and then) or a number.
  let takeStep: (ids: Int32Array, lr: number) => Promise<tf.Scalar | number>;
  let finish: () => void;
  if (workers > 0) {
    const pool = await GradientWorkers.start(workers, net, smoothing, teacher);
    const params = readFlat(net.trainableWeights);
    let state = readFlat(net.nonTrainableWeights);
    const adam = new FlatAdam(params.length);
    takeStep = async (ids, lr) => {
      // Each worker augments its own shard, with a seed drawn here.
      const options = augmentAt(step);
      const shards: Shard[] = [];
      const parts = Math.min(workers, ids.length);
      for (let w = 0; w < parts; w++) {
        const from = Math.floor((w * ids.length) / parts);
        const to = Math.floor(((w + 1) * ids.length) / parts);
        shards.push({
          pixels: gatherBatch(ids.subarray(from, to), new Float32Array((to - from) * IMAGE_PIXELS)),
          labels: Int32Array.from(ids.subarray(from, to), (id) => data.labels[id]),
          augment: options && { options, seed: rng.int(2 ** 31) },
        });
      }
      const result = await pool.step(params, state, shards);
      adam.step(params, result.gradients, lr);
      state = result.state;
      const loss = result.losses.reduce((a, b) => a + b, 0) / ids.length;
      // Every step: the loss is here anyway, and a scan of the weights is ~20 µs.
      if (!Number.isFinite(loss)) diverged("loss", lr, step + 1);
      if (anyNonFinite(params)) diverged("weight", lr, step + 1);
      if (anyNonFinite(state)) diverged("batch-norm moving statistic", lr, step + 1);
      if (trackLoss) record(ids, result.losses);
      return loss;
    };
    finish = () => {
      pool.close();
      writeFlat(net.trainableWeights, params);
      writeFlat(net.nonTrainableWeights, state);
    };
  } else {
    const optimizer = new DeviceAdam(net.trainableWeights.map((w) => w.read() as tf.Variable));
    // Uploaded once: without augmentation batches are gathered on the device.
    const allImages = augment ? null : tf.tensor4d(data.images, [count, IMAGE_SIZE, IMAGE_SIZE, 1]);
    const allLabels = tf.tensor1d(data.labels, "int32");
    takeStep = (ids, lr) => {
      const indices = tf.tensor1d(ids, "int32");
      const x: tf.Tensor4D = allImages ? tf.gather(allImages, indices) : tf.tensor4d(
        augmentBatch(gatherBatch(ids), augmentAt(step)!, rng),
        [ids.length, IMAGE_SIZE, IMAGE_SIZE, 1],
      );
      let perSample: tf.Tensor | undefined;
      // The teacher sees the same (augmented) images, in inference mode, outside the gradient.
      const soft = teacher &&
        tf.tidy(() =>
          softTargets(teacher.net.predict(x) as tf.Tensor, teacher.settings.temperature)
        );
      const { value: loss, grads } = tf.variableGrads(() =>
        tf.tidy(() => {
          const probs = trainingForward(net, x);
          const each = trainingLoss(
            probs,
            tf.gather(allLabels, indices),
            smoothing,
            soft,
            teacher?.settings ?? null,
          );
          if (trackLoss) perSample = tf.keep(each);
          return each.mean().asScalar();
        }), optimizer.variables);
      optimizer.step(grads, lr);
      tf.dispose(grads);
      x.dispose();
      indices.dispose();
      soft?.dispose();
      if (perSample) pending.push({ indices: ids.slice(), losses: perSample });
      return Promise.resolve(loss);
    };
    finish = () => {
      for (const p of pending) p.losses.dispose();
      allImages?.dispose();
      allLabels.dispose();
      optimizer.dispose();
    };
  }

  let step = 0, lastLoss = NaN, warmupSeconds = 0, presented = 0, hardPresentations = 0;
  try {
    for (let epoch = 0; epoch < epochs; epoch++) {
      const epochStart = performance.now();
      shuffle(order, rng);
      const losses: number[] = [];
      let cursor = 0, batch = 0;
      for (let m = 0; m < miniEpochs; m++) {
        const chunk = chunks[m];
        let stepInChunk = 0;
        for (const phase of ["fresh", "hard"] as const) {
          if (chunk[phase] === 0) continue;
          let list: Int32Array;
          if (phase === "fresh") {
            list = order.subarray(cursor, cursor + chunk.fresh);
            cursor += chunk.fresh;
          } else {
            await flush();
            list = hardest(chunk.hard);
            hardPresentations += list.length;
            options.onHardExamples?.(list);
          }
          for (let start = 0; start < list.length; start += batchSize) {
            const ids = list.subarray(start, Math.min(list.length, start + batchSize));
            const lr = learningRate(epoch, m, stepInChunk);
            const loss = await takeStep(ids, lr);
            for (const id of ids) timesSeen[id]++;
            step++;
            stepInChunk++;
            presented += ids.length;
            const read = async () => typeof loss === "number" ? loss : (await loss.data())[0];
            if (step === 1) {
              if (!Number.isFinite(await read())) diverged("loss", lr, step);
              warmupSeconds = (performance.now() - started) / 1000;
            }
            if (step % lossEvery === 0 || step === (epoch + 1) * stepsPerEpoch) {
              lastLoss = await read();
              if (!Number.isFinite(lastLoss)) diverged("loss", lr, step);
              if (workers === 0 && !(await weightsFinite(net))) diverged("weight", lr, step);
              losses.push(lastLoss);
              await flush();
            }
            if (typeof loss !== "number") loss.dispose();
            options.onBatchEnd?.({
              epoch,
              batch,
              batchesPerEpoch: stepsPerEpoch,
              images: presented,
              totalImages: epochs * count,
              learningRate: lr,
              loss: lastLoss,
              seconds: (performance.now() - started) / 1000,
            });
            batch++;
          }
        }
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
    finish();
  }
  const seconds = (performance.now() - started) / 1000;
  return {
    seconds,
    images: presented,
    imagesPerSecond: presented / seconds,
    epochs: history,
    hardPresentations,
    distinctImages: timesSeen.reduce((a, t) => a + (t > 0 ? 1 : 0), 0),
    warmupSeconds,
    workers,
  };
}
