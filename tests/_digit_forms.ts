/**
 * Real MNIST digits rendered as the images people have: bigger, inverted,
 * grey, 16-bit, coloured ink on paper, strokes on a transparent canvas.
 * Shared by the preprocessing and predict tests.
 *
 * @module
 */
import type { PixelImage } from "../lib/preprocess.ts";

/** An RGB colour, 0–255 per channel. */
export type Rgb = [number, number, number];

/** Bilinear resize of a 28×28 digit (values in [0, 1]) to `size × size`, pixel centres aligned. */
export function upscale(digit: Float32Array, size: number): Float32Array {
  const out = new Float32Array(size * size);
  const at = (j: number) => Math.min(27, Math.max(0, (j + 0.5) * 28 / size - 0.5));
  for (let y = 0; y < size; y++) {
    const sy = at(y), y0 = Math.floor(sy), y1 = Math.min(27, y0 + 1), fy = sy - y0;
    for (let x = 0; x < size; x++) {
      const sx = at(x), x0 = Math.floor(sx), x1 = Math.min(27, x0 + 1), fx = sx - x0;
      const top = digit[y0 * 28 + x0] * (1 - fx) + digit[y0 * 28 + x1] * fx;
      const bottom = digit[y1 * 28 + x0] * (1 - fx) + digit[y1 * 28 + x1] * fx;
      out[y * size + x] = top * (1 - fy) + bottom * fy;
    }
  }
  return out;
}

/** Square 8-bit grey image of ink levels `v` in [0, 1], drawn light on black or dark on white. */
export function grey(v: Float32Array, darkOnLight = false): PixelImage {
  const size = Math.sqrt(v.length);
  const data = Uint8Array.from(v, (x) => Math.round(255 * (darkOnLight ? 1 - x : x)));
  return { width: size, height: size, data };
}

/** Square 16-bit grey image, light on black. */
export function grey16(v: Float32Array): PixelImage {
  const size = Math.sqrt(v.length);
  return { width: size, height: size, data: Uint16Array.from(v, (x) => Math.round(65535 * x)) };
}

/** `ink` mixed into `paper` by `v`, as RGB, or RGBA with alpha 255. */
export function inkOnPaper(v: Float32Array, ink: Rgb, paper: Rgb, channels: 3 | 4 = 3): PixelImage {
  const size = Math.sqrt(v.length);
  const data = new Uint8ClampedArray(v.length * channels).fill(255);
  v.forEach((x, p) => {
    for (let c = 0; c < 3; c++) {
      data[p * channels + c] = Math.round(paper[c] + x * (ink[c] - paper[c]));
    }
  });
  return { width: size, height: size, data };
}

/**
 * Strokes of colour `ink` on a transparent canvas: alpha = v, colour 0 where
 * alpha is 0. Grey+alpha (2 channels) takes the ink's red as its grey.
 */
export function onTransparent(v: Float32Array, ink: Rgb, channels: 2 | 4 = 4): PixelImage {
  const size = Math.sqrt(v.length);
  const data = new Uint8ClampedArray(v.length * channels);
  const colour = channels === 4 ? ink : ink.slice(0, 1);
  v.forEach((x, p) => {
    const alpha = Math.round(255 * x);
    if (alpha > 0) data.set([...colour, alpha], p * channels);
  });
  return { width: size, height: size, data };
}

/** White. */
export const WHITE: Rgb = [255, 255, 255];
/** Black. */
export const BLACK: Rgb = [0, 0, 0];
/** A dark blue, like ballpoint ink. */
export const BLUE_INK: Rgb = [20, 40, 120];
/** An off-white, like paper. */
export const CREAM_PAPER: Rgb = [240, 230, 200];

/**
 * The digit at 180 px in dark ink on a 400×300 photo-like page: lighting
 * that rises from 150 to 230 grey levels left to right, and grain of ±20
 * levels (uniform, from `random`, a function returning [0, 1)).
 */
export function onPhotoPage(digit: Float32Array, random: () => number): PixelImage {
  const [width, height, size] = [400, 300, 180];
  const big = upscale(digit, size);
  const data = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const [dx, dy] = [x - 110, y - 60];
      const ink = dx >= 0 && dx < size && dy >= 0 && dy < size ? big[dy * size + dx] : 0;
      const paper = 150 + (80 * x) / width + (40 * random() - 20);
      data[y * width + x] = Math.max(0, Math.min(255, Math.round(paper * (1 - ink) + 20 * ink)));
    }
  }
  return { width, height, data };
}
