/**
 * Tiny convolutional networks for 28×28 grey digits, wrapped in a
 * {@linkcode Classifier} so that no TensorFlow.js class leaks into the API.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { ensureBackend } from "./backend.ts";
import { type InferenceRunner, inferenceRunner, predictImages } from "./inference.ts";
import { checkImages, IMAGE_PIXELS, IMAGE_SIZE, NUM_CLASSES } from "./images.ts";
import type { ModelCard } from "./model_card.ts";

export { IMAGE_PIXELS, IMAGE_SIZE, NUM_CLASSES };
/** Mean and standard deviation of MNIST training pixels in [0, 1]. */
export const MNIST_MEAN = 0.1307, MNIST_STD = 0.3081;

/** The architectures {@linkcode createModel} can build. */
export type ModelPreset = "small" | "tiny" | "seed" | "mini" | "wide" | "deep";

/** The architectures, with a one-line description each. */
export const MODEL_PRESETS: Readonly<Record<ModelPreset, string>> = {
  small:
    "tiny with its last pool padded (7→4, keeping the 7th row and column): dense 512→10; 19,258 params",
  tiny: "default: conv 16→32→32 (BN, ReLU, max-pool; last pool 7→3), dense 288→10; 17,018 params",
  seed:
    "the original: conv 8→16→16 (BN, ReLU, max-pool), dropout 0.25, dense 144→32→10; 8,618 params",
  mini: "a student for distillation: conv 8→16→16 (BN, ReLU, max-pool), dense 144→10; 5,058 params",
  wide:
    "tiny with a wider last convolution: conv 16→32→48 (BN, ReLU, max-pool), dense 432→10; 23,098 params",
  deep:
    "tiny with two convolutions in its last block: conv 16→32→(24→32) (BN, ReLU each; max-pool), dense 288→10; 21,674 params",
};

/** Options for {@linkcode createModel}. */
export interface ModelOptions {
  /**
   * Which architecture to build.
   * @default {"tiny"}
   */
  preset?: ModelPreset;
  /**
   * Seed for the weight initialisers, so that two models built with the same
   * seed start from identical weights.
   * @default {42}
   */
  seed?: number;
}

/** Options for {@linkcode Classifier.predict} and {@linkcode Classifier.classify}. */
export interface PredictOptions {
  /**
   * How many images are passed. When given, the length must be exactly
   * `count × 784`: one RGBA image (3,136 values) is then an error instead of
   * four images.
   * @default {undefined} any whole number of images (interleaved RGBA data is still refused)
   */
  count?: number;
}

/**
 * A trained or untrained digit classifier. Inputs are images in pixel space
 * `[0, 1]`, row-major `[n, 28, 28, 1]` flattened into one `Float32Array`; the
 * model normalises them itself.
 */
export interface Classifier {
  /** The architecture it was built from (`"custom"` when loaded from unknown JSON). */
  readonly preset: string;
  /** Number of trainable parameters. */
  readonly params: number;
  /** What the saved model records about how it was made (set by `loadModel`; undefined for a new model). */
  readonly card?: ModelCard;
  /** One line per layer: name, output shape and parameter count. */
  summary(): string[];
  /**
   * Class probabilities for `n` images.
   * @param images `n * 784` pixels in [0, 1], NHWC `[n, 28, 28, 1]`.
   * @param options The number of images, if known.
   * @returns `n * 10` probabilities, row by row.
   * @throws {TypeError} When `images` is not `n × 784` grey pixels (or not `count × 784`).
   * @throws {RangeError} When a pixel is outside [0, 1].
   */
  predict(images: Float32Array, options?: PredictOptions): Promise<Float32Array>;
  /**
   * The most probable digit for each of `n` images.
   * @param images `n * 784` pixels in [0, 1], NHWC `[n, 28, 28, 1]`.
   * @param options The number of images, if known.
   * @returns `n` digits.
   * @throws {TypeError} When `images` is not `n × 784` grey pixels (or not `count × 784`).
   * @throws {RangeError} When a pixel is outside [0, 1], or the model's
   * probabilities for an image are not finite (broken weights): no digit is
   * made up for it.
   */
  classify(images: Float32Array, options?: PredictOptions): Promise<Uint8Array>;
  /** Free the model's tensors; it cannot be used afterwards. */
  dispose(): void;
}

const layersModels = new WeakMap<Classifier, tf.LayersModel>();

/**
 * The TensorFlow.js model behind a {@linkcode Classifier}. Internal to
 * tinymnist (trainer, evaluator, save/load); not part of the public API.
 */
export function layersModelOf(classifier: Classifier): tf.LayersModel {
  const model = layersModels.get(classifier);
  if (!model) {
    throw new TypeError(
      "Cannot use classifier: expected a model made by createModel or loadModel, got another object",
    );
  }
  return model;
}

/** Batch size used by `predict` so that huge inputs do not exhaust memory. */
const PREDICT_BATCH = 1000;

/**
 * Wrap a TensorFlow.js layers model as a {@linkcode Classifier}. Internal.
 */
export function wrapLayersModel(
  model: tf.LayersModel,
  preset: string,
  card?: ModelCard,
): Classifier {
  let disposed = false;
  /** The folded, fused inference path (`inference.ts`), made at the first call; `null`: none. */
  let runner: InferenceRunner | null | undefined;
  const predict = async (
    images: Float32Array,
    options: PredictOptions = {},
    action = "predict",
  ): Promise<Float32Array> => {
    if (disposed) {
      throw new TypeError(`Cannot ${action}: expected a live model, got one that was disposed`);
    }
    const n = checkImages(images, action, options);
    ensureBackend();
    if (runner === undefined) runner = inferenceRunner(model);
    const out = new Float32Array(n * NUM_CLASSES);
    for (let start = 0; start < n; start += PREDICT_BATCH) {
      const end = Math.min(n, start + PREDICT_BATCH);
      const probs = tf.tidy(() =>
        predictImages(
          model,
          runner ?? null,
          images.subarray(start * IMAGE_PIXELS, end * IMAGE_PIXELS),
          end - start,
        )
      );
      out.set(await probs.data() as Float32Array, start * NUM_CLASSES);
      probs.dispose();
    }
    return out;
  };
  const classifier: Classifier = {
    preset,
    params: countTrainable(model),
    card,
    summary: () =>
      model.layers.map((layer) => {
        const shape = JSON.stringify(layer.outputShape).replaceAll("null", "n");
        return `${layer.name.padEnd(14)} ${shape.padEnd(16)} ${layer.countParams()}`;
      }),
    predict: (images, options) => predict(images, options),
    classify: async (images, options) => argmaxRows(await predict(images, options, "classify")),
    dispose: () => {
      if (!disposed) {
        runner?.dispose();
        model.dispose();
      }
      disposed = true;
    },
  };
  layersModels.set(classifier, model);
  return classifier;
}

/**
 * The index of the largest value in each row of 10. Internal.
 * @throws {RangeError} When a row holds a value that is not finite (a NaN
 * row's argmax would otherwise be 0, a made-up answer).
 */
export function argmaxRows(probs: Float32Array): Uint8Array {
  const n = probs.length / NUM_CLASSES;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let k = 0; k < NUM_CLASSES; k++) {
      const p = probs[i * NUM_CLASSES + k];
      if (!Number.isFinite(p)) {
        throw new RangeError(
          `Cannot classify: expected finite probabilities, got ${p} for image ${i} (the model's weights are corrupt or diverged)`,
        );
      }
      if (p > probs[i * NUM_CLASSES + best]) best = k;
    }
    out[i] = best;
  }
  return out;
}

function countTrainable(model: tf.LayersModel): number {
  return model.trainableWeights.reduce(
    (sum, w) => sum + (w.shape as number[]).reduce((a, b) => a * b, 1),
    0,
  );
}

/**
 * Build a NEW, untrained classifier. Each call returns an independent model.
 * Call `selectBackend` first for speed; without it the model runs on the
 * plain cpu backend.
 *
 * @param options Architecture and initialisation seed.
 * @returns A classifier with freshly initialised weights.
 * @throws {RangeError} For an unknown preset.
 *
 * @example Build the default model
 * ```ts
 * import { createModel, countParams } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * const model = createModel();
 * assert.ok(countParams(model) < 25_000);
 * model.dispose();
 * ```
 */
export function createModel(options: ModelOptions = {}): Classifier {
  ensureBackend();
  const preset = options.preset ?? "tiny";
  const seed = options.seed ?? 42;
  if (!Object.hasOwn(MODEL_PRESETS, preset)) {
    throw new RangeError(
      `Cannot create model: expected preset ${
        Object.keys(MODEL_PRESETS).map((p) => `"${p}"`).join(" or ")
      }, got "${preset}"`,
    );
  }
  let n = 0;
  // Each initialiser gets its own seed so that layers do not share weights.
  const init = () => tf.initializers.heNormal({ seed: seed * 1000 + n++ });
  const bn = () => tf.layers.batchNormalization({ momentum: 0.9 }); // PyTorch's 0.1
  const conv = (filters: number, useBias: boolean) =>
    tf.layers.conv2d({
      filters,
      kernelSize: 3,
      padding: "same",
      useBias,
      kernelInitializer: init(),
    });
  const model = tf.sequential({ name: preset });
  model.add(tf.layers.inputLayer({ inputShape: [IMAGE_SIZE, IMAGE_SIZE, 1] }));
  model.add(
    tf.layers.rescaling({
      scale: 1 / MNIST_STD,
      offset: -MNIST_MEAN / MNIST_STD,
    }),
  );
  if (preset === "seed") {
    for (const filters of [8, 16, 16]) { // [28→14→7→3]
      model.add(conv(filters, true));
      model.add(bn());
      model.add(tf.layers.reLU());
      model.add(tf.layers.maxPooling2d({ poolSize: 2 }));
    }
    model.add(tf.layers.dropout({ rate: 0.25, seed }));
    model.add(tf.layers.flatten()); // [3,3,16] -> 144
    model.add(
      tf.layers.dense({
        units: 32,
        activation: "relu",
        kernelInitializer: init(),
      }),
    );
  } else {
    // Conv without bias: the batch norm that follows has its own shift.
    // Each block: its convolutions (each with batch norm and ReLU), then a 2×2 max-pool.
    const blocks: Partial<Record<ModelPreset, number[][]>> = {
      mini: [[8], [16], [16]],
      wide: [[16], [32], [48]],
      deep: [[16], [32], [24, 32]],
    };
    const widths = blocks[preset] ?? [[16], [32], [32]];
    for (const [i, block] of widths.entries()) { // [28,28,16]→[14,14,32]→[7,7,32]→[3,3,32]
      for (const filters of block) {
        model.add(conv(filters, false));
        model.add(bn());
        model.add(tf.layers.reLU());
      }
      // small: the last pool also keeps the 7th row and column, [7,7,32]→[4,4,32].
      const padding = preset === "small" && i === widths.length - 1 ? "same" : "valid";
      model.add(tf.layers.maxPooling2d({ poolSize: 2, padding }));
    }
    model.add(tf.layers.flatten()); // tiny, deep: [3,3,32] -> 288; small: 512; mini: 144; wide: 432
  }
  model.add(tf.layers.dense({
    units: NUM_CLASSES,
    activation: "softmax",
    kernelInitializer: tf.initializers.glorotUniform({
      seed: seed * 1000 + n++,
    }),
  }));
  return wrapLayersModel(model, preset);
}

/**
 * The number of trainable parameters of a classifier.
 *
 * @param model A classifier from {@linkcode createModel} or `loadModel`.
 * @returns Trainable parameter count (batch-norm moving statistics excluded).
 *
 * @example The original architecture has 8,618 parameters
 * ```ts
 * import { createModel, countParams } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * const seed = createModel({ preset: "seed" });
 * assert.equal(countParams(seed), 8618);
 * seed.dispose();
 * ```
 */
export function countParams(model: Classifier): number {
  return countTrainable(layersModelOf(model));
}
