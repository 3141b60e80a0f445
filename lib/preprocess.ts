/**
 * Turn any decoded image of one digit into a 28×28 model input the way MNIST
 * was made (LeCun et al., "The MNIST database",
 * http://yann.lecun.com/exdb/mnist/): light digit on black, size-normalised
 * to fit a 20×20 box keeping its aspect ratio, anti-aliased, and centred in
 * the 28×28 field by its centre of mass.
 *
 * @module
 */

/** Decoded pixel data, as a canvas `ImageData` or a PNG/JPEG decoder gives it. */
export interface PixelImage {
  /** Width in pixels (≥ 1). */
  width: number;
  /** Height in pixels (≥ 1). */
  height: number;
  /** Row-major samples, channels interleaved (grey; grey+alpha; RGB; RGBA). */
  data: Uint8Array | Uint8ClampedArray | Uint16Array;
  /**
   * Channels per pixel, 1–4: grey, grey+alpha, RGB or RGBA.
   * @default {data.length / (width * height)}
   */
  channels?: number;
  /**
   * Bits per sample, 8 or 16 (16 only in a `Uint16Array`; 8 in any array).
   * @default {16 for a Uint16Array, else 8}
   */
  depth?: number;
}

/** Side of the output field, px. */
const FIELD = 28;
/** The digit's longer side after scaling, px (MNIST's 20×20 box). */
const BOX = 20;
/**
 * Where the centre of mass goes, as a pixel index (Σ v·x / Σ v): pixel 14,
 * i.e. 14.5 px from the field's edge. That is where MNIST has it: over all
 * 70 000 digits it lies in [13.48, 14.50], spread evenly.
 */
const CENTRE = 14;
/** Alpha from which a pixel counts as opaque (for background detection). */
const OPAQUE = 0.5;
/** Least ink-minus-background difference (grey levels in [0, 1]) that is not blank. */
const MIN_CONTRAST = 0.1;
/**
 * Normalised level above which a pixel is ink, for the crop: it ignores
 * faint noise (5% of full ink is 13 of 255) yet keeps the whole bounding box
 * of 9997 of MNIST's 10 000 test digits (the rest lose one faint row).
 */
const INK = 0.05;
/** ITU-R BT.601 luma weights for R, G, B. */
const LUMA = [0.299, 0.587, 0.114];

/**
 * Turn a decoded image of one digit into a 28×28 MNIST-style model input,
 * following LeCun et al., "The MNIST database"
 * (http://yann.lecun.com/exdb/mnist/), in these steps:
 *
 * 1. Validate the image.
 * 2. Convert to grey in [0, 1]: RGB by ITU-R BT.601 luma
 *    (0.299 R + 0.587 G + 0.114 B), samples divided by 255 (or 65535 for
 *    16-bit).
 * 3. With alpha, composite onto the detected background: if opaque pixels
 *    (alpha ≥ 0.5) cover at least half of the image border, the background is
 *    their median grey; otherwise (strokes on a transparent canvas, whose
 *    colour under alpha 0 means nothing) it is the opposite of the ink, whose
 *    level is the alpha-weighted mean grey of the opaque pixels: white for
 *    dark ink, black for light ink.
 * 4. Fix the polarity: the background level is the median grey of the border
 *    pixels; if it is above 0.5 (dark on light), invert. Then subtract the
 *    background and stretch so the brightest pixel is 1:
 *    `v = clamp((g - bg) / (max - bg), 0, 1)`.
 * 5. Refuse a blank image: one with no opaque pixel, or whose brightest pixel
 *    is less than 0.1 above the background.
 * 6. Crop to the bounding box of the ink (`v > 0.05`).
 * 7. Scale so the longer side is 20 px, keeping the aspect ratio (the shorter
 *    side is at least 1 px), anti-aliased: area averaging over each output
 *    pixel's exact footprint when shrinking (MNIST's grey edges come from
 *    this), bilinear when enlarging. Values are not re-stretched afterwards.
 * 8. Place the box in a black 28×28 field, shifted by whole pixels so that
 *    its centre of mass (`Σ v·x / Σ v` over pixel indices) lands on pixel
 *    (14, 14), as in MNIST, but never so far that part of the box falls out
 *    (a tie, as for a symmetric box of even size, goes right or down).
 *
 * @param image The decoded image, e.g. a canvas `ImageData`.
 * @returns 784 values in [0, 1], row-major 28×28, light digit on black.
 * @throws {TypeError} If `image` is not an object, `width`, `height`,
 * `channels` or `depth` is not a number, `data` is not a `Uint8Array`,
 * `Uint8ClampedArray` or `Uint16Array`, its length is not
 * `width × height × channels`, or depth 16 comes in an 8-bit array.
 * @throws {RangeError} If `width` or `height` is not a positive integer,
 * `channels` is not 1–4, `depth` is not 8 or 16, an 8-bit sample in a
 * `Uint16Array` is above 255, or the image is blank.
 *
 * @example A dark 2×4 stroke on white paper becomes a 10×20 block, centred
 * ```ts
 * import { preprocessDigit } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * const [width, height] = [12, 9];
 * const data = new Uint8ClampedArray(width * height * 4).fill(255); // white, opaque
 * for (let y = 3; y < 7; y++) {
 *   for (let x = 5; x < 7; x++) data.fill(0, (y * width + x) * 4, (y * width + x) * 4 + 3);
 * }
 * const input = preprocessDigit({ width, height, data });
 * assert.equal(input.length, 784);
 * assert.equal(input.filter((v) => v > 0.99).length, 10 * 20); // 2×4 px scaled by 5
 * assert.equal(input.filter((v) => v > 0.01).length, 10 * 20); // on black
 * assert.ok(input[14 * 28 + 14] > 0.99); // around the centre
 * ```
 *
 * @example A transparent canvas throws
 * ```ts
 * import { preprocessDigit } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * assert.throws(() => preprocessDigit({ width: 2, height: 2, data: new Uint8Array(16) }), {
 *   name: "RangeError",
 *   message: "Cannot preprocess image: expected a digit, got a blank image (no pixel is opaque)",
 * });
 * ```
 */
export function preprocessDigit(image: PixelImage): Float32Array {
  const { width, height, channels, maxSample } = checkImage(image);
  const border = borderIndices(width, height);
  const { grey, alpha } = toGrey(image.data, channels, maxSample);
  if (alpha) compositeOnBackground(grey, alpha, border);
  const ink = normaliseInk(grey, border);
  const box = inkBox(ink, width, height);
  const scale = BOX / Math.max(box.width, box.height); // output px per source px
  const outWidth = Math.max(1, Math.round(box.width * scale));
  const outHeight = Math.max(1, Math.round(box.height * scale));
  const digit = resize(ink, width, box, outWidth, outHeight);
  return placeByCentreOfMass(digit, outWidth, outHeight);
}

/** Validated geometry of a {@linkcode PixelImage}. */
interface ImageShape {
  width: number;
  height: number;
  channels: number;
  /** The sample value that means full intensity: 255 or 65535. */
  maxSample: number;
}

/** Throw `ErrorClass` with "Cannot preprocess image: " and `detail`. */
function fail(ErrorClass: typeof TypeError, detail: string): never {
  throw new ErrorClass(`Cannot preprocess image: ${detail}`);
}

/** What a value is, for error messages: its constructor name or `typeof`. */
function describe(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "object") {
    return (value as { constructor?: { name?: string } }).constructor?.name ?? "Object";
  }
  return typeof value;
}

/** Check a number field: TypeError if not a number, RangeError if not allowed. */
function checkNumber(name: string, value: unknown, ok: (n: number) => boolean, want: string) {
  if (typeof value !== "number") {
    fail(TypeError, `expected ${name} ${want}, got ${describe(value)}`);
  }
  if (!ok(value)) fail(RangeError, `expected ${name} ${want}, got ${value}`);
}

/** Check everything about `image` that can be checked without reading its pixels. */
function checkImage(image: PixelImage): ImageShape {
  if (typeof image !== "object" || image === null) {
    fail(TypeError, `expected an object with width, height and data, got ${describe(image)}`);
  }
  const { width, height, data } = image;
  const positive = (n: number) => Number.isSafeInteger(n) && n >= 1;
  checkNumber("width", width, positive, "a positive integer");
  checkNumber("height", height, positive, "a positive integer");
  if (
    !(data instanceof Uint8Array || data instanceof Uint8ClampedArray ||
      data instanceof Uint16Array)
  ) {
    fail(
      TypeError,
      `expected data to be a Uint8Array, Uint8ClampedArray or Uint16Array, got ${describe(data)}`,
    );
  }
  const pixels = width * height;
  const size = `${width}×${height}`;
  const channels = image.channels ?? data.length / pixels;
  if (image.channels === undefined) {
    if (!Number.isInteger(channels) || channels < 1 || channels > 4) {
      fail(TypeError, `expected data.length 1–4 × ${pixels} (${size} pixels), got ${data.length}`);
    }
  } else {
    checkNumber("channels", channels, (n) => Number.isInteger(n) && n >= 1 && n <= 4, "1–4");
    if (data.length !== pixels * channels) {
      fail(
        TypeError,
        `expected data.length ${pixels * channels} (${size}×${channels}), got ${data.length}`,
      );
    }
  }
  const wide = data instanceof Uint16Array;
  const depth = image.depth ?? (wide ? 16 : 8);
  checkNumber("depth", depth, (n) => n === 8 || n === 16, "8 or 16");
  if (depth === 16 && !wide) {
    fail(TypeError, `expected data to be a Uint16Array for depth 16, got ${describe(data)}`);
  }
  const maxSample = depth === 16 ? 65535 : 255;
  if (wide && depth === 8) {
    const i = data.findIndex((s) => s > maxSample);
    if (i >= 0) {
      fail(RangeError, `expected samples 0–255 for depth 8, got ${data[i]} at index ${i}`);
    }
  }
  return { width, height, channels, maxSample };
}

/** Indices of the pixels on the image's edge, each once. */
function borderIndices(width: number, height: number): number[] {
  const out: number[] = [];
  for (let y = 0; y < height; y++) {
    if (y === 0 || y === height - 1) {
      for (let x = 0; x < width; x++) out.push(y * width + x);
    } else {
      out.push(y * width);
      if (width > 1) out.push(y * width + width - 1);
    }
  }
  return out;
}

/** Grey and alpha planes in [0, 1], one value per pixel (alpha only for 2 or 4 channels). */
function toGrey(
  data: PixelImage["data"],
  channels: number,
  maxSample: number,
): { grey: Float64Array; alpha?: Float64Array } {
  const pixels = data.length / channels;
  const grey = new Float64Array(pixels);
  const alpha = channels % 2 === 0 ? new Float64Array(pixels) : undefined;
  const colour = channels >= 3;
  for (let p = 0, s = 0; p < pixels; p++, s += channels) {
    const g = colour ? LUMA[0] * data[s] + LUMA[1] * data[s + 1] + LUMA[2] * data[s + 2] : data[s];
    grey[p] = g / maxSample;
    if (alpha) alpha[p] = data[s + channels - 1] / maxSample;
  }
  return { grey, alpha };
}

/** The median of some values (the mean of the middle two for an even count). */
function median(values: number[]): number {
  const sorted = values.toSorted((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Composite `grey` (in place) onto its detected background: `a·g + (1 − a)·bg`. */
function compositeOnBackground(grey: Float64Array, alpha: Float64Array, border: number[]) {
  const opaqueBorder = border.filter((p) => alpha[p] >= OPAQUE);
  let background: number;
  if (2 * opaqueBorder.length >= border.length) {
    background = median(opaqueBorder.map((p) => grey[p]));
  } else {
    let inkSum = 0, weight = 0; // alpha-weighted mean grey of the opaque pixels
    for (let p = 0; p < grey.length; p++) {
      if (alpha[p] < OPAQUE) continue;
      inkSum += alpha[p] * grey[p];
      weight += alpha[p];
    }
    if (weight === 0) fail(RangeError, "expected a digit, got a blank image (no pixel is opaque)");
    background = inkSum / weight < 0.5 ? 1 : 0;
  }
  for (let p = 0; p < grey.length; p++) {
    grey[p] = alpha[p] * grey[p] + (1 - alpha[p]) * background;
  }
}

/**
 * Light-on-black ink in [0, 1]: invert if the border is light, subtract the
 * background's level plus its noise, stretch to 1. The noise is how far the
 * border's levels rise above their median (the 99th percentile: paper
 * grain, uneven lighting) when most of the border varies, at most half the
 * contrast so that a digit touching the border keeps its strokes; for a
 * clean scan it is 0 and nothing changes.
 */
function normaliseInk(grey: Float64Array, border: number[]): Float64Array {
  const invert = median(border.map((p) => grey[p])) > 0.5; // dark on light
  const levels = invert ? grey.map((g) => 1 - g) : grey;
  const borderLevels = border.map((p) => levels[p]).sort((a, b) => a - b);
  const background = median(borderLevels);
  const top = levels.reduce((m, g) => Math.max(m, g), 0);
  if (top - background < MIN_CONTRAST) {
    fail(
      RangeError,
      `expected a digit, got a blank image (contrast ${(top - background).toFixed(3)}, ` +
        `need ${MIN_CONTRAST})`,
    );
  }
  // A clean scan's border sits at one level but for the odd stroke that
  // touches it; a photo's (grain, uneven light) varies almost everywhere.
  const varying = borderLevels.filter((l) => Math.abs(l - background) > 1 / 255).length;
  const noise = varying > 0.2 * borderLevels.length
    ? borderLevels[Math.floor(0.99 * (borderLevels.length - 1))] - background
    : 0;
  const floor = background + Math.min(Math.max(0, noise), 0.5 * (top - background));
  return levels.map((g) => Math.min(1, Math.max(0, (g - floor) / (top - floor))));
}

/** A rectangle of pixels: left, top, width and height, px. */
interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** The bounding box of the pixels above {@linkcode INK} (never empty: the brightest is 1). */
function inkBox(ink: Float64Array, width: number, height: number): Box {
  let left = width, top = height, right = -1, bottom = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (ink[y * width + x] <= INK) continue;
      left = Math.min(left, x);
      right = Math.max(right, x);
      top = Math.min(top, y);
      bottom = Math.max(bottom, y);
    }
  }
  return { x: left, y: top, width: right - left + 1, height: bottom - top + 1 };
}

/** Source pixels (from `first` on) and their weights that make one output pixel, on one axis. */
interface Taps {
  first: number;
  weights: number[];
}

/**
 * Resampling taps for `inLen` → `outLen` pixels on one axis: area averaging
 * when shrinking (output pixel `j` covers source span `[j, j + 1) · in / out`,
 * each source pixel weighted by its overlap), linear interpolation between
 * pixel centres when enlarging.
 */
function axisTaps(inLen: number, outLen: number): Taps[] {
  return Array.from({ length: outLen }, (_, j): Taps => {
    if (outLen <= inLen) {
      const [lo, hi] = [j * inLen / outLen, (j + 1) * inLen / outLen];
      const first = Math.floor(lo);
      const weights = [];
      for (let i = first; i < hi; i++) {
        weights.push((Math.min(hi, i + 1) - Math.max(lo, i)) / (hi - lo));
      }
      return { first, weights };
    }
    const x = Math.min(inLen - 1, Math.max(0, (j + 0.5) * inLen / outLen - 0.5));
    const first = Math.floor(x), f = x - first;
    return { first, weights: f > 0 ? [1 - f, f] : [1] };
  });
}

/** Resample `box` of `ink` (row stride `stride`) to `outWidth × outHeight`, rows then columns. */
function resize(
  ink: Float64Array,
  stride: number,
  box: Box,
  outWidth: number,
  outHeight: number,
): Float64Array {
  const apply = (taps: Taps, read: (i: number) => number) =>
    taps.weights.reduce((sum, w, k) => sum + w * read(taps.first + k), 0);
  const across = axisTaps(box.width, outWidth);
  const down = axisTaps(box.height, outHeight);
  const rows = new Float64Array(box.height * outWidth); // [box.height, outWidth]
  for (let y = 0; y < box.height; y++) {
    const row = (box.y + y) * stride + box.x;
    across.forEach((t, x) => rows[y * outWidth + x] = apply(t, (i) => ink[row + i]));
  }
  const out = new Float64Array(outHeight * outWidth); // [outHeight, outWidth]
  down.forEach((t, y) => {
    for (let x = 0; x < outWidth; x++) {
      out[y * outWidth + x] = apply(t, (i) => rows[i * outWidth + x]);
    }
  });
  return out;
}

/**
 * Shift (whole px) that puts centre of mass `com` on {@linkcode CENTRE},
 * keeping `size` px inside. A tie (a symmetric box of even size) goes right or
 * down; `com` is first rounded to 1e-6 px so that float noise cannot flip it.
 */
function offsetFor(com: number, size: number): number {
  const shift = Math.round(CENTRE - Math.round(com * 1e6) / 1e6);
  return Math.min(FIELD - size, Math.max(0, shift));
}

/** Place the `width × height` digit in a black 28×28 field by its centre of mass. */
function placeByCentreOfMass(digit: Float64Array, width: number, height: number): Float32Array {
  let mass = 0, sumX = 0, sumY = 0; // Σ v, Σ v·x, Σ v·y over pixel indices
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const v = digit[y * width + x];
      mass += v;
      sumX += v * x;
      sumY += v * y;
    }
  }
  const left = offsetFor(sumX / mass, width);
  const top = offsetFor(sumY / mass, height);
  const field = new Float32Array(FIELD * FIELD); // [28, 28]
  for (let y = 0; y < height; y++) {
    field.set(digit.subarray(y * width, (y + 1) * width), (top + y) * FIELD + left);
  }
  return field;
}
