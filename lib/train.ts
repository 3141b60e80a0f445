/**
 * The training loop: one true pass over the training images by default,
 * Adam with a one-cycle learning-rate schedule, label smoothing, and
 * progress through callbacks.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { type Classifier, layersModelOf } from "./model.ts";
import { checkLabelled, IMAGE_PIXELS, type LabelledImages } from "./images.ts";
import { augmentBatch, type AugmentOptions } from "./augment.ts";
import { createRng, shuffle } from "./rng.ts";
import { DEFAULT_WASM_WORKERS } from "./backend.ts";
import { DifficultyTracker } from "./difficulty_tracker.ts";
import { type PlanSettings, planTraining } from "./training_plan.ts";
import type { StepContext, Teacher, TrainingStep } from "./training_step.ts";
import { startWorkerStep } from "./worker_step.ts";
import { threadStep } from "./thread_step.ts";

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

/**
 * Stronger augmentation for runs of many passes: ±15° rotation, ±12% shift and
 * elastic distortion on 40% of images (the other ranges as
 * {@linkcode MILD_AUGMENTATION}); its strength decays over the whole run too.
 * Chosen on the validation split (fit on the first 55,000 training images,
 * score on the last 5,000) for 30 passes of the `small` preset: 99.60%
 * against 99.50% with the mild ranges (seed 42, one run each; README, "More
 * passes"). In one pass the wider rotation and shift made no difference
 * beyond noise on the validation split (README, "Recipe levers").
 */
export const STRONG_AUGMENTATION: Readonly<AugmentOptions> = Object.freeze({
  ...MILD_AUGMENTATION,
  rotationDegrees: 15,
  translate: 0.12,
  elasticProbability: 0.4,
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
   * Seed of the shuffling order, the augmentation and the choice of
   * difficult examples among ties (the weights are seeded by `createModel`).
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
   * {@linkcode MILD_AUGMENTATION} is for one pass, {@linkcode STRONG_AUGMENTATION}
   * for runs of many passes; see `AugmentOptions` for other ranges.
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

/** The teacher's model and T, α, when `options.teacher` is given; else null. */
function distillationOf(options: TrainOptions): Teacher | null {
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

/** The recipe of a run: every option checked, defaults filled in. */
interface Recipe extends PlanSettings {
  labelSmoothing: number;
  lossEvery: number;
  seed: number;
  augment: AugmentOptions | null;
  augmentSchedule: "constant" | "decay";
  workers: number;
}

/** Check the options of {@linkcode train} and fill in the defaults (the teacher's apart). */
function recipeOf(options: TrainOptions): Recipe {
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
  const learningRate = numberIn(
    "learningRate",
    options.learningRate ?? 0.03,
    0,
    MAX_LEARNING_RATE,
    true,
  );
  const labelSmoothing = numberIn("labelSmoothing", options.labelSmoothing ?? 0.1, 0, 0.99);
  // At most half: the difficult examples are drawn from the fresh ones seen before.
  const hardExamples = numberIn("hardExamples", options.hardExamples ?? 0.15, 0, 0.5);
  const miniEpochDecay = numberIn("miniEpochDecay", options.miniEpochDecay ?? 0.7, 0, 1, true);
  const seed = integerIn("seed", options.seed ?? 42, 0, Number.MAX_SAFE_INTEGER);
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
  const workers = integerIn(
    "workers",
    options.workers ?? (tf.getBackend() === "wasm" ? DEFAULT_WASM_WORKERS : 0),
    0,
    64,
  );
  return {
    epochs,
    batchSize,
    miniEpochs,
    hardExamples,
    learningRate,
    miniEpochDecay,
    schedule,
    labelSmoothing,
    lossEvery,
    seed,
    augment,
    augmentSchedule,
    workers,
  };
}

/**
 * Train a classifier in place: check the options ({@linkcode TrainOptions}),
 * plan the run (mini-epochs, difficult examples, learning rate of each step),
 * then take one Adam step per batch. On wasm each batch is split between data-
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
  const recipe = recipeOf(options);
  const plan = planTraining(count, recipe);
  const rng = createRng(recipe.seed);
  const tracker = recipe.hardExamples > 0 ? new DifficultyTracker(count) : null;
  let step = 0, learningRate = NaN;
  const context: StepContext = {
    net,
    data,
    smoothing: recipe.labelSmoothing,
    teacher: distillationOf(options),
    rng,
    tracker,
    batchSize: recipe.batchSize,
    diverged: (what, at = { step, learningRate }) => {
      throw new DivergenceError(
        `Cannot train: expected a finite ${what}, got a non-finite one at step ${
          at.step + 1
        } of ${plan.totalSteps} (learning rate ${at.learningRate}); lower the learning rate`,
      );
    },
  };
  /** The augmentation of the current step, or `null`. */
  const augmentNow = (): AugmentOptions | null => {
    const { augment } = recipe;
    if (!augment) return null;
    const strength = recipe.augmentSchedule === "decay" ? 1 - step / plan.totalSteps : 1;
    return { ...augment, strength: (augment.strength ?? 1) * strength };
  };

  const started = performance.now();
  const stepper: TrainingStep = recipe.workers > 0
    ? await startWorkerStep(recipe.workers, context)
    : threadStep(context, recipe.augment !== null);
  const order = new Int32Array(count).map((_, i) => i);
  const timesSeen = new Uint16Array(count);
  const history: EpochEvent[] = [];
  let lastLoss = NaN, warmupSeconds = 0, presented = 0, hardPresentations = 0;
  try {
    for (let epoch = 0; epoch < recipe.epochs; epoch++) {
      const epochStart = performance.now();
      shuffle(order, rng);
      const losses: number[] = [];
      let cursor = 0, batch = 0;
      for (const [m, chunk] of plan.chunks.entries()) {
        let stepInChunk = 0;
        for (const phase of ["fresh", "hard"] as const) {
          if (chunk[phase] === 0) continue;
          let list: Int32Array;
          if (phase === "fresh") {
            list = order.subarray(cursor, cursor + chunk.fresh);
            cursor += chunk.fresh;
          } else {
            await stepper.drain();
            await tracker!.flush();
            list = tracker!.hardest(chunk.hard, order, rng);
            hardPresentations += list.length;
            options.onHardExamples?.(list);
          }
          for (let start = 0; start < list.length; start += recipe.batchSize) {
            const ids = list.subarray(start, Math.min(list.length, start + recipe.batchSize));
            learningRate = plan.learningRate(epoch, m, stepInChunk);
            const loss = await stepper.take(ids, learningRate, augmentNow());
            for (const id of ids) timesSeen[id]++;
            presented += ids.length;
            const read = async () => typeof loss === "number" ? loss : (await loss.data())[0];
            if (step === 0) {
              if (!Number.isFinite(await read())) context.diverged("loss");
              warmupSeconds = (performance.now() - started) / 1000;
            }
            if (
              (step + 1) % recipe.lossEvery === 0 || step + 1 === (epoch + 1) * plan.stepsPerEpoch
            ) {
              lastLoss = await read();
              if (!Number.isFinite(lastLoss)) context.diverged("loss");
              if (!(await stepper.weightsFinite())) context.diverged("weight");
              losses.push(lastLoss);
              await tracker?.flush();
            }
            if (typeof loss !== "number") loss.dispose();
            step++;
            stepInChunk++;
            options.onBatchEnd?.({
              epoch,
              batch,
              batchesPerEpoch: plan.stepsPerEpoch,
              images: presented,
              totalImages: recipe.epochs * count,
              learningRate,
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
    stepper.finish();
    tracker?.dispose();
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
    workers: recipe.workers,
  };
}
