/**
 * The recipe tables of the README: one pass of the default model on the real
 * MNIST for each recipe variant and seed, test accuracy and training seconds.
 * `--set ablation` (default) adds one feature at a time to a baseline; `--set
 * tuning` varies the peak learning rate, the share of difficult examples and
 * label smoothing. Not a Deno.bench file: run it with `deno task ablation`,
 * one process at a time (training already uses both cores on wasm); `--part
 * K/N` runs every N-th job, `--only NAME` one variant, `--seeds` the seeds.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { selectBackend } from "../lib/backend.ts";
import { evaluate } from "../lib/evaluate.ts";
import { loadMnist } from "../lib/mnist.ts";
import { createModel } from "../lib/model.ts";
import { MILD_AUGMENTATION, train, type TrainOptions } from "../lib/train.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    part: { type: "string", default: "0/1" },
    seeds: { type: "string" },
    set: { type: "string", default: "ablation" },
    only: { type: "string" },
    backend: { type: "string", default: "wasm" },
  },
});
const [part, parts] = values.part!.split("/").map(Number);
/** Every recipe feature off; the default recipe is `train`'s defaults. */
const BASELINE: TrainOptions = { miniEpochs: 1, hardExamples: 0, augment: false };
const sets: Record<string, { seeds: string; variants: [string, TrainOptions][] }> = {
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
};
const chosen = sets[values.set!];
if (!chosen) throw new RangeError(`--set expects ${Object.keys(sets).join(" or ")}`);
const seeds = (values.seeds ?? chosen.seeds).split(",").map(Number);
const variants = chosen.variants;
await selectBackend(values.backend as "wasm");
const data = await loadMnist();
let job = 0;
for (const [name, options] of variants) {
  if (values.only && !name.includes(values.only)) continue;
  for (const seed of seeds) {
    if (job++ % parts !== part) continue;
    const model = createModel({ seed });
    const result = await train(model, data.train, { ...options, seed });
    const { accuracy } = await evaluate(model, data.test);
    model.dispose();
    console.log(JSON.stringify({ name, seed, accuracy, seconds: result.seconds }));
  }
}
