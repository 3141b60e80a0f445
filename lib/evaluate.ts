/**
 * Evaluation: accuracy, per-class accuracy and the confusion matrix on
 * labelled images, and accuracy when the images are perturbed (noise,
 * rotation, shifts, elastic distortion).
 *
 * @module
 */
import { addNoise, elasticBatch, rotateBatch, shiftBatch } from "./augment.ts";
import type { Classifier } from "./model.ts";
import { checkLabelled, type LabelledImages, NUM_CLASSES } from "./images.ts";
import { createRng } from "./rng.ts";

/** What {@linkcode evaluate} returns. */
export interface Evaluation {
  /** Fraction of images classified correctly, 0..1. */
  accuracy: number;
  /** Accuracy among the images of each true class 0–9 (`NaN` for a class with no images). */
  perClass: number[];
  /** `confusion[t][p]`: images of true class `t` predicted as `p`. */
  confusion: number[][];
  /** Number of images evaluated. */
  count: number;
}

/**
 * Classify labelled images and score the result.
 *
 * @param model The classifier to score.
 * @param data Images in pixel space [0, 1] and their labels.
 * @returns Accuracy, per-class accuracy and the confusion matrix.
 * @throws {TypeError} When the data is not images and labels.
 * @throws {RangeError} When a pixel is outside [0, 1], a label above 9, or
 * the model's outputs are not finite.
 *
 * @example Score an untrained model
 * ```ts
 * import { createModel, evaluate, selectBackend } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * await selectBackend("cpu");
 * const model = createModel();
 * const images = new Float32Array(4 * 784);
 * const labels = new Uint8Array([0, 1, 2, 3]);
 * const result = await evaluate(model, { images, labels, count: 4 });
 * assert.equal(result.confusion.flat().reduce((a, b) => a + b), 4);
 * model.dispose();
 * ```
 */
export async function evaluate(model: Classifier, data: LabelledImages): Promise<Evaluation> {
  const count = checkLabelled(data, "evaluate");
  const predicted = await model.classify(data.images, { count });
  const confusion = Array.from(
    { length: NUM_CLASSES },
    () => new Array<number>(NUM_CLASSES).fill(0),
  );
  let correct = 0;
  for (let i = 0; i < count; i++) {
    confusion[data.labels[i]][predicted[i]]++;
    if (predicted[i] === data.labels[i]) correct++;
  }
  const perClass = confusion.map((row, k) => row[k] / row.reduce((a, b) => a + b, 0));
  return { accuracy: correct / count, perClass, confusion, count };
}

async function accuracyOn(model: Classifier, images: Float32Array, labels: Uint8Array) {
  const predicted = await model.classify(images, { count: labels.length });
  let correct = 0;
  for (let i = 0; i < labels.length; i++) if (predicted[i] === labels[i]) correct++;
  return correct / labels.length;
}

/** Options for {@linkcode noiseRobustness} and {@linkcode robustness}. */
export interface RobustnessOptions {
  /**
   * Seed of the random noise and elastic fields, so reports are repeatable.
   * @default {7}
   */
  seed?: number;
}

/**
 * Accuracy when Gaussian noise of each standard deviation is added to the
 * images in pixel space [0, 1] and the result clamped to [0, 1] (the model
 * normalises afterwards).
 *
 * @param model The classifier to score.
 * @param data Clean images and labels.
 * @param sigmas Noise standard deviations, in pixel units.
 * @param options The noise seed.
 * @returns Accuracy keyed by sigma as written by `String(sigma)`, e.g. `"0.1"`.
 *
 * @example Noise of sigma 0 changes nothing
 * ```ts
 * import { createModel, evaluate, noiseRobustness, selectBackend } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * await selectBackend("cpu");
 * const model = createModel();
 * const data = { images: new Float32Array(2 * 784).fill(0.5), labels: new Uint8Array([3, 5]), count: 2 };
 * const clean = await evaluate(model, data);
 * const noisy = await noiseRobustness(model, data, [0]);
 * assert.equal(noisy["0"], clean.accuracy);
 * model.dispose();
 * ```
 */
export async function noiseRobustness(
  model: Classifier,
  data: LabelledImages,
  sigmas: readonly number[],
  options: RobustnessOptions = {},
): Promise<Record<string, number>> {
  checkLabelled(data, "measure noise robustness");
  const rng = createRng(options.seed ?? 7);
  const result: Record<string, number> = {};
  for (const sigma of sigmas) {
    result[String(sigma)] = await accuracyOn(model, addNoise(data.images, sigma, rng), data.labels);
  }
  return result;
}

/** Accuracy of a model on perturbed copies of a test set; see {@linkcode robustness}. */
export interface RobustnessReport {
  /** Mean accuracy over +θ and −θ rotations, keyed by θ in degrees (`"15"`, `"30"`). */
  rotation: Record<string, number>;
  /** Mean accuracy over shifts of d pixels left, right, up and down, keyed by d (`"2"`, `"4"`). */
  shift: Record<string, number>;
  /** Accuracy with pixel noise, keyed by sigma (`"0.1"`, `"0.2"`, `"0.3"`). */
  noise: Record<string, number>;
  /** Accuracy after an elastic distortion (σ = 4 px), keyed by α (`"34"`). */
  elastic: Record<string, number>;
}

/**
 * Accuracy under rotation (±15°, ±30°), shifts (±2, ±4 px), noise (σ 0.1,
 * 0.2, 0.3) and elastic distortion (α 34, σ 4) of the given images.
 *
 * @param model The classifier to score.
 * @param data Clean images and labels, e.g. the test set.
 * @param options The seed of the random perturbations.
 * @returns Accuracy for each perturbation.
 *
 * @example Report on two blank images
 * ```ts
 * import { createModel, robustness, selectBackend } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * await selectBackend("cpu");
 * const model = createModel();
 * const data = { images: new Float32Array(2 * 784), labels: new Uint8Array([0, 1]), count: 2 };
 * const report = await robustness(model, data);
 * assert.deepEqual(Object.keys(report.rotation), ["15", "30"]);
 * model.dispose();
 * ```
 */
export async function robustness(
  model: Classifier,
  data: LabelledImages,
  options: RobustnessOptions = {},
): Promise<RobustnessReport> {
  checkLabelled(data, "measure robustness");
  const { images, labels } = data;
  const mean = async (variants: Float32Array[]) => {
    let sum = 0;
    for (const v of variants) sum += await accuracyOn(model, v, labels);
    return sum / variants.length;
  };
  const report: RobustnessReport = { rotation: {}, shift: {}, noise: {}, elastic: {} };
  for (const deg of [15, 30]) {
    report.rotation[String(deg)] = await mean([
      rotateBatch(images, deg),
      rotateBatch(images, -deg),
    ]);
  }
  for (const d of [2, 4]) {
    report.shift[String(d)] = await mean([
      shiftBatch(images, d, 0),
      shiftBatch(images, -d, 0),
      shiftBatch(images, 0, d),
      shiftBatch(images, 0, -d),
    ]);
  }
  report.noise = await noiseRobustness(model, data, [0.1, 0.2, 0.3], options);
  const rng = createRng((options.seed ?? 7) + 1);
  report.elastic["34"] = await accuracyOn(model, elasticBatch(images, 34, 4, rng), labels);
  return report;
}
