/**
 * Data augmentation for batches of MNIST digits in pixel space.
 *
 * A batch is a `Float32Array` of `count * 28 * 28` values in [0, 1], row-major
 * `[count, 28, 28]`, 0 = background. Every function here returns a NEW batch
 * and never modifies its input. Geometry uses pixel centres at integer
 * coordinates, so the image centre is (13.5, 13.5); x grows to the right and y
 * grows downwards. Resampling is bilinear by inverse mapping, and samples that
 * fall outside the image read as background (0).
 *
 * The work is plain TypeScript on typed arrays: no per-pixel allocations, and
 * the elastic fields live in scratch buffers reused across calls.
 *
 * @module
 */

import { checkImages, describe } from "./images.ts";
import { createRng, type Rng } from "./rng.ts";

/** Side of an MNIST image in pixels. */
const SIZE = 28;
/** Pixels per MNIST image. */
const PIXELS = SIZE * SIZE;
/** Image centre: pixel centres sit at 0..27, so the centre is 13.5. */
const CENTER = (SIZE - 1) / 2;
/** Largest useful Gaussian radius: a wider kernel only adds zero padding. */
const MAX_RADIUS = SIZE - 1;

/**
 * Parameters of one affine warp about the image centre. The forward map is
 * `dst = R(rotation) · Shear(shear) · scale · (src - centre) + centre + (dx, dy)`,
 * and the image is resampled by the inverse map with bilinear interpolation.
 * Omitted fields are the identity.
 */
export interface AffineParams {
  /**
   * Rotation in degrees; positive turns the digit counter-clockwise as
   * displayed (the same sense as `np.rot90` and PIL's `rotate`).
   * @default {0}
   */
  rotation?: number;
  /**
   * Shift in pixels; positive moves the digit right.
   * @default {0}
   */
  dx?: number;
  /**
   * Shift in pixels; positive moves the digit down.
   * @default {0}
   */
  dy?: number;
  /**
   * Uniform zoom factor, > 0; above 1 enlarges the digit.
   * @default {1}
   */
  scale?: number;
  /**
   * Horizontal shear in degrees (`x' = x + tan(shear) · y`, about the
   * centre), in (-90, 90).
   * @default {0}
   */
  shear?: number;
}

/**
 * Options for {@linkcode augmentBatch}. Every range is scaled by
 * {@linkcode AugmentOptions.strength}; `{}` gives the defaults below.
 */
export interface AugmentOptions {
  /**
   * Probability that an image gets the affine warp (rotation, translation,
   * scale and shear composed into one matrix, so it is resampled once).
   * Why 0.8: most digits get jitter, and a fifth stay clean so the model
   * still sees the true distribution.
   * @default {0.8}
   */
  affineProbability?: number;
  /**
   * Largest rotation in degrees, drawn uniformly from ±rotationDegrees;
   * in [0, 180]. Why 30: handwriting slant rarely exceeds this, and much
   * more starts to turn a 6 into a 9.
   * @default {30}
   */
  rotationDegrees?: number;
  /**
   * Largest shift as a fraction of the image side (28 px), drawn uniformly and
   * independently for x and y; in [0, 1]. Why 0.2: about ±5.6 px, and MNIST
   * digits sit in a centred 20 px box, so most strokes stay in the frame.
   * @default {0.2}
   */
  translate?: number;
  /**
   * Zoom range `[min, max]`, drawn uniformly; `0 < min <= max`. Why ±20%:
   * writers vary digit size by about this much.
   * @default {[0.8, 1.2]}
   */
  scale?: readonly [number, number];
  /**
   * Largest horizontal shear in degrees, drawn uniformly from ±shearDegrees;
   * in [0, 90). Why 15: mimics italic writing without flattening strokes.
   * @default {15}
   */
  shearDegrees?: number;
  /**
   * Probability that an image gets the elastic distortion. Why 0.5: it is the
   * strongest and slowest transform, and half the batch is enough.
   * @default {0.5}
   */
  elasticProbability?: number;
  /**
   * Elastic displacement scale in pixels (alpha in Simard et al. 2003); >= 0.
   * Why 34: Simard et al.'s value for MNIST.
   * @default {34}
   */
  elasticAlpha?: number;
  /**
   * Standard deviation in pixels of the Gaussian that smooths the elastic
   * fields; >= 0. Not scaled by `strength` (it sets smoothness, not size).
   * Why 4: Simard et al.'s value, smooth enough to bend strokes without
   * tearing them.
   * @default {4}
   */
  elasticSigma?: number;
  /**
   * Probability that an image gets Gaussian pixel noise. Why 0.3: builds
   * robustness to noise without drowning the clean digits.
   * @default {0.3}
   */
  noiseProbability?: number;
  /**
   * Standard deviation of the noise in pixel units (the image is then
   * clamped to [0, 1]); >= 0. Why 0.1: visible speckle that leaves strokes
   * readable.
   * @default {0.1}
   */
  noiseSigma?: number;
  /**
   * Multiplier in [0, 1] for every range above (rotation, translation, the
   * distance of the scale range from 1, shear, elastic alpha and noise
   * sigma); probabilities and `elasticSigma` are not scaled. Lets a schedule
   * augment hard early and lightly late; 0 turns augmentation off. Why 1: the
   * ranges as given.
   * @default {1}
   */
  strength?: number;
}

// ---------------------------------------------------------------------------
// Validation

/** Check a batch (the shared image check; an empty batch is allowed) and return its image count. */
function countImages(action: string, images: unknown): number {
  if (images instanceof Float32Array && images.length === 0) return 0;
  return checkImages(images, action);
}

function checkNumber(action: string, name: string, value: unknown): number {
  if (typeof value !== "number") {
    throw new TypeError(
      `Cannot ${action}: expected ${name} to be a number, got ${describe(value)}`,
    );
  }
  return value;
}

function checkFinite(action: string, name: string, value: unknown): number {
  const x = checkNumber(action, name, value);
  if (!Number.isFinite(x)) {
    throw new RangeError(
      `Cannot ${action}: expected ${name} to be a finite number, got ${x}`,
    );
  }
  return x;
}

function checkNonNegative(
  action: string,
  name: string,
  value: unknown,
): number {
  const x = checkNumber(action, name, value);
  if (!(x >= 0 && x < Infinity)) {
    throw new RangeError(
      `Cannot ${action}: expected ${name} to be a finite number >= 0, got ${x}`,
    );
  }
  return x;
}

function checkInterval(
  action: string,
  name: string,
  value: unknown,
  lo: number,
  hi: number,
  hiOpen = false,
): number {
  const x = checkNumber(action, name, value);
  if (!(x >= lo && (hiOpen ? x < hi : x <= hi))) {
    throw new RangeError(
      `Cannot ${action}: expected ${name} in [${lo}, ${hi}${hiOpen ? ")" : "]"}, got ${x}`,
    );
  }
  return x;
}

function checkRng(action: string, rng: unknown): Rng {
  if (
    typeof rng !== "object" || rng === null ||
    typeof (rng as Rng).next !== "function" ||
    typeof (rng as Rng).normal !== "function"
  ) {
    throw new TypeError(
      `Cannot ${action}: expected rng to be an Rng (from createRng), got ${describe(rng)}`,
    );
  }
  return rng as Rng;
}

// ---------------------------------------------------------------------------
// Geometry

/**
 * Inverse affine map as `[a, b, c, d, ox, oy]`: the output pixel (x, y) samples
 * the source at (a·x + b·y + ox, c·x + d·y + oy).
 */
type InverseMap = Float64Array;

/** cos and sin of an angle in degrees, exact at multiples of 90°. */
function cosSinDeg(degrees: number, out: Float64Array): void {
  const quarter = degrees / 90;
  if (Number.isInteger(quarter)) {
    const q = ((quarter % 4) + 4) % 4;
    out[0] = q === 0 ? 1 : q === 2 ? -1 : 0;
    out[1] = q === 1 ? 1 : q === 3 ? -1 : 0;
  } else {
    const t = degrees * (Math.PI / 180);
    out[0] = Math.cos(t);
    out[1] = Math.sin(t);
  }
}

const cs = new Float64Array(2);

/** Fill `m` with the inverse map of the forward affine warp. */
function inverseMap(
  m: InverseMap,
  rotation: number,
  dx: number,
  dy: number,
  scale: number,
  shear: number,
): void {
  cosSinDeg(rotation, cs);
  const cos = cs[0], sin = cs[1];
  // Forward M = R · Sh · s with R = [[cos, sin], [-sin, cos]] (counter-
  // clockwise on screen, y down) and Sh = [[1, k], [0, 1]].
  // Inverse M⁻¹ = (1/s) · [[1, -k], [0, 1]] · [[cos, -sin], [sin, cos]].
  const k = shear === 0 ? 0 : Math.tan(shear * (Math.PI / 180));
  const inv = 1 / scale;
  const a = (cos - k * sin) * inv;
  const b = (-sin - k * cos) * inv;
  const c = sin * inv;
  const d = cos * inv;
  // src = M⁻¹ (dst - centre - t) + centre
  const px = CENTER + dx, py = CENTER + dy;
  m[0] = a;
  m[1] = b;
  m[2] = c;
  m[3] = d;
  m[4] = CENTER - (a * px + b * py);
  m[5] = CENTER - (c * px + d * py);
}

function isIdentity(m: InverseMap): boolean {
  return m[0] === 1 && m[1] === 0 && m[2] === 0 && m[3] === 1 &&
    m[4] === 0 && m[5] === 0;
}

/** Side of {@linkcode padded}: the image with a border of one background pixel. */
const PADDED_SIDE = SIZE + 2;
/** The image being warped, as float64, inside a border of zeros (background). */
const padded = new Float64Array(PADDED_SIDE * PADDED_SIDE);

/** Copy one image into the middle of {@linkcode padded}; the border stays 0. */
function padImage(src: Float32Array, so: number): void {
  for (let y = 0; y < SIZE; y++) {
    const from = so + y * SIZE, to = (y + 1) * PADDED_SIDE + 1;
    for (let x = 0; x < SIZE; x++) padded[to + x] = src[from + x];
  }
}

/**
 * Resample one image: output (x, y) reads the source at m(x + fx, y + fy),
 * where (fx, fy) is the optional displacement field, by bilinear
 * interpolation. Outside the image reads as 0: a sample whose 2 × 2
 * neighbours all lie outside is 0, and one on the edge reads the zero border
 * of {@linkcode padded}, so no neighbour needs a bounds check. (The sampling
 * is written out in the loop: as a function, V8 did not inline it, and the
 * warp took 1.6× as long.)
 */
function warpImage(
  src: Float32Array,
  so: number,
  dst: Float32Array,
  dOff: number,
  m: InverseMap,
  fieldX: Float64Array | null,
  fieldY: Float64Array | null,
): void {
  padImage(src, so);
  const a = m[0], b = m[1], c = m[2], d = m[3], ox = m[4], oy = m[5];
  for (let y = 0, i = 0; y < SIZE; y++) {
    const rx = b * y + ox, ry = d * y + oy;
    const row = dOff + y * SIZE;
    for (let x = 0; x < SIZE; x++, i++) {
      let sx: number, sy: number;
      if (fieldX === null || fieldY === null) {
        sx = a * x + rx;
        sy = c * x + ry;
      } else {
        const px = x + fieldX[i], py = y + fieldY[i];
        sx = a * px + b * py + ox;
        sy = c * px + d * py + oy;
      }
      const x0 = Math.floor(sx), y0 = Math.floor(sy);
      if (x0 < -1 || y0 < -1 || x0 >= SIZE || y0 >= SIZE) {
        dst[row + x] = 0;
        continue;
      }
      const fx = sx - x0, fy = sy - y0;
      const j = (y0 + 1) * PADDED_SIDE + x0 + 1;
      const v00 = padded[j], v01 = padded[j + PADDED_SIDE];
      const top = v00 + (padded[j + 1] - v00) * fx;
      const bottom = v01 + (padded[j + PADDED_SIDE + 1] - v01) * fx;
      dst[row + x] = top + (bottom - top) * fy;
    }
  }
}

// ---------------------------------------------------------------------------
// Elastic fields

const fieldX = new Float64Array(PIXELS);
const fieldY = new Float64Array(PIXELS);
const tempX = new Float64Array(PIXELS);
const tempY = new Float64Array(PIXELS);
let kernelSigma = NaN;
/** Half of the symmetric Gaussian: halfKernel[k] is the weight at offset ±k. */
let halfKernel = new Float64Array(1);

/** The normalised Gaussian for sigma, cached for the last sigma used. */
function gaussianKernel(sigma: number): Float64Array {
  if (sigma !== kernelSigma) {
    const r = Math.min(MAX_RADIUS, Math.ceil(3 * sigma));
    const w = new Float64Array(r + 1);
    w[0] = 1;
    let sum = 1;
    for (let k = 1; k <= r; k++) {
      w[k] = Math.exp(-(k * k) / (2 * sigma * sigma));
      sum += 2 * w[k];
    }
    for (let k = 0; k <= r; k++) w[k] /= sum;
    halfKernel = w;
    kernelSigma = sigma;
  }
  return halfKernel;
}

/**
 * Fill fieldX/fieldY with alpha · G_sigma * U(-1, 1): two uniform random
 * fields blurred by a separable Gaussian with zero padding (like SciPy's
 * `gaussian_filter(mode="constant")` in the usual Simard recipe). Each
 * `rng.next()` gives two 16-bit uniforms, its high half to the x field and
 * its low half to the y field: plenty of resolution for a field that is then
 * averaged over hundreds of pixels, at half the cost.
 */
function elasticFields(alpha: number, sigma: number, rng: Rng): void {
  for (let i = 0; i < PIXELS; i++) {
    const bits = rng.next() * 4294967296;
    fieldX[i] = ((bits >>> 16) + 0.5) * (2 / 65536) - 1;
    fieldY[i] = ((bits & 0xffff) + 0.5) * (2 / 65536) - 1;
  }
  const w = gaussianKernel(sigma);
  const r = w.length - 1;
  // Rows: temp[y, x] = Σ_k w[|k|] field[y, x + k], pairing ±k.
  for (let y = 0; y < SIZE; y++) {
    const row = y * SIZE;
    for (let x = 0; x < SIZE; x++) {
      const i = row + x;
      let sx = w[0] * fieldX[i], sy = w[0] * fieldY[i];
      for (let k = 1; k <= r; k++) {
        let ax = 0, ay = 0;
        if (x + k < SIZE) {
          ax = fieldX[i + k];
          ay = fieldY[i + k];
        }
        if (x - k >= 0) {
          ax += fieldX[i - k];
          ay += fieldY[i - k];
        }
        sx += w[k] * ax;
        sy += w[k] * ay;
      }
      tempX[i] = sx;
      tempY[i] = sy;
    }
  }
  // Columns, scaled by alpha: field[y, x] = α Σ_k w[|k|] temp[y + k, x],
  // as whole-row updates so the inner loop runs over contiguous memory.
  for (let y = 0; y < SIZE; y++) {
    const row = y * SIZE;
    const w0 = alpha * w[0];
    for (let x = row; x < row + SIZE; x++) {
      fieldX[x] = w0 * tempX[x];
      fieldY[x] = w0 * tempY[x];
    }
    for (let k = 1; k <= r; k++) {
      const wk = alpha * w[k];
      const up = y - k >= 0, down = y + k < SIZE;
      if (up && down) {
        const a = -k * SIZE, b = k * SIZE;
        for (let x = row; x < row + SIZE; x++) {
          fieldX[x] += wk * (tempX[x + a] + tempX[x + b]);
          fieldY[x] += wk * (tempY[x + a] + tempY[x + b]);
        }
      } else if (up || down) {
        const a = up ? -k * SIZE : k * SIZE;
        for (let x = row; x < row + SIZE; x++) {
          fieldX[x] += wk * tempX[x + a];
          fieldY[x] += wk * tempY[x + a];
        }
      }
    }
  }
}

/**
 * Add clamped Gaussian noise to one image in place. Normals come in pairs
 * from Marsaglia's polar method, each candidate point built from the two
 * 16-bit halves of one `rng.next()`: a third of the cost of `rng.normal()`,
 * whose sin/cos dominate here.
 */
function noiseImage(
  dst: Float32Array,
  off: number,
  sigma: number,
  rng: Rng,
): void {
  for (let i = off, end = off + PIXELS; i < end; i += 2) {
    let u: number, v: number, s: number;
    do {
      const bits = rng.next() * 4294967296;
      u = ((bits >>> 16) + 0.5) * (2 / 65536) - 1;
      v = ((bits & 0xffff) + 0.5) * (2 / 65536) - 1;
      s = u * u + v * v; // never 0 thanks to the +0.5
    } while (s >= 1);
    const m = sigma * Math.sqrt((-2 * Math.log(s)) / s);
    const a = dst[i] + u * m;
    const b = dst[i + 1] + v * m;
    dst[i] = a < 0 ? 0 : a > 1 ? 1 : a;
    dst[i + 1] = b < 0 ? 0 : b > 1 ? 1 : b;
  }
}

// ---------------------------------------------------------------------------
// Deterministic transforms

const scratchMap = new Float64Array(6);

function affineInto(
  action: string,
  name: string,
  p: AffineParams,
  m: InverseMap,
): void {
  if (typeof p !== "object" || p === null) {
    throw new TypeError(
      `Cannot ${action}: expected ${name} to be an object, got ${describe(p)}`,
    );
  }
  const rotation = checkFinite(action, `${name}.rotation`, p.rotation ?? 0);
  const dx = checkFinite(action, `${name}.dx`, p.dx ?? 0);
  const dy = checkFinite(action, `${name}.dy`, p.dy ?? 0);
  const scale = checkNumber(action, `${name}.scale`, p.scale ?? 1);
  if (!(scale > 0 && scale < Infinity)) {
    throw new RangeError(
      `Cannot ${action}: expected ${name}.scale to be a finite number > 0, got ${scale}`,
    );
  }
  const shear = checkNumber(action, `${name}.shear`, p.shear ?? 0);
  if (!(shear > -90 && shear < 90)) {
    throw new RangeError(
      `Cannot ${action}: expected ${name}.shear in (-90, 90), got ${shear}`,
    );
  }
  inverseMap(m, rotation, dx, dy, scale, shear);
}

/** Warp a whole batch with one precomputed inverse map. */
function warpBatch(images: Float32Array, count: number, m: InverseMap) {
  if (isIdentity(m)) return images.slice();
  const out = new Float32Array(images.length);
  for (let n = 0; n < count; n++) {
    warpImage(images, n * PIXELS, out, n * PIXELS, m, null, null);
  }
  return out;
}

/**
 * Apply an affine warp (rotation, translation, scale, shear about the image
 * centre) to every image, with bilinear sampling. Identity parameters give a
 * bit-identical copy; rotations by multiples of 90° and integer shifts are
 * exact.
 *
 * @param images Batch `[count, 28, 28]` in [0, 1]; not modified.
 * @param params One {@linkcode AffineParams} for every image, or an array with
 * one entry per image.
 * @returns A new batch of the same length.
 * @throws {TypeError} If `images` is not a `Float32Array` whose length is a
 * multiple of 784, if a parameter is not a number, or if the `params` array
 * length differs from the image count.
 * @throws {RangeError} If a parameter is not finite, `scale <= 0`, or `shear`
 * is outside (-90, 90).
 *
 * @example Enlarge one digit and shift another
 * ```ts
 * import { affineBatch } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * const images = new Float32Array(2 * 784);
 * images[14 * 28 + 14] = 1; // a dot just below-right of the centre
 * images[784 + 14 * 28 + 14] = 1;
 * const out = affineBatch(images, [{ scale: 2 }, { dx: 3, dy: -2 }]);
 * assert.equal(out.length, images.length);
 * assert.equal(out[15 * 28 + 15], 0.5625); // the dot spread over 2x2 pixels
 * assert.equal(out[784 + 12 * 28 + 17], 1); // moved 3 right, 2 up
 * ```
 */
export function affineBatch(
  images: Float32Array,
  params: AffineParams | readonly AffineParams[],
): Float32Array {
  const action = "apply affine transform";
  const count = countImages(action, images);
  if (!Array.isArray(params)) {
    affineInto(action, "params", params as AffineParams, scratchMap);
    return warpBatch(images, count, scratchMap);
  }
  const list = params as readonly AffineParams[];
  if (list.length !== count) {
    throw new TypeError(
      `Cannot ${action}: expected params to have one entry per image (${count}), got ${list.length}`,
    );
  }
  const out = new Float32Array(images.length);
  for (let n = 0; n < count; n++) {
    affineInto(action, `params[${n}]`, list[n], scratchMap);
    const off = n * PIXELS;
    if (isIdentity(scratchMap)) {
      out.set(images.subarray(off, off + PIXELS), off);
    } else {
      warpImage(images, off, out, off, scratchMap, null, null);
    }
  }
  return out;
}

/**
 * Rotate every image about its centre by the same angle (bilinear sampling,
 * exact at multiples of 90°). For robustness tests with a fixed angle.
 *
 * @param images Batch `[count, 28, 28]` in [0, 1]; not modified.
 * @param degrees Angle; positive turns counter-clockwise as displayed.
 * @returns A new batch of the same length.
 * @throws {TypeError} If `images` is not a `Float32Array` whose length is a
 * multiple of 784, or `degrees` is not a number.
 * @throws {RangeError} If `degrees` is not finite.
 *
 * @example A quarter turn moves the right edge to the top
 * ```ts
 * import { rotateBatch } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * const image = new Float32Array(784);
 * image[14 * 28 + 27] = 1; // right edge, row 14
 * const out = rotateBatch(image, 90);
 * assert.equal(out[0 * 28 + 14], 1); // top edge, column 14
 * ```
 */
export function rotateBatch(
  images: Float32Array,
  degrees: number,
): Float32Array {
  const action = "rotate images";
  const count = countImages(action, images);
  checkFinite(action, "degrees", degrees);
  inverseMap(scratchMap, degrees, 0, 0, 1, 0);
  return warpBatch(images, count, scratchMap);
}

/**
 * Shift every image by the same offset; integer offsets move pixels exactly,
 * fractional ones interpolate bilinearly. Pixels shifted in are background.
 *
 * @param images Batch `[count, 28, 28]` in [0, 1]; not modified.
 * @param dx Pixels to move right (negative: left).
 * @param dy Pixels to move down (negative: up).
 * @returns A new batch of the same length.
 * @throws {TypeError} If `images` is not a `Float32Array` whose length is a
 * multiple of 784, or an offset is not a number.
 * @throws {RangeError} If an offset is not finite.
 *
 * @example Shift two pixels right
 * ```ts
 * import { shiftBatch } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * const image = new Float32Array(784);
 * image[5 * 28 + 5] = 0.5;
 * const out = shiftBatch(image, 2, 0);
 * assert.equal(out[5 * 28 + 7], 0.5);
 * assert.equal(out[5 * 28 + 5], 0);
 * ```
 */
export function shiftBatch(
  images: Float32Array,
  dx: number,
  dy: number,
): Float32Array {
  const action = "shift images";
  const count = countImages(action, images);
  checkFinite(action, "dx", dx);
  checkFinite(action, "dy", dy);
  inverseMap(scratchMap, 0, dx, dy, 1, 0);
  return warpBatch(images, count, scratchMap);
}

/**
 * Add Gaussian noise N(0, sigma²) to every pixel, then clamp to [0, 1].
 * Background pixels get noise too, which is what a noisy scanner does.
 *
 * @param images Batch `[count, 28, 28]` in [0, 1]; not modified.
 * @param sigma Standard deviation in pixel units; 0 returns an exact copy
 * without drawing from `rng`.
 * @param rng Seeded generator (about 0.64 draws per pixel: a polar-method
 * pair of normals per accepted draw).
 * @returns A new batch of the same length, values in [0, 1].
 * @throws {TypeError} If `images` is not a `Float32Array` whose length is a
 * multiple of 784, `sigma` is not a number, or `rng` is not an Rng.
 * @throws {RangeError} If `sigma` is negative or not finite.
 *
 * @example Noisy copy, still in range
 * ```ts
 * import { addNoise, createRng } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * const images = new Float32Array(784).fill(0.5);
 * const noisy = addNoise(images, 0.2, createRng(1));
 * assert.ok(noisy.every((v) => v >= 0 && v <= 1));
 * assert.notDeepEqual(noisy, images);
 * assert.equal(images[0], 0.5); // input untouched
 * ```
 */
export function addNoise(
  images: Float32Array,
  sigma: number,
  rng: Rng,
): Float32Array {
  const action = "add noise";
  const count = countImages(action, images);
  checkNonNegative(action, "sigma", sigma);
  checkRng(action, rng);
  const out = images.slice();
  if (sigma === 0) return out;
  for (let n = 0; n < count; n++) noiseImage(out, n * PIXELS, sigma, rng);
  return out;
}

/**
 * Elastic distortion (Simard, Steinkraus & Platt 2003): for each image, two
 * displacement fields uniform in [-1, 1] are smoothed by a Gaussian of
 * standard deviation `sigma` (separable, radius ⌈3σ⌉, zero padding), scaled
 * by `alpha`, and the image is resampled bilinearly at (x + dx, y + dy).
 *
 * @param images Batch `[count, 28, 28]` in [0, 1]; not modified.
 * @param alpha Displacement scale in pixels (34 in the paper); 0 returns an
 * exact copy without drawing from `rng`.
 * @param sigma Smoothing in pixels (4 in the paper); 0 means no smoothing.
 * @param rng Seeded generator (784 draws per image: each gives a 16-bit
 * uniform to both fields).
 * @returns A new batch of the same length, values in [0, 1].
 * @throws {TypeError} If `images` is not a `Float32Array` whose length is a
 * multiple of 784, `alpha` or `sigma` is not a number, or `rng` is not an
 * Rng.
 * @throws {RangeError} If `alpha` or `sigma` is negative or not finite.
 *
 * @example Bend the edges of a square
 * ```ts
 * import { createRng, elasticBatch } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * const image = new Float32Array(784);
 * for (let y = 8; y < 20; y++) {
 *   for (let x = 8; x < 20; x++) image[y * 28 + x] = 1;
 * }
 * const out = elasticBatch(image, 34, 4, createRng(7));
 * assert.notDeepEqual(out, image); // the edges moved
 * assert.equal(out[14 * 28 + 14], 1); // the middle is still ink
 * assert.equal(out[0], 0); // the corner is still background
 * assert.ok(out.every((v) => v >= 0 && v <= 1));
 * ```
 */
export function elasticBatch(
  images: Float32Array,
  alpha: number,
  sigma: number,
  rng: Rng,
): Float32Array {
  const action = "apply elastic distortion";
  const count = countImages(action, images);
  checkNonNegative(action, "alpha", alpha);
  checkNonNegative(action, "sigma", sigma);
  checkRng(action, rng);
  if (alpha === 0) return images.slice();
  const out = new Float32Array(images.length);
  const identity = scratchMap;
  inverseMap(identity, 0, 0, 0, 1, 0);
  for (let n = 0; n < count; n++) {
    elasticFields(alpha, sigma, rng);
    warpImage(images, n * PIXELS, out, n * PIXELS, identity, fieldX, fieldY);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Random augmentation

interface Resolved {
  pAffine: number;
  rotation: number;
  translate: number;
  scaleLo: number;
  scaleHi: number;
  shear: number;
  pElastic: number;
  alpha: number;
  sigma: number;
  pNoise: number;
  noise: number;
}

function resolve(options: AugmentOptions): Resolved {
  const action = "augment images";
  if (typeof options !== "object" || options === null) {
    throw new TypeError(
      `Cannot ${action}: expected options to be an object, got ${describe(options)}`,
    );
  }
  const o = options;
  const prob = (name: string, v: unknown) => checkInterval(action, `options.${name}`, v, 0, 1);
  const strength = prob("strength", o.strength ?? 1);
  const pAffine = prob("affineProbability", o.affineProbability ?? 0.8);
  const pElastic = prob("elasticProbability", o.elasticProbability ?? 0.5);
  const pNoise = prob("noiseProbability", o.noiseProbability ?? 0.3);
  const rotation = checkInterval(
    action,
    "options.rotationDegrees",
    o.rotationDegrees ?? 30,
    0,
    180,
  );
  const translate = checkInterval(
    action,
    "options.translate",
    o.translate ?? 0.2,
    0,
    1,
  );
  const shear = checkInterval(
    action,
    "options.shearDegrees",
    o.shearDegrees ?? 15,
    0,
    90,
    true,
  );
  const scale = o.scale ?? [0.8, 1.2];
  if (
    !Array.isArray(scale) || scale.length !== 2 ||
    typeof scale[0] !== "number" || typeof scale[1] !== "number"
  ) {
    throw new TypeError(
      `Cannot ${action}: expected options.scale to be a [min, max] pair of numbers, got ${
        Array.isArray(scale) ? `[${scale.join(", ")}]` : describe(scale)
      }`,
    );
  }
  const [lo, hi] = scale;
  if (!(lo > 0 && lo <= hi && hi < Infinity)) {
    throw new RangeError(
      `Cannot ${action}: expected options.scale to satisfy 0 < min <= max < Infinity, got [${lo}, ${hi}]`,
    );
  }
  const alpha = checkNonNegative(
    action,
    "options.elasticAlpha",
    o.elasticAlpha ?? 34,
  );
  const sigma = checkNonNegative(
    action,
    "options.elasticSigma",
    o.elasticSigma ?? 4,
  );
  const noise = checkNonNegative(
    action,
    "options.noiseSigma",
    o.noiseSigma ?? 0.1,
  );
  return {
    pAffine,
    rotation: rotation * strength,
    translate: translate * strength * SIZE,
    scaleLo: 1 + (lo - 1) * strength,
    scaleHi: 1 + (hi - 1) * strength,
    shear: shear * strength,
    pElastic,
    alpha: alpha * strength,
    sigma,
    pNoise,
    noise: noise * strength,
  };
}

const augmentMap = new Float64Array(6);

/**
 * Draw one image's affine warp into `m` (the identity when its coin says no):
 * the affine coin, then rotation, dx, dy, scale and shear. Returns whether
 * the map is not the identity.
 */
function drawAffine(o: Resolved, rng: Rng, m: InverseMap): boolean {
  if (rng.next() < o.pAffine) {
    const rotation = rng.uniform(-o.rotation, o.rotation);
    const dx = rng.uniform(-o.translate, o.translate);
    const dy = rng.uniform(-o.translate, o.translate);
    const scale = rng.uniform(o.scaleLo, o.scaleHi);
    const shear = rng.uniform(-o.shear, o.shear);
    inverseMap(m, rotation, dx, dy, scale, shear);
    return !isIdentity(m);
  }
  inverseMap(m, 0, 0, 0, 1, 0);
  return false;
}

/**
 * Randomly augment a batch. Each image independently gets, with its own
 * probability: an affine warp (rotation, translation, scale and shear in one
 * matrix), then an elastic distortion, then Gaussian noise. When both the
 * affine warp and the elastic distortion apply they are composed into a
 * single bilinear resampling (the result equals warping, then distorting,
 * without blurring twice). The same seed gives the same output; options that
 * make every transform the identity (all probabilities 0, or `strength` 0)
 * give a copy equal to the input.
 *
 * Per image the RNG is used in this order: affine coin, then (if applied)
 * rotation, dx, dy, scale, shear; elastic coin, then (if applied) 784
 * draws for the two fields; noise coin, then (if applied) the
 * draws for 784 normals.
 *
 * @param images Batch `[count, 28, 28]` in [0, 1]; not modified.
 * @param options Probabilities and ranges; `{}` uses the defaults.
 * @param rng Seeded generator that drives every random choice.
 * @returns A new batch of the same length, values in [0, 1].
 * @throws {TypeError} If `images` is not a `Float32Array` whose length is a
 * multiple of 784, an option has the wrong type, or `rng` is not an Rng.
 * @throws {RangeError} If an option is out of range (a probability or
 * `strength` outside [0, 1], a negative sigma, and so on).
 *
 * @example Reproducible augmentation
 * ```ts
 * import { augmentBatch, createRng } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * const images = new Float32Array(4 * 784);
 * for (let i = 0; i < images.length; i++) images[i] = (i % 28) / 27;
 * const a = augmentBatch(images, {}, createRng(3));
 * const b = augmentBatch(images, {}, createRng(3));
 * assert.deepEqual(a, b);
 * assert.notDeepEqual(a, images);
 * // strength 0 switches augmentation off
 * assert.deepEqual(augmentBatch(images, { strength: 0 }, createRng(3)), images);
 * ```
 */
export function augmentBatch(
  images: Float32Array,
  options: AugmentOptions,
  rng: Rng,
): Float32Array {
  const action = "augment images";
  const count = countImages(action, images);
  const o = resolve(options);
  checkRng(action, rng);
  const out = new Float32Array(images.length);
  const m = augmentMap;
  for (let n = 0; n < count; n++) {
    const off = n * PIXELS;
    const warp = drawAffine(o, rng, m);
    let elastic = false;
    if (rng.next() < o.pElastic && o.alpha > 0) {
      elasticFields(o.alpha, o.sigma, rng);
      elastic = true;
    }
    if (warp || elastic) {
      warpImage(
        images,
        off,
        out,
        off,
        m,
        elastic ? fieldX : null,
        elastic ? fieldY : null,
      );
    } else {
      out.set(images.subarray(off, off + PIXELS), off);
    }
    if (rng.next() < o.pNoise && o.noise > 0) {
      noiseImage(out, off, o.noise, rng);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Augmentation drawn here, applied on a device (`device_augment.ts`)

/**
 * Values per image in {@linkcode drawAugmentation}'s rows: the inverse map
 * `[a, b, c, d, ox, oy]`, the elastic scale and field, the noise sigma and
 * noise image. Internal.
 */
export const AUGMENT_ROW = 10;

/**
 * Elastic displacement fields for a bank: `count` fields, each `[2, 784]`
 * (x displacements, then y), drawn and blurred as {@linkcode augmentBatch}
 * draws one (`alpha · G_sigma * U(-1, 1)`) but with alpha 1, so that a
 * row's elastic scale is its alpha. Internal.
 *
 * @param count Fields, ≥ 1.
 * @param sigma Standard deviation of the blur in pixels, ≥ 0.
 * @param rng Drives the uniform fields.
 * @returns `count * 2 * 784` values.
 */
export function elasticFieldBank(count: number, sigma: number, rng: Rng): Float32Array {
  const bank = new Float32Array(count * 2 * PIXELS);
  for (let k = 0; k < count; k++) {
    elasticFields(1, sigma, rng);
    bank.set(fieldX, 2 * k * PIXELS);
    bank.set(fieldY, (2 * k + 1) * PIXELS);
  }
  return bank;
}

/**
 * Draw the augmentation of `count` images as {@linkcode augmentBatch} would,
 * with the same probabilities and ranges, but as numbers for a device to
 * apply: one row of {@linkcode AUGMENT_ROW} values per image. Instead of
 * drawing 784 uniforms for a fresh elastic field or 784 normals for fresh
 * noise, an image picks one of a bank's `fields` precomputed fields (scaled
 * by ±alpha, the sign drawn too, which is a field of the same distribution)
 * or `noises` noise images. Per image the RNG is used in this order: affine
 * coin, then (if applied) rotation, dx, dy, scale, shear; elastic coin, then
 * (if applied) field and sign; noise coin, then (if applied) noise image.
 * Internal.
 *
 * @param count Images.
 * @param options As for {@linkcode augmentBatch}.
 * @param rng Drives every choice.
 * @param fields Elastic fields in the bank, ≥ 1.
 * @param noises Noise images in the bank, ≥ 1.
 * @returns `count * AUGMENT_ROW` values; an image without elastic distortion
 * has elastic scale 0, one without noise has sigma 0.
 * @throws {TypeError | RangeError} For bad options, as {@linkcode augmentBatch}.
 */
export function drawAugmentation(
  count: number,
  options: AugmentOptions,
  rng: Rng,
  fields: number,
  noises: number,
): Float32Array {
  const o = resolve(options);
  checkRng("augment images", rng);
  const rows = new Float32Array(count * AUGMENT_ROW);
  const m = augmentMap;
  for (let n = 0; n < count; n++) {
    const row = n * AUGMENT_ROW;
    drawAffine(o, rng, m);
    rows.set(m, row);
    if (rng.next() < o.pElastic && o.alpha > 0) {
      rows[row + 7] = rng.int(fields);
      rows[row + 6] = rng.next() < 0.5 ? -o.alpha : o.alpha;
    }
    if (rng.next() < o.pNoise && o.noise > 0) {
      rows[row + 8] = o.noise;
      rows[row + 9] = rng.int(noises);
    }
  }
  return rows;
}

/** Precomputed elastic fields of a run: 1,024 fields of 2 × 784 floats, 6.4 MB. Internal. */
export const ELASTIC_BANK_SIZE = 1024;
/** Precomputed standard-normal noise images of a run: 256 images, 0.8 MB. Internal. */
export const NOISE_BANK_SIZE = 256;

/**
 * The banks that {@linkcode drawAugmentation}'s rows pick from: the elastic
 * fields ({@linkcode elasticFieldBank}, for one sigma at a time) and the
 * noise images, each drawn from the banks' own seed when first asked for, so
 * that a seed gives the same banks on every backend. Internal.
 */
export class AugmentBanks {
  readonly #rng: Rng;
  readonly #given: Float32Array | undefined;
  #fields: Float32Array | null = null;
  #sigma = NaN;
  #noise: Float32Array | null = null;

  /**
   * @param seed Seed of the banks' random numbers.
   * @param fields Elastic fields to use instead of drawn ones (tests), laid
   * out as {@linkcode elasticFieldBank}'s, `ELASTIC_BANK_SIZE * 2 * 784` values.
   */
  constructor(seed: number, fields?: Float32Array) {
    this.#rng = createRng(seed);
    this.#given = fields;
  }

  /** `ELASTIC_BANK_SIZE * 2 * 784` values: the fields for `sigma`, drawn (or redrawn) on first use. */
  fields(sigma: number): Float32Array {
    if (!this.#fields || this.#sigma !== sigma) {
      this.#fields = this.#given ?? elasticFieldBank(ELASTIC_BANK_SIZE, sigma, this.#rng);
      this.#sigma = sigma;
    }
    return this.#fields;
  }

  /** `NOISE_BANK_SIZE * 784` standard normals, drawn on first use. */
  noise(): Float32Array {
    if (!this.#noise) {
      this.#noise = new Float32Array(NOISE_BANK_SIZE * PIXELS);
      for (let i = 0; i < this.#noise.length; i++) this.#noise[i] = this.#rng.normal();
    }
    return this.#noise;
  }
}

/** The inverse map of the row being applied. */
const rowMap = new Float64Array(6);

/**
 * Augment a batch on the host as a device does: draw each image's
 * augmentation with {@linkcode drawAugmentation} (the probabilities and
 * ranges of {@linkcode augmentBatch}) and apply it with the same bilinear
 * resampling, but with elastic fields and noise images picked from `banks`
 * instead of drawn afresh for each image: an elastic image costs about a
 * fifth as much (the field's blur is the most of it). Internal.
 *
 * @param images Batch `[count, 28, 28]` in [0, 1]; not modified.
 * @param options As for {@linkcode augmentBatch}.
 * @param rng Draws every choice.
 * @param banks The run's banks.
 * @returns A new batch of the same length, values in [0, 1].
 * @throws {TypeError | RangeError} For bad images or options, as {@linkcode augmentBatch}.
 */
export function augmentFromBanks(
  images: Float32Array,
  options: AugmentOptions,
  rng: Rng,
  banks: AugmentBanks,
): Float32Array {
  const count = countImages("augment images", images);
  const rows = drawAugmentation(count, options, rng, ELASTIC_BANK_SIZE, NOISE_BANK_SIZE);
  // The banks are asked for in the device's order (fields, then noise), so
  // that both draw them from their seed alike.
  let fields: Float32Array | null = null, noise: Float32Array | null = null;
  for (let n = 0; n < count; n++) {
    if (rows[n * AUGMENT_ROW + 6] !== 0) fields ??= banks.fields(elasticSigmaOf(options));
  }
  for (let n = 0; n < count; n++) if (rows[n * AUGMENT_ROW + 8] !== 0) noise ??= banks.noise();
  const out = new Float32Array(images.length);
  for (let n = 0; n < count; n++) {
    const off = n * PIXELS, row = n * AUGMENT_ROW;
    for (let k = 0; k < 6; k++) rowMap[k] = rows[row + k];
    const alpha = rows[row + 6];
    if (fields && alpha !== 0) {
      const at = rows[row + 7] * 2 * PIXELS;
      for (let i = 0; i < PIXELS; i++) {
        fieldX[i] = alpha * fields[at + i];
        fieldY[i] = alpha * fields[at + PIXELS + i];
      }
    }
    if (alpha !== 0 || !isIdentity(rowMap)) {
      warpImage(
        images,
        off,
        out,
        off,
        rowMap,
        alpha !== 0 ? fieldX : null,
        alpha !== 0 ? fieldY : null,
      );
    } else {
      out.set(images.subarray(off, off + PIXELS), off);
    }
    const sigmaNoise = rows[row + 8];
    if (noise && sigmaNoise !== 0) {
      const at = rows[row + 9] * PIXELS;
      for (let i = 0; i < PIXELS; i++) {
        const v = out[off + i] + sigmaNoise * noise[at + i];
        out[off + i] = v < 0 ? 0 : v > 1 ? 1 : v;
      }
    }
  }
  return out;
}

/** The elastic sigma of a set of options (for the bank), validated. Internal. */
export function elasticSigmaOf(options: AugmentOptions): number {
  return resolve(options).sigma;
}
