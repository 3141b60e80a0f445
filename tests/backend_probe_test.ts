/** The training-step probe that `selectBackend("auto")` uses to choose by measuring. */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../lib/backend.ts";
import { measureParallelTrainingStep, measureTrainingStep } from "../lib/backend_probe.ts";

Deno.test("measureTrainingStep times real steps on the active backend and leaves no tensors", async () => {
  await selectBackend("wasm");
  const before = tf.memory().numTensors;
  const kernels: string[] = [];
  const profile = await tf.profile(async () => {
    const ms = await measureTrainingStep({ budgetMs: 0, maxSteps: 1 });
    assert.ok(Number.isFinite(ms) && ms > 0, String(ms));
  });
  for (const k of profile.kernels) kernels.push(k.name);
  assert.equal(tf.memory().numTensors, before, "no tensors left behind");
  // A training step: convolutions forward and both gradients, pooling's gradient, the update.
  for (const name of ["Conv2D", "Conv2DBackpropFilter", "Conv2DBackpropInput", "MaxPoolGrad"]) {
    assert.ok(kernels.includes(name), `${name} in ${[...new Set(kernels)].join(", ")}`);
  }
  // One warm-up and one timed step: each computes each layer's filter gradient once.
  assert.equal(kernels.filter((k) => k === "Conv2DBackpropFilter").length, 2 * 3);
});

Deno.test("measureParallelTrainingStep times shares of a batch in workers and stops them", async () => {
  await selectBackend("wasm");
  const ms = await measureParallelTrainingStep(2, { budgetMs: 0, maxSteps: 1 });
  assert.ok(Number.isFinite(ms) && ms > 0, String(ms));
  // A share of 0 images cannot be timed: the worker's error comes back, named.
  await assert.rejects(measureParallelTrainingStep(2, { batch: 1, budgetMs: 0, maxSteps: 1 }), {
    name: "Error",
    message:
      "Cannot time a training step in a worker: Cannot time a training step: expected a batch of at least 1 image, got 0",
  });
});
