/**
 * Data-parallel training on the CPU: TensorFlow.js's wasm backend runs one
 * thread under Deno, so each batch is split into shards, one per Web Worker,
 * each worker with its own wasm backend and a replica of the model. Training
 * runs through a pipeline ({@linkcode GradientWorkers.train},
 * `train_pipeline.ts`) in which the workers average their gradients (weighted
 * by shard size, which gives the gradient of the whole batch's mean loss) and
 * each applies the same update to its own copy of the weights. Internal.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { AugmentOptions } from "./augment.ts";
import { BackendError } from "./backend.ts";
import type { Distillation } from "./loss.ts";
import { IMAGE_PIXELS, NUM_CLASSES } from "./images.ts";
import { type PipelineLayout, TrainPipeline } from "./train_pipeline.ts";

/** A message from the trainer to a worker. Internal. */
export type WorkerRequest =
  | {
    type: "init";
    topology: unknown;
    smoothing: number;
    /** Seed of the augmentation banks (`AugmentBanks`) that every worker draws alike. */
    bankSeed: number;
    /** The teacher to distil, its topology and all its weights (flat), with T and α. */
    teacher: { topology: unknown; weights: Float32Array; settings: Distillation } | null;
  }
  | {
    /**
     * Train through this pipeline (see {@linkcode TrainPipeline}) as worker
     * `index`, from these weights, until it is stopped; then reply "ready".
     */
    type: "pipeline";
    buffer: SharedArrayBuffer;
    layout: PipelineLayout;
    index: number;
    params: Float32Array;
    state: Float32Array;
  }
  | {
    type: "predict";
    /** All trainable weights, flat, in `trainableWeights` order. */
    params: Float32Array;
    /** All non-trainable weights (batch-norm statistics), flat. */
    state: Float32Array;
    /** `count * 784` pixels in [0, 1]. */
    pixels: Float32Array;
    count: number;
  };

/** How a worker augments its shard. Internal. */
export interface ShardAugmentation {
  /** The augmentation, with its strength for this step. */
  options: AugmentOptions;
  /** Seed of the shard's random numbers. */
  seed: number;
}

/** A message from a worker to the trainer. Internal. */
export type WorkerReply =
  | { type: "ready" }
  | { type: "error"; message: string }
  | {
    type: "predict";
    /** `count * 10` class probabilities, inference mode. */
    probabilities: Float32Array;
  };

type LayerWeight = tf.LayerVariable;

/** Number of values in a layer weight. */
function sizeOf(w: LayerWeight): number {
  return tf.util.sizeFromShape(w.shape as number[]);
}

/** Number of values in layer weights together, as {@linkcode readFlat} lays them out. */
function flatSize(weights: LayerWeight[]): number {
  return weights.reduce((a, w) => a + sizeOf(w), 0);
}

/** Concatenate the values of layer weights into one `Float32Array`. Internal. */
export function readFlat(weights: LayerWeight[]): Float32Array {
  const flat = new Float32Array(flatSize(weights));
  let offset = 0;
  for (const w of weights) {
    const values = w.read().dataSync() as Float32Array;
    flat.set(values, offset);
    offset += values.length;
  }
  return flat;
}

/** Set layer weights from one flat `Float32Array` (as made by {@linkcode readFlat}). Internal. */
export function writeFlat(weights: LayerWeight[], flat: Float32Array): void {
  const sizes = weights.map(sizeOf);
  const total = sizes.reduce((a, n) => a + n, 0);
  if (total !== flat.length) {
    throw new RangeError(`Cannot set weights: expected ${total} values, got ${flat.length}`);
  }
  let offset = 0;
  weights.forEach((w, i) => {
    const value = tf.tensor(flat.subarray(offset, offset + sizes[i]), w.shape as number[]);
    w.write(value);
    value.dispose();
    offset += sizes[i];
  });
}

/** A pool of gradient workers, one shard of each batch per worker. Internal. */
export class GradientWorkers {
  #workers: Worker[];
  /** Sizes of the flat weights and statistics. */
  #params: number;
  #state: number;
  /** The pipeline the workers train through, and their replies when they leave it. */
  #pipeline: { pipeline: TrainPipeline; left: Promise<unknown> } | null = null;

  private constructor(workers: Worker[], params: number, state: number) {
    this.#workers = workers;
    this.#params = params;
    this.#state = state;
  }

  /** Number of workers. */
  get size(): number {
    return this.#workers.length;
  }

  /**
   * Start `count` workers, each loading the wasm backend and a replica of
   * `net` (weights arrive with `train` and with each `predict`).
   */
  static async start(
    count: number,
    net: tf.LayersModel,
    smoothing: number,
    teacher: { net: tf.LayersModel; settings: Distillation } | null = null,
    bankSeed = 0,
  ): Promise<GradientWorkers> {
    const workers = Array.from(
      { length: count },
      () => new Worker(new URL("./parallel_worker.ts", import.meta.url), { type: "module" }),
    );
    const pool = new GradientWorkers(
      workers,
      flatSize(net.trainableWeights),
      flatSize(net.nonTrainableWeights),
    );
    const topology = net.toJSON(null, false);
    try {
      const replica = teacher && {
        topology: teacher.net.toJSON(null, false),
        weights: readFlat(teacher.net.weights),
        settings: teacher.settings,
      };
      await Promise.all(
        workers.map((w) =>
          call(w, { type: "init", topology, smoothing, bankSeed, teacher: replica })
        ),
      );
    } catch (error) {
      pool.close();
      throw error;
    }
    return pool;
  }

  /**
   * Class probabilities of `count` images in inference mode for the given
   * weights, the images split evenly between the workers.
   */
  async predict(
    params: Float32Array,
    state: Float32Array,
    pixels: Float32Array,
    count: number,
  ): Promise<Float32Array> {
    const parts = Math.min(this.#workers.length, count);
    const bounds = Array.from({ length: parts + 1 }, (_, i) => Math.round((i * count) / parts));
    const replies = await Promise.all(
      this.#workers.slice(0, parts).map((worker, i) =>
        call(worker, {
          type: "predict",
          params,
          state,
          // A copy: a view would send its whole underlying buffer (the whole dataset).
          pixels: pixels.slice(bounds[i] * IMAGE_PIXELS, bounds[i + 1] * IMAGE_PIXELS),
          count: bounds[i + 1] - bounds[i],
        })
      ),
    ) as Extract<WorkerReply, { type: "predict" }>[];
    const out = new Float32Array(count * NUM_CLASSES);
    replies.forEach((reply, i) => out.set(reply.probabilities, bounds[i] * NUM_CLASSES));
    return out;
  }

  /**
   * Have the workers train through a new pipeline from these weights, each
   * applying Adam to its own copy (see {@linkcode TrainPipeline}); the caller
   * posts steps to it. One pipeline per pool.
   *
   * @param params Trainable weights to start from, flat.
   * @param state Non-trainable weights to start from, flat.
   * @param capacity Most images in one worker's shard.
   * @returns The pipeline, and a promise that rejects if a worker fails
   * outside a step (it never resolves).
   * @throws {BackendError} When a pipeline is already running.
   */
  train(
    params: Float32Array,
    state: Float32Array,
    capacity: number,
  ): { pipeline: TrainPipeline; failure: Promise<never> } {
    if (this.#pipeline) throw new BackendError("Cannot train: a pipeline is already running");
    const layout = {
      workers: this.#workers.length,
      params: this.#params,
      state: this.#state,
      capacity,
    };
    const pipeline = new TrainPipeline(layout, undefined);
    pipeline.setWeights(params, state);
    const left = Promise.all(
      this.#workers.map((worker, index) =>
        call(worker, { type: "pipeline", buffer: pipeline.buffer, layout, index, params, state })
      ),
    );
    this.#pipeline = { pipeline, left };
    const failure = left.then(() => new Promise<never>(() => {}));
    failure.catch(() => {}); // read by the caller when it races a step against it
    return { pipeline, failure };
  }

  /** Stop the workers (a worker blocked in its pipeline is woken first). */
  close(): void {
    this.#pipeline?.pipeline.stop();
    this.#pipeline = null;
    for (const w of this.#workers) w.terminate();
    this.#workers = [];
  }
}

/** Send one request to a worker and wait for its reply. */
function call(worker: Worker, request: WorkerRequest): Promise<WorkerReply> {
  return new Promise((resolve, reject) => {
    worker.onmessage = (event: MessageEvent<WorkerReply>) => {
      const reply = event.data;
      if (reply.type === "error") {
        reject(new BackendError(`Cannot train in a worker: ${reply.message}`));
      } else {
        resolve(reply);
      }
    };
    worker.onerror = (event) => {
      event.preventDefault();
      reject(new BackendError(`Cannot train in a worker: ${event.message}`));
    };
    worker.postMessage(request);
  });
}
