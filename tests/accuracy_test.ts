/**
 * The product's promise, on the real MNIST: one pass over the 60,000 training
 * images with the default recipe and seed on the wasm backend (2 data-parallel
 * workers by default; deterministic there), then the 10,000 test images. The
 * training run (`_trained.ts`) is shared with the other tests that need a
 * trained model.
 */
import assert from "node:assert/strict";
import { selectBackend } from "../lib/backend.ts";
import { evaluate, noiseRobustness } from "../lib/evaluate.ts";
import { loadModel, saveModel } from "../lib/io.ts";
import { trainedModel } from "./_trained.ts";

Deno.test("one pass of the default recipe on wasm: test accuracy, noise robustness, save/load parity", async (t) => {
  const { data, model, result, leakedTensors, params } = await trainedModel();
  assert.equal(result.images, 60_000, "exactly one pass");
  assert.ok(params < 25_000);
  assert.equal(leakedTensors, 0, "no tensors leaked by an epoch");
  await selectBackend("wasm");

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
});
