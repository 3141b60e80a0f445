/**
 * Inference and training speed of the default model on every backend that is
 * available here (webgpu, wasm, cpu), in one run so that their ratios can be
 * read side by side. Each group's baseline is wasm.
 *
 * Images per second = images per iteration / time per iteration:
 * inference batch 1 → 1 image, batch 1000 → 1000 images; a training step at
 * batch 64 or 256 → that many images. A training step is the one `train`
 * takes: in this thread on each backend, and, as `train` does on wasm by
 * default, split between 2 data-parallel workers. Shader compilation and kernel set-up
 * happen in the warm-up iterations, outside the timed ones.
 *
 * Run: `deno task bench` (the cpu and software-webgpu training rows take a
 * while: tens of images/s).
 */
import * as tf from "@tensorflow/tfjs";
import { type BackendName, selectBackend } from "../lib/backend.ts";
import { trainingLogits } from "../lib/forward.ts";
import { softmaxCrossEntropy } from "../lib/loss.ts";
import { type Classifier, createModel, layersModelOf } from "../lib/model.ts";
import { GradientWorkers, readFlat } from "../lib/parallel.ts";
import type { Shard, TrainPipeline } from "../lib/train_pipeline.ts";

const adapter = await navigator.gpu?.requestAdapter().catch(() => null);
const backends: BackendName[] = adapter ? ["webgpu", "wasm", "cpu"] : ["wasm", "cpu"];
const images = new Float32Array(1000 * 784).map((_, i) => (i * 2654435761 % 256) / 255);
const labels = new Uint8Array(1000).map((_, i) => i % 10);

const models = new Map<BackendName, Classifier>();
async function modelOn(backend: BackendName): Promise<Classifier> {
  if (tf.getBackend() !== backend) await selectBackend(backend);
  let model = models.get(backend);
  if (!model) {
    model = createModel();
    models.set(backend, model);
  }
  return model;
}

/** One Adam step of the default recipe's loss on `batch` images, in this thread, as `train` takes it. */
function trainStep(model: Classifier, optimizer: tf.Optimizer, batch: number): tf.Scalar {
  const net = layersModelOf(model);
  return optimizer.minimize(() =>
    tf.tidy(() => {
      const x = tf.tensor4d(images.subarray(0, batch * 784), [batch, 28, 28, 1]);
      const y = tf.tensor1d(labels.subarray(0, batch), "int32");
      return softmaxCrossEntropy(trainingLogits(net, x), y, 0.1).mean().asScalar();
    }), true)!;
}

/** Shards of `batch` images for `workers` data-parallel workers. */
function shards(batch: number, workers: number): Shard[] {
  return Array.from({ length: workers }, (_, w) => {
    const from = (w * batch) / workers, to = ((w + 1) * batch) / workers;
    return {
      pixels: images.slice(from * 784, to * 784),
      labels: Int32Array.from(labels.subarray(from, to)),
      augment: null,
    };
  });
}

for (const backend of backends) {
  // Few iterations where a step takes seconds (cpu; webgpu on a software adapter).
  const slow = backend !== "wasm";
  for (const batch of [1, 1000]) {
    Deno.bench({
      name: `${backend}: inference, batch ${batch}`,
      group: `inference batch ${batch}`,
      baseline: backend === "wasm",
      n: slow && batch === 1000 ? 5 : undefined,
      warmup: slow ? 2 : undefined,
      async fn(b) {
        const model = await modelOn(backend);
        const input = images.subarray(0, batch * 784);
        b.start();
        await model.predict(input);
        b.end();
      },
    });
  }
  for (const batch of [64, 256]) {
    let optimizer: tf.Optimizer | undefined; // made once the backend is active
    Deno.bench({
      name: `${backend}: training step, batch ${batch}`,
      group: `training batch ${batch}`,
      baseline: backend === "wasm",
      n: slow ? 3 : 20,
      warmup: slow ? 1 : 3,
      async fn(b) {
        const model = await modelOn(backend);
        optimizer ??= tf.train.adam(0.001);
        b.start();
        const loss = trainStep(model, optimizer, batch);
        await loss.data(); // wait for the device
        b.end();
        loss.dispose();
      },
    });
  }
}

// What `train` does on wasm by default: each batch split between 2 workers, each with its own
// wasm backend, through the pipeline (`lib/train_pipeline.ts`): their gradients summed and Adam
// applied in every worker. One step at a time here (`train` keeps two in flight).
/** The pools the 2-worker benches start, closed when the run ends. */
const pools: GradientWorkers[] = [];
globalThis.addEventListener("unload", () => pools.forEach((pool) => pool.close()));
for (const batch of [64, 256]) {
  let pipeline: TrainPipeline | undefined;
  Deno.bench({
    name: "wasm, 2 workers: training step, batch " + batch,
    group: `training batch ${batch}`,
    n: 20,
    warmup: 3,
    async fn(b) {
      if (!pipeline) {
        const net = layersModelOf(await modelOn("wasm"));
        const pool = await GradientWorkers.start(2, net, 0.1);
        pools.push(pool);
        const params = readFlat(net.trainableWeights), state = readFlat(net.nonTrainableWeights);
        ({ pipeline } = pool.train(params, state, batch / 2));
      }
      const parts = shards(batch, 2);
      b.start();
      pipeline.postShards(0.001, parts);
      await pipeline.done(pipeline.posted - 1);
      b.end();
    },
  });
}
