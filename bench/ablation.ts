/**
 * The recipe ablation behind the README table: one pass of the default model
 * on the real MNIST for each recipe variant and seed, test accuracy and
 * training seconds. Not a Deno.bench file: run it with `deno task ablation`
 * (add `--part 0/2` and `--part 1/2` in two terminals to use both cores).
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
    seeds: { type: "string", default: "42,1,2" },
    only: { type: "string" },
    backend: { type: "string", default: "wasm" },
  },
});
const [part, parts] = values.part!.split("/").map(Number);
const seeds = values.seeds!.split(",").map(Number);
/** Every recipe feature off; the default recipe is `train`'s defaults. */
const BASELINE: TrainOptions = { miniEpochs: 1, hardExamples: 0, augment: false };
const variants: [string, TrainOptions][] = [
  ["baseline (one-cycle, no extras)", BASELINE],
  ["+ mini-epochs (3)", { ...BASELINE, miniEpochs: 3 }],
  ["+ difficult examples (10%)", { ...BASELINE, hardExamples: 0.1 }],
  ["+ augmentation, decaying", {
    ...BASELINE,
    augment: MILD_AUGMENTATION,
    augmentSchedule: "decay",
  }],
  ["default recipe", {}],
];
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
