import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../lib/backend.ts";
import { DeviceAdam } from "../lib/device_adam.ts";
import { createRng } from "../lib/rng.ts";

Deno.test("DeviceAdam takes the same steps as tf.train.adam, on several variables at once", async () => {
  for (const backend of ["cpu", "wasm"] as const) {
    await selectBackend(backend);
    const rng = createRng(5);
    const shapes = [[3, 3, 1, 4], [4], [7, 2], [1]];
    const initial = shapes.map((s) =>
      Float32Array.from({ length: s.reduce((a, b) => a * b) }, () => rng.normal())
    );
    const ours = initial.map((v, i) => tf.variable(tf.tensor(v, shapes[i])));
    const theirs = initial.map((v, i) => tf.variable(tf.tensor(v, shapes[i])));
    const reference = tf.train.adam(0.01);
    const adam = new DeviceAdam(ours);
    const before = tf.memory().numTensors;
    for (let step = 0; step < 20; step++) {
      const lr = 0.01 * (1 + step % 3); // a schedule changes the rate between steps
      const grads = shapes.map((s) =>
        tf.tensor(
          Float32Array.from({ length: s.reduce((a, b) => a * b) }, () =>
            rng.normal() * 10 ** (step % 4 - 2)),
          s,
        )
      );
      (reference as unknown as { learningRate: number }).learningRate = lr;
      reference.applyGradients(theirs.map((v, i) => ({ name: v.name, tensor: grads[i] })));
      adam.step(Object.fromEntries(ours.map((v, i) => [v.name, grads[i]])), lr);
      tf.dispose(grads);
    }
    // The reference optimizer makes its own moments on the first step.
    assert.ok(tf.memory().numTensors <= before + 2 * shapes.length + 2, "no tensors leak per step");
    for (let i = 0; i < shapes.length; i++) {
      const a = ours[i].dataSync() as Float32Array, b = theirs[i].dataSync() as Float32Array;
      const worst = a.reduce((m, x, j) => Math.max(m, Math.abs(x - b[j])), 0);
      const moved = a.reduce((m, x, j) => m + Math.abs(x - initial[i][j]), 0) / a.length;
      assert.ok(moved > 0.02, `${backend}: variable ${i} moved by ${moved} on average`);
      // float32 rounding: the bias corrections are multiplied rather than divided.
      assert.ok(worst < 1e-5, `${backend}: variable ${i}: largest difference ${worst}`);
      assert.deepEqual(ours[i].shape, shapes[i]);
    }
    adam.dispose();
    reference.dispose();
    tf.dispose([...ours, ...theirs]);
  }
});

Deno.test("DeviceAdam refuses a step without a gradient for every variable", async () => {
  await selectBackend("cpu");
  const a = tf.variable(tf.zeros([2]), true, "device_adam_a");
  const b = tf.variable(tf.zeros([3]), true, "device_adam_b");
  const adam = new DeviceAdam([a, b]);
  const g = tf.ones([2]);
  assert.throws(() => adam.step({ device_adam_a: g }, 0.1), {
    name: "RangeError",
    message:
      'Cannot apply Adam: expected a gradient for every variable, got none for "device_adam_b"',
  });
  tf.dispose([a, b, g]);
  adam.dispose();
});
