import assert from "node:assert/strict";
import { selectBackend } from "../lib/backend.ts";
import { parallelClassifier } from "../lib/parallel_classifier.ts";
import { trainedModel } from "./_trained.ts";

Deno.test("a parallel classifier answers as the model does, from two wasm workers", async () => {
  const { data, model } = await trainedModel();
  await selectBackend("wasm");
  const images = data.test.images.subarray(0, 1001 * 784); // an odd count: unequal shares
  const scorer = await parallelClassifier(model, 2);
  try {
    const expected = await model.predict(images);
    const got = await scorer.predict(images);
    assert.equal(got.length, expected.length);
    const worst = got.reduce((m, p, i) => Math.max(m, Math.abs(p - expected[i])), 0);
    assert.ok(worst <= 1e-6, `max |Δp| ${worst}`);
    assert.deepEqual(await scorer.classify(images), await model.classify(images));
    // One image: one worker has nothing to do.
    assert.deepEqual(
      await scorer.classify(images.subarray(0, 784)),
      await model.classify(images.subarray(0, 784)),
    );
    await assert.rejects(scorer.predict(new Float32Array(784).fill(2)), {
      name: "RangeError",
      message: /^Cannot predict: expected pixels in \[0, 1\]/,
    });
  } finally {
    scorer.dispose();
  }
  await assert.rejects(scorer.classify(images), {
    name: "TypeError",
    message: "Cannot classify: expected live workers, got ones that were stopped",
  });
});
