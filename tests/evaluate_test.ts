import assert from "node:assert/strict";
import { evaluate, noiseRobustness, robustness } from "../lib/evaluate.ts";
import type { Classifier } from "../lib/model.ts";

/** A stand-in classifier that predicts digit = round(mean pixel × 10), clamped to 9. */
function meanPixelClassifier(): Classifier {
  const classify = (images: Float32Array) => {
    const n = images.length / 784;
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      let sum = 0;
      for (let j = 0; j < 784; j++) sum += images[i * 784 + j];
      out[i] = Math.min(9, Math.round((sum / 784) * 10));
    }
    return Promise.resolve(out);
  };
  return {
    preset: "stub",
    params: 0,
    summary: () => [],
    predict: () => Promise.reject(new Error("not used")),
    classify,
    dispose: () => {},
  };
}

Deno.test("evaluate counts accuracy, per-class accuracy and the confusion matrix", async () => {
  // Images of constant brightness d/10 are "predicted" as d; labels make 2 of 4 wrong.
  const images = new Float32Array(4 * 784);
  [1, 2, 3, 3].forEach((d, i) => images.fill(d / 10, i * 784, (i + 1) * 784));
  const labels = new Uint8Array([1, 2, 5, 3]);
  const result = await evaluate(meanPixelClassifier(), { images, labels, count: 4 });
  assert.equal(result.accuracy, 0.75);
  assert.equal(result.confusion[5][3], 1);
  assert.equal(result.confusion[3][3], 1);
  assert.equal(result.perClass[5], 0);
  assert.equal(result.perClass[1], 1);
  assert.ok(Number.isNaN(result.perClass[0]), "no images of class 0");
});

Deno.test("noise is added in pixel space and clamped to [0, 1] before the model sees it", async () => {
  // All-zero images: noise then clamping can only raise the mean, so a stub
  // that predicts from the mean sees brighter images with more noise.
  const images = new Float32Array(50 * 784);
  const labels = new Uint8Array(50); // all 0
  const report = await noiseRobustness(meanPixelClassifier(), { images, labels, count: 50 }, [
    0,
    0.1,
    1,
  ]);
  assert.equal(report["0"], 1);
  assert.equal(report["0.1"], 1, "mean of clamped N(0, 0.1) is ~0.04: still predicted 0");
  assert.equal(report["1"], 0, "mean of clamped N(0, 1) is ~0.4: predicted 4");
});

Deno.test("evaluate rejects mismatched data with a RangeError", async () => {
  await assert.rejects(
    evaluate(meanPixelClassifier(), {
      images: new Float32Array(784),
      labels: new Uint8Array(2),
      count: 1,
    }),
    { name: "RangeError", message: "Cannot evaluate: expected 1 labels, got 2" },
  );
});

Deno.test("evaluate returns the predictions and reports progress in chunks", async () => {
  const count = 4500;
  const images = new Float32Array(count * 784);
  for (let i = 0; i < count; i++) images.fill((i % 10) / 10, i * 784, (i + 1) * 784);
  const labels = Uint8Array.from({ length: count }, (_, i) => i % 10);
  const calls: [number, number][] = [];
  const result = await evaluate(meanPixelClassifier(), { images, labels, count }, {
    onProgress: (done, total) => calls.push([done, total]),
  });
  assert.deepEqual(calls, [[2000, count], [4000, count], [4500, count]]);
  assert.deepEqual(result.predicted, labels);
  assert.equal(result.accuracy, 1);
});

Deno.test("robustness scores an even sample of the images, with progress over 16 copies", async () => {
  // Image i has brightness (i mod 10)/10 and label i mod 10, so the stand-in gets clean images right.
  const count = 10;
  const images = new Float32Array(count * 784);
  for (let i = 0; i < count; i++) images.fill((i % 10) / 10, i * 784, (i + 1) * 784);
  const labels = Uint8Array.from({ length: count }, (_, i) => i % 10);
  const model = meanPixelClassifier();
  const calls: number[] = [];
  const sampled = await robustness(model, { images, labels, count }, {
    images: 4,
    onProgress: (done, total) => (assert.equal(total, 16), calls.push(done)),
  });
  assert.deepEqual(calls, Array.from({ length: 16 }, (_, i) => i + 1));
  assert.equal(sampled.images, 4);
  // Images ⌊i · 10 / 4⌋: 0, 2, 5, 7, scored as if given alone.
  const pick = [0, 2, 5, 7];
  const subset = new Float32Array(4 * 784);
  pick.forEach((k, i) => subset.set(images.subarray(k * 784, (k + 1) * 784), i * 784));
  const alone = await robustness(model, {
    images: subset,
    labels: Uint8Array.from(pick, (k) => labels[k]),
    count: 4,
  });
  assert.deepEqual(sampled, alone);
  // More than there are: all of them.
  assert.equal((await robustness(model, { images, labels, count }, { images: 50 })).images, 10);
  for (const bad of [0, 1.5, NaN]) {
    await assert.rejects(robustness(model, { images, labels, count }, { images: bad }), {
      name: "RangeError",
      message: `Cannot measure robustness: expected images to be a positive integer, got ${bad}`,
    });
  }
});
