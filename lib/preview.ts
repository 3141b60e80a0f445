/**
 * A PNG contact sheet that shows what augmentation does to a few digits, so a
 * person can check the transforms by eye before training on them.
 *
 * @module
 */

import { augmentBatch, type AugmentOptions } from "./augment.ts";
import { checkImages } from "./images.ts";
import { encodePng } from "./image_file.ts";
import { createRng } from "./rng.ts";

const SIZE = 28;
const PIXELS = SIZE * SIZE;
/** Colour of the gaps between cells: mid grey, distinct from ink and paper. */
const GAP_VALUE = 96;

/**
 * Labels of the preview rows, top to bottom, for a legend:
 * 0. `original` — the first `columns` images, untouched;
 * 1. `rotation` — rotation only, with probability 1;
 * 2. `affine (translate, scale, shear)` — the rest of the affine warp,
 *    with probability 1;
 * 3. `noise` — Gaussian noise only, with probability 1;
 * 4. `elastic` — elastic distortion only, with probability 1;
 * 5. `augment (all)` — {@linkcode augmentBatch} with the given options and
 *    their probabilities, as training would see it.
 */
export const PREVIEW_ROWS: readonly string[] = Object.freeze([
  "original",
  "rotation",
  "affine (translate, scale, shear)",
  "noise",
  "elastic",
  "augment (all)",
]);

/** Options for {@linkcode renderPreview}. */
export interface PreviewOptions {
  /**
   * Images per row, taken from the start of the batch; fewer if the batch is
   * smaller. An integer >= 1. Why 8: enough to see the variety, few enough
   * to take in at a glance.
   * @default {8}
   */
  columns?: number;
  /**
   * Integer upscaling factor in [1, 16] (nearest neighbour), so 28 px digits
   * are visible. Why 2: 56 px cells read well on any screen.
   * @default {2}
   */
  zoom?: number;
  /**
   * Grey gap in output pixels around and between cells, an integer in
   * [0, 16]; not zoomed. Why 2: separates cells without wasting space.
   * @default {2}
   */
  gap?: number;
  /**
   * Seed for the random transforms; every row uses `createRng(seed)` so the
   * rows are reproducible. Any fixed value will do.
   * @default {0}
   */
  seed?: number;
  /**
   * Augmentation ranges and probabilities. The single-transform rows use the
   * ranges with probability 1; the last row uses these options as given.
   * @default {{}}
   */
  augment?: AugmentOptions;
}

function checkInteger(
  name: string,
  value: unknown,
  lo: number,
  hi: number,
): number {
  if (typeof value !== "number") {
    throw new TypeError(
      `Cannot render preview: expected options.${name} to be a number, got ${typeof value}`,
    );
  }
  if (!Number.isInteger(value) || value < lo || value > hi) {
    throw new RangeError(
      `Cannot render preview: expected options.${name} to be an integer in [${lo}, ${hi}], got ${value}`,
    );
  }
  return value;
}

/** The options for each row after the originals, in PREVIEW_ROWS order. */
function rowOptions(base: AugmentOptions): AugmentOptions[] {
  const only: AugmentOptions = {
    ...base,
    affineProbability: 0,
    elasticProbability: 0,
    noiseProbability: 0,
  };
  return [
    {
      ...only,
      affineProbability: 1,
      translate: 0,
      scale: [1, 1],
      shearDegrees: 0,
    },
    { ...only, affineProbability: 1, rotationDegrees: 0 },
    { ...only, noiseProbability: 1 },
    { ...only, elasticProbability: 1 },
    base,
  ];
}

/**
 * Render a grid of digits as a grayscale PNG: row 0 holds the first
 * `columns` images, each following row applies one transform to those same
 * images (see {@linkcode PREVIEW_ROWS}). Pure: returns bytes, writes nothing.
 *
 * Each cell is `28 * zoom` pixels square, with `gap` grey pixels around and
 * between cells, so the PNG is `columns * 28 * zoom + (columns + 1) * gap`
 * wide and `PREVIEW_ROWS.length * 28 * zoom + (PREVIEW_ROWS.length + 1) * gap`
 * high. Ink is white on black, as in MNIST.
 *
 * @param images Batch `[count, 28, 28]` in [0, 1]; not modified.
 * @param options Layout, seed and augmentation options.
 * @returns The bytes of a PNG file.
 * @throws {TypeError} If `images` is not a `Float32Array` whose length is a
 * multiple of 784, or an option has the wrong type.
 * @throws {RangeError} If the batch is empty or an option is out of range.
 *
 * @example Preview three digits
 * ```ts
 * import { PREVIEW_ROWS, renderPreview } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * const images = new Float32Array(3 * 784);
 * for (let i = 0; i < images.length; i++) images[i] = (i % 28) / 27;
 * const png = await renderPreview(images, { zoom: 1, gap: 1 });
 * const view = new DataView(png.buffer);
 * assert.equal(view.getUint32(16), 3 * 28 + 4); // width: 3 columns
 * assert.equal(view.getUint32(20), PREVIEW_ROWS.length * 28 + 7); // height
 * ```
 */
export async function renderPreview(
  images: Float32Array,
  options: PreviewOptions = {},
): Promise<Uint8Array> {
  if (images instanceof Float32Array && images.length === 0) {
    throw new RangeError("Cannot render preview: expected at least 1 image, got 0");
  }
  const count = checkImages(images, "render preview");
  const requested = checkInteger(
    "columns",
    options.columns ?? 8,
    1,
    Number.MAX_SAFE_INTEGER,
  );
  const zoom = checkInteger("zoom", options.zoom ?? 2, 1, 16);
  const gap = checkInteger("gap", options.gap ?? 2, 0, 16);
  const seed = options.seed ?? 0;
  if (typeof seed !== "number") {
    throw new TypeError(
      `Cannot render preview: expected options.seed to be a number, got ${typeof seed}`,
    );
  }
  if (!Number.isFinite(seed)) {
    throw new RangeError(
      `Cannot render preview: expected options.seed to be a finite number, got ${seed}`,
    );
  }
  const columns = Math.min(requested, count);
  const originals = images.slice(0, columns * PIXELS);
  const rows = [
    originals,
    ...rowOptions(options.augment ?? {}).map((o) => augmentBatch(originals, o, createRng(seed))),
  ];

  const cell = SIZE * zoom;
  const width = columns * cell + (columns + 1) * gap;
  const height = rows.length * cell + (rows.length + 1) * gap;
  const pixels = new Uint8Array(width * height).fill(GAP_VALUE);
  for (let r = 0; r < rows.length; r++) {
    const batch = rows[r];
    for (let c = 0; c < columns; c++) {
      const top = gap + r * (cell + gap);
      const left = gap + c * (cell + gap);
      for (let y = 0; y < cell; y++) {
        const src = c * PIXELS + Math.floor(y / zoom) * SIZE;
        const dst = (top + y) * width + left;
        for (let x = 0; x < cell; x++) {
          const v = batch[src + Math.floor(x / zoom)];
          // Clamp (NaN -> 0) and round to a byte.
          pixels[dst + x] = v > 0 ? (v < 1 ? Math.round(v * 255) : 255) : 0;
        }
      }
    }
  }
  return await encodePng(pixels, width, height);
}
