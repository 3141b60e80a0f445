/**
 * One real training run shared by every test that needs a trained model:
 * one pass of the default recipe and seed over the real MNIST on wasm (2
 * data-parallel workers; deterministic there), saved with its card. Each test
 * file runs in its own isolate, so the first file of a `deno test` run trains
 * and saves the model to a folder named for the test process; the others in
 * the same run load it from there.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../lib/backend.ts";
import { evaluate } from "../lib/evaluate.ts";
import { loadModel, saveModel } from "../lib/io.ts";
import type { MnistData } from "../lib/mnist.ts";
import { type Classifier, createModel } from "../lib/model.ts";
import { train, type TrainResult } from "../lib/train.ts";
import { loadRealMnist } from "./_fixtures.ts";

/** What the shared run produced. */
export interface TrainedRun {
  /** The real MNIST it trained on. */
  data: MnistData;
  /** The trained model, on wasm (select wasm before using it); shared: never dispose it. */
  model: Classifier;
  /** The saved model's folder (load it with `loadModel`). */
  path: string;
  /** What `train` returned. */
  result: TrainResult;
  /** Tensors alive after training that were not before (should be 0). */
  leakedTensors: number;
  /** Trainable parameters of the model. */
  params: number;
}

/** The folder of this test run's model: one per `deno test` process. */
const RUN_DIR = `${Deno.env.get("TMPDIR") ?? "/tmp"}/tinymnist-trained-${Deno.pid}`;

/** Remove the folders of earlier test runs (over 6 hours old). */
async function removeOldRuns(): Promise<void> {
  const parent = RUN_DIR.slice(0, RUN_DIR.lastIndexOf("/"));
  for await (const entry of Deno.readDir(parent)) {
    if (!entry.name.startsWith("tinymnist-trained-")) continue;
    const { mtime } = await Deno.stat(`${parent}/${entry.name}`);
    if (mtime && Date.now() - mtime.getTime() > 6 * 3600_000) {
      await Deno.remove(`${parent}/${entry.name}`, { recursive: true }).catch(() => {});
    }
  }
}

let run: Promise<TrainedRun> | undefined;

/**
 * The shared trained model: trained by the first test file that asks,
 * loaded from its folder by the others.
 *
 * @returns The data, the model, its folder and the training result.
 */
export function trainedModel(): Promise<TrainedRun> {
  run ??= (async () => {
    const data = await loadRealMnist();
    await selectBackend("wasm");
    const saved = await Deno.readTextFile(`${RUN_DIR}/run.json`).catch(() => null);
    if (saved !== null) {
      const { path, result, leakedTensors, params } = JSON.parse(saved);
      return { data, model: await loadModel(path), path, result, leakedTensors, params };
    }
    await removeOldRuns();
    const model = createModel();
    const before = tf.memory().numTensors;
    const result = await train(model, data.train);
    const leakedTensors = tf.memory().numTensors - before;
    const { accuracy } = await evaluate(model, data.test);
    const path = await saveModel(model, RUN_DIR, {
      card: {
        dataset: "mnist",
        seed: 42,
        backend: "wasm",
        trainSeconds: result.seconds,
        testAccuracy: accuracy,
      },
    });
    const record = JSON.stringify({ path, result, leakedTensors, params: model.params });
    await Deno.writeTextFile(`${RUN_DIR}/run.json.tmp`, record);
    await Deno.rename(`${RUN_DIR}/run.json.tmp`, `${RUN_DIR}/run.json`);
    return { data, model, path, result, leakedTensors, params: model.params };
  })();
  return run;
}
