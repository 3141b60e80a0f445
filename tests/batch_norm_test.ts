import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import {
  batchNormReluPoolTraining,
  batchNormTraining,
  canFuseBatchNormReluPool,
} from "../lib/batch_norm.ts";
import { selectBackend } from "../lib/backend.ts";
import { simdKernels } from "../lib/wasm/simd.ts";
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

// "valid": 7×7 leaves a row and a column outside every pooling window; "same" pools them as
// windows of their own (7×6: a lone row only; 5×5 with ties from ReLU at the edge); 4 and 8
// channels run SIMD.
for (
  const [shape, padding] of [
    [[3, 8, 8, 4], "valid"],
    [[2, 7, 7, 8], "valid"],
    [[2, 7, 7, 8], "same"],
    [[3, 7, 6, 4], "same"],
    [[2, 5, 5, 4], "same"],
    [[2, 8, 8, 4], "same"],
  ] as [number[], "valid" | "same"][]
) {
  Deno.test(`batch norm + ReLU + 2×2 max-pool as one op on wasm matches the three ops on cpu: ${shape}, ${padding}`, async () => {
    const channels = shape[3];
    const fusedOn: string[] = [];
    const run = () => {
      const x = tf.randomNormal(shape, 0.3, 1.5, "float32", 5);
      // One negative scale: the largest normalised value is then the smallest input.
      const gamma = tf.tensor1d(
        Array.from({ length: channels }, (_, c) => (c === 1 ? -0.8 : 1 + c / 10)),
      );
      const beta = tf.randomNormal([channels], 0, 0.3, "float32", 7);
      let moving: tf.Tensor[] = [];
      const options = {
        epsilon: 1e-3,
        moving: {
          mean: tf.zeros([channels]),
          variance: tf.ones([channels]),
          momentum: 0.9,
          update: (m: tf.Tensor, v: tf.Tensor) => moving = [tf.keep(m), tf.keep(v)],
        },
      };
      const fused = canFuseBatchNormReluPool(shape);
      if (fused) fusedOn.push(tf.getBackend());
      const op = (x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor) =>
        fused ? batchNormReluPoolTraining(x, gamma, beta, options, padding) : tf.maxPool(
          tf.relu(batchNormTraining(x, gamma, beta, options)) as tf.Tensor4D,
          2,
          2,
          padding,
        );
      const y = op(x, gamma, beta);
      const weights = tf.randomNormal(y.shape, 0, 1, "float32", 8);
      const [dx, dGamma, dBeta] = tf.grads((x, g, b) => tf.sum(tf.mul(op(x, g, b), weights)))([
        x,
        gamma,
        beta,
      ]);
      const all = tf.concat([y, dx, dGamma, dBeta, ...moving].map((t) => t.flatten()));
      tf.dispose(moving);
      return all;
    };
    const [cpu, wasm] = await onBoth(run);
    assert.deepEqual([...new Set(fusedOn)], ["wasm"], "the fused op ran on wasm only");
    assert.ok(relativeError(cpu, wasm) < 1e-5, `relative error ${relativeError(cpu, wasm)}`);
    assert.ok(wasm.some((v) => v !== 0), "a comparison of zeros would prove nothing");
  });
}

Deno.test("Identity on wasm shares memory: a clone outlives its source with the same values", async () => {
  await selectBackend("wasm");
  const x = tf.tensor1d([1, 2, 3]);
  const y = tf.clone(x);
  x.dispose();
  assert.deepEqual(Array.from(await y.data()), [1, 2, 3]);
  y.dispose();
});
