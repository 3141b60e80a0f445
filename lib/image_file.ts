/**
 * Image files: PNG read and written with `fast-png`, JPEG read (and written,
 * for tests and examples) with `jpeg-js` — maintained decoders, not our own.
 * Decoded images come out as a {@linkcode PixelImage}, ready for
 * `preprocessDigit`.
 *
 * @module
 */
import { convertIndexedToRgb, decode as decodePngFile, encode as encodePngFile } from "fast-png";
import jpeg from "jpeg-js";
import { describe } from "./images.ts";
import type { PixelImage } from "./preprocess.ts";

/** Thrown when bytes are not a PNG or JPEG file that can be decoded. */
export class ImageFormatError extends SyntaxError {
  /** Always `"ImageFormatError"`. */
  override name: string = "ImageFormatError";
  /**
   * Create an error.
   * @param message What could not be decoded, and why.
   * @param options Standard error options, e.g. `cause`.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/**
 * The largest image accepted, in pixels (25 megapixels). A digit needs far
 * fewer; the limit is checked on the header, before anything is allocated,
 * so a small file declaring a huge image is refused instead of exhausting memory.
 */
export const MAX_IMAGE_PIXELS = 25_000_000;

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

const startsWith = (bytes: Uint8Array, prefix: readonly number[]) =>
  bytes.length >= prefix.length && prefix.every((b, i) => bytes[i] === b);

/** Unpack rows of 1-, 2- or 4-bit samples (each row starts on a byte) into bytes 0–255. */
function unpackLowDepth(packed: Uint8Array, width: number, height: number, depth: number) {
  const out = new Uint8Array(width * height);
  const rowBytes = Math.ceil((width * depth) / 8), max = 2 ** depth - 1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const bit = x * depth;
      const byte = packed[y * rowBytes + (bit >> 3)];
      const value = (byte >> (8 - depth - (bit & 7))) & max;
      out[y * width + x] = Math.round((value * 255) / max);
    }
  }
  return out;
}

/** A decoder's error message, without the trailing colon or space some of them end with. */
function reason(error: unknown): string {
  return String((error as Error)?.message ?? error).replace(/[\s:]+$/, "");
}

function decodePng(bytes: Uint8Array, fail: (why: string) => never): PixelImage {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 24) {
    fail(`expected a PNG header of at least 24 bytes, got ${bytes.length}`);
  }
  const width = view.getUint32(16), height = view.getUint32(20);
  if (width * height > MAX_IMAGE_PIXELS) {
    fail(`expected at most ${MAX_IMAGE_PIXELS} pixels, got ${width}×${height}`);
  }
  let png;
  try {
    png = decodePngFile(bytes);
  } catch (error) {
    fail(`expected a valid PNG, got one that does not decode (${reason(error)})`);
  }
  if (png.palette) {
    try {
      // RGB, or RGBA where a tRNS chunk gives the palette alpha.
      return { width, height, data: convertIndexedToRgb(png), channels: png.palette[0].length };
    } catch (error) {
      fail(`expected a valid PNG, got one whose palette does not decode (${reason(error)})`);
    }
  }
  if (png.depth < 8) {
    if (png.channels !== 1) {
      fail(`expected ${png.depth}-bit samples in 1 channel, got ${png.channels} channels`);
    }
    return {
      width,
      height,
      data: unpackLowDepth(png.data as Uint8Array, width, height, png.depth),
      channels: 1,
    };
  }
  return { width, height, data: png.data, channels: png.channels, depth: png.depth };
}

function decodeJpeg(bytes: Uint8Array, fail: (why: string) => never): PixelImage {
  try {
    const { width, height, data } = jpeg.decode(bytes, {
      useTArray: true,
      formatAsRGBA: true,
      maxResolutionInMP: MAX_IMAGE_PIXELS / 1e6,
      maxMemoryUsageInMB: 512,
    });
    return {
      width,
      height,
      data: new Uint8Array(data.buffer, data.byteOffset, data.length),
      channels: 4,
    };
  } catch (error) {
    fail(`expected a valid JPEG, got one that does not decode (${reason(error)})`);
  }
}

/**
 * Decode a PNG (any colour type and bit depth, palette and transparency
 * included) or a baseline/progressive JPEG file into pixels.
 *
 * @param bytes The file's bytes.
 * @param source The file name, for error messages.
 * @returns The pixels: `channels` samples per pixel (PNG as stored, palette
 * expanded to RGB or RGBA; JPEG as RGBA), `depth` 8 or 16.
 * @throws {TypeError} When `bytes` is not a Uint8Array.
 * @throws {ImageFormatError} When the bytes are neither PNG nor JPEG, are
 * corrupt or truncated, or declare more than {@linkcode MAX_IMAGE_PIXELS}.
 *
 * @example Round trip of a tiny grey PNG
 * ```ts
 * import { decodeImage, encodePng, ImageFormatError } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * const png = await encodePng(new Uint8Array([0, 64, 128, 255]), 2, 2);
 * const image = decodeImage(png, "tiny.png");
 * assert.deepEqual([image.width, image.height, image.channels], [2, 2, 1]);
 * assert.deepEqual([...image.data], [0, 64, 128, 255]);
 * assert.throws(() => decodeImage(new Uint8Array([1, 2, 3]), "x.gif"), ImageFormatError);
 * ```
 */
export function decodeImage(bytes: Uint8Array, source?: string): PixelImage {
  const prefix = `Cannot decode image${source === undefined ? "" : ` ${JSON.stringify(source)}`}`;
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError(`${prefix}: expected a Uint8Array, got ${describe(bytes)}`);
  }
  const fail = (why: string): never => {
    throw new ImageFormatError(`${prefix}: ${why}`);
  };
  if (startsWith(bytes, PNG_SIGNATURE)) return decodePng(bytes, fail);
  if (startsWith(bytes, [0xff, 0xd8, 0xff])) return decodeJpeg(bytes, fail);
  const got = bytes.length === 0
    ? "an empty file"
    : `bytes ${[...bytes.subarray(0, 4)].map((b) => b.toString(16).padStart(2, "0")).join(" ")}`;
  return fail(`expected a PNG or JPEG file, got ${got}`);
}

/** Options for {@linkcode encodePng}. */
export interface EncodePngOptions {
  /**
   * Samples per pixel: 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA.
   * @default {1}
   */
  channels?: number;
}

/**
 * Encode 8-bit pixels as a PNG file (with `fast-png`).
 *
 * @param pixels Row-major samples, `width × height × channels` bytes, 0 = black.
 * @param width Image width in pixels, a positive integer.
 * @param height Image height in pixels, a positive integer.
 * @param options The number of channels.
 * @returns The bytes of a complete PNG file.
 * @throws {TypeError} If `pixels` is not a `Uint8Array` or its length is not
 * `width × height × channels`.
 * @throws {RangeError} If `width`, `height` or `channels` is out of range.
 *
 * @example Encode a 2x2 checkerboard
 * ```ts
 * import { encodePng } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * const png = await encodePng(new Uint8Array([0, 255, 255, 0]), 2, 2);
 * assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47]); // "PNG"
 * const view = new DataView(png.buffer, png.byteOffset);
 * assert.equal(view.getUint32(16), 2); // IHDR width
 * assert.equal(view.getUint32(20), 2); // IHDR height
 * ```
 */
export async function encodePng(
  pixels: Uint8Array,
  width: number,
  height: number,
  options: EncodePngOptions = {},
): Promise<Uint8Array> {
  const channels = options.channels ?? 1;
  if (!(pixels instanceof Uint8Array)) {
    throw new TypeError(
      `Cannot encode PNG: expected pixels to be a Uint8Array, got ${describe(pixels)}`,
    );
  }
  for (
    const [name, value, max] of [["width", width, 2 ** 31 - 1], ["height", height, 2 ** 31 - 1], [
      "channels",
      channels,
      4,
    ]] as const
  ) {
    if (!Number.isInteger(value) || value < 1 || value > max) {
      throw new RangeError(
        `Cannot encode PNG: expected ${name} to be an integer in [1, ${max}], got ${value}`,
      );
    }
  }
  if (pixels.length !== width * height * channels) {
    throw new TypeError(
      `Cannot encode PNG: expected pixels.length to be width * height * channels = ${
        width * height * channels
      }, got ${pixels.length}`,
    );
  }
  return await Promise.resolve(encodePngFile({ width, height, data: pixels, depth: 8, channels }));
}

/**
 * Encode 8-bit RGBA pixels as a JPEG file (with `jpeg-js`; baseline, 4:2:0).
 *
 * @param pixels Row-major RGBA samples, `width × height × 4` bytes (alpha is ignored).
 * @param width Image width in pixels.
 * @param height Image height in pixels.
 * @param quality JPEG quality 1–100.
 * @returns The bytes of a JPEG file.
 * @throws {TypeError} If `pixels` is not `width × height × 4` bytes.
 * @throws {RangeError} If `quality` is not in 1–100.
 *
 * @example A grey square survives JPEG at quality 75 nearly unchanged
 * ```ts
 * import { decodeImage, encodeJpeg } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * const rgba = new Uint8Array(8 * 8 * 4).fill(128);
 * const image = decodeImage(encodeJpeg(rgba, 8, 8, 75));
 * assert.ok(Math.abs(image.data[0] - 128) <= 2);
 * ```
 */
export function encodeJpeg(
  pixels: Uint8Array,
  width: number,
  height: number,
  quality: number,
): Uint8Array {
  if (!(pixels instanceof Uint8Array) || pixels.length !== width * height * 4) {
    throw new TypeError(
      `Cannot encode JPEG: expected ${width * height * 4} RGBA bytes, got ${
        pixels instanceof Uint8Array ? pixels.length : describe(pixels)
      }`,
    );
  }
  if (!Number.isInteger(quality) || quality < 1 || quality > 100) {
    throw new RangeError(
      `Cannot encode JPEG: expected quality to be an integer in [1, 100], got ${quality}`,
    );
  }
  const { data } = jpeg.encode({ data: pixels, width, height }, quality);
  return new Uint8Array(data.buffer, data.byteOffset, data.length);
}
