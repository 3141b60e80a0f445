/**
 * A minimal PNG encoder for 8-bit grayscale images, enough to let a person
 * look at digits and augmentation previews. Uses the web-standard
 * `CompressionStream("deflate")`, which produces the zlib-wrapped deflate
 * stream that PNG's IDAT chunk requires.
 *
 * @module
 */

/** The 8-byte PNG signature. */
const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
/** PNG dimensions are 31-bit unsigned integers. */
const MAX_DIMENSION = 2 ** 31 - 1;

let crcTable: Uint32Array | undefined;

/** CRC-32 (ISO 3309, polynomial 0xEDB88320) of `bytes`, as PNG uses. */
function crc32(bytes: Uint8Array): number {
  if (crcTable === undefined) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) {
    c = crcTable[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  }
  return (c ^ 0xffffffff) >>> 0;
}

/** Write one chunk (length, type, data, CRC over type + data) at `offset`. */
function writeChunk(
  out: Uint8Array,
  offset: number,
  type: string,
  data: Uint8Array,
): number {
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  view.setUint32(offset, data.length);
  for (let i = 0; i < 4; i++) out[offset + 4 + i] = type.charCodeAt(i);
  out.set(data, offset + 8);
  view.setUint32(
    offset + 8 + data.length,
    crc32(out.subarray(offset + 4, offset + 8 + data.length)),
  );
  return offset + 12 + data.length;
}

async function deflate(bytes: Uint8Array<ArrayBuffer>): Promise<Uint8Array> {
  const stream = new Blob([bytes]).stream().pipeThrough(
    new CompressionStream("deflate"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/**
 * Encode 8-bit grayscale pixels as a PNG file (colour type 0, bit depth 8, no
 * interlace, filter type 0 on every row).
 *
 * @param pixels Row-major pixel values, `width * height` bytes, 0 = black.
 * @param width Image width in pixels, an integer in [1, 2³¹ - 1].
 * @param height Image height in pixels, an integer in [1, 2³¹ - 1].
 * @returns The bytes of a complete PNG file.
 * @throws {TypeError} If `pixels` is not a `Uint8Array` or its length is not
 * `width * height`.
 * @throws {RangeError} If `width` or `height` is not an integer in
 * [1, 2³¹ - 1].
 *
 * @example Encode a 2x2 checkerboard
 * ```ts
 * import { encodePng } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * const png = await encodePng(new Uint8Array([0, 255, 255, 0]), 2, 2);
 * assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47]); // "PNG"
 * const view = new DataView(png.buffer);
 * assert.equal(view.getUint32(16), 2); // IHDR width
 * assert.equal(view.getUint32(20), 2); // IHDR height
 * ```
 */
export async function encodePng(
  pixels: Uint8Array,
  width: number,
  height: number,
): Promise<Uint8Array> {
  if (!(pixels instanceof Uint8Array)) {
    const got = pixels === null
      ? "null"
      : typeof pixels === "object"
      ? (pixels as object).constructor?.name ?? "Object"
      : typeof pixels;
    throw new TypeError(
      `Cannot encode PNG: expected pixels to be a Uint8Array, got ${got}`,
    );
  }
  for (const [name, value] of [["width", width], ["height", height]] as const) {
    if (
      !Number.isInteger(value) || value < 1 || value > MAX_DIMENSION
    ) {
      throw new RangeError(
        `Cannot encode PNG: expected ${name} to be an integer in [1, ${MAX_DIMENSION}], got ${value}`,
      );
    }
  }
  if (pixels.length !== width * height) {
    throw new TypeError(
      `Cannot encode PNG: expected pixels.length to be width * height = ${
        width * height
      }, got ${pixels.length}`,
    );
  }

  // Each scanline is a filter-type byte (0 = None) followed by the row.
  const raw = new Uint8Array(height * (width + 1));
  for (let y = 0; y < height; y++) {
    raw.set(pixels.subarray(y * width, (y + 1) * width), y * (width + 1) + 1);
  }
  const idat = await deflate(raw);

  const ihdr = new Uint8Array(13);
  const header = new DataView(ihdr.buffer);
  header.setUint32(0, width);
  header.setUint32(4, height);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // colour type: grayscale
  ihdr[10] = 0; // compression: deflate
  ihdr[11] = 0; // filter method: adaptive (type 0 used on every row)
  ihdr[12] = 0; // interlace: none

  const out = new Uint8Array(
    SIGNATURE.length + (12 + ihdr.length) + (12 + idat.length) + 12,
  );
  out.set(SIGNATURE, 0);
  let offset = writeChunk(out, SIGNATURE.length, "IHDR", ihdr);
  offset = writeChunk(out, offset, "IDAT", idat);
  writeChunk(out, offset, "IEND", new Uint8Array(0));
  return out;
}
