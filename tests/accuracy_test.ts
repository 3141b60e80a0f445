/**
 * The product's promise, on the real MNIST: one pass over the 60,000 training
 * images with the default recipe and seed on the wasm backend (2 data-parallel
 * workers by default; deterministic there), then the 10,000 test images. One
 * training run serves every assertion here (it takes under a minute).
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../lib/backend.ts";
import { evaluate, noiseRobustness } from "../lib/evaluate.ts";
import { loadModel, saveModel } from "../lib/io.ts";
import { countParams, createModel } from "../lib/model.ts";
import { train } from "../lib/train.ts";
import { loadRealMnist } from "./_fixtures.ts";

Deno.test("one pass of the default recipe on wasm: test accuracy, noise robustness, save/load parity", async (t) => {
  const data = await loadRealMnist();
  await selectBackend("wasm");
  const model = createModel();
  const before = tf.memory().numTensors;
  const result = await train(model, data.train);
  assert.equal(result.images, 60_000, "exactly one pass");
  assert.ok(countParams(model) < 25_000);
  assert.equal(tf.memory().numTensors, before, "no tensors leaked by an epoch");

  const { accuracy } = await evaluate(model, data.test);
  await t.step(`test accuracy ${(100 * accuracy).toFixed(2)}% ≥ 99.0%`, () => {
    assert.ok(accuracy >= 0.99, `test accuracy ${accuracy}`);
  });

  const noisy = await noiseRobustness(model, data.test, [0.1]);
  await t.step(`accuracy with pixel noise σ 0.1: ${(100 * noisy["0.1"]).toFixed(2)}% ≥ 95%`, () => {
    assert.ok(noisy["0.1"] >= 0.95, `noise accuracy ${noisy["0.1"]}`);
  });

  await t.step("saved and reloaded: identical predictions on the test set", async () => {
    const dir = await Deno.makeTempDir({ prefix: "tinymnist-acc-" });
    try {
      const loaded = await loadModel(await saveModel(model, dir));
      assert.deepEqual(
        await loaded.predict(data.test.images),
        await model.predict(data.test.images),
      );
      loaded.dispose();
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
  model.dispose();
});
