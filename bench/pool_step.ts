/**
 * What a data-parallel training step costs, exchange included: a pool of
 * `GradientWorkers` (as `train` starts on wasm) takes steps on fixed random
 * shards of a batch, after warm-up steps, and the mean wall time a step is
 * printed. Compare one worker on a half-batch with two workers on the whole
 * batch, or two processes of one worker each run at once, to see what the
 * second core costs. Not a Deno.bench file; run it alone:
 *
 *   deno run --allow-read --allow-env bench/pool_step.ts [--workers N] [--batch N] [--no-augment] [--steps N]
 *
 * @module
 */
import { parseFlags } from "./_usage.ts";
import { selectBackend } from "../lib/backend.ts";
import { createModel, layersModelOf } from "../lib/model.ts";
import { GradientWorkers, readFlat, type Shard } from "../lib/parallel.ts";
import { createRng } from "../lib/rng.ts";
import { MILD_AUGMENTATION } from "../lib/train.ts";

const { values } = parseFlags(
  "time a data-parallel step",
  "bench/pool_step.ts",
  {
    workers: { type: "string", default: "2" },
    batch: { type: "string", default: "64" },
    steps: { type: "string", default: "200" },
    "no-augment": { type: "boolean", default: false },
  },
  `Usage: deno run --allow-read --allow-env bench/pool_step.ts [--workers N] [--batch N] [--no-augment] [--steps N]

Time training steps of a pool of gradient workers (default 2 workers, batch
64, mild augmentation, 200 steps after 30 of warm-up) on fixed random shards,
exchange included, and print the mean milliseconds a step.`,
);
const workers = Number(values.workers), batch = Number(values.batch), steps = Number(values.steps);
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
for (let i = 0; i < 30; i++) await pool.step(params, state, shards());
const start = performance.now();
for (let i = 0; i < steps; i++) await pool.step(params, state, shards());
const ms = (performance.now() - start) / steps;
pool.close();
console.log(
  `${workers} worker(s), batch ${batch}, ${
    values["no-augment"] ? "no augmentation" : "mild augmentation"
  }: ${ms.toFixed(2)} ms a step (mean of ${steps})`,
);
