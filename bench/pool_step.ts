/**
 * What a data-parallel training step costs, exchange included: a pool of
 * `GradientWorkers` (as `train` starts on wasm) takes steps through its
 * pipeline on fixed random shards of a batch, two in flight as `train` posts
 * them, after warm-up steps, and the mean wall time a step is printed.
 * Compare one worker on a half-batch with two workers on the whole batch, or
 * two processes of one worker each run at once, to see what the second core
 * costs. Not a Deno.bench file; run it alone:
 *
 *   deno run --allow-read --allow-env bench/pool_step.ts [--workers N] [--batch N] [--no-augment] [--steps N]
 *
 * @module
 */
import { integerFlag, parseFlags } from "./_usage.ts";
import { selectBackend } from "../lib/backend.ts";
import { createModel, layersModelOf } from "../lib/model.ts";
import { GradientWorkers, readFlat } from "../lib/parallel.ts";
import type { Shard } from "../lib/train_pipeline.ts";
import { createRng } from "../lib/rng.ts";
import { MILD_AUGMENTATION } from "../lib/train.ts";

const ACTION = "time a data-parallel step";
const { values } = parseFlags(
  ACTION,
  "bench/pool_step.ts",
  {
    workers: { type: "string", default: "2" },
    batch: { type: "string", default: "64" },
    steps: { type: "string", default: "200" },
    "no-augment": { type: "boolean", default: false },
  },
  `Usage: deno run --allow-read --allow-env bench/pool_step.ts [--workers N] [--batch N] [--no-augment] [--steps N]

Time training steps of a pool of gradient workers through its pipeline
(default 2 workers, batch 64, mild augmentation, 200 steps after 30 of
warm-up) on fixed random shards, exchange and update included, and print the
mean milliseconds a step.`,
);
const workers = integerFlag(ACTION, "workers", values.workers, 1, 64);
const batch = integerFlag(ACTION, "batch", values.batch, workers, 65_536);
const steps = integerFlag(ACTION, "steps", values.steps, 1, 1_000_000);
await selectBackend("wasm");
const net = layersModelOf(createModel({ seed: 1 }));
const pool = await GradientWorkers.start(workers, net, 0.1);
const params = readFlat(net.trainableWeights), state = readFlat(net.nonTrainableWeights);
const rng = createRng(1);
const pixels = Float32Array.from({ length: batch * 784 }, () => rng.next());
const labels = Int32Array.from({ length: batch }, (_, i) => i % 10);
/** The batch split evenly, one shard a worker. */
const shards = (): Shard[] =>
  Array.from({ length: workers }, (_, w) => {
    const from = Math.floor((w * batch) / workers), to = Math.floor(((w + 1) * batch) / workers);
    return {
      pixels: pixels.slice(from * 784, to * 784),
      labels: labels.slice(from, to),
      augment: values["no-augment"] ? null : { options: MILD_AUGMENTATION, seed: w },
    };
  });
// Learning rate 0: the weights stay as they are, step after step.
const { pipeline } = pool.train(params, state, Math.ceil(batch / workers));
/** Take `n` steps, two in flight (a step's slot is free once the step two before is done). */
async function take(n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    if (pipeline.posted >= 2) await pipeline.done(pipeline.posted - 2);
    pipeline.postShards(0, shards());
  }
  await pipeline.done(pipeline.posted - 1);
}
await take(30);
const start = performance.now();
await take(steps);
const ms = (performance.now() - start) / steps;
pool.close();
console.log(
  `${workers} worker(s), batch ${batch}, ${
    values["no-augment"] ? "no augmentation" : "mild augmentation"
  }: ${ms.toFixed(2)} ms a step (mean of ${steps})`,
);
