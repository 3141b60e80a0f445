/**
 * Inference speed of one model in tinymnist (`predict` on the wasm backend,
 * the baseline) and in onnxruntime-node (CPU execution provider) after
 * `exportOnnx`: float32, and with int8 weights; onnxruntime in one thread (as
 * the wasm backend runs) and with its default thread count (one per core).
 *
 * Images per second = images per iteration / time per iteration (batch 1 → 1
 * image, batch 1000 → 1000). The model is the default, untrained: speed does
 * not depend on the weights. Inputs are the first 1,000 real test images when
 * `TINYMNIST_DATA_DIR` is set, seeded uniform pixels in [0, 1] otherwise.
 *
 * Run: `TINYMNIST_DATA_DIR=../shared/mnist deno bench --allow-read --allow-env --allow-ffi bench/onnx_bench.ts`
 * (`--allow-ffi`: onnxruntime-node is a native addon).
 *
 * @module
 */
import * as ort from "onnxruntime-node";
import { selectBackend } from "../lib/backend.ts";
import { loadMnist } from "../lib/mnist.ts";
import { createModel } from "../lib/model.ts";
import { exportOnnx } from "../lib/onnx.ts";
import { createRng } from "../lib/rng.ts";

await selectBackend("wasm");
const model = createModel();
const rng = createRng(42);
const images = Deno.env.get("TINYMNIST_DATA_DIR")
  ? (await loadMnist()).test.images.slice(0, 1000 * 784)
  : new Float32Array(1000 * 784).map(() => rng.next());

const float = await exportOnnx(model);
const int8 = await exportOnnx(model, { quantize: "int8" });
const sessions: [string, ort.InferenceSession][] = [
  [
    "onnxruntime-node, 1 thread",
    await ort.InferenceSession.create(float, { intraOpNumThreads: 1 }),
  ],
  ["onnxruntime-node, default threads", await ort.InferenceSession.create(float)],
  [
    "onnxruntime-node, 1 thread, int8 weights",
    await ort.InferenceSession.create(int8, { intraOpNumThreads: 1 }),
  ],
];

for (const batch of [1, 1000]) {
  const input = images.slice(0, batch * 784);
  Deno.bench({
    name: `tinymnist wasm: predict, batch ${batch}`,
    group: `onnx inference batch ${batch}`,
    baseline: true,
    async fn() {
      await model.predict(input);
    },
  });
  for (const [name, session] of sessions) {
    Deno.bench({
      name: `${name}: run, batch ${batch}`,
      group: `onnx inference batch ${batch}`,
      async fn() {
        await session.run({ images: new ort.Tensor("float32", input, [batch, 28, 28, 1]) });
      },
    });
  }
}
