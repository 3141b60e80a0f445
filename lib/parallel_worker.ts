/**
 * Entry point of one data-parallel training worker (see `parallel.ts`): it
 * holds a replica of the model on its own wasm backend and, for each shard of
 * a batch (through its step channel, `step_channel.ts`), sets the replica's
 * weights, runs forward and backward, and writes back the gradients, the
 * per-sample losses and the updated batch-norm statistics; it answers
 * `predict` requests by message. Internal.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import * as tf from "@tensorflow/tfjs";
import { AugmentBanks, augmentFromBanks } from "./augment.ts";
import { selectBackend } from "./backend.ts";
import { createRng } from "./rng.ts";
import { type Distillation, softTargets, trainingLoss } from "./loss.ts";
import { trainingLogits } from "./forward.ts";
import { type InferenceRunner, inferenceRunner, predictImages } from "./inference.ts";
import { IMAGE_PIXELS, IMAGE_SIZE, NUM_CLASSES } from "./images.ts";
import {
  readFlat,
  type ShardAugmentation,
  type WorkerReply,
  type WorkerRequest,
  writeFlat,
} from "./parallel.ts";
import { StepChannel, type StepInput, type StepOutput } from "./step_channel.ts";
import { type ShardInput, type ShardResult, TrainPipeline } from "./train_pipeline.ts";
import { FlatAdam } from "./adam.ts";

let net: tf.LayersModel | undefined;
/** The replica's trainable variables, in `trainableWeights` order (the same objects every step). */
let vars: tf.Variable[] = [];
let smoothing = 0;
/** The run's augmentation banks, the same in every worker. */
let banks = new AugmentBanks(0);
/** The teacher's replica and T, α, when distilling. */
let teacher: { net: tf.LayersModel; settings: Distillation } | null = null;

function step(request: StepInput): StepOutput {
  const model = net!;
  predictWeights = null; // training writes other weights
  writeFlat(model.trainableWeights, request.params);
  writeFlat(model.nonTrainableWeights, request.state);
  return gradientsOf(request);
}

/**
 * Train through a pipeline from the request's weights until it stops: the
 * shards' gradients from {@linkcode gradientsOf}, then Adam on this worker's
 * own copy of the weights, written into the replica.
 */
function trainThrough(request: Extract<WorkerRequest, { type: "pipeline" }>): void {
  const model = net!;
  predictWeights = null;
  const params = request.params.slice();
  const adam = new FlatAdam(params.length);
  writeFlat(model.trainableWeights, params);
  writeFlat(model.nonTrainableWeights, request.state);
  new TrainPipeline(request.layout, request.buffer).serve(
    request.index,
    gradientsOf,
    (learningRate, gradients, state) => {
      adam.step(params, gradients, learningRate);
      writeFlat(model.trainableWeights, params);
      writeFlat(model.nonTrainableWeights, state);
      return { params, state };
    },
  );
}

/** Gradient, per-sample losses and updated statistics of one shard, at the replica's weights. */
function gradientsOf(request: ShardInput): ShardResult {
  const model = net!;
  const augment = request.augment as ShardAugmentation | null;
  const pixels = augment
    ? augmentFromBanks(request.pixels, augment.options, createRng(augment.seed), banks)
    : request.pixels;
  const x = tf.tensor4d(pixels, [request.count, IMAGE_SIZE, IMAGE_SIZE, 1]);
  const labels = tf.tensor1d(request.labels, "int32");
  // The teacher sees the same augmented images as the student (inference mode, no gradient).
  const soft = teacher &&
    tf.tidy(() => softTargets(teacher!.net.predict(x) as tf.Tensor, teacher!.settings.temperature));
  let perSample: tf.Tensor | undefined;
  const { value, grads } = tf.variableGrads(() =>
    tf.tidy(() => {
      const logits = trainingLogits(model, x);
      const each = trainingLoss(logits, labels, smoothing, soft, teacher?.settings ?? null);
      perSample = tf.keep(each);
      return each.mean().asScalar();
    }), vars);
  const gradients = new Float32Array(vars.reduce((a, v) => a + v.size, 0));
  let offset = 0;
  for (const v of vars) {
    const g = grads[v.name].dataSync() as Float32Array;
    gradients.set(g, offset);
    offset += g.length;
  }
  const losses = (perSample!.dataSync() as Float32Array).slice();
  tf.dispose([x, labels, value, perSample!, ...Object.values(grads)]);
  soft?.dispose();
  return { gradients, losses, state: readFlat(model.nonTrainableWeights) };
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
  const model = net!;
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
      net = await tf.models.modelFromJSON({
        modelTopology: request.topology as tf.io.ModelJSON["modelTopology"],
      });
      vars = net.trainableWeights.map((w) => w.read() as tf.Variable);
      smoothing = request.smoothing;
      banks = new AugmentBanks(request.bankSeed);
      if (request.teacher) {
        const net = await tf.models.modelFromJSON({
          modelTopology: request.teacher.topology as tf.io.ModelJSON["modelTopology"],
        });
        writeFlat(net.weights, request.teacher.weights);
        teacher = { net, settings: request.teacher.settings };
      }
      self.postMessage({ type: "ready" } satisfies WorkerReply);
    } else if (request.type === "pipeline") {
      trainThrough(request);
      self.postMessage({ type: "ready" } satisfies WorkerReply);
    } else if (request.type === "predict") {
      const reply = predict(request) as Extract<WorkerReply, { type: "predict" }>;
      self.postMessage(reply, { transfer: [reply.probabilities.buffer as ArrayBuffer] });
    } else {
      new StepChannel(request.layout, request.buffer, request.bell).serve(step);
    }
  } catch (error) {
    self.postMessage(
      { type: "error", message: (error as Error)?.message ?? String(error) } satisfies WorkerReply,
    );
  }
};
