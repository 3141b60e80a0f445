import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { batchNormTraining } from "../lib/batch_norm.ts";
import { selectBackend } from "../lib/backend.ts";
import { simdKernels } from "../lib/simd.ts";
import { onBoth, relativeError } from "./_parity.ts";

// 8 channels run the SIMD kernels, 3 the JavaScript ones.
for (const channels of [8, 3]) {
  Deno.test(`batch norm for training on wasm matches cpu with ${channels} channels: output, statistics, moving statistics, gradients`, async () => {
    const shape = [4, 6, 5, channels];
    const run = () => {
      const x = tf.randomNormal(shape, 0.5, 2, "float32", 1);
      const gamma = tf.randomNormal([channels], 1, 0.3, "float32", 2);
      const beta = tf.randomNormal([channels], 0, 0.3, "float32", 3);
      const weights = tf.randomNormal(shape, 0, 1, "float32", 4);
      let stats: tf.Tensor[] = [];
      const f = (x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor) =>
        tf.sum(tf.mul(
          batchNormTraining(x, gamma, beta, {
            epsilon: 1e-3,
            onStatistics: (m, v) => stats = [tf.keep(m), tf.keep(v)],
          }),
          weights,
        ));
      let moving: tf.Tensor[] = [];
      const y = batchNormTraining(x, gamma, beta, {
        epsilon: 1e-3,
        moving: {
          mean: tf.fill([channels], 0.25),
          variance: tf.fill([channels], 2),
          momentum: 0.9,
          update: (m, v) => moving = [tf.keep(m), tf.keep(v)],
        },
      });
      const [dx, dGamma, dBeta] = tf.grads(f)([x, gamma, beta]);
      assert.equal(moving.length, 2, "moving statistics updated");
      const all = tf.concat([y, dx, dGamma, dBeta, ...stats, ...moving].map((t) => t.flatten()));
      tf.dispose([...stats, ...moving]);
      return all;
    };
    const [cpu, wasm] = await onBoth(run);
    assert.ok(relativeError(cpu, wasm) < 1e-5, `relative error ${relativeError(cpu, wasm)}`);
    assert.ok(wasm.some((v) => v !== 0), "a comparison of zeros would prove nothing");
  });
}

Deno.test("the SIMD module binds to the wasm backend only", async () => {
  await selectBackend("wasm");
  assert.notEqual(simdKernels(tf.backend()), null);
  await selectBackend("cpu");
  assert.equal(simdKernels(tf.backend()), null);
});
