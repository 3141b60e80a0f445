/**
 * The folded, fused inference path computes what `model.predict` computes,
 * for every preset, follows the model's weights when they change, and
 * declines models it does not cover.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../lib/backend.ts";
import { inferenceRunner } from "../lib/inference.ts";
import { createModel, layersModelOf, MODEL_PRESETS, type ModelPreset } from "../lib/model.ts";
import { createRng } from "../lib/rng.ts";
import { loadRealMnist } from "./_fixtures.ts";

const data = await loadRealMnist();

/** Random values for every weight of `net` (batch-norm variances positive). */
function randomise(net: tf.LayersModel, seed: number): void {
  const rng = createRng(seed);
  for (const layer of net.layers) {
    const values = layer.weights.map((w) => {
      const variance = w.originalName.endsWith("moving_variance");
      return tf.tensor(
        Float32Array.from(
          { length: w.shape.reduce((a, b) => a! * b!, 1)! },
          () => (variance ? 0.1 + 2 * rng.next() : rng.normal() * 0.3),
        ),
        w.shape as number[],
      );
    });
    if (values.length) layer.setWeights(values);
    tf.dispose(values);
  }
}

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) =>
  Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

/** The runner's and predict's outputs on `n` real test images. */
function both(
  net: tf.LayersModel,
  run: (pixels: Float32Array, count: number) => tf.Tensor,
  n = 100,
) {
  return tf.tidy(() => {
    const pixels = data.test.images.subarray(0, n * 784);
    const x = tf.tensor4d(pixels, [n, 28, 28, 1]);
    return [run(pixels, n).dataSync(), (net.predict(x) as tf.Tensor).dataSync()];
  });
}

for (const backend of ["cpu", "wasm"] as const) {
  Deno.test(`the inference path equals predict for every preset on ${backend}, and follows new weights`, async () => {
    await selectBackend(backend);
    for (const preset of Object.keys(MODEL_PRESETS) as ModelPreset[]) {
      const model = createModel({ preset, seed: 5 });
      const net = layersModelOf(model);
      randomise(net, 9);
      const runner = inferenceRunner(net);
      assert.ok(runner, `${preset} has a fast path`);
      const tensors = tf.memory().numTensors;
      const [got, expected] = both(net, (pixels, n) => runner.run(pixels, n));
      assert.ok(maxAbsDiff(got, expected) <= 1e-5, `${preset}: ${maxAbsDiff(got, expected)}`);
      assert.equal(tf.memory().numTensors, tensors, `${preset}: no tensors left per call`);

      // New weights (as training gives): the folded copies are made again.
      randomise(net, 10);
      const [after, expectedAfter] = both(net, (pixels, n) => runner.run(pixels, n));
      assert.ok(maxAbsDiff(after, got) > 1e-3, `${preset}: the weights did change the answers`);
      assert.ok(maxAbsDiff(after, expectedAfter) <= 1e-5, `${preset}: follows the new weights`);
      runner.dispose();
      model.dispose();
    }
  });
}

Deno.test("the inference path declines what it does not cover", async () => {
  await selectBackend("cpu");
  const tanh = tf.sequential({
    layers: [
      tf.layers.flatten({ inputShape: [28, 28, 1] }),
      tf.layers.dense({ units: 10, activation: "tanh" }),
    ],
  });
  const unflattened = tf.sequential({
    layers: [tf.layers.dense({ inputShape: [28, 28, 1], units: 10 })],
  });
  const input = tf.input({ shape: [28, 28, 1] });
  const functional = tf.model({
    inputs: input,
    outputs: tf.layers.dense({ units: 10 }).apply(
      tf.layers.flatten().apply(input),
    ) as tf.SymbolicTensor,
  });
  for (const net of [tanh, unflattened, functional]) {
    assert.equal(inferenceRunner(net), null, net.name);
    net.dispose();
  }
});

for (const backend of ["cpu", "wasm"] as const) {
  Deno.test(`the input's rescaling, on the host or as kernels, equals the Rescaling layer bit for bit on ${backend}`, async () => {
    await selectBackend(backend);
    // The presets' normalisation, then a second Rescaling that stays a kernel.
    const net = tf.sequential({
      layers: [
        tf.layers.rescaling({
          inputShape: [28, 28, 1],
          scale: 1 / 0.3081,
          offset: -0.1307 / 0.3081,
        }),
        tf.layers.rescaling({ scale: 0.7, offset: 0.1 }),
        tf.layers.flatten(),
      ],
    });
    const runner = inferenceRunner(net);
    assert.ok(runner);
    // 50 images: rescaled on the host; 200: as kernels.
    for (const n of [50, 200]) {
      const [got, expected] = both(net, (pixels, count) => runner.run(pixels, count), n);
      assert.equal(got.length, n * 784);
      assert.deepEqual(Array.from(got), Array.from(expected), `${n} images`);
    }
    runner.dispose();
    net.dispose();
  });
}
