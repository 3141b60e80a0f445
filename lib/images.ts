/**
 * Model input: the image geometry every model here shares, the
 * {@linkcode LabelledImages} type, and the checks that every public entry
 * taking images or labels calls (so a bad input fails the same way, with a
 * named error, wherever it enters).
 *
 * @module
 */

/** Side of the square input images, in pixels. */
export const IMAGE_SIZE = 28;
/** Number of pixels in one image. */
export const IMAGE_PIXELS: number = IMAGE_SIZE * IMAGE_SIZE;
/** Number of classes (digits 0–9). */
export const NUM_CLASSES = 10;

/**
 * The float32 pixel value of each byte `k` of an 8-bit image, `k / 255`: what
 * `toFloat32Images` (and so `loadMnist`) makes of it. Internal.
 */
export const PIXEL_VALUES: Float32Array = new Float32Array(256).map((_, k) => k / 255);

/** Labelled images: `count` images of 28×28 pixels in [0, 1], and their digits. */
export interface LabelledImages {
  /** `count * 784` pixels in [0, 1], row-major `[count, 28, 28, 1]` (NHWC). */
  images: Float32Array;
  /** `count` labels, 0–9. */
  labels: Uint8Array;
  /** Number of images. */
  count: number;
}

/** What {@linkcode checkImages} is told about the images it checks. */
export interface CheckImagesOptions {
  /**
   * The number of images the caller says it passes; checked against the
   * length, so that e.g. one RGBA image (4 × 784 values) is not read as four.
   * @default {undefined} any whole number of images
   */
  count?: number;
}

/** How an unexpected value reads in an error message: its class, type or number. Internal. */
export function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "Array";
  if (typeof value === "object") {
    return (value as { constructor?: { name?: string } }).constructor?.name ?? "Object";
  }
  if (typeof value === "number") return String(value);
  return typeof value;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

/**
 * Check that `images` holds whole 28×28 grey images in pixel space [0, 1];
 * returns how many. The range scan is one pass over the values (a few
 * milliseconds for the 47 million training pixels).
 *
 * @param images Pixels, row-major `[n, 28, 28, 1]` (NHWC).
 * @param action What the caller cannot do with bad input, e.g. `"classify"`.
 * @param options The expected count, if the caller knows it.
 * @returns The number of images `n`.
 * @throws {TypeError} When `images` is not a non-empty `Float32Array` of
 * `n × 784` values, or holds `count × 784` values for another `count`, or
 * looks like interleaved RGBA pixel data.
 * @throws {RangeError} When a value is outside [0, 1] or not a number.
 *
 * @example Unscaled 0–255 pixels are refused
 * ```ts
 * import { checkImages } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * assert.equal(checkImages(new Float32Array(2 * 784), "classify"), 2);
 * assert.throws(() => checkImages(new Float32Array(784).fill(255), "classify"), {
 *   name: "RangeError",
 *   message:
 *     "Cannot classify: expected pixels in [0, 1], got a largest value of 255 (the first out of range at index 0); scale 0–255 pixels by 1/255",
 * });
 * ```
 */
export function checkImages(
  images: unknown,
  action: string,
  options: CheckImagesOptions = {},
): number {
  if (!(images instanceof Float32Array)) {
    throw new TypeError(
      `Cannot ${action}: expected images as a Float32Array, got ${describe(images)}`,
    );
  }
  const { count } = options;
  if (count !== undefined) {
    if (!Number.isSafeInteger(count) || count < 1) {
      throw new RangeError(
        `Cannot ${action}: expected count to be a positive integer, got ${count}`,
      );
    }
    if (images.length !== count * IMAGE_PIXELS) {
      const hint = images.length === count * IMAGE_PIXELS * 4
        ? " (RGBA pixel data? convert it with preprocessDigit)"
        : images.length === count * IMAGE_PIXELS * 3
        ? " (RGB pixel data? convert it with preprocessDigit)"
        : "";
      throw new TypeError(
        `Cannot ${action}: expected ${plural(count, "image")} of 28×28 (${
          count * IMAGE_PIXELS
        } values), got ${images.length} values${hint}`,
      );
    }
  }
  if (images.length === 0) {
    throw new TypeError(`Cannot ${action}: expected at least one image (784 values), got 0 values`);
  }
  if (images.length % IMAGE_PIXELS !== 0) {
    throw new TypeError(
      `Cannot ${action}: expected a multiple of ${IMAGE_PIXELS} pixels (n × 28 × 28), got ${images.length}`,
    );
  }
  checkPixelRange(images, action);
  const channels = count === undefined ? interleavedChannels(images) : 1;
  if (channels > 1) {
    throw new TypeError(
      `Cannot ${action}: expected grey images, got what looks like interleaved ${
        channels === 4 ? "RGBA" : "RGB"
      } pixel data (${channels} equal or colour-and-alpha values per pixel); convert it with preprocessDigit, or pass { count } to state how many images these are`,
    );
  }
  return images.length / IMAGE_PIXELS;
}

/** Throw a RangeError naming the largest (and smallest) value outside [0, 1], or a NaN. */
function checkPixelRange(images: Float32Array, action: string): void {
  // One pass for min and max; NaN fails both range comparisons below.
  let min = Infinity, max = -Infinity, nan = -1;
  for (let i = 0; i < images.length; i++) {
    const v = images[i];
    if (v < min) min = v;
    if (v > max) max = v;
    if (v !== v && nan < 0) nan = i;
  }
  if (nan < 0 && min >= 0 && max <= 1) return;
  const first = images.findIndex((v) => !(v >= 0 && v <= 1));
  const values = [max > 1 && `a largest value of ${max}`, min < 0 && `a smallest value of ${min}`];
  const got = nan >= 0
    ? `NaN at index ${nan}`
    : `${values.filter(Boolean).join(" and ")} (the first out of range at index ${first})`;
  const hint = nan < 0 && min >= 0 && max > 1.5 && max <= 255
    ? "; scale 0–255 pixels by 1/255"
    : nan < 0 && max <= 1.01 && min >= -0.01
    ? "; clamp them to [0, 1]"
    : "";
  throw new RangeError(`Cannot ${action}: expected pixels in [0, 1], got ${got}${hint}`);
}

/**
 * 4 or 3 when a multi-image array is more likely RGBA or RGB pixel data laid
 * out as `[r, g, b, a, …]` or `[r, g, b, …]` than grey images; else 1. Grey
 * pixel data read as colour has `r = g = b` in every group (a grey drawing)
 * or colour all 0 with the ink in the alpha channel (black strokes on a
 * transparent canvas). Real grey digits are anti-aliased: their neighbouring
 * pixels differ within some group, so they are never taken for colour.
 */
function interleavedChannels(images: Float32Array): number {
  for (const channels of [4, 3]) {
    if (images.length % (channels * IMAGE_PIXELS) !== 0) continue;
    let grey = true, inkInAlpha = channels === 4, varies = false;
    for (let i = 0; i < images.length && (grey || inkInAlpha); i += channels) {
      const [r, g, b] = [images[i], images[i + 1], images[i + 2]];
      if (r !== g || g !== b) grey = false;
      if (r !== 0 || g !== 0 || b !== 0) inkInAlpha = false;
      if (channels === 4 ? images[i + 3] !== r : i > 0 && r !== images[i - channels]) varies = true;
    }
    // Blank images (every value equal) stay grey images.
    if ((grey || inkInAlpha) && varies) return channels;
  }
  return 1;
}

/**
 * Check that labels are digits 0–9; `count` of them.
 *
 * @param labels The labels.
 * @param count How many there must be.
 * @param action What the caller cannot do with bad labels.
 * @throws {TypeError} When `labels` is not a Uint8Array.
 * @throws {RangeError} When there are not `count` of them, or one is above 9.
 */
function checkLabels(labels: unknown, count: number, action: string): void {
  if (!(labels instanceof Uint8Array)) {
    throw new TypeError(
      `Cannot ${action}: expected labels as a Uint8Array, got ${describe(labels)}`,
    );
  }
  if (labels.length !== count) {
    throw new RangeError(`Cannot ${action}: expected ${count} labels, got ${labels.length}`);
  }
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] >= NUM_CLASSES) {
      throw new RangeError(
        `Cannot ${action}: expected labels 0 to 9, got ${labels[i]} at index ${i}`,
      );
    }
  }
}

/**
 * Check a labelled set: `count` whole 28×28 images in [0, 1] and `count`
 * labels 0–9. Every public function that takes {@linkcode LabelledImages}
 * calls it first.
 *
 * @param data The images, labels and count.
 * @param action What the caller cannot do with bad data, e.g. `"train"`.
 * @returns `data.count`.
 * @throws {TypeError} When the fields have the wrong types.
 * @throws {RangeError} When the count, the lengths, a pixel or a label is out of range.
 *
 * @example A label of 10 is refused with its index
 * ```ts
 * import { checkLabelled } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * const images = new Float32Array(2 * 784);
 * assert.equal(checkLabelled({ images, labels: new Uint8Array([3, 9]), count: 2 }, "train"), 2);
 * assert.throws(() => checkLabelled({ images, labels: new Uint8Array([3, 10]), count: 2 }, "train"), {
 *   name: "RangeError",
 *   message: "Cannot train: expected labels 0 to 9, got 10 at index 1",
 * });
 * ```
 */
export function checkLabelled(data: LabelledImages, action: string): number {
  if (typeof data !== "object" || data === null) {
    throw new TypeError(
      `Cannot ${action}: expected { images, labels, count }, got ${describe(data)}`,
    );
  }
  const { images, labels, count } = data;
  if (!(images instanceof Float32Array)) {
    throw new TypeError(
      `Cannot ${action}: expected images as a Float32Array, got ${describe(images)}`,
    );
  }
  if (!Number.isSafeInteger(count) || count < 1) {
    throw new RangeError(`Cannot ${action}: expected a positive image count, got ${count}`);
  }
  if (images.length !== count * IMAGE_PIXELS) {
    throw new RangeError(
      `Cannot ${action}: expected ${
        count * IMAGE_PIXELS
      } pixels for ${count} images, got ${images.length}`,
    );
  }
  checkLabels(labels, count, action);
  checkPixelRange(images, action);
  return count;
}

/**
 * Copy the images `ids` of a set, in that order, into one buffer. Internal.
 *
 * @param images The set's pixels, `IMAGE_PIXELS` a row.
 * @param ids Row indices (each in range; not checked).
 * @param out Where to write, at least `ids.length * IMAGE_PIXELS` long.
 * @returns The first `ids.length * IMAGE_PIXELS` values of `out`.
 *
 * @example Gather rows 2 and 0
 * ```ts
 * import { gatherImages, IMAGE_PIXELS } from "./images.ts";
 * import assert from "node:assert/strict";
 *
 * const images = new Float32Array(3 * IMAGE_PIXELS).map((_, i) => Math.floor(i / IMAGE_PIXELS));
 * const batch = gatherImages(images, Int32Array.of(2, 0));
 * assert.deepEqual([batch[0], batch[IMAGE_PIXELS]], [2, 0]);
 * ```
 */
export function gatherImages(
  images: Float32Array,
  ids: Int32Array,
  out: Float32Array = new Float32Array(ids.length * IMAGE_PIXELS),
): Float32Array {
  const batch = out.subarray(0, ids.length * IMAGE_PIXELS);
  ids.forEach((id, j) =>
    batch.set(images.subarray(id * IMAGE_PIXELS, (id + 1) * IMAGE_PIXELS), j * IMAGE_PIXELS)
  );
  return batch;
}
