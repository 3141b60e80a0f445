import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../lib/backend.ts";
import {
  countParams,
  createModel,
  layersModelOf,
  MODEL_PRESETS,
  type ModelPreset,
} from "../lib/model.ts";

await selectBackend("cpu");

Deno.test("the default model maps [n,28,28,1] to 10 classes with fewer than 25,000 parameters", () => {
  const model = createModel();
  const net = layersModelOf(model);
  assert.deepEqual(net.inputs[0].shape, [null, 28, 28, 1]);
  assert.deepEqual(net.outputs[0].shape, [null, 10]);
  const total = net.countParams(); // batch-norm moving statistics included
  assert.ok(total < 25_000, `${total} parameters`);
  assert.equal(countParams(model), model.params);
  assert.ok(model.params > 10_000, "the default is more than the seed model");
  model.dispose();
});

Deno.test("the seed preset is the original architecture: 8,618 trainable parameters", () => {
  const model = createModel({ preset: "seed" });
  assert.equal(countParams(model), 8618);
  const kinds = layersModelOf(model).layers.map((l) => l.getClassName());
  assert.deepEqual(kinds.filter((k) => k === "Conv2D").length, 3);
  assert.deepEqual(kinds.filter((k) => k === "BatchNormalization").length, 3);
  assert.deepEqual(kinds.filter((k) => k === "MaxPooling2D").length, 3);
  assert.ok(kinds.includes("Dropout"));
  model.dispose();
});

Deno.test("every preset stays under 25,000 parameters; deep has two convolutions in its last block", () => {
  for (const preset of Object.keys(MODEL_PRESETS) as ModelPreset[]) {
    const model = createModel({ preset });
    const total = layersModelOf(model).countParams(); // batch-norm moving statistics included
    assert.ok(total < 25_000, `${preset}: ${total} parameters`);
    model.dispose();
  }
  const deep = createModel({ preset: "deep" });
  assert.equal(countParams(deep), 21_674);
  const net = layersModelOf(deep);
  const kinds = net.layers.map((l) => l.getClassName());
  const lastPool = kinds.lastIndexOf("MaxPooling2D");
  const poolBefore = kinds.lastIndexOf("MaxPooling2D", lastPool - 1);
  // Two conv → batch norm → ReLU triples between the last two pools.
  assert.deepEqual(kinds.slice(poolBefore + 1, lastPool), [
    "Conv2D",
    "BatchNormalization",
    "ReLU",
    "Conv2D",
    "BatchNormalization",
    "ReLU",
  ]);
  assert.deepEqual(
    net.layers.filter((l) => l.getClassName() === "Conv2D").map((l) => l.getConfig().filters),
    [16, 32, 24, 32],
  );
  assert.deepEqual(net.outputs[0].shape, [null, 10]);
  deep.dispose();
});

Deno.test("createModel returns a new, independent model each call; same seed, same weights", async () => {
  const a = createModel({ seed: 5 }), b = createModel({ seed: 5 }), c = createModel({ seed: 6 });
  assert.notEqual(layersModelOf(a), layersModelOf(b));
  const images = new Float32Array(3 * 784).map((_, i) => (i * 7919 % 256) / 255);
  const [pa, pb, pc] = [await a.predict(images), await b.predict(images), await c.predict(images)];
  assert.deepEqual(pa, pb);
  assert.notDeepEqual(pa, pc);
  layersModelOf(b).layers[2].setWeights(
    layersModelOf(b).layers[2].getWeights().map((w) => w.mul(0)),
  );
  assert.deepEqual(await a.predict(images), pa, "changing b leaves a alone");
  for (const m of [a, b, c]) m.dispose();
});

Deno.test("predict gives probabilities, classify the argmax, and neither leaks tensors", async () => {
  const start = tf.memory().numTensors;
  const model = createModel();
  const images = new Float32Array(5 * 784).fill(0.3);
  await model.predict(images); // the first call makes the folded inference weights
  const before = tf.memory().numTensors;
  const probs = await model.predict(images);
  const classes = await model.classify(images);
  assert.equal(tf.memory().numTensors, before, "nothing left per call");
  assert.equal(probs.length, 50);
  for (let i = 0; i < 5; i++) {
    const row = probs.subarray(i * 10, i * 10 + 10);
    assert.ok(Math.abs(row.reduce((a, b) => a + b) - 1) < 1e-5);
    assert.equal(classes[i], row.indexOf(Math.max(...row)));
  }
  model.dispose();
  assert.equal(
    tf.memory().numTensors,
    start,
    "dispose releases the model and its inference weights",
  );
});

Deno.test("bad input is a TypeError that says what was expected", async () => {
  const model = createModel();
  await assert.rejects(model.predict(new Float32Array(700)), {
    name: "TypeError",
    message: "Cannot predict: expected a multiple of 784 pixels (n × 28 × 28), got 700",
  });
  await assert.rejects(model.predict(new Uint8Array(784) as unknown as Float32Array), {
    name: "TypeError",
    message: "Cannot predict: expected images as a Float32Array, got Uint8Array",
  });
  // Names every object has (toString, constructor, __proto__) are no presets either.
  for (const preset of ["huge", "toString", "constructor", "__proto__"]) {
    assert.throws(() => createModel({ preset: preset as "tiny" }), {
      name: "RangeError",
      message:
        `Cannot create model: expected preset "small" or "tiny" or "seed" or "mini" or "wide" or "deep", got "${preset}"`,
    });
  }
  model.dispose();
});

Deno.test("a disposed model says so instead of failing inside TensorFlow.js", async () => {
  const model = createModel();
  model.dispose();
  model.dispose(); // twice is harmless
  await assert.rejects(model.classify(new Float32Array(784)), {
    name: "TypeError",
    message: "Cannot classify: expected a live model, got one that was disposed",
  });
});
