/**
 * Where a training step's time goes on wasm: `tf.profile` of one step of the
 * default model as a data-parallel worker takes it (forward, loss and
 * gradients of a half-batch of 32 in one thread), after warm-up steps; prints
 * the mean step time and the kernels' milliseconds, summed by kernel and
 * input shape, largest first. Not a Deno.bench file; run it alone:
 *
 *   deno run --allow-read --allow-env bench/step_profile.ts [--batch N] [--preset NAME] [--top K]
 *
 * @module
 */
import { integerFlag, parseFlags, usage } from "./_usage.ts";
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../lib/backend.ts";
import { trainingLogits } from "../lib/forward.ts";
import { trainingLoss } from "../lib/loss.ts";
import { createModel, layersModelOf, MODEL_PRESETS, type ModelPreset } from "../lib/model.ts";

const ACTION = "profile a training step";
const { values } = parseFlags(
  ACTION,
  "bench:profile",
  {
    batch: { type: "string", default: "32" },
    preset: { type: "string", default: "tiny" },
    top: { type: "string", default: "20" },
  },
  `Usage: deno task bench:profile [--batch N] [--preset NAME] [--top K]

Profile one data-parallel worker's training step (default: tiny, batch 32) on
wasm in this thread: the mean step time over 100 steps, then the kernels'
milliseconds in one step, summed by kernel and first input's shape, largest
first (the top K, default 20).`,
);
const batch = integerFlag(ACTION, "batch", values.batch, 1, 65_536);
const top = integerFlag(ACTION, "top", values.top, 1, 1_000_000);
if (!Object.hasOwn(MODEL_PRESETS, values.preset!)) {
  usage(
    ACTION,
    `expected --preset to be one of ${
      Object.keys(MODEL_PRESETS).join(", ")
    }, got "${values.preset}"`,
  );
}
await selectBackend("wasm");
const model = layersModelOf(createModel({ preset: values.preset as ModelPreset, seed: 1 }));
const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
const x = tf.randomUniform([batch, 28, 28, 1], 0, 1, "float32", 1);
const labels = tf.tensor1d(Array.from({ length: batch }, (_, i) => i % 10), "int32");

/** One step: forward, loss (label smoothing 0.1), gradients read out as the workers do. */
function step(): void {
  const { value, grads } = tf.variableGrads(
    () => tf.tidy(() => trainingLoss(trainingLogits(model, x), labels, 0.1, null, null).mean()),
    vars,
  );
  for (const v of vars) grads[v.name].dataSync();
  tf.dispose([value, ...Object.values(grads)]);
}

for (let i = 0; i < 20; i++) step();
const steps = 100, start = performance.now();
for (let i = 0; i < steps; i++) step();
const stepMs = (performance.now() - start) / steps;
const profile = await tf.profile(step);
const byKernel = new Map<string, number>();
for (const k of profile.kernels) {
  const key = `${k.name} ${JSON.stringify(k.inputShapes[0] ?? [])}`;
  byKernel.set(key, (byKernel.get(key) ?? 0) + (k.kernelTimeMs as number));
}
console.log(
  `${values.preset}, batch ${batch}: ${stepMs.toFixed(2)} ms a step (mean of ${steps}); ` +
    `${profile.kernels.length} kernels in the profiled step`,
);
console.log("| ms | kernel [first input's shape] |\n| ---: | --- |");
for (const [key, ms] of [...byKernel].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  console.log(`| ${ms.toFixed(3)} | ${key} |`);
}
