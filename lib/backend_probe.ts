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
  /**
   * Images per step.
   * @default {64}
   */
  batch?: number;
}

/**
 * Mean milliseconds of one training step on the active backend: forward,
 * backward and a plain gradient-descent update of the default model's
 * convolutions ([28,28,1] → 16 → 32 → 32 channels, 3×3, each followed by
 * ReLU and 2×2 max-pooling, then a 288→10 dense layer and softmax
 * cross-entropy), on a batch of random images (64 by default), in this
 * thread. One
 * warm-up step (shader compilation, kernel set-up) is not timed; the timed
 * steps end with a read-back, so queued GPU work counts.
 *
 * @param options The time budget.
 * @returns Milliseconds per step (> 0).
 * @throws {RangeError} If the batch is not a positive integer.
 */
export async function measureTrainingStep(options: ProbeOptions = {}): Promise<number> {
  const budgetMs = options.budgetMs ?? 250, maxSteps = options.maxSteps ?? 8;
  const batch = options.batch ?? 64;
  if (!Number.isInteger(batch) || batch < 1) {
    throw new RangeError(
      `Cannot time a training step: expected a batch of at least 1 image, got ${batch}`,
    );
  }
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
  const x = tf.randomUniform([batch, 28, 28, 1], 0, 1, "float32", 5);
  const labels = tf.tidy(() => tf.oneHot(tf.randomUniform([batch], 0, 10, "int32", 6), 10));
  const block = (h: tf.Tensor4D, w: tf.Variable) =>
    tf.maxPool(tf.relu(tf.conv2d(h, w as tf.Tensor4D, 1, "same")), 2, 2, "valid");
  const loss = () => {
    let h = x as tf.Tensor4D;
    for (const w of weights.slice(0, 3)) h = block(h, w);
    const logits = tf.matMul(tf.reshape(h, [batch, 288]), weights[3]);
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

/** A message from a probe worker. */
type ProbeReply = { type: "ready" } | { type: "timed"; ms: number } | {
  type: "error";
  message: string;
};

/**
 * Mean milliseconds of one training step of the network that
 * {@linkcode measureTrainingStep} times, split the way the data-parallel
 * trainer splits it on wasm: `workers` Web Workers, each with its own wasm
 * backend, each timing its share of a batch of 64 at the same time. The
 * step takes as long as the slowest share. Starting the workers is not
 * timed (about as long as the trainer's own start).
 *
 * @param workers Number of workers (≥ 1).
 * @param options The time budget (the batch is split between the workers).
 * @returns Milliseconds per step of the whole batch (> 0).
 * @throws {Error} If a worker fails to start or to measure.
 */
export async function measureParallelTrainingStep(
  workers: number,
  options: ProbeOptions = {},
): Promise<number> {
  const batch = options.batch ?? 64;
  const pool = Array.from(
    { length: workers },
    () => new Worker(new URL("./backend_probe_worker.ts", import.meta.url), { type: "module" }),
  );
  const reply = (worker: Worker) =>
    new Promise<ProbeReply>((resolve, reject) => {
      worker.onmessage = (event: MessageEvent<ProbeReply>) => resolve(event.data);
      worker.onerror = (event) => {
        event.preventDefault();
        reject(new Error(`Cannot time a training step in a worker: ${event.message}`));
      };
    });
  const expect = async <T extends ProbeReply["type"]>(type: T) => {
    const replies = await Promise.all(pool.map(reply));
    for (const r of replies) {
      if (r.type === "error") {
        throw new Error(`Cannot time a training step in a worker: ${r.message}`);
      }
      if (r.type !== type) {
        throw new Error(`Cannot time a training step: expected ${type}, got ${r.type}`);
      }
    }
    return replies as Extract<ProbeReply, { type: T }>[];
  };
  try {
    const ready = expect("ready");
    for (const worker of pool) worker.postMessage({ type: "init" });
    await ready;
    const timed = expect("timed");
    pool.forEach((worker, i) => {
      // Shares as the trainer makes them: sizes differ by at most one image.
      const share = Math.floor(batch / workers) + (i < batch % workers ? 1 : 0);
      worker.postMessage({ type: "time", options: { ...options, batch: share } });
    });
    return Math.max(...(await timed).map((r) => r.ms));
  } finally {
    for (const worker of pool) worker.terminate();
  }
}
