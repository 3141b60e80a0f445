import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../lib/backend.ts";
import { softTargets, trainingLoss } from "../lib/loss.ts";
import { createModel, layersModelOf } from "../lib/model.ts";
import { MILD_AUGMENTATION, train, type TrainOptions } from "../lib/train.ts";
import { learningRateAt } from "../lib/training_plan.ts";

/** Two easy classes: a bright left half (0) or a bright right half (1), with noise. */
function halves(count: number) {
  const images = new Float32Array(count * 784), labels = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    labels[i] = i % 2;
    for (let r = 0; r < 28; r++) {
      for (let c = 0; c < 28; c++) {
        const lit = (c < 14) === (labels[i] === 0);
        images[i * 784 + r * 28 + c] = lit ? 0.6 + ((i * 31 + r * 7 + c) % 5) / 20 : 0;
      }
    }
  }
  return { images, labels, count };
}

// The cpu backend is ~30× slower than wasm: it gets a smaller set.
for (const [backend, count] of [["wasm", 256], ["cpu", 64]] as const) {
  Deno.test(`an epoch on ${backend} learns an easy task and leaks no tensors`, async () => {
    await selectBackend(backend);
    const model = createModel({ preset: "seed" });
    const data = halves(count);
    const before = tf.memory().numTensors;
    const batches: number[] = [];
    const result = await train(model, data, {
      epochs: 2,
      batchSize: count / 8,
      lossEvery: 1,
      onBatchEnd: (e) => batches.push(e.loss),
    });
    assert.equal(tf.memory().numTensors, before, "tensors after training");
    assert.equal(result.images, 2 * count);
    // Default recipe: per epoch 85% fresh (ceil(0.85n / batch) = 7 steps) and
    // 15% difficult examples (2 steps).
    assert.equal(batches.length, 18);
    assert.ok(
      result.epochs[1].loss < result.epochs[0].loss,
      `loss ${result.epochs.map((e) => e.loss)}`,
    );
    const predicted = await model.classify(data.images);
    assert.ok(predicted.every((p, i) => p === data.labels[i]), "all training images right");
    model.dispose();
  });
}

Deno.test("training is deterministic for a seed on wasm", async () => {
  await selectBackend("wasm");
  const data = halves(64);
  const run = async () => {
    const model = createModel({ seed: 1 });
    await train(model, data, { batchSize: 16, seed: 9 });
    const out = await model.predict(data.images);
    model.dispose();
    return out;
  };
  assert.deepEqual(await run(), await run());
});

Deno.test("invalid training options are RangeErrors with the value found", async () => {
  await selectBackend("cpu");
  const model = createModel({ preset: "seed" });
  const data = halves(4);
  await assert.rejects(train(model, data, { batchSize: 0 }), {
    name: "RangeError",
    message: "Cannot train: expected batchSize to be an integer in [1, 65536], got 0",
  });
  await assert.rejects(train(model, data, { labelSmoothing: 1 }), {
    name: "RangeError",
    message: "Cannot train: expected labelSmoothing in [0, 0.99], got 1",
  });
  await assert.rejects(train(model, { ...data, count: 5 }), {
    name: "RangeError",
    message: "Cannot train: expected 3920 pixels for 5 images, got 3136",
  });
  await assert.rejects(train(model, data, { workers: 1.5 }), {
    name: "RangeError",
    message: "Cannot train: expected workers to be an integer in [0, 64], got 1.5",
  });
  model.dispose();
});

Deno.test("difficult examples: the highest-loss ones are re-presented within the same budget", async () => {
  await selectBackend("wasm");
  const data = halves(256);
  const flipped = [3, 50, 77, 120, 161, 200, 231, 250];
  for (const i of flipped) data.labels[i] = 1 - data.labels[i]; // unlearnable: high loss
  const chosen: number[] = [];
  const model = createModel({ preset: "seed" });
  const result = await train(model, data, {
    batchSize: 16,
    hardExamples: 1 / 32, // 8 of 256
    lossEvery: 1,
    onHardExamples: (ids) => chosen.push(...ids),
  });
  model.dispose();
  assert.equal(result.images, 256, "the budget is unchanged");
  assert.equal(result.hardPresentations, 8);
  assert.equal(result.distinctImages, 248);
  const hits = chosen.filter((i) => flipped.includes(i)).length;
  // Picking 8 of 248 at random would hit a mislabelled one 0.26 times on average.
  assert.ok(hits >= 4, `${hits} of the 8 re-presented examples are mislabelled ones`);
});

Deno.test("mini-epochs restart the schedule, each peak 0.7 × the previous", async () => {
  await selectBackend("wasm");
  const model = createModel({ preset: "seed" });
  const rates: number[] = [];
  await train(model, halves(96), {
    batchSize: 8,
    miniEpochs: 3,
    hardExamples: 0,
    learningRate: 0.01,
    onBatchEnd: (e) => rates.push(e.learningRate),
  });
  model.dispose();
  assert.equal(rates.length, 12);
  const chunks = [rates.slice(0, 4), rates.slice(4, 8), rates.slice(8)];
  const peaks = chunks.map((c) => Math.max(...c));
  assert.ok(Math.abs(peaks[0] - 0.01) < 1e-12);
  assert.ok(Math.abs(peaks[1] - 0.007) < 1e-12);
  assert.ok(Math.abs(peaks[2] - 0.0049) < 1e-12);
  for (const c of chunks) assert.ok(c[0] < c[1], "each chunk warms up again");
});

Deno.test("augmented training is seeded: same seed same model, and differs from unaugmented", async () => {
  await selectBackend("wasm");
  const data = halves(64);
  const run = async (augment: boolean, seed: number) => {
    const model = createModel({ seed: 1 });
    await train(model, data, { batchSize: 16, seed, augment: augment ? MILD_AUGMENTATION : false });
    const out = await model.predict(data.images.subarray(0, 784));
    model.dispose();
    return out;
  };
  const a = await run(true, 3);
  assert.deepEqual(await run(true, 3), a);
  assert.notDeepEqual(await run(false, 3), a);
  assert.notDeepEqual(await run(true, 4), a);
});

Deno.test("non-finite or absurd numeric options are refused before training", async () => {
  await selectBackend("cpu");
  const model = createModel({ preset: "seed" });
  const data = halves(16);
  for (
    const [options, message] of [
      [{ learningRate: Infinity }, "expected learningRate in (0, 1], got Infinity"],
      [{ learningRate: NaN }, "expected learningRate in (0, 1], got NaN"],
      [{ learningRate: 5 }, "expected learningRate in (0, 1], got 5"],
      [{ learningRate: 0 }, "expected learningRate in (0, 1], got 0"],
      [{ epochs: Infinity }, "expected epochs to be an integer in [1, 10000], got Infinity"],
      [{ batchSize: 1e9 }, "expected batchSize to be an integer in [1, 65536], got 1000000000"],
      [{ labelSmoothing: NaN }, "expected labelSmoothing in [0, 0.99], got NaN"],
      [{ hardExamples: -Infinity }, "expected hardExamples in [0, 0.5], got -Infinity"],
      [{ seed: NaN }, "expected seed to be an integer in [0, 9007199254740991], got NaN"],
      [{ workers: 1e6 }, "expected workers to be an integer in [0, 64], got 1000000"],
      [
        { augment: { rotationDegrees: Infinity } },
        "expected options.rotationDegrees in [0, 180], got Infinity",
      ],
    ] as const
  ) {
    await assert.rejects(train(model, data, options), (error: Error) => {
      assert.equal(error.name, "RangeError");
      assert.match(
        error.message,
        new RegExp(`^Cannot (train|augment images): ${RegExp.escape(message)}$`),
      );
      return true;
    });
  }
  model.dispose();
});

/** Set every value of a model's first weight to NaN (what a diverged step leaves). */
function spoil(model: ReturnType<typeof createModel>) {
  const net = layersModelOf(model);
  const weights = net.getWeights().map((w, i) => i === 0 ? tf.fill(w.shape, NaN) : w.clone());
  net.setWeights(weights);
  tf.dispose(weights);
}

for (const [backend, workers] of [["cpu", 0], ["wasm", 2]] as const) {
  Deno.test(`a diverged model stops training with a DivergenceError (${backend}, ${workers} workers)`, async () => {
    await selectBackend(backend);
    const model = createModel({ preset: "seed" });
    spoil(model);
    const losses: number[] = [];
    await assert.rejects(
      train(model, halves(64), { batchSize: 16, workers, onBatchEnd: (e) => losses.push(e.loss) }),
      {
        name: "DivergenceError",
        message:
          `Cannot train: expected a finite loss, got a non-finite one at step 1 of 5 (learning rate ${
            learningRateAt(0, 5, 0.03, "one-cycle")
          }); lower the learning rate`,
      },
    );
    assert.deepEqual(losses, [], "no batch reported as done");
    model.dispose();
  });
}

Deno.test("options of the wrong type or with a misspelt name are TypeErrors", async () => {
  await selectBackend("cpu");
  const model = createModel({ preset: "seed" });
  const data = halves(8);
  await assert.rejects(train(model, data, { learningRate: "0.01" as unknown as number }), {
    name: "TypeError",
    message: 'Cannot train: expected learningRate to be a number, got "0.01" (string)',
  });
  await assert.rejects(train(model, data, { lr: 0.01 } as TrainOptions), (error: Error) => {
    assert.equal(error.name, "TypeError");
    assert.match(
      error.message,
      /^Cannot train: expected options among epochs, batchSize, .*, got unknown "lr"$/,
    );
    return true;
  });
  model.dispose();
});

Deno.test("the distillation loss is α·T²·CE(soft, softmax(z / T)) + (1 − α)·smoothed CE", async () => {
  await selectBackend("cpu");
  const p = [0.7, 0.1, 0.05, 0.05, 0.02, 0.02, 0.02, 0.02, 0.01, 0.01];
  const q = [0.5, 0.3, 0.1, 0.02, 0.02, 0.02, 0.01, 0.01, 0.01, 0.01];
  const [t, alpha, s] = [3, 0.6, 0.1];
  // Logits log p: the student's probabilities are p.
  const logits = tf.tensor2d([p.map(Math.log)]), teacher = tf.tensor2d([q]);
  const labels = tf.tensor1d([0], "int32");
  const soft = softTargets(teacher, t);
  const [got] = await trainingLoss(logits, labels, s, soft, { temperature: t, weight: alpha })
    .data();
  // The same in plain arithmetic.
  const softmaxOfLog = (v: number[]) => {
    const e = v.map((x) => x ** (1 / t)), sum = e.reduce((a, b) => a + b);
    return e.map((x) => x / sum);
  };
  const target = softmaxOfLog(q), student = softmaxOfLog(p);
  const softTerm = -target.reduce((a, x, k) => a + x * Math.log(student[k]), 0);
  const hardTerm = -p.reduce((a, x, k) => a + ((k === 0 ? 1 - s : 0) + s / 10) * Math.log(x), 0);
  const expected = alpha * t * t * softTerm + (1 - alpha) * hardTerm;
  assert.ok(Math.abs(got - expected) < 1e-5, `${got} vs ${expected}`);
  tf.dispose([logits, teacher, labels, soft]);
});

for (const [backend, workers] of [["cpu", 0], ["wasm", 2]] as const) {
  Deno.test(`a student distilled with α = 1 learns its teacher, not wrong labels (${backend}, ${workers} workers)`, async () => {
    await selectBackend(backend);
    const data = halves(64);
    const teacher = createModel({ preset: "seed", seed: 1 });
    await train(teacher, data, { epochs: 2, batchSize: 8, workers });
    assert.deepEqual(
      await teacher.classify(data.images),
      data.labels,
      "the teacher knows the task",
    );
    const student = createModel({ preset: "mini", seed: 2 });
    const wrong = { ...data, labels: new Uint8Array(data.count) }; // every label says 0
    await train(student, wrong, {
      epochs: 2,
      batchSize: 8,
      workers,
      teacher,
      distillWeight: 1,
      distillTemperature: 2,
    });
    const predicted = await student.classify(data.images);
    const agree = predicted.filter((d, i) => d === data.labels[i]).length;
    assert.ok(agree >= 60, `${agree}/64 follow the teacher`);
    await assert.rejects(train(student, data, { distillWeight: 0.5 }), {
      name: "TypeError",
      message: "Cannot train: expected distillWeight only with a teacher, got no teacher",
    });
    teacher.dispose();
    student.dispose();
  });
}
