/**
 * Parse and encode IDX files, the binary format MNIST ships in. Pure
 * functions on bytes: no file system, no network, no gunzip.
 *
 * An IDX file is a 4-byte magic number (two zero bytes, a type byte, a rank
 * byte), then `rank` big-endian uint32 dimensions, then the data, row-major.
 * The whole header and the exact byte length are checked before any data is
 * touched, and the data is returned as a zero-copy view.
 *
 * @module
 */

/** An unsigned-byte IDX array: its dimensions and a view of its data. */
export interface IdxArray {
  /** Dimensions, outermost first, e.g. `[60000, 28, 28]`. */
  dims: number[];
  /** The data, row-major; a zero-copy `subarray` of the parsed bytes. */
  data: Uint8Array;
}

/** A parsed IDX images file (magic number 2051: unsigned bytes, rank 3). */
export interface IdxImages {
  /** Number of images. */
  count: number;
  /** Rows per image (28 for MNIST). */
  rows: number;
  /** Columns per image (28 for MNIST). */
  cols: number;
  /** `count * rows * cols` pixels, image by image, row-major; zero-copy. */
  pixels: Uint8Array;
}

/**
 * Thrown when bytes are not a well-formed IDX file, or not the kind of IDX
 * file that was asked for.
 *
 * @example Catch a malformed file
 * ```ts
 * import { IdxFormatError, parseIdx } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * assert.throws(() => parseIdx(new Uint8Array([0, 0])), IdxFormatError);
 * ```
 */
export class IdxFormatError extends SyntaxError {
  /** Always `"IdxFormatError"`. */
  override name: string = "IdxFormatError";

  /**
   * Create an error.
   *
   * @param message What could not be parsed, and why.
   * @param options Standard error options, e.g. `cause`.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** Known IDX type bytes: name and element size in bytes. */
const TYPES: ReadonlyMap<number, { name: string; size: number }> = new Map([
  [0x08, { name: "unsigned byte", size: 1 }],
  [0x09, { name: "signed byte", size: 1 }],
  [0x0b, { name: "short", size: 2 }],
  [0x0c, { name: "int", size: 4 }],
  [0x0d, { name: "float", size: 4 }],
  [0x0e, { name: "double", size: 8 }],
]);

const UBYTE = 0x08;
// More than 4 dims is no dataset we know of, and it bounds the header check.
const MAX_RANK = 4;
const MAGIC_IMAGES = 0x0803; // ubyte, rank 3: [count, rows, cols]
const MAGIC_LABELS = 0x0801; // ubyte, rank 1: [count]

function hex(byte: number): string {
  return `0x${byte.toString(16).padStart(2, "0")}`;
}

function product(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

/**
 * Validate the whole IDX header and the exact byte length, then return the
 * dims and a zero-copy view of the (unsigned byte) data.
 *
 * `what` names the kind of file in messages ("file", "images", "labels");
 * `magic`, when given, is checked first because it is the most telling fact
 * when a typed parse gets the wrong kind of file.
 */
function parseChecked(
  bytes: Uint8Array,
  what: string,
  source: string | undefined,
  magic?: number,
): IdxArray {
  const prefix = `Cannot parse IDX ${what}${
    source === undefined ? "" : ` ${JSON.stringify(source)}`
  }`;
  const fail = (detail: string): never => {
    throw new IdxFormatError(`${prefix}: ${detail}`);
  };
  if (!(bytes instanceof Uint8Array)) {
    const got = bytes === null ? "null" : (bytes as object)?.constructor?.name ?? typeof bytes;
    throw new TypeError(`${prefix}: expected a Uint8Array, got ${got}`);
  }
  if (bytes.length < 4) {
    fail(`truncated header: expected at least 4 bytes, got ${bytes.length}`);
  }
  const gzipHint = bytes[0] === 0x1f && bytes[1] === 0x8b
    ? " (this looks like gzip data; gunzip it first)"
    : "";
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (magic !== undefined && view.getUint32(0) !== magic) {
    fail(`expected magic number ${magic}, got ${view.getUint32(0)}${gzipHint}`);
  }
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    fail(
      `expected the first two bytes to be 0x00 0x00, got ${hex(bytes[0])} ${
        hex(bytes[1])
      }${gzipHint}`,
    );
  }
  const type = bytes[2];
  const typeInfo = TYPES.get(type);
  if (typeInfo === undefined) {
    fail(
      `unknown data type ${hex(type)}, expected one of ${[...TYPES.keys()].map(hex).join(", ")}`,
    );
  }
  const rank = bytes[3];
  if (rank < 1 || rank > MAX_RANK) {
    fail(`expected rank 1 to ${MAX_RANK}, got ${rank}`);
  }
  const headerLength = 4 + 4 * rank;
  if (bytes.length < headerLength) {
    fail(
      `truncated header: expected at least ${headerLength} bytes for rank ${rank}, got ${bytes.length}`,
    );
  }
  const dims: number[] = [];
  for (let i = 0; i < rank; i++) dims.push(view.getUint32(4 + 4 * i));
  if (type !== UBYTE) {
    fail(
      `unsupported data type ${hex(type)} (${typeInfo!.name}), only ${
        hex(UBYTE)
      } (unsigned byte) is supported`,
    );
  }
  const dataLength = product(dims);
  const expected = headerLength + dataLength;
  if (bytes.length !== expected) {
    fail(
      `${
        bytes.length < expected ? "truncated data" : "unexpected trailing data"
      }: expected ${expected} bytes (${headerLength}-byte header + ${dataLength} data bytes for dims ${
        dims.join("x")
      }), got ${bytes.length}`,
    );
  }
  return { dims, data: bytes.subarray(headerLength) };
}

/**
 * Parse an IDX file of unsigned bytes (type 0x08), any rank from 1 to 4.
 *
 * The whole header is validated, and the byte length must be exactly
 * `4 + 4 * rank + product(dims)`, before any data is read.
 *
 * @param bytes The uncompressed IDX file.
 * @param source A name for the bytes (usually the file name), used in error
 * messages.
 * @returns The dims and a zero-copy view of the data.
 * @throws {IdxFormatError} If the header is malformed, the type is not
 * unsigned byte, or the length is not exactly what the header says.
 * @throws {TypeError} If `bytes` is not a `Uint8Array`.
 *
 * @example Round-trip a 2x3 array
 * ```ts
 * import { encodeIdx, parseIdx } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * const bytes = encodeIdx(new Uint8Array([1, 2, 3, 4, 5, 6]), [2, 3]);
 * const { dims, data } = parseIdx(bytes);
 * assert.deepEqual(dims, [2, 3]);
 * assert.deepEqual([...data], [1, 2, 3, 4, 5, 6]);
 * ```
 *
 * @example A truncated file names what was expected and what was found
 * ```ts
 * import { encodeIdx, IdxFormatError, parseIdx } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * const bytes = encodeIdx(new Uint8Array(6), [2, 3]).slice(0, -1);
 * assert.throws(() => parseIdx(bytes, "x.idx"), {
 *   name: "IdxFormatError",
 *   message: 'Cannot parse IDX file "x.idx": truncated data: expected ' +
 *     "18 bytes (12-byte header + 6 data bytes for dims 2x3), got 17",
 * });
 * assert.throws(() => parseIdx(bytes), IdxFormatError);
 * ```
 */
export function parseIdx(bytes: Uint8Array, source?: string): IdxArray {
  return parseChecked(bytes, "file", source);
}

/**
 * Parse an IDX images file: magic number 2051 (unsigned bytes, rank 3,
 * dims `[count, rows, cols]`).
 *
 * @param bytes The uncompressed IDX file.
 * @param source A name for the bytes (usually the file name), used in error
 * messages.
 * @returns The count, image size and a zero-copy view of the pixels.
 * @throws {IdxFormatError} If the magic number is not 2051 or the file is
 * malformed or has the wrong length.
 * @throws {TypeError} If `bytes` is not a `Uint8Array`.
 *
 * @example Parse two 2x2 images
 * ```ts
 * import { encodeIdx, parseIdxImages } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * const bytes = encodeIdx(new Uint8Array([0, 1, 2, 3, 4, 5, 6, 7]), [2, 2, 2]);
 * const images = parseIdxImages(bytes);
 * assert.equal(images.count, 2);
 * assert.equal(images.rows * images.cols, 4);
 * assert.deepEqual([...images.pixels.subarray(4)], [4, 5, 6, 7]);
 * ```
 *
 * @example A labels file is not an images file
 * ```ts
 * import { encodeIdx, parseIdxImages } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * const labels = encodeIdx(new Uint8Array([5, 0, 4]), [3]);
 * assert.throws(() => parseIdxImages(labels, "train-images-idx3-ubyte"), {
 *   name: "IdxFormatError",
 *   message: 'Cannot parse IDX images "train-images-idx3-ubyte": ' +
 *     "expected magic number 2051, got 2049",
 * });
 * ```
 */
export function parseIdxImages(bytes: Uint8Array, source?: string): IdxImages {
  const { dims, data } = parseChecked(bytes, "images", source, MAGIC_IMAGES);
  return { count: dims[0], rows: dims[1], cols: dims[2], pixels: data };
}

/**
 * Parse an IDX labels file: magic number 2049 (unsigned bytes, rank 1), every
 * label a digit class from 0 to 9.
 *
 * @param bytes The uncompressed IDX file.
 * @param source A name for the bytes (usually the file name), used in error
 * messages.
 * @returns A zero-copy view of the labels.
 * @throws {IdxFormatError} If the magic number is not 2049, the file is
 * malformed or has the wrong length, or a label is above 9.
 * @throws {TypeError} If `bytes` is not a `Uint8Array`.
 *
 * @example Parse three labels
 * ```ts
 * import { encodeIdx, parseIdxLabels } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * const labels = parseIdxLabels(encodeIdx(new Uint8Array([5, 0, 4]), [3]));
 * assert.deepEqual([...labels], [5, 0, 4]);
 * ```
 *
 * @example A label out of range names its index and value
 * ```ts
 * import { encodeIdx, parseIdxLabels } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * const bytes = encodeIdx(new Uint8Array([5, 0, 12]), [3]);
 * assert.throws(() => parseIdxLabels(bytes), {
 *   name: "IdxFormatError",
 *   message: "Cannot parse IDX labels: label at index 2 is 12, expected 0 to 9",
 * });
 * ```
 */
export function parseIdxLabels(bytes: Uint8Array, source?: string): Uint8Array {
  const { data } = parseChecked(bytes, "labels", source, MAGIC_LABELS);
  for (let i = 0; i < data.length; i++) {
    if (data[i] > 9) {
      throw new IdxFormatError(
        `Cannot parse IDX labels${
          source === undefined ? "" : ` ${JSON.stringify(source)}`
        }: label at index ${i} is ${data[i]}, expected 0 to 9`,
      );
    }
  }
  return data;
}

/**
 * Encode unsigned bytes as an IDX file (type 0x08): the inverse of
 * {@linkcode parseIdx}.
 *
 * @param data The data, row-major; its length must be the product of `dims`.
 * @param dims Dimensions, outermost first: 1 to 4 integers from 0 to
 * 4294967295.
 * @returns A new buffer: the header followed by a copy of `data`.
 * @throws {TypeError} If `data` is not a `Uint8Array` or `dims` not an array.
 * @throws {RangeError} If the rank or a dimension is out of range, or the
 * data length does not match the dims.
 *
 * @example Encode three labels
 * ```ts
 * import { encodeIdx } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * const bytes = encodeIdx(new Uint8Array([7, 2, 1]), [3]);
 * assert.deepEqual([...bytes], [0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1]);
 * ```
 */
export function encodeIdx(data: Uint8Array, dims: number[]): Uint8Array {
  if (!(data instanceof Uint8Array)) {
    const got = data === null ? "null" : (data as object)?.constructor?.name ?? typeof data;
    throw new TypeError(
      `Cannot encode IDX: expected data to be a Uint8Array, got ${got}`,
    );
  }
  if (!Array.isArray(dims)) {
    throw new TypeError(
      `Cannot encode IDX: expected dims to be an array, got ${typeof dims}`,
    );
  }
  if (dims.length < 1 || dims.length > MAX_RANK) {
    throw new RangeError(
      `Cannot encode IDX: expected 1 to ${MAX_RANK} dims, got ${dims.length}`,
    );
  }
  dims.forEach((d, i) => {
    if (!Number.isInteger(d) || d < 0 || d > 0xffffffff) {
      throw new RangeError(
        `Cannot encode IDX: expected dim ${i} to be an integer from 0 to 4294967295, got ${d}`,
      );
    }
  });
  const dataLength = product(dims);
  if (data.length !== dataLength) {
    throw new RangeError(
      `Cannot encode IDX: expected ${dataLength} data bytes for dims ${
        dims.join("x")
      }, got ${data.length}`,
    );
  }
  const headerLength = 4 + 4 * dims.length;
  const out = new Uint8Array(headerLength + dataLength);
  const view = new DataView(out.buffer);
  out[2] = UBYTE;
  out[3] = dims.length;
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d));
  out.set(data, headerLength);
  return out;
}
