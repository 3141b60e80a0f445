/**
 * The input checks of every public entry that takes images or labels, tried
 * as a new user would: small inputs built from the real MNIST test set.
 */
import assert from "node:assert/strict";
import { augmentBatch } from "../lib/augment.ts";
import { selectBackend } from "../lib/backend.ts";
import { evaluate, noiseRobustness, robustness } from "../lib/evaluate.ts";
import { checkImages, checkLabelled, type LabelledImages } from "../lib/images.ts";
import { createModel } from "../lib/model.ts";
import { preprocessDigit } from "../lib/preprocess.ts";
import { renderPreview } from "../lib/preview.ts";
import { createRng } from "../lib/rng.ts";
import { train } from "../lib/train.ts";
import { loadRealMnist } from "./_fixtures.ts";

await selectBackend("cpu");
const { test } = await loadRealMnist();
const COUNT = 16;
/** The first 16 real test digits. */
const real: LabelledImages = {
  images: test.images.slice(0, COUNT * 784),
  labels: test.labels.slice(0, COUNT),
  count: COUNT,
};

/** Every public entry that takes labelled images, as `(data) => Promise`. */
const labelledEntries = (model = createModel({ preset: "seed" })) =>
  [
    ["train", (d: LabelledImages) => train(model, d, { batchSize: 8, workers: 0 })],
    ["evaluate", (d: LabelledImages) => evaluate(model, d)],
    ["measure noise robustness", (d: LabelledImages) => noiseRobustness(model, d, [0.1])],
    ["measure robustness", (d: LabelledImages) => robustness(model, d)],
  ] as const;

Deno.test("a label outside 0–9 is a RangeError naming its index and value, from every entry", async () => {
  const labels = real.labels.slice();
  labels[5] = 10; // as some datasets store the digit 0
  for (const [action, entry] of labelledEntries()) {
    await assert.rejects(entry({ ...real, labels }), {
      name: "RangeError",
      message: `Cannot ${action}: expected labels 0 to 9, got 10 at index 5`,
    });
  }
  labels[5] = 255;
  assert.throws(() => checkLabelled({ ...real, labels }, "train"), {
    name: "RangeError",
    message: "Cannot train: expected labels 0 to 9, got 255 at index 5",
  });
});

Deno.test("unscaled 0–255 pixels are a RangeError naming the largest value, from every entry", async () => {
  const unscaled = real.images.map((v) => Math.round(v * 255));
  const max = Math.max(...unscaled);
  const first = unscaled.findIndex((v) => v > 1);
  const message = (action: string) =>
    `Cannot ${action}: expected pixels in [0, 1], got a largest value of ${max} (the first out of range at index ${first}); scale 0–255 pixels by 1/255`;
  const model = createModel({ preset: "seed" });
  for (const [action, entry] of labelledEntries(model)) {
    await assert.rejects(entry({ ...real, images: unscaled }), {
      name: "RangeError",
      message: message(action),
    });
  }
  await assert.rejects(model.predict(unscaled), {
    name: "RangeError",
    message: message("predict"),
  });
  await assert.rejects(model.classify(unscaled), {
    name: "RangeError",
    message: message("classify"),
  });
  assert.throws(() => augmentBatch(unscaled, {}, createRng(1)), {
    name: "RangeError",
    message: message("augment images"),
  });
  await assert.rejects(renderPreview(unscaled), {
    name: "RangeError",
    message: message("render preview"),
  });
  model.dispose();
});

Deno.test("pixels just above 1, negative and NaN pixels are named too", () => {
  const almost = real.images.slice(0, 784);
  almost[300] = 1.0000001;
  assert.throws(() => checkImages(almost, "classify"), {
    name: "RangeError",
    message: `Cannot classify: expected pixels in [0, 1], got a largest value of ${
      almost[300]
    } (the first out of range at index 300); clamp them to [0, 1]`,
  });
  assert.throws(() => checkImages(new Float32Array(0), "classify"), {
    name: "TypeError",
    message: "Cannot classify: expected at least one image (784 values), got 0 values",
  });
  const images = real.images.slice(0, 784);
  images[100] = -0.5;
  images[200] = 2;
  assert.throws(() => checkImages(images, "classify"), {
    name: "RangeError",
    message:
      "Cannot classify: expected pixels in [0, 1], got a largest value of 2 and a smallest value of -0.5 (the first out of range at index 100)",
  });
  images[50] = NaN;
  assert.throws(() => checkImages(images, "classify"), {
    name: "RangeError",
    message: "Cannot classify: expected pixels in [0, 1], got NaN at index 50",
  });
});

/** One real digit as canvas-style RGBA floats in [0, 1] (grey ink, opaque). */
function rgbaFloats(digit: Float32Array): Float32Array {
  const out = new Float32Array(digit.length * 4);
  digit.forEach((v, i) => out.set([v, v, v, 1], 4 * i));
  return out;
}

Deno.test("one RGBA or RGB image is never read as several images", async () => {
  const model = createModel({ preset: "seed" });
  const digit = real.images.subarray(0, 784);
  const rgba = rgbaFloats(digit);
  assert.equal(rgba.length, 3136);
  const message = (kind: string, per: number) =>
    `Cannot classify: expected grey images, got what looks like interleaved ${kind} pixel data (${per} equal or colour-and-alpha values per pixel); convert it with preprocessDigit, or pass { count } to state how many images these are`;
  await assert.rejects(model.classify(rgba), { name: "TypeError", message: message("RGBA", 4) });
  // Black strokes on a transparent canvas: colour 0, the ink in alpha.
  const transparent = new Float32Array(3136);
  digit.forEach((v, i) => transparent[4 * i + 3] = v);
  await assert.rejects(model.classify(transparent), {
    name: "TypeError",
    message: message("RGBA", 4),
  });
  const rgb = new Float32Array(2352);
  digit.forEach((v, i) => rgb.set([v, v, v], 3 * i));
  await assert.rejects(model.classify(rgb), { name: "TypeError", message: message("RGB", 3) });
  // Real grey digits, 4 or 3 of them, and blank images are never taken for colour.
  for (const n of [3, 4, 12]) {
    assert.equal((await model.classify(real.images.subarray(0, n * 784))).length, n);
  }
  assert.equal((await model.classify(new Float32Array(4 * 784))).length, 4);
  await assert.rejects(model.predict(rgba, { count: 1 }), {
    name: "TypeError",
    message:
      "Cannot predict: expected 1 image of 28×28 (784 values), got 3136 values (RGBA pixel data? convert it with preprocessDigit)",
  });
  // Stating the count checks it; four real grey digits are four.
  const four = real.images.subarray(0, 4 * 784);
  assert.equal((await model.classify(four, { count: 4 })).length, 4);
  assert.deepEqual(await model.classify(four, { count: 4 }), await model.classify(four));
  await assert.rejects(model.classify(four, { count: 0 }), {
    name: "RangeError",
    message: "Cannot classify: expected count to be a positive integer, got 0",
  });
  model.dispose();
});

Deno.test("canvas RGBA pixel data becomes one model input with preprocessDigit", async () => {
  const model = createModel({ preset: "seed" });
  const digit = real.images.subarray(0, 784);
  // What a canvas ImageData holds for a light digit drawn on black: bytes, RGBA.
  const data = new Uint8ClampedArray(784 * 4);
  digit.forEach((v, i) => data.set([255 * v, 255 * v, 255 * v, 255], 4 * i));
  const input = preprocessDigit({ width: 28, height: 28, data });
  assert.equal(input.length, 784);
  let diff = 0;
  input.forEach((v, i) => diff += Math.abs(v - digit[i]) / 784);
  assert.ok(diff < 0.002, `mean absolute difference ${diff}`);
  assert.deepEqual(await model.classify(input, { count: 1 }), await model.classify(digit));
  model.dispose();
});
