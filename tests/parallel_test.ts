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
    // Unequal shards: 5 and 7 images.
    const shards = [[0, 5], [5, 12]].map(([from, to]) => ({
      pixels: pixels.slice(from * 784, to * 784),
      labels: labels.slice(from, to),
      augment: null,
    }));
    const result = await pool.step(readFlat(net.trainableWeights), new Float32Array(0), shards);
    let error = 0, scale = 0;
    expected.forEach((g, i) => {
      error = Math.max(error, Math.abs(g - result.gradients[i]));
      scale = Math.max(scale, Math.abs(g));
    });
    assert.ok(scale > 0 && error <= 1e-5 * scale, `max error ${error} of ${scale}`);
    assert.equal(result.losses.length, 12);
    result.losses.forEach((l, i) => assert.ok(Math.abs(l - expectedLosses[i]) < 1e-5, `loss ${i}`));

    await assert.rejects(
      pool.step(readFlat(net.trainableWeights), new Float32Array(0), [
        ...shards,
        shards[0],
      ]),
      {
        name: "RangeError",
        message: "Cannot run a parallel step: expected at most 2 shards, got 3",
      },
    );
    // Too few pixels for 5 images: refused before any worker sees the shard.
    await assert.rejects(
      pool.step(readFlat(net.trainableWeights), new Float32Array(0), [
        { ...shards[0], pixels: shards[0].pixels.subarray(0, 784) },
      ]),
      {
        name: "RangeError",
        message: "Cannot run a parallel step: expected 3920 pixels for 5 labels, got 784",
      },
    );
    // A failure inside a worker reaches the caller (augmentation strength 2 is out of range),
    // and the worker takes the next step as usual.
    await assert.rejects(
      pool.step(readFlat(net.trainableWeights), new Float32Array(0), [
        { ...shards[0], augment: { options: { strength: 2 }, seed: 1 } },
      ]),
      (error: Error) =>
        error.name === "BackendError" &&
        error.message.startsWith("Cannot train in a worker: Cannot augment images: expected"),
    );
    const again = await pool.step(readFlat(net.trainableWeights), new Float32Array(0), shards);
    assert.deepEqual(again.gradients, result.gradients);
    // Predicting (by message) between steps, then stepping again, gives the same gradients.
    const probabilities = await pool.predict(
      readFlat(net.trainableWeights),
      new Float32Array(0),
      pixels,
      12,
    );
    assert.equal(probabilities.length, 120);
    const after = await pool.step(readFlat(net.trainableWeights), new Float32Array(0), shards);
    assert.deepEqual(after.gradients, result.gradients);
    await assert.rejects(
      pool.step(readFlat(net.trainableWeights).subarray(1), new Float32Array(0), shards),
      {
        name: "RangeError",
        message: "Cannot run a parallel step: expected 6810 weights, got 6809",
      },
    );
    // A bad second shard, after the first worker took its own: refused, and the pool goes on.
    await assert.rejects(
      pool.step(readFlat(net.trainableWeights), new Float32Array(0), [
        shards[0],
        { ...shards[1], labels: shards[1].labels.subarray(1) },
      ]),
      {
        name: "RangeError",
        message: "Cannot run a parallel step: expected 4704 pixels for 6 labels, got 5488",
      },
    );
    assert.deepEqual(
      (await pool.step(readFlat(net.trainableWeights), new Float32Array(0), shards)).gradients,
      result.gradients,
    );
    // A larger shard than the workers have room for gets a larger channel.
    const whole = await pool.step(readFlat(net.trainableWeights), new Float32Array(0), [
      { pixels, labels, augment: null },
    ]);
    assert.equal(whole.losses.length, 12);
  } finally {
    pool.close();
    net.dispose();
  }
});
