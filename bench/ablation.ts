/**
 * The recipe tables of the README: one pass of the default model on the real
 * MNIST for each recipe variant and seed, test accuracy and training seconds.
 * `--set ablation` (default) adds one feature at a time to a baseline; `--set
 * tuning` varies the peak learning rate, the share of difficult examples and
 * label smoothing; `--set distillation` trains the 5,058-parameter `mini`
 * preset alone and distilled from a default model (trained first, seed 42,
 * `--teacher-epochs N` passes, default 1).
 * `--validation` fits on the first 55,000 training images and scores on the
 * last 5,000 instead of the test set (for choosing; the test set is for the
 * final figures). Not a Deno.bench file: run it with `deno task ablation`,
 * one process at a time (training already uses both cores on wasm); `--part
 * K/N` runs every N-th job, `--only NAME` one variant, `--seeds` the seeds.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { selectBackend } from "../lib/backend.ts";
import { evaluate } from "../lib/evaluate.ts";
import { loadMnist } from "../lib/mnist.ts";
import { type Classifier, createModel, type ModelPreset } from "../lib/model.ts";
import { MILD_AUGMENTATION, train, type TrainOptions } from "../lib/train.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    part: { type: "string", default: "0/1" },
    seeds: { type: "string" },
    set: { type: "string", default: "ablation" },
    only: { type: "string" },
    backend: { type: "string", default: "wasm" },
    validation: { type: "boolean", default: false },
    "teacher-epochs": { type: "string", default: "1" },
  },
});
const [part, parts] = values.part!.split("/").map(Number);
/** Every recipe feature off; the default recipe is `train`'s defaults. */
const BASELINE: TrainOptions = { miniEpochs: 1, hardExamples: 0, augment: false };
/** A variant: recipe options, plus the preset and whether a teacher is distilled. */
type Variant = [string, TrainOptions & { preset?: ModelPreset; distil?: boolean }];
const sets: Record<string, { seeds: string; variants: Variant[] }> = {
  // Each feature added to the baseline, and the default recipe.
  ablation: {
    seeds: "42,1,2",
    variants: [
      ["baseline (one-cycle, no extras)", BASELINE],
      ["+ mini-epochs (3)", { ...BASELINE, miniEpochs: 3 }],
      ["+ difficult examples (15%)", { ...BASELINE, hardExamples: 0.15 }],
      ["+ augmentation, decaying", {
        ...BASELINE,
        augment: MILD_AUGMENTATION,
        augmentSchedule: "decay",
      }],
      ["default recipe", {}],
    ],
  },
  // The README's tuning table: peak learning rate, difficult share, label smoothing.
  tuning: {
    seeds: "42,1,2,3",
    variants: ([
      [0.02, 0.1],
      [0.02, 0.15],
      [0.02, 0.1, 0.05],
      [0.03, 0.1],
      [0.03, 0.1, 0.05],
      [0.04, 0.1],
      [0.03, 0.15],
      [0.03, 0.2],
      [0.04, 0.15],
      [0.045, 0.15, 0.1, 128],
      [0.06, 0.15, 0.1, 128],
    ] as const).map(([learningRate, hardExamples, labelSmoothing = 0.1, batchSize = 64]) => [
      `lr ${learningRate}, difficult ${hardExamples}, smoothing ${labelSmoothing}, batch ${batchSize}`,
      { learningRate, hardExamples, labelSmoothing, batchSize },
    ]),
  },
  // The default architecture and a wider last convolution (the recipe issue's "widths" lever).
  widths: {
    seeds: "42,1,2,3",
    variants: [
      ["tiny (conv 16→32→32, 17,018 params)", { preset: "tiny" }],
      ["wide (conv 16→32→48, 23,098 params)", { preset: "wide" }],
    ],
  },
  // A small student, trained alone and distilled (T 2, α 0.5, the defaults), and the settings
  // measured on the validation split to choose them.
  distillation: {
    seeds: "42,1,2",
    variants: [
      ["mini alone", { preset: "mini" }],
      ["mini distilled from tiny (T 2, α 0.5)", { preset: "mini", distil: true }],
      ...([[1, 0.5], [4, 0.5], [4, 0.7], [8, 0.9]] as const).map(([t, a]): Variant => [
        `mini distilled, T ${t}, α ${a}`,
        { preset: "mini", distil: true, distillTemperature: t, distillWeight: a },
      ]),
    ],
  },
};
const chosen = sets[values.set!];
if (!chosen) throw new RangeError(`--set expects ${Object.keys(sets).join(" or ")}`);
const seeds = (values.seeds ?? chosen.seeds).split(",").map(Number);
const variants = chosen.variants;
await selectBackend(values.backend as "wasm");
const mnist = await loadMnist();
// --validation: fit on the first 55,000 training images, score on the last 5,000 (for choices);
// otherwise fit on all 60,000 and score on the 10,000 test images (for the final figures).
const FIT = 55_000;
const data = values.validation
  ? {
    train: {
      images: mnist.train.images.subarray(0, FIT * 784),
      labels: mnist.train.labels.subarray(0, FIT),
      count: FIT,
    },
    test: {
      images: mnist.train.images.subarray(FIT * 784),
      labels: mnist.train.labels.subarray(FIT),
      count: mnist.train.count - FIT,
    },
  }
  : mnist;
let teacher: Classifier | undefined;
if (variants.some(([, options]) => options.distil)) {
  const epochs = Number(values["teacher-epochs"]);
  teacher = createModel({ seed: 42 });
  await train(teacher, data.train, { seed: 42, epochs });
  const { accuracy } = await evaluate(teacher, data.test);
  console.log(
    JSON.stringify({
      name: `teacher (tiny, default recipe, ${epochs} epochs)`,
      seed: 42,
      accuracy,
    }),
  );
}
const accuracies = new Map<string, number[]>();
let job = 0;
for (const [name, { preset, distil, ...options }] of variants) {
  if (values.only && !name.includes(values.only)) continue;
  for (const seed of seeds) {
    if (job++ % parts !== part) continue;
    const model = createModel({ seed, preset });
    const result = await train(model, data.train, {
      ...options,
      seed,
      ...(distil ? { teacher } : {}),
    });
    const { accuracy } = await evaluate(model, data.test);
    model.dispose();
    console.log(
      JSON.stringify({ name, seed, params: model.params, accuracy, seconds: result.seconds }),
    );
    accuracies.set(name, [...accuracies.get(name) ?? [], accuracy]);
  }
}
for (const [name, list] of accuracies) {
  const mean = list.reduce((a, b) => a + b, 0) / list.length;
  console.log(JSON.stringify({ name, seeds: list.length, mean, min: Math.min(...list) }));
}
teacher?.dispose();
