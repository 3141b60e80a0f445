/**
 * The shared memory of pipelined data-parallel training: the trainer posts
 * the shards of the next step while the workers compute the current one, and
 * the workers finish each step among themselves. Each worker computes the
 * gradient of its shard, writes it here, waits for the others at a barrier,
 * then sums every worker's gradient in the same order (weighted by shard
 * size) and applies the same Adam update to its own copy of the weights, so
 * that all copies stay equal without the trainer's thread in the loop. The
 * trainer reads each step's per-sample losses after it is done. Two slots
 * alternate: step k uses slot k mod 2, so the trainer fills one while the
 * workers work on the other. Internal.
 *
 * @module
 */
import { IMAGE_PIXELS } from "./images.ts";

/** Sizes the pipeline is laid out for. Internal. */
export interface PipelineLayout {
  /** Workers. */
  workers: number;
  /** Trainable weights, flat. */
  params: number;
  /** Non-trainable weights (batch-norm statistics), flat. */
  state: number;
  /** Most images in one worker's shard. */
  capacity: number;
}

/** Bytes for a shard's augmentation as JSON, or an error message. */
const TEXT_BYTES = 4096;

/** The text codecs of every step (made once, not a pair a step). */
const encoder = new TextEncoder(), decoder = new TextDecoder();

/**
 * Write `text` into `bytes`, truncated to what fits.
 * @returns The bytes written, and whether all of `text` fitted.
 */
function writeText(bytes: Uint8Array, text: string): { written: number; whole: boolean } {
  const { read, written } = encoder.encodeInto(text, bytes);
  return { written, whole: read === text.length };
}

/** The text in the first `length` of `bytes`. */
function readText(bytes: Uint8Array, length: number): string {
  return decoder.decode(bytes.slice(0, length));
}

/** `control[POSTED]`: steps posted by the trainer. */
const POSTED = 0;
/**
 * `control[FINISHED]`: updates applied, W a step; step k is done, and its slot
 * free for step k + 2, at (k + 1)·W.
 */
const FINISHED = 1;
/** `control[ARRIVED]`: arrivals at the barriers, W a step. */
const ARRIVED = 2;
/** `control[STOP]`: 1 once the trainer stops the workers. */
const STOP = 3;
/** Words of `control`. */
const CONTROL = 4;
/** Milliseconds a worker waits before it looks at `STOP` again. */
const STOP_POLL_MS = 20;

/** One worker's part of a slot. */
interface WorkerSlot {
  /** `[count, TEXT length, failed, unused]`. */
  header: Int32Array;
  text: Uint8Array;
  pixels: Float32Array;
  labels: Int32Array;
  gradients: Float32Array;
  state: Float32Array;
  losses: Float32Array;
}

/** One slot: a step's learning rate and non-finite flags, and every worker's part. */
interface Slot {
  /** `[learning rate]`. */
  rate: Float64Array;
  /** `[weights not finite, statistics not finite]`, set by worker 0 after its update. */
  flags: Int32Array;
  workers: WorkerSlot[];
}

/** {@linkcode sumShards} of a slot's workers' parts, in worker order. */
function sumSlot(slot: Slot, gradients: Float32Array, state: Float32Array): void {
  sumShards(
    slot.workers.map((p) => ({ count: p.header[0], gradients: p.gradients, state: p.state })),
    gradients,
    state,
  );
}

/** What a worker computes from its shard. Internal. */
export interface ShardResult {
  /** Gradient of the shard's mean loss, flat. */
  gradients: Float32Array;
  /** The shard's per-sample losses. */
  losses: Float32Array;
  /** Non-trainable weights after the shard's forward pass. */
  state: Float32Array;
}

/** A shard as a worker reads it. Internal. */
export interface ShardInput {
  /** `count * 784` pixels. */
  pixels: Float32Array;
  labels: Int32Array;
  count: number;
  /** The shard's augmentation (as posted), or `null`. */
  augment: unknown;
}

/** One worker's shard of a step, as the trainer has it. Internal. */
export interface Shard {
  /** `count * 784` pixels. */
  pixels: Float32Array;
  /** `count` digits. */
  labels: Int32Array;
  /** The shard's augmentation (`ShardAugmentation`), or `null`. */
  augment: unknown;
}

/** A finished step, as the trainer reads it. Internal. */
export interface StepResult {
  /** Per-sample losses of the whole batch, in shard order. */
  losses: Float32Array;
  /** A worker's error message when a shard failed (the update was then skipped), else `null`. */
  error: string | null;
  /** Whether a weight, or a batch-norm statistic, stopped being finite. */
  weightsNonFinite: boolean;
  statisticsNonFinite: boolean;
}

/** The pipeline's shared memory, seen from either side. Internal. */
export class TrainPipeline {
  readonly buffer: SharedArrayBuffer;
  readonly layout: PipelineLayout;
  readonly #control: Int32Array;
  readonly #slots: Slot[];
  /** The weights and statistics after the latest update (written by worker 0). */
  readonly #params: Float32Array;
  readonly #state: Float32Array;

  /** A new pipeline for `layout`, or the view of an existing `buffer` laid out so. */
  constructor(layout: PipelineLayout, buffer?: SharedArrayBuffer) {
    const { workers: W, params: P, state: S, capacity: C } = layout;
    // Per worker: header, text, pixels, labels, gradients, statistics, losses.
    const workerBytes = 16 + TEXT_BYTES + 4 * (C * IMAGE_PIXELS + C + P + S + C);
    const slotBytes = 8 + 8 + W * workerBytes;
    const bytes = 4 * CONTROL + 2 * slotBytes + 4 * (P + S);
    this.layout = layout;
    this.buffer = buffer ?? new SharedArrayBuffer(bytes);
    if (this.buffer.byteLength !== bytes) {
      throw new RangeError(
        `Cannot open a training pipeline: expected ${bytes} bytes, got ${this.buffer.byteLength}`,
      );
    }
    let at = 0;
    const next = <T>(
      make: new (b: SharedArrayBuffer, at: number, n: number) => T,
      n: number,
      size = 4,
    ) => {
      const view = new make(this.buffer, at, n);
      at += size * n;
      return view;
    };
    this.#control = next(Int32Array, CONTROL);
    this.#slots = [0, 1].map(() => ({
      rate: next(Float64Array, 1, 8),
      flags: next(Int32Array, 2),
      workers: Array.from({ length: W }, () => ({
        header: next(Int32Array, 4),
        text: next(Uint8Array, TEXT_BYTES, 1),
        pixels: next(Float32Array, C * IMAGE_PIXELS),
        labels: next(Int32Array, C),
        gradients: next(Float32Array, P),
        state: next(Float32Array, S),
        losses: next(Float32Array, C),
      })),
    }));
    this.#params = next(Float32Array, P);
    this.#state = next(Float32Array, S);
  }

  // ----- the trainer's side

  /** Steps posted so far. */
  get posted(): number {
    return this.#control[POSTED];
  }

  /**
   * The pixels and labels buffers of worker `w`'s shard of step `step`, to
   * fill in place before {@linkcode post}. The step's slot must be free: step
   * `step - 2` done and read.
   */
  shardBuffers(
    step: number,
    w: number,
    count: number,
  ): { pixels: Float32Array; labels: Int32Array } {
    if (!(w >= 0 && w < this.layout.workers)) {
      throw new RangeError(
        `Cannot post a training step: expected a worker from 0 to ${
          this.layout.workers - 1
        }, got ${w}`,
      );
    }
    const part = this.#slots[step % 2].workers[w];
    if (count > this.layout.capacity) {
      throw new RangeError(
        `Cannot post a training step: expected at most ${this.layout.capacity} images a shard, got ${count}`,
      );
    }
    part.header[0] = count;
    return {
      pixels: part.pixels.subarray(0, count * IMAGE_PIXELS),
      labels: part.labels.subarray(0, count),
    };
  }

  /**
   * Post the next step, whose shards {@linkcode shardBuffers} filled (a
   * worker left out gets no images), with each shard's augmentation (JSON,
   * at most 4 KiB).
   * @throws {RangeError} When an augmentation does not fit.
   */
  post(learningRate: number, augments: unknown[]): void {
    const step = this.posted, slot = this.#slots[step % 2];
    slot.rate[0] = learningRate;
    slot.flags.fill(0);
    slot.workers.forEach((part, w) => {
      const augment = w < augments.length ? augments[w] : null;
      const text = JSON.stringify(augment);
      const { written, whole } = writeText(part.text, text);
      if (!whole) {
        throw new RangeError(
          `Cannot post a training step: expected an augmentation of at most ${TEXT_BYTES} bytes ` +
            `as JSON, got ${encoder.encode(text).length}`,
        );
      }
      part.header[1] = written;
      part.header[2] = 0;
      if (w >= augments.length) part.header[0] = 0;
    });
    Atomics.store(this.#control, POSTED, step + 1);
    Atomics.notify(this.#control, POSTED);
  }

  /**
   * Post the next step from whole shards, one a worker, copied into their
   * buffers (the trainer fills them in place instead; tests and benchmarks
   * post this way).
   * @throws {RangeError} When there are more shards than workers, a shard is
   * larger than the layout's capacity, or an augmentation does not fit.
   */
  postShards(learningRate: number, shards: readonly Shard[]): void {
    if (shards.length > this.layout.workers) {
      throw new RangeError(
        `Cannot post a training step: expected at most ${this.layout.workers} shards, got ${shards.length}`,
      );
    }
    const step = this.posted;
    shards.forEach((shard, w) => {
      const buffers = this.shardBuffers(step, w, shard.labels.length);
      buffers.pixels.set(shard.pixels);
      buffers.labels.set(shard.labels);
    });
    this.post(learningRate, shards.map((s) => s.augment));
  }

  /** Wait until step `step` is done: every worker has applied its update (or skipped it). */
  async done(step: number): Promise<void> {
    const target = (step + 1) * this.layout.workers;
    for (;;) {
      const now = Atomics.load(this.#control, FINISHED);
      if (now >= target) return;
      const wait = Atomics.waitAsync(this.#control, FINISHED, now);
      if (wait.async) await wait.value;
    }
  }

  /**
   * What step `step` left, once {@linkcode done}; valid until
   * {@linkcode shardBuffers} or {@linkcode post} for step `step + 2`.
   */
  result(step: number): StepResult {
    const slot = this.#slots[step % 2];
    const counts = slot.workers.map((part) => part.header[0]);
    const losses = new Float32Array(counts.reduce((a, n) => a + n, 0));
    let offset = 0, error: string | null = null;
    slot.workers.forEach((part, w) => {
      losses.set(part.losses.subarray(0, counts[w]), offset);
      offset += counts[w];
      if (part.header[2] && error === null) error = readText(part.text, part.header[1]);
    });
    return {
      losses,
      error,
      weightsNonFinite: slot.flags[0] !== 0,
      statisticsNonFinite: slot.flags[1] !== 0,
    };
  }

  /**
   * The gradients and batch-norm statistics of step `step` summed as every
   * worker summed them ({@linkcode sumShards}), once {@linkcode done}; valid
   * until {@linkcode shardBuffers} or {@linkcode post} for step `step + 2`.
   */
  sums(step: number): { gradients: Float32Array; state: Float32Array } {
    const gradients = new Float32Array(this.layout.params);
    const state = new Float32Array(this.layout.state);
    sumSlot(this.#slots[step % 2], gradients, state);
    return { gradients, state };
  }

  /** The weights and statistics after the latest update, once every posted step is done. */
  weights(): { params: Float32Array; state: Float32Array } {
    return { params: this.#params.slice(), state: this.#state.slice() };
  }

  /** Stop the workers (each leaves its loop at the next step it would wait for). */
  stop(): void {
    Atomics.store(this.#control, STOP, 1);
    Atomics.notify(this.#control, POSTED);
    Atomics.notify(this.#control, ARRIVED);
  }

  // ----- a worker's side

  /**
   * Take steps as worker `w` until stopped: for each posted step, compute
   * the gradient of this worker's shard (`compute`), wait at the barrier for
   * the others, then sum every shard's gradient and batch-norm statistics,
   * weighted by shard size, in worker order, and hand them to `update` (every
   * worker computes the same sums). A shard that throws fails its step for
   * every worker: the update is skipped and the error reaches the trainer.
   *
   * @param w This worker's index.
   * @param compute The gradient, losses and statistics of a shard.
   * @param update Applies one update (learning rate, summed gradients and
   * statistics) and returns the new weights and statistics.
   */
  serve(
    w: number,
    compute: (shard: ShardInput) => ShardResult,
    update: (
      learningRate: number,
      gradients: Float32Array,
      state: Float32Array,
    ) => { params: Float32Array; state: Float32Array },
  ): void {
    const { workers: W, params: P, state: S } = this.layout;
    const gradients = new Float32Array(P), state = new Float32Array(S);
    for (let step = 0;; step++) {
      if (!this.#waitFor(POSTED, step + 1)) return;
      const slot = this.#slots[step % 2], part = slot.workers[w];
      const count = part.header[0];
      if (count > 0) {
        try {
          const out = compute({
            pixels: part.pixels.subarray(0, count * IMAGE_PIXELS),
            labels: part.labels.subarray(0, count),
            count,
            augment: JSON.parse(readText(part.text, part.header[1])),
          });
          part.gradients.set(out.gradients);
          part.state.set(out.state);
          part.losses.set(out.losses);
        } catch (error) {
          part.header[1] = writeText(part.text, (error as Error)?.message ?? String(error)).written;
          part.header[2] = 1;
        }
      }
      Atomics.add(this.#control, ARRIVED, 1);
      Atomics.notify(this.#control, ARRIVED);
      if (!this.#waitFor(ARRIVED, (step + 1) * W)) return;
      const failed = slot.workers.some((p) => p.header[2] !== 0);
      if (!failed) {
        sumSlot(slot, gradients, state);
        const after = update(slot.rate[0], gradients, state);
        if (w === 0) {
          slot.flags[0] = anyNonFinite(after.params) ? 1 : 0;
          slot.flags[1] = anyNonFinite(after.state) ? 1 : 0;
          this.#params.set(after.params);
          this.#state.set(after.state);
        }
      }
      // Done with the slot (the trainer may fill it again once every worker is).
      Atomics.add(this.#control, FINISHED, 1);
      Atomics.notify(this.#control, FINISHED);
    }
  }

  /**
   * Block until `control[index]` ≥ `target`; `false` when stopped first.
   * The wait times out to look at `STOP` again: a stop that lands between
   * the look and the wait changes another word, so its notification alone
   * could be lost, and a worker blocked for good would also keep its
   * process from exiting.
   */
  #waitFor(index: number, target: number): boolean {
    for (;;) {
      if (Atomics.load(this.#control, STOP)) return false;
      const now = Atomics.load(this.#control, index);
      if (now >= target) return true;
      Atomics.wait(this.#control, index, now, STOP_POLL_MS);
    }
  }

  /** Start worker 0's copy of the weights (before any step). */
  setWeights(params: Float32Array, state: Float32Array): void {
    this.#params.set(params);
    this.#state.set(state);
  }
}

/** One shard's share of a step: its images, its gradient and its batch-norm statistics. Internal. */
export interface ShardSums {
  count: number;
  gradients: ArrayLike<number>;
  state: ArrayLike<number>;
}

/**
 * Sum the shards' gradients and batch-norm statistics into `gradients` and
 * `state` (zeroed first), each weighted by its share of the batch's images,
 * in the order given (a shard without images adds nothing). Every worker sums
 * this way, so they get the same numbers. Internal.
 */
export function sumShards(
  shards: readonly ShardSums[],
  gradients: Float32Array,
  state: Float32Array,
): void {
  const total = shards.reduce((a, s) => a + s.count, 0);
  gradients.fill(0);
  state.fill(0);
  for (const shard of shards) {
    const weight = shard.count / total;
    if (weight === 0) continue;
    for (let j = 0; j < gradients.length; j++) gradients[j] += weight * shard.gradients[j];
    for (let j = 0; j < state.length; j++) state[j] += weight * shard.state[j];
  }
}

/** Whether some value of `flat` is not finite. */
function anyNonFinite(flat: Float32Array): boolean {
  for (let i = 0; i < flat.length; i++) if (!Number.isFinite(flat[i])) return true;
  return false;
}
