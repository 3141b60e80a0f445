import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../lib/backend.ts";
import { trainingLogits } from "../lib/forward.ts";
import { softmaxCrossEntropy } from "../lib/loss.ts";
import { GradientWorkers, readFlat } from "../lib/parallel.ts";
import { createRng } from "../lib/rng.ts";

/** A chain without batch norm, so that shards add up to exactly the whole batch. */
function smallNet(): tf.LayersModel {
  const net = tf.sequential();
  net.add(tf.layers.conv2d({
    inputShape: [28, 28, 1],
    filters: 4,
    kernelSize: 3,
    strides: 2,
    activation: "relu",
    kernelInitializer: tf.initializers.heNormal({ seed: 1 }),
  }));
  net.add(tf.layers.flatten());
  net.add(tf.layers.dense({
    units: 10,
    activation: "softmax",
    kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }),
  }));
  return net;
}

function batch(count: number) {
  const rng = createRng(9);
  return {
    pixels: Float32Array.from({ length: count * 784 }, () => rng.next()),
    labels: Int32Array.from({ length: count }, () => rng.int(10)),
  };
}

Deno.test("two workers' gradients, weighted by shard size, are the whole batch's gradient", async () => {
  await selectBackend("wasm");
  const net = smallNet();
  const { pixels, labels } = batch(12);
  // In this thread: the gradient of the mean loss over all 12 images.
  const vars = net.trainableWeights.map((w) => w.read() as tf.Variable);
  const x = tf.tensor4d(pixels, [12, 28, 28, 1]), y = tf.tensor1d(labels, "int32");
  let each: tf.Tensor | undefined;
  const { value, grads } = tf.variableGrads(() =>
    tf.tidy(() => {
      const losses = softmaxCrossEntropy(trainingLogits(net, x), y, 0.1);
      each = tf.keep(losses);
      return losses.mean().asScalar();
    }), vars);
  const expected = new Float32Array(vars.reduce((a, v) => a + v.size, 0));
  let offset = 0;
  for (const v of vars) {
    expected.set(grads[v.name].dataSync(), offset);
    offset += v.size;
  }
  const expectedLosses = each!.dataSync().slice();
  tf.dispose([x, y, value, each!, ...Object.values(grads)]);

  const pool = await GradientWorkers.start(2, net, 0.1);
  try {
    assert.equal(pool.size, 2);
    const { pipeline } = pool.train(readFlat(net.trainableWeights), new Float32Array(0), 7);
    // Unequal shards: 5 and 7 images.
    const shards = [[0, 5], [5, 12]].map(([from, to]) => ({
      pixels: pixels.slice(from * 784, to * 784),
      labels: labels.slice(from, to),
      augment: null,
    }));
    pipeline.postShards(0.001, shards);
    await pipeline.done(0);
    const { gradients } = pipeline.sums(0);
    let error = 0, scale = 0;
    expected.forEach((g, i) => {
      error = Math.max(error, Math.abs(g - gradients[i]));
      scale = Math.max(scale, Math.abs(g));
    });
    assert.ok(scale > 0 && error <= 1e-5 * scale, `max error ${error} of ${scale}`);
    const result = pipeline.result(0);
    assert.equal(result.error, null);
    assert.equal(result.losses.length, 12);
    result.losses.forEach((l, i) => assert.ok(Math.abs(l - expectedLosses[i]) < 1e-5, `loss ${i}`));
    // A third shard has no worker to take it.
    assert.throws(() => pipeline.postShards(0.001, [...shards, shards[0]]), {
      name: "RangeError",
      message: "Cannot post a training step: expected at most 2 shards, got 3",
    });
    assert.equal(pipeline.posted, 1);
  } finally {
    pool.close();
    net.dispose();
  }
});
