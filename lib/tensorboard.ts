/**
 * TensorBoard event files, so that `tensorboard --logdir DIR` shows a run's
 * scalars (loss, learning rate, accuracy) and images.
 *
 * The format is TensorFlow's record file of `Event` protocol buffers:
 * - each record is the data's length as a little-endian uint64, the masked
 *   CRC-32C of those 8 bytes (uint32 LE), the data, and the masked CRC-32C of
 *   the data (uint32 LE) — tensorflow/core/lib/io/record_writer.cc;
 * - a CRC is masked as `((crc >>> 15) | (crc << 17)) + 0xa282ead8` mod 2³²
 *   (rotated, then offset, so that CRCs of data holding CRCs stay strong) —
 *   tensorflow/core/lib/hash/crc32c.h;
 * - the first record is an `Event` with `file_version: "brain.Event:2"`, the
 *   others carry a `Summary` — tensorflow/core/util/events_writer.cc.
 *
 * The messages are encoded with protobufjs from a schema written below as
 * .proto text: the part of tensorflow/core/util/event.proto and
 * tensorflow/core/framework/summary.proto (mirrored in TensorBoard's
 * tensorboard/compat/proto/) that this file writes, field numbers as published.
 *
 * @module
 */
import { join } from "node:path";
import protobuf from "protobufjs";
import CRC32C from "crc-32/crc32c.js";
import { describe } from "./images.ts";
import { ImageFormatError } from "./image_file.ts";

/**
 * The messages written, from TensorFlow's event.proto and summary.proto.
 * Fields never written here are left out: a field's encoding depends only on
 * its own number and type, so the records are those of the full schema.
 */
const SCHEMA = `
syntax = "proto3";
package tensorboard;

// tensorflow/core/util/event.proto
message Event {
  double wall_time = 1;
  int64 step = 2;
  oneof what {
    string file_version = 3;
    bytes graph_def = 4;
    Summary summary = 5;
    // 6 log_message, 7 session_log, 8 tagged_run_metadata: not written here
    bytes meta_graph_def = 9;
  }
  // 10 source_metadata: not written here
}

// tensorflow/core/framework/summary.proto
message Summary {
  message Image {
    int32 height = 1;
    int32 width = 2;
    // 1 grayscale, 2 grayscale + alpha, 3 RGB, 4 RGBA, 5 DIGITAL_YUV, 6 BGRA
    int32 colorspace = 3;
    bytes encoded_image_string = 4;
  }
  message Value {
    string node_name = 7;
    string tag = 1;
    // 9 metadata: not written here
    oneof value {
      float simple_value = 2;
      bytes obsolete_old_style_histogram = 3;
      Image image = 4;
      // 5 histo, 6 audio, 8 tensor: not written here
    }
  }
  repeated Value value = 1;
}
`;

const EVENT = protobuf.parse(SCHEMA, { keepCase: true }).root.lookupType("tensorboard.Event");

/** The first record's `file_version`, as TensorFlow's EventsWriter writes it. */
const FILE_VERSION = "brain.Event:2";

/** PNG colour type (IHDR byte 25) → `Summary.Image.colorspace`. */
const COLORSPACE: Record<number, number> = { 0: 1, 4: 2, 2: 3, 6: 4, 3: 3 };

/** CRC-32C of `bytes`, masked as TensorFlow stores CRCs (crc32c.h `Mask`). */
function maskedCrc32c(bytes: Uint8Array): number {
  const crc = CRC32C.buf(bytes) >>> 0;
  return (((crc >>> 15) | (crc << 17)) + 0xa282ead8) >>> 0;
}

/** One record of a TensorFlow record file (record_writer.cc), framing `data`. */
function record(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + 4 + data.length + 4);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(data.length), true);
  view.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true);
  out.set(data, 12);
  view.setUint32(12 + data.length, maskedCrc32c(data), true);
  return out;
}

/** The name part that identifies this machine: its hostname, or `localhost` without permission. */
function hostname(): string {
  let name: string;
  try {
    name = Deno.hostname(); // needs --allow-sys=hostname
  } catch {
    name = "localhost";
  }
  return name.replace(/[^A-Za-z0-9._-]/g, "_") || "localhost";
}

/**
 * Writes one TensorBoard event file, `DIR/events.out.tfevents.<unix
 * seconds>.<hostname>` (`.2`, `.3`, … appended if that name is taken).
 * `scalar` and `image` queue records in memory; `flush` appends them to the
 * file (TensorBoard reads a file as it grows), and `close` flushes, syncs and
 * closes it. `await using` closes it too.
 *
 * @example Log a loss curve and a digit, then check the file
 * ```ts
 * import { encodePng, TensorBoardWriter } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * const writer = await TensorBoardWriter.create(dir);
 * for (const [step, loss] of [[20, 1.9], [40, 0.8], [60, 0.5]]) {
 *   writer.scalar("train/loss", loss, step);
 * }
 * const digit = await encodePng(new Uint8Array(28 * 28).fill(128), 28, 28);
 * writer.image("test/digit", digit, 60);
 * await writer.close();
 *
 * assert.match(writer.path, /\/events\.out\.tfevents\.\d+\.[\w.-]+$/);
 * const bytes = await Deno.readFile(writer.path);
 * const firstLength = new DataView(bytes.buffer).getBigUint64(0, true);
 * assert.ok(firstLength > 0n && firstLength < 100n); // the file_version event
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class TensorBoardWriter {
  /** The event file's path. */
  readonly path: string;
  #file: Deno.FsFile;
  #pending: Uint8Array[] = [];
  #writing: Promise<void> = Promise.resolve();
  #closed = false;

  private constructor(path: string, file: Deno.FsFile) {
    this.path = path;
    this.#file = file;
  }

  /**
   * Create `dir` if missing and a new event file in it, holding the
   * `file_version` event already.
   *
   * @param dir The log folder (`tensorboard --logdir` this folder or a parent).
   * @returns A writer for the new file.
   * @throws {TypeError} When `dir` is not a non-empty string.
   * @throws {Deno.errors.PermissionDenied} Without write permission for `dir`.
   */
  static async create(dir: string): Promise<TensorBoardWriter> {
    if (typeof dir !== "string" || dir === "") {
      throw new TypeError(
        `Cannot create TensorBoard log: expected dir to be a non-empty string, got ${
          describe(dir)
        }`,
      );
    }
    await Deno.mkdir(dir, { recursive: true });
    const base = join(dir, `events.out.tfevents.${Math.floor(Date.now() / 1000)}.${hostname()}`);
    for (let i = 1;; i++) {
      const path = i === 1 ? base : `${base}.${i}`;
      let file: Deno.FsFile;
      try {
        file = await Deno.open(path, { write: true, createNew: true });
      } catch (error) {
        if (error instanceof Deno.errors.AlreadyExists) continue;
        throw error;
      }
      const writer = new TensorBoardWriter(path, file);
      writer.#push({ file_version: FILE_VERSION });
      await writer.flush();
      return writer;
    }
  }

  /**
   * Queue a scalar (TensorBoard's Scalars tab) as a float32 `simple_value`.
   *
   * @param tag The series' name, e.g. `"train/loss"` (the part before the
   * first `/` groups charts).
   * @param value The value; NaN and ±Infinity are written as they are.
   * @param step The x coordinate, e.g. the training step: an integer >= 0.
   * @throws {TypeError} When `tag` is not a non-empty string, or `value` or `step` not a number.
   * @throws {RangeError} When `step` is not a safe integer >= 0.
   * @throws {Error} After `close`.
   */
  scalar(tag: string, value: number, step: number): void {
    const action = `Cannot log scalar ${JSON.stringify(tag)}`;
    this.#check(action, tag, step);
    if (typeof value !== "number") {
      throw new TypeError(`${action}: expected value to be a number, got ${describe(value)}`);
    }
    this.#push({ step, summary: { value: [{ tag, simple_value: value }] } });
  }

  /**
   * Queue a PNG image (TensorBoard's Images tab); its width, height and
   * colour space are read from the PNG header.
   *
   * @param tag The series' name, e.g. `"test/misclassified"`.
   * @param png The bytes of a PNG file, e.g. from `encodePng`.
   * @param step The x coordinate, e.g. the training step: an integer >= 0.
   * @throws {TypeError} When `tag` is not a non-empty string, `png` not a
   * Uint8Array or `step` not a number.
   * @throws {ImageFormatError} When `png` does not start with a PNG signature and header.
   * @throws {RangeError} When `step` is not a safe integer >= 0.
   * @throws {Error} After `close`.
   */
  image(tag: string, png: Uint8Array, step: number): void {
    const action = `Cannot log image ${JSON.stringify(tag)}`;
    this.#check(action, tag, step);
    if (!(png instanceof Uint8Array)) {
      throw new TypeError(`${action}: expected png to be a Uint8Array, got ${describe(png)}`);
    }
    const signature = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
    const ihdr = [0x49, 0x48, 0x44, 0x52];
    if (
      png.length < 33 || signature.some((b, i) => png[i] !== b) ||
      ihdr.some((b, i) => png[12 + i] !== b)
    ) {
      const start = [...png.subarray(0, 8)].map((b) => b.toString(16).padStart(2, "0")).join(" ");
      throw new ImageFormatError(
        `${action}: expected a PNG file (signature and IHDR chunk, 33 bytes or more), got ${png.length} bytes${
          png.length === 0 ? "" : ` starting ${start}`
        }`,
      );
    }
    const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
    const image = {
      width: view.getUint32(16),
      height: view.getUint32(20),
      colorspace: COLORSPACE[png[25]] ?? 0,
      encoded_image_string: png,
    };
    this.#push({ step, summary: { value: [{ tag, image }] } });
  }

  /**
   * Append the queued records to the file.
   *
   * @returns When they are written (not necessarily synced to disk).
   */
  flush(): Promise<void> {
    const chunks = this.#pending;
    this.#pending = [];
    // Chained, so that records reach the file in the order they were queued.
    this.#writing = this.#writing.then(async () => {
      for (const chunk of chunks) {
        for (let written = 0; written < chunk.length;) {
          written += await this.#file.write(chunk.subarray(written));
        }
      }
    });
    return this.#writing;
  }

  /**
   * Flush, sync to disk and close the file. Closing twice does nothing.
   *
   * @returns When the file is closed.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.flush();
      await this.#file.sync();
    } finally {
      this.#file.close();
    }
  }

  /** Same as {@linkcode TensorBoardWriter.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #check(action: string, tag: unknown, step: unknown): void {
    if (this.#closed) {
      throw new Error(`${action}: expected an open writer, got one closed by close()`);
    }
    if (typeof tag !== "string" || tag === "") {
      throw new TypeError(`${action}: expected tag to be a non-empty string, got ${describe(tag)}`);
    }
    if (typeof step !== "number") {
      throw new TypeError(`${action}: expected step to be a number, got ${describe(step)}`);
    }
    if (!Number.isSafeInteger(step) || step < 0) {
      throw new RangeError(`${action}: expected step to be an integer >= 0, got ${describe(step)}`);
    }
  }

  #push(fields: Record<string, unknown>): void {
    const event = EVENT.create({ wall_time: Date.now() / 1000, ...fields });
    this.#pending.push(record(EVENT.encode(event).finish()));
  }
}
