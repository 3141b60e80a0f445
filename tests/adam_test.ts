import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { FlatAdam } from "../lib/adam.ts";
import { selectBackend } from "../lib/backend.ts";
import { createRng } from "../lib/rng.ts";

Deno.test("FlatAdam takes the same steps as tf.train.adam", async () => {
  await selectBackend("cpu");
  const rng = createRng(3);
  const size = 50;
  const initial = Float32Array.from({ length: size }, () => rng.normal());
  const params = initial.slice();
  const reference = tf.variable(tf.tensor1d(params));
  const optimizer = tf.train.adam(0.01);
  const adam = new FlatAdam(size);
  for (let step = 0; step < 20; step++) {
    const lr = 0.01 * (1 + step % 3); // a schedule changes the rate between steps
    const grads = Float32Array.from({ length: size }, () => rng.normal() * 10 ** (step % 4 - 2));
    (optimizer as unknown as { learningRate: number }).learningRate = lr;
    const g = tf.tensor1d(grads);
    optimizer.applyGradients([{ name: reference.name, tensor: g }]);
    g.dispose();
    adam.step(params, grads, lr);
  }
  const expected = reference.dataSync();
  const worst = params.reduce((m, p, i) => Math.max(m, Math.abs(p - expected[i])), 0);
  const moved = params.reduce((m, p, i) => m + Math.abs(p - initial[i]), 0) / size;
  assert.ok(moved > 0.02, `parameters moved by ${moved} on average`);
  // float32 rounding: TensorFlow.js rounds after each of its ops.
  assert.ok(worst < 1e-5, `largest difference ${worst}`);
  reference.dispose();
  optimizer.dispose();
});

Deno.test("FlatAdam rejects vectors of the wrong length", () => {
  const adam = new FlatAdam(3);
  assert.throws(() => adam.step(new Float32Array(3), new Float32Array(2), 0.1), {
    name: "RangeError",
    message: "Cannot apply Adam: expected 3 parameters and gradients, got 3 and 2",
  });
});
