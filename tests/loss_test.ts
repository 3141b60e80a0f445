import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../lib/backend.ts";
import { SOFTMAX_CROSS_ENTROPY, softmaxCrossEntropy } from "../lib/loss.ts";
import { createRng } from "../lib/rng.ts";
import { relativeError } from "./_parity.ts";

/** Losses and ∂(Σ wᵢ lossᵢ)/∂logits on the active backend. */
function lossAndGradient(
  logits: number[][],
  labels: number[],
  smoothing: number,
): { losses: Float32Array; gradient: Float32Array } {
  const z = tf.tensor2d(logits), y = tf.tensor1d(labels, "int32");
  // Unequal weights per row, so that the gradient's dy is not the same everywhere.
  const w = tf.tensor1d(labels.map((_, i) => 1 + i / 4));
  const losses = softmaxCrossEntropy(z, y, smoothing);
  const gradient = tf.grad((z: tf.Tensor) => softmaxCrossEntropy(z, y, smoothing).mul(w).sum())(z);
  const result = {
    losses: losses.dataSync() as Float32Array,
    gradient: gradient.dataSync() as Float32Array,
  };
  tf.dispose([z, y, w, losses, gradient]);
  return result;
}

/** The loss and its gradient in plain double-precision arithmetic. */
function expected(row: number[], label: number, smoothing: number) {
  const max = Math.max(...row);
  const logSumExp = max + Math.log(row.reduce((a, v) => a + Math.exp(v - max), 0));
  const t = row.map((_, j) => (j === label ? 1 - smoothing : 0) + smoothing / 10);
  const mass = t.reduce((a, v) => a + v, 0); // 1, or s for a label with no hot class
  return {
    loss: -row.reduce((a, v, j) => a + t[j] * (v - logSumExp), 0),
    gradient: row.map((v, j) => mass * Math.exp(v - logSumExp) - t[j]),
  };
}

const rng = createRng(3);
/** 16 rows of logits, some of them large (±40), and their labels. */
const logits = Array.from(
  { length: 16 },
  (_, i) => Array.from({ length: 10 }, () => (rng.next() - 0.5) * (i < 8 ? 8 : 80)),
);
const labels = logits.map((_, i) => i % 10);

for (const backend of ["cpu", "wasm"] as const) {
  for (const smoothing of [0, 0.1]) {
    Deno.test(`softmaxCrossEntropy on ${backend}, smoothing ${smoothing}: losses and gradients as written out`, async () => {
      await selectBackend(backend);
      const got = lossAndGradient(logits, labels, smoothing);
      logits.forEach((row, i) => {
        const want = expected(row, labels[i], smoothing);
        assert.ok(
          Math.abs(got.losses[i] - want.loss) <= 1e-5 * Math.max(1, want.loss),
          `row ${i}: loss ${got.losses[i]} vs ${want.loss}`,
        );
        want.gradient.forEach((g, j) => {
          const value = got.gradient[i * 10 + j];
          assert.ok(Math.abs(value - (1 + i / 4) * g) < 1e-5, `row ${i}, class ${j}: ${value}`);
        });
      });
    });
  }
}

Deno.test("softmaxCrossEntropy: the wasm kernels agree with the cpu backend's composition", async () => {
  await selectBackend("cpu");
  const cpu = lossAndGradient(logits, labels, 0.1);
  await selectBackend("wasm");
  const profile = await tf.profile(() => lossAndGradient(logits, labels, 0.1));
  assert.ok(profile.kernelNames.includes(SOFTMAX_CROSS_ENTROPY), "the fused kernel ran");
  const wasm = lossAndGradient(logits, labels, 0.1);
  assert.ok(relativeError(cpu.losses, wasm.losses) < 1e-6, "losses");
  assert.ok(relativeError(cpu.gradient, wasm.gradient) < 1e-6, "gradients");
});

Deno.test("softmaxCrossEntropy gives a label outside 0–9 no hot class, on both backends", async () => {
  for (const backend of ["cpu", "wasm"] as const) {
    await selectBackend(backend);
    const row = [1, 2, 0, 0, 0, 0, 0, 0, 0, 3];
    const got = lossAndGradient([row], [10], 0.1);
    const want = expected(row, -1, 0.1); // no class is hot; the smoothing mass stays
    assert.ok(Math.abs(got.losses[0] - want.loss) < 1e-5, `${backend}: ${got.losses[0]}`);
    want.gradient.forEach((g, j) => {
      assert.ok(Math.abs(got.gradient[j] - g) < 1e-5, `${backend}, class ${j}: ${got.gradient[j]}`);
    });
  }
});

Deno.test("softmaxCrossEntropy of a row with a non-finite logit is not finite, on both backends", async () => {
  for (const backend of ["cpu", "wasm"] as const) {
    await selectBackend(backend);
    const finite = [0.5, 2, 0, 0, 0, 0, 0, 0, 0, 1];
    const rows = [NaN, Infinity, -Infinity].map((v) => finite.map((x, j) => (j === 9 ? v : x)));
    const { losses } = lossAndGradient([...rows, finite], [9, 9, 9, 1], 0.1);
    for (const [i, loss] of Array.from(losses.subarray(0, 3)).entries()) {
      assert.ok(!Number.isFinite(loss), `${backend}, row ${i}: got ${loss}`);
    }
    assert.ok(Number.isFinite(losses[3]) && losses[3] > 0, `${backend}: finite row ${losses[3]}`);
  }
});

Deno.test("softmaxCrossEntropy's gradient runs after a tidy has freed the labels (as in training)", async () => {
  for (const backend of ["cpu", "wasm"] as const) {
    await selectBackend(backend);
    const z = tf.variable(tf.tensor2d([logits[0], logits[1]]));
    const { value, grads } = tf.variableGrads(
      () =>
        tf.tidy(() => softmaxCrossEntropy(z, tf.tensor1d([0, 1], "int32"), 0.1).mean().asScalar()),
      [z],
    );
    const gradient = grads[z.name].dataSync();
    const want = [0, 1].flatMap((i) => expected(logits[i], i, 0.1).gradient.map((g) => g / 2));
    want.forEach((g, j) => assert.ok(Math.abs(gradient[j] - g) < 1e-5, `${backend}, ${j}`));
    tf.dispose([z, value, ...Object.values(grads)]);
  }
});
