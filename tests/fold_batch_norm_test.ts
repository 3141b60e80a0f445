/**
 * Batch-norm folding computes the same function as the model in inference
 * mode, for every preset, with batch-norm statistics far from their
 * initial values, and leaves the model it reads unchanged.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../lib/backend.ts";
import { foldBatchNorm } from "../lib/fold_batch_norm.ts";
import { createModel, layersModelOf, MODEL_PRESETS, type ModelPreset } from "../lib/model.ts";
import { createRng } from "../lib/rng.ts";
import { trainedModel } from "./_trained.ts";

/** Give every batch norm of `net` random statistics, scale and shift (as training would). */
function randomiseBatchNorm(net: tf.LayersModel, seed: number): void {
  const rng = createRng(seed);
  for (const layer of net.layers) {
    if (layer.getClassName() !== "BatchNormalization") continue;
    const values = layer.getWeights().map((w, i) => {
      // gamma, beta, moving mean, moving variance (> 0)
      const draw = () =>
        [1 + rng.normal() * 0.5, rng.normal(), rng.normal(), 0.1 + rng.next() * 3][i];
      return tf.tensor(Float32Array.from({ length: w.size }, draw), w.shape);
    });
    layer.setWeights(values);
    tf.dispose(values);
  }
}

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) =>
  Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

Deno.test("folding batch norm keeps the function of every preset, without the batch-norm layers", async (t) => {
  const { data } = await trainedModel(); // real test images
  await selectBackend("cpu");
  const images = tf.tensor4d(data.test.images.subarray(0, 200 * 784), [200, 28, 28, 1]);
  for (const preset of Object.keys(MODEL_PRESETS) as ModelPreset[]) {
    await t.step(preset, async () => {
      const model = createModel({ preset, seed: 3 });
      const net = layersModelOf(model);
      randomiseBatchNorm(net, 11);
      const before = await Promise.all(net.weights.map((w) => w.read().data()));
      const tensors = tf.memory().numTensors;
      const folded = await foldBatchNorm(net);
      const classes = folded.layers.map((l) => l.getClassName());
      assert.ok(!classes.includes("BatchNormalization"), classes.join());
      assert.equal(
        classes.filter((c) => c === "Conv2D").length,
        net.layers.filter((l) => l.getClassName() === "Conv2D").length,
      );
      const probabilities = (m: tf.LayersModel) => {
        const out = m.predict(images) as tf.Tensor;
        const values = out.dataSync();
        out.dispose();
        return values;
      };
      const expected = probabilities(net), got = probabilities(folded);
      assert.ok(maxAbsDiff(got, expected) <= 1e-5, `max |Δp| ${maxAbsDiff(got, expected)}`);
      // The model read is unchanged.
      const after = await Promise.all(net.weights.map((w) => w.read().data()));
      after.forEach((w, i) => assert.deepEqual(w, before[i]));
      folded.dispose();
      assert.equal(tf.memory().numTensors, tensors, "no tensors left behind");
      model.dispose();
    });
  }
  images.dispose();
});

Deno.test("foldBatchNorm refuses a model that is not Sequential", async () => {
  await selectBackend("cpu");
  const input = tf.input({ shape: [28, 28, 1] });
  const output = tf.layers.dense({ units: 10 }).apply(
    tf.layers.flatten().apply(input),
  ) as tf.SymbolicTensor;
  const functional = tf.model({ inputs: input, outputs: output });
  await assert.rejects(foldBatchNorm(functional), {
    name: "TypeError",
    message: "Cannot fold batch norm: expected a Sequential model, got Model",
  });
  functional.dispose();
});
