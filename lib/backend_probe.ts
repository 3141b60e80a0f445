/**
 * How fast the active backend takes a training step of a network shaped
 * like the default model, so that `selectBackend("auto")` can choose by
 * measuring rather than by the kind of device: a GPU adapter is not always
 * faster than WASM for a network this small (see the README, "On a GPU").
 * Internal.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";

/** Options for {@linkcode measureTrainingStep}. */
export interface ProbeOptions {
  /**
   * Milliseconds of timed steps after the warm-up step (at least one step is
   * always timed).
   * @default {250}
   */
  budgetMs?: number;
  /**
   * The most steps timed.
   * @default {8}
   */
  maxSteps?: number;
}

/** Images per probe step: the default batch size. */
const BATCH = 64;

/**
 * Mean milliseconds of one training step on the active backend: forward,
 * backward and a plain gradient-descent update of the default model's
 * convolutions ([28,28,1] → 16 → 32 → 32 channels, 3×3, each followed by
 * ReLU and 2×2 max-pooling, then a 288→10 dense layer and softmax
 * cross-entropy), on a batch of 64 random images, in this thread. One
 * warm-up step (shader compilation, kernel set-up) is not timed; the timed
 * steps end with a read-back, so queued GPU work counts.
 *
 * @param options The time budget.
 * @returns Milliseconds per step (> 0).
 */
export async function measureTrainingStep(options: ProbeOptions = {}): Promise<number> {
  const budgetMs = options.budgetMs ?? 250, maxSteps = options.maxSteps ?? 8;
  const init = (shape: number[], seed: number) => {
    const fanIn = shape.slice(0, -1).reduce((a, b) => a * b);
    const values = tf.randomNormal(shape, 0, Math.sqrt(2 / fanIn), "float32", seed);
    const variable = tf.variable(values);
    values.dispose();
    return variable;
  };
  const weights = [
    init([3, 3, 1, 16], 1),
    init([3, 3, 16, 32], 2),
    init([3, 3, 32, 32], 3),
    init([288, 10], 4),
  ];
  const x = tf.randomUniform([BATCH, 28, 28, 1], 0, 1, "float32", 5);
  const labels = tf.tidy(() => tf.oneHot(tf.randomUniform([BATCH], 0, 10, "int32", 6), 10));
  const block = (h: tf.Tensor4D, w: tf.Variable) =>
    tf.maxPool(tf.relu(tf.conv2d(h, w as tf.Tensor4D, 1, "same")), 2, 2, "valid");
  const loss = () => {
    let h = x as tf.Tensor4D;
    for (const w of weights.slice(0, 3)) h = block(h, w);
    const logits = tf.matMul(tf.reshape(h, [BATCH, 288]), weights[3]);
    return tf.losses.softmaxCrossEntropy(labels, logits) as tf.Scalar;
  };
  const step = () =>
    tf.tidy(() => {
      const { value, grads } = tf.variableGrads(loss, weights);
      for (const w of weights) w.assign(tf.sub(w, tf.mul(grads[w.name], 0.01)));
      return value;
    });
  try {
    const warm = step();
    await warm.data();
    warm.dispose();
    const start = performance.now();
    let steps = 0, last: tf.Scalar | undefined;
    do {
      last?.dispose();
      last = step();
      steps++;
      // Read back every step: a GPU backend queues work, and the budget is wall time.
      await last.data();
    } while (steps < maxSteps && performance.now() - start < budgetMs);
    last.dispose();
    return Math.max(performance.now() - start, 1e-3) / steps;
  } finally {
    tf.dispose([...weights, x, labels]);
  }
}
