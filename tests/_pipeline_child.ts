/**
 * Child process of the pipeline shutdown test (`train_pipeline_test.ts`):
 * trains the `mini` model COUNT times on 256 random images with two wasm
 * workers, then prints `done` and returns. The test checks that the process
 * then exits: a worker left waiting for good keeps it alive.
 *
 * Usage: deno run --allow-read --allow-env tests/_pipeline_child.ts COUNT
 *
 * @module
 */
import { selectBackend } from "../lib/backend.ts";
import { createModel } from "../lib/model.ts";
import { createRng } from "../lib/rng.ts";
import { train } from "../lib/train.ts";

await selectBackend("wasm");
const count = 256, rng = createRng(1);
const data = {
  images: Float32Array.from({ length: count * 784 }, () => rng.next()),
  labels: Uint8Array.from({ length: count }, (_, i) => i % 10),
  count,
};
for (let i = 0; i < Number(Deno.args[0]); i++) {
  const model = createModel({ preset: "mini", seed: i });
  await train(model, data, { seed: i, batchSize: 16, workers: 2 });
  model.dispose();
}
console.log("done");
