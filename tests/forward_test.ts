import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../lib/backend.ts";
import { trainingForward, trainingLogits } from "../lib/forward.ts";
import { createModel, layersModelOf } from "../lib/model.ts";
import { readFlat, writeFlat } from "../lib/parallel.ts";

/** Loss, gradients and batch-norm statistics after one forward/backward pass from `start`. */
function pass(net: tf.LayersModel, forward: () => tf.Tensor, start: Float32Array[]) {
  writeFlat(net.trainableWeights, start[0]);
  writeFlat(net.nonTrainableWeights, start[1]);
  const vars = net.trainableWeights.map((w) => w.read() as tf.Variable);
  const { value, grads } = tf.variableGrads(
    () => tf.tidy(() => tf.mean(tf.square(forward())).asScalar()),
    vars,
  );
  const result = {
    loss: value.dataSync()[0],
    grads: vars.map((v) => grads[v.name].dataSync() as Float32Array),
    state: readFlat(net.nonTrainableWeights),
  };
  tf.dispose([value, ...Object.values(grads)]);
  return result;
}

function norm(a: Float32Array, b?: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - (b ? b[i] : 0)) ** 2;
  return Math.sqrt(s);
}

for (const backend of ["cpu", "wasm"] as const) {
  for (const preset of ["small", "tiny", "seed"] as const) {
    Deno.test(`trainingForward matches model.apply on ${backend} (${preset}): output, gradients, moving statistics`, async () => {
      await selectBackend(backend);
      const net = layersModelOf(createModel({ preset }));
      const x = tf.randomUniform([8, 28, 28, 1], 0, 1, "float32", 5);
      const start = [readFlat(net.trainableWeights), readFlat(net.nonTrainableWeights)];
      const before = tf.memory().numTensors;
      const expected = pass(net, () => net.apply(x, { training: true }) as tf.Tensor, start);
      const got = pass(net, () => trainingForward(net, x), start);
      // The logits, through a softmax, are the same output. A twin of the same seed: a seeded
      // dropout layer's first training pass draws the mask that model.apply draws, later ones not.
      const twin = layersModelOf(createModel({ preset }));
      const viaLogits = pass(twin, () => tf.softmax(trainingLogits(twin, x)), start);
      twin.dispose();
      assert.equal(tf.memory().numTensors, before, "tensors leaked");
      assert.ok(Math.abs(viaLogits.loss - expected.loss) <= 1e-6 * expected.loss, "logits");
      assert.ok(norm(viaLogits.state, expected.state) < 1e-6 * norm(expected.state), "statistics");
      assert.ok(Math.abs(got.loss - expected.loss) <= 1e-6 * expected.loss, `loss ${got.loss}`);
      const scale = Math.max(...expected.grads.map((g) => norm(g)));
      expected.grads.forEach((g, i) => {
        // Relative to the largest gradient: the bias of a convolution followed
        // by batch norm has a true gradient of 0, so both sides are rounding noise.
        for (const [name, result] of [["forward", got], ["logits", viaLogits]] as const) {
          const error = norm(result.grads[i], g) / scale;
          assert.ok(error < 1e-5, `${name}, gradient ${i}: relative error ${error}`);
        }
      });
      assert.ok(norm(got.state, expected.state) < 1e-6 * norm(expected.state), "moving statistics");
      assert.notDeepEqual(got.state, start[1], "moving statistics were updated");
      x.dispose();
      net.dispose();
    });
  }
}

Deno.test("a seeded dropout layer draws a fresh mask each training pass, the same sequence for the same seed", async () => {
  await selectBackend("cpu");
  // The `seed` preset: dropout 0.25, seeded with the model's seed, before its hidden dense layer.
  const outputs = () => {
    const net = layersModelOf(createModel({ preset: "seed" }));
    const x = tf.randomUniform([4, 28, 28, 1], 0, 1, "float32", 5);
    // Batch-norm statistics change each pass but not the output in training mode.
    const out = [0, 1, 2].map(() => tf.tidy(() => Array.from(trainingForward(net, x).dataSync())));
    x.dispose();
    net.dispose();
    return out;
  };
  const [first, second, third] = outputs();
  assert.notDeepEqual(second, first, "the second pass drew the first pass's mask");
  assert.notDeepEqual(third, second, "the third pass drew the second pass's mask");
  assert.deepEqual(outputs(), [first, second, third], "a model of the same seed");
});

Deno.test("trainingForward runs a model that is not a chain through model.apply", async () => {
  await selectBackend("cpu");
  const input = tf.input({ shape: [4] });
  const a = tf.layers.dense({ units: 4, kernelInitializer: "ones" }).apply(
    input,
  ) as tf.SymbolicTensor;
  const sum = tf.layers.add().apply([a, input]) as tf.SymbolicTensor;
  const net = tf.model({ inputs: input, outputs: sum });
  const x = tf.tensor2d([[1, 2, 3, 4]]);
  const y = trainingForward(net, x);
  assert.deepEqual(Array.from(y.dataSync()), [11, 12, 13, 14]);
  tf.dispose([x, y]);
  net.dispose();
});

Deno.test("trainingLogits of a model without a final softmax dense layer is log p, p clipped to [1e-7, 1]", async () => {
  await selectBackend("cpu");
  const net = tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [2], units: 3, kernelInitializer: "ones", activation: "relu" }),
    ],
  });
  const x = tf.tensor2d([[0.25, 0.25], [-1, -1]]);
  const z = trainingLogits(net, x);
  const expected = [0.5, 0.5, 0.5, 1e-7, 1e-7, 1e-7].map((p) => Math.log(Math.fround(p)));
  const got = Array.from(z.dataSync());
  got.forEach((v, i) =>
    assert.ok(Math.abs(v - expected[i]) < 1e-5, `${i}: ${v} vs ${expected[i]}`)
  );
  tf.dispose([x, z]);
  net.dispose();
});
