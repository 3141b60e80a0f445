/**
 * uint8 quantization of the trained model (`quantizeModel`, used by
 * `saveModel(…, { quantize: "uint8" })`): the folded topology without
 * training-only settings, uint8 kernels that plain TensorFlow.js decodes
 * to nearly the float model's answers, every output channel normalised so
 * that one scale per tensor serves as one per channel.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../lib/backend.ts";
import { argmaxRows, layersModelOf } from "../lib/model.ts";
import { type EncodedWeight, quantizeModel } from "../lib/quantize.ts";
import { trainedModel } from "./_trained.ts";

/** A model plain TensorFlow.js builds from a topology and encoded weights. */
function loadPlain(topology: object, weights: EncodedWeight[]): Promise<tf.LayersModel> {
  const bytes = new Uint8Array(weights.reduce((n, w) => n + w.bytes.length, 0));
  weights.reduce((offset, w) => (bytes.set(w.bytes, offset), offset + w.bytes.length), 0);
  return tf.loadLayersModel(tf.io.fromMemory({
    modelTopology: topology,
    weightSpecs: weights.map((w) => w.spec),
    weightData: bytes.buffer,
  }));
}

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) =>
  Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

Deno.test("quantizeModel: folded topology, uint8 kernels, output channels normalised, plain TensorFlow.js agrees", async (t) => {
  const { data, model } = await trainedModel();
  await selectBackend("wasm");
  const net = layersModelOf(model);
  const tensors = tf.memory().numTensors;
  const { topology, weights, params } = await quantizeModel(net);
  assert.equal(tf.memory().numTensors, tensors, "quantizeModel leaks no tensors");

  await t.step("topology: no batch norm, nothing only training reads", () => {
    const text = JSON.stringify(topology);
    assert.ok(!text.includes("BatchNormalization"));
    assert.ok(!/_(initializer|regularizer|constraint)"/.test(text), text);
    assert.equal(params, 17_018 - 2 * 80 + 80); // γ and β of 80 channels become 80 biases
  });

  await t.step("every kernel is uint8 with a scale; biases stay float32", () => {
    for (const { spec, bytes } of weights) {
      const size = spec.shape.reduce((a, b) => a * b, 1);
      if (spec.name.endsWith("/kernel")) {
        assert.equal(spec.quantization?.dtype, "uint8", spec.name);
        assert.equal(bytes.length, size);
      } else {
        assert.equal(spec.quantization, undefined, spec.name);
        assert.equal(bytes.length, 4 * size);
      }
    }
  });

  const images = tf.tensor4d(data.test.images.subarray(0, 1000 * 784), [1000, 28, 28, 1]);
  const probabilities = (m: tf.LayersModel) => {
    const out = m.predict(images) as tf.Tensor;
    const values = out.dataSync() as Float32Array;
    out.dispose();
    return values;
  };
  const expected = probabilities(net);
  const quantized = await loadPlain(topology, weights);
  const got = probabilities(quantized);
  const agree = argmaxRows(got).filter((c, i) => c === argmaxRows(expected)[i]).length;
  await t.step(
    `plain TensorFlow.js loads it; 1,000 test images: ${agree} same digits, max |Δp| ${
      maxAbsDiff(got, expected).toFixed(4)
    }`,
    () => {
      assert.ok(agree >= 995, `${agree} of 1000`);
      assert.ok(maxAbsDiff(got, expected) < 0.05);
    },
  );

  await t.step(
    "every output channel of every kernel but the last spans the whole uint8 range",
    () => {
      const kernels = weights.filter((w) => w.spec.name.endsWith("/kernel"));
      for (const { spec, bytes } of kernels.slice(0, -1)) {
        const { scale, min } = spec.quantization!;
        const channels = spec.shape.at(-1)!;
        const largest = new Float64Array(channels);
        bytes.forEach((q, i) => {
          const c = i % channels;
          largest[c] = Math.max(largest[c], Math.abs(q * scale! + min!));
        });
        // Normalised to 1, to within one quantization step.
        largest.forEach((v, c) =>
          assert.ok(Math.abs(v - 1) <= scale!, `${spec.name} channel ${c}: ${v}`)
        );
      }
    },
  );
  quantized.dispose();
  images.dispose();
});
