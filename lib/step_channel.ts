/**
 * The shared memory through which the trainer hands a data-parallel worker
 * its training steps: one `SharedArrayBuffer` a worker, holding the step's
 * inputs (weights, batch-norm statistics, the shard's pixels and labels, its
 * augmentation as JSON) and outputs (gradients, per-sample losses, updated
 * statistics), and two 32-bit words for the handshake. The worker blocks in
 * `Atomics.wait` on a _bell_ that all the channels of a pool share until the
 * trainer rings it, then reads its command; the trainer waits in
 * `Atomics.waitAsync` until the worker posts its status. One bell wakes every
 * worker with one `Atomics.notify`: waking each in turn cost the trainer
 * about 0.26 ms a wake-up, because the woken worker took the trainer's core
 * before it had woken the next one (measured in one pass of training).
 * Messages would copy every array twice (serialised, then read back) on the
 * trainer's thread while the workers wait; `bench/pool_step.ts` times a whole
 * step. Internal.
 *
 * @module
 */
import { IMAGE_PIXELS } from "./images.ts";

/** Sizes a channel is laid out for. Internal. */
export interface ChannelLayout {
  /** Trainable weights, flat. */
  params: number;
  /** Non-trainable weights (batch-norm statistics), flat. */
  state: number;
  /** Most images in one shard. */
  capacity: number;
}

/** `control[COMMAND]`: what the worker is to do next. */
const COMMAND = 0;
/** `control[STATUS]`: what the worker has done. */
const STATUS = 1;
/** `control[COUNT]`: images in the step's shard. */
const COUNT = 2;
/** `control[TEXT]`: bytes of JSON in `text` (the augmentation, or an error message). */
const TEXT = 3;

/** Commands, in `control[COMMAND]`. */
const IDLE = 0, STEP = 1, LEAVE = 2;
/** Statuses, in `control[STATUS]`. */
const PENDING = 0, DONE = 1, FAILED = 2;

/** Bytes for a shard's augmentation as JSON, or an error message. Internal. */
export const TEXT_BYTES = 4096;

/** The text codecs of every step (made once, not a pair a step). */
const encoder = new TextEncoder(), decoder = new TextDecoder();

/**
 * Write `text` into `bytes`, truncated to what fits. Internal.
 * @returns The bytes written, and whether all of `text` fitted.
 */
export function writeText(bytes: Uint8Array, text: string): { written: number; whole: boolean } {
  const { read, written } = encoder.encodeInto(text, bytes);
  return { written, whole: read === text.length };
}

/** The text in the first `length` of `bytes`. Internal. */
export function readText(bytes: Uint8Array, length: number): string {
  return decoder.decode(bytes.slice(0, length));
}

/**
 * Write a shard's augmentation into `bytes` as JSON. Internal.
 * @param action What the caller does, for the error ("run a parallel step").
 * @returns The bytes written.
 * @throws {RangeError} When the JSON is longer than {@linkcode TEXT_BYTES}.
 */
export function writeAugmentation(bytes: Uint8Array, augment: unknown, action: string): number {
  const text = JSON.stringify(augment);
  const { written, whole } = writeText(bytes, text);
  if (!whole) {
    throw new RangeError(
      `Cannot ${action}: expected an augmentation of at most ${TEXT_BYTES} bytes ` +
        `as JSON, got ${encoder.encode(text).length}`,
    );
  }
  return written;
}

/** A step's inputs, as the worker reads them. Internal. */
export interface StepInput {
  /** All trainable weights, flat, in `trainableWeights` order. */
  params: Float32Array;
  /** All non-trainable weights, flat. */
  state: Float32Array;
  /** `count * 784` pixels of the shard. */
  pixels: Float32Array;
  /** `count` digits. */
  labels: Int32Array;
  count: number;
  /** The shard's augmentation (as given to {@linkcode StepChannel.post}), or `null`. */
  augment: unknown;
}

/** A step's outputs. Internal. */
export interface StepOutput {
  /** Gradient of the shard's mean loss, flat like `params`. */
  gradients: Float32Array;
  /** The shard's per-sample losses. */
  losses: Float32Array;
  /** Non-trainable weights after the shard's forward pass. */
  state: Float32Array;
}

/** One worker's step channel, seen from either side. Internal. */
export class StepChannel {
  readonly buffer: SharedArrayBuffer;
  readonly layout: ChannelLayout;
  /** The bell: 4 bytes, one counter that {@linkcode ring} increments. */
  readonly bell: SharedArrayBuffer;
  readonly #bell: Int32Array;
  readonly #control: Int32Array;
  readonly #text: Uint8Array;
  readonly #in: Omit<StepInput, "count" | "augment">;
  readonly #out: StepOutput;

  /**
   * A new channel for `layout`, or the view of an existing `buffer` laid out
   * so; it rings `bell` (shared with other channels), or a bell of its own.
   */
  constructor(layout: ChannelLayout, buffer?: SharedArrayBuffer, bell?: SharedArrayBuffer) {
    const { params: P, state: S, capacity: C } = layout;
    const floats = [P, S, C * IMAGE_PIXELS, C, P, C, S];
    const bytes = 16 + TEXT_BYTES + 4 * floats.reduce((a, n) => a + n, 0);
    this.layout = layout;
    this.buffer = buffer ?? new SharedArrayBuffer(bytes);
    if (this.buffer.byteLength !== bytes) {
      throw new RangeError(
        `Cannot open a step channel: expected ${bytes} bytes, got ${this.buffer.byteLength}`,
      );
    }
    this.bell = bell ?? new SharedArrayBuffer(4);
    this.#bell = new Int32Array(this.bell, 0, 1);
    this.#control = new Int32Array(this.buffer, 0, 4);
    this.#text = new Uint8Array(this.buffer, 16, TEXT_BYTES);
    let at = 16 + TEXT_BYTES;
    const next = <T>(make: new (b: SharedArrayBuffer, at: number, n: number) => T, n: number) => {
      const view = new make(this.buffer, at, n);
      at += 4 * n;
      return view;
    };
    this.#in = {
      params: next(Float32Array, P),
      state: next(Float32Array, S),
      pixels: next(Float32Array, C * IMAGE_PIXELS),
      labels: next(Int32Array, C),
    };
    this.#out = {
      gradients: next(Float32Array, P),
      losses: next(Float32Array, C),
      state: next(Float32Array, S),
    };
  }

  // ----- the trainer's side

  /**
   * Post a step to the worker; it starts when the bell rings
   * ({@linkcode ring}). The arrays are copied in; `augment` must survive
   * `JSON.stringify` within 4 KiB.
   * @throws {RangeError} When the shard does not fit or its arrays disagree.
   */
  post(
    params: Float32Array,
    state: Float32Array,
    pixels: Float32Array,
    labels: Int32Array,
    augment: unknown,
  ): void {
    const count = labels.length, { layout } = this;
    const wrong = params.length !== layout.params
      ? `${layout.params} weights, got ${params.length}`
      : state.length !== layout.state
      ? `${layout.state} batch-norm statistics, got ${state.length}`
      : count > layout.capacity
      ? `at most ${layout.capacity} images, got ${count}`
      : pixels.length !== count * IMAGE_PIXELS
      ? `${count * IMAGE_PIXELS} pixels for ${count} labels, got ${pixels.length}`
      : null;
    if (wrong) throw new RangeError(`Cannot run a parallel step: expected ${wrong}`);
    this.#in.params.set(params);
    this.#in.state.set(state);
    this.#in.pixels.set(pixels);
    this.#in.labels.set(labels);
    this.#control[TEXT] = writeAugmentation(this.#text, augment, "run a parallel step");
    this.#control[COUNT] = count;
    this.#command(STEP);
  }

  /**
   * Wait for the worker's answer to the last command: the step's outputs
   * (views into the channel, valid until the next post), or nothing after
   * {@linkcode leave}.
   * @throws {Error} With the worker's message when the step failed.
   */
  async reply(): Promise<StepOutput> {
    const wait = Atomics.waitAsync(this.#control, STATUS, PENDING);
    if (wait.async) await wait.value;
    if (Atomics.load(this.#control, STATUS) === FAILED) throw new Error(this.#readText());
    const count = this.#control[COUNT];
    return { ...this.#out, losses: this.#out.losses.subarray(0, count) };
  }

  /** Tell the worker to stop serving this channel (and read messages again); rings the bell. */
  leave(): void {
    this.#command(LEAVE);
    this.ring();
  }

  /** Wake every worker waiting on this channel's bell, to read its command. */
  ring(): void {
    Atomics.add(this.#bell, 0, 1);
    Atomics.notify(this.#bell, 0);
  }

  /** Fail the pending command with `message` (when the worker itself failed). */
  fail(message: string): void {
    this.#writeText(message);
    this.#answer(FAILED);
  }

  #command(command: number): void {
    Atomics.store(this.#control, STATUS, PENDING);
    Atomics.store(this.#control, COMMAND, command);
  }

  // ----- the worker's side

  /**
   * Serve steps until told to leave: block on the bell until there is a
   * command, run `step` on its inputs, write its outputs and status back. A
   * step that throws fails with its message; the next one runs as usual.
   */
  serve(step: (input: StepInput) => StepOutput): void {
    for (;;) {
      // The bell read before the command: a ring after this read ends the wait at once.
      const rung = Atomics.load(this.#bell, 0);
      const command = Atomics.exchange(this.#control, COMMAND, IDLE);
      if (command === IDLE) {
        Atomics.wait(this.#bell, 0, rung);
        continue;
      }
      if (command === LEAVE) {
        this.#answer(DONE);
        return;
      }
      try {
        const count = this.#control[COUNT];
        const out = step({
          params: this.#in.params,
          state: this.#in.state,
          pixels: this.#in.pixels.subarray(0, count * IMAGE_PIXELS),
          labels: this.#in.labels.subarray(0, count),
          count,
          augment: JSON.parse(this.#readText()),
        });
        this.#out.gradients.set(out.gradients);
        this.#out.losses.set(out.losses);
        this.#out.state.set(out.state);
        this.#answer(DONE);
      } catch (error) {
        this.fail((error as Error)?.message ?? String(error));
      }
    }
  }

  #answer(status: number): void {
    Atomics.store(this.#control, STATUS, status);
    Atomics.notify(this.#control, STATUS);
  }

  /** Write `text` (truncated to what fits). */
  #writeText(text: string): void {
    this.#control[TEXT] = writeText(this.#text, text).written;
  }

  #readText(): string {
    return readText(this.#text, this.#control[TEXT]);
  }
}
