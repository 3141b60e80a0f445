/**
 * One real training run shared by every test that needs a trained model:
 * one pass of the default recipe and seed over the real MNIST on wasm (2
 * data-parallel workers; deterministic there), saved to a temporary folder.
 * Test modules run in one process, so the run happens once, on first use.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../lib/backend.ts";
import { evaluate } from "../lib/evaluate.ts";
import { saveModel } from "../lib/io.ts";
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

let run: Promise<TrainedRun> | undefined;

/**
 * The shared trained model, trained on first call.
 *
 * @returns The data, the saved model's folder and the training result.
 */
export function trainedModel(): Promise<TrainedRun> {
  run ??= (async () => {
    const data = await loadRealMnist();
    await selectBackend("wasm");
    const model = createModel();
    const before = tf.memory().numTensors;
    const result = await train(model, data.train);
    const leakedTensors = tf.memory().numTensors - before;
    const dir = await Deno.makeTempDir({ prefix: "tinymnist-trained-" });
    const { accuracy } = await evaluate(model, data.test);
    const path = await saveModel(model, dir, {
      card: {
        dataset: "mnist",
        seed: 42,
        backend: "wasm",
        trainSeconds: result.seconds,
        testAccuracy: accuracy,
      },
    });
    const params = model.params;
    globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
    return { data, model, path, result, leakedTensors, params };
  })();
  return run;
}
