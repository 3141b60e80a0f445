/**
 * Entry point of one data-parallel training worker (see `parallel.ts`): it
 * holds a replica of the model on its own wasm backend and trains it through
 * a pipeline (`train_pipeline.ts`): for its shard of each step it runs
 * forward and backward (`shard_gradients.ts`), then applies the step's summed
 * gradients with Adam to its own copy of the weights. It answers `predict`
 * requests by message. Internal.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import * as tf from "@tensorflow/tfjs";
import { AugmentBanks } from "./augment.ts";
import { selectBackend } from "./backend.ts";
import { type InferenceRunner, inferenceRunner, predictImages } from "./inference.ts";
import { IMAGE_PIXELS, NUM_CLASSES } from "./images.ts";
import { type WorkerReply, type WorkerRequest, writeFlat } from "./parallel.ts";
import { shardGradients, type ShardTrainer } from "./shard_gradients.ts";
import { TrainPipeline } from "./train_pipeline.ts";
import { FlatAdam } from "./adam.ts";

/** The replica and its settings, once initialised. */
let trainer: ShardTrainer | undefined;

/**
 * Train through a pipeline from the request's weights until it stops: each
 * shard's gradients from `shardGradients`, then Adam on this worker's own
 * copy of the weights, written into the replica.
 */
function trainThrough(request: Extract<WorkerRequest, { type: "pipeline" }>): void {
  const replica = trainer!;
  const model = replica.net;
  predictWeights = null;
  const params = request.params.slice();
  const adam = new FlatAdam(params.length);
  writeFlat(model.trainableWeights, params);
  writeFlat(model.nonTrainableWeights, request.state);
  new TrainPipeline(request.layout, request.buffer).serve(
    request.index,
    (shard) => shardGradients(replica, shard),
    (learningRate, gradients, state) => {
      adam.step(params, gradients, learningRate);
      writeFlat(model.trainableWeights, params);
      writeFlat(model.nonTrainableWeights, state);
      return { params, state };
    },
  );
}

/** Images per forward pass when predicting. */
const PREDICT_BATCH = 1000;

/** The replica's folded, fused inference path (`inference.ts`); `null`: none. */
let runner: InferenceRunner | null | undefined;

/** The weights the replica holds for predicting, to skip writing the same ones again. */
let predictWeights: { params: Float32Array; state: Float32Array } | null = null;

const sameValues = (a: Float32Array, b: Float32Array) =>
  a.length === b.length && a.every((v, i) => Object.is(v, b[i]));

function predict(request: Extract<WorkerRequest, { type: "predict" }>): WorkerReply {
  const model = trainer!.net;
  // Unchanged weights are not written again: new weight tensors would make
  // the inference path fold again and the backend prepare its kernels again.
  if (
    !predictWeights || !sameValues(predictWeights.params, request.params) ||
    !sameValues(predictWeights.state, request.state)
  ) {
    writeFlat(model.trainableWeights, request.params);
    writeFlat(model.nonTrainableWeights, request.state);
    predictWeights = { params: request.params, state: request.state };
  }
  if (runner === undefined) runner = inferenceRunner(model);
  const probabilities = new Float32Array(request.count * NUM_CLASSES);
  for (let start = 0; start < request.count; start += PREDICT_BATCH) {
    const end = Math.min(request.count, start + PREDICT_BATCH);
    const out = tf.tidy(() =>
      predictImages(
        model,
        runner ?? null,
        request.pixels.subarray(start * IMAGE_PIXELS, end * IMAGE_PIXELS),
        end - start,
      )
    );
    probabilities.set(out.dataSync() as Float32Array, start * NUM_CLASSES);
    out.dispose();
  }
  return { type: "predict", probabilities };
}

self.onmessage = async (event: MessageEvent<WorkerRequest>) => {
  const request = event.data;
  try {
    if (request.type === "init") {
      await selectBackend("wasm");
      const net = await tf.models.modelFromJSON({
        modelTopology: request.topology as tf.io.ModelJSON["modelTopology"],
      });
      let teacher: ShardTrainer["teacher"] = null;
      if (request.teacher) {
        const teacherNet = await tf.models.modelFromJSON({
          modelTopology: request.teacher.topology as tf.io.ModelJSON["modelTopology"],
        });
        writeFlat(teacherNet.weights, request.teacher.weights);
        teacher = { net: teacherNet, settings: request.teacher.settings };
      }
      trainer = {
        net,
        // The same variable objects every step.
        vars: net.trainableWeights.map((w) => w.read() as tf.Variable),
        smoothing: request.smoothing,
        banks: new AugmentBanks(request.bankSeed),
        teacher,
      };
      self.postMessage({ type: "ready" } satisfies WorkerReply);
    } else if (request.type === "pipeline") {
      trainThrough(request);
      self.postMessage({ type: "ready" } satisfies WorkerReply);
    } else {
      const reply = predict(request) as Extract<WorkerReply, { type: "predict" }>;
      self.postMessage(reply, { transfer: [reply.probabilities.buffer as ArrayBuffer] });
    }
  } catch (error) {
    self.postMessage(
      { type: "error", message: (error as Error)?.message ?? String(error) } satisfies WorkerReply,
    );
  }
};
