import assert from "node:assert/strict";
import { deflateSync, inflateSync } from "node:zlib";
import {
  decodeImage,
  encodeJpeg,
  encodePng,
  ImageFormatError,
  MAX_IMAGE_PIXELS,
} from "../lib/image_file.ts";

interface Chunk {
  type: string;
  data: Uint8Array;
  crc: number;
}

/** Bitwise CRC-32, independent of the PNG library. */
function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return (c ^ 0xffffffff) >>> 0;
}

/** Split a PNG into chunks, checking the signature and every CRC. */
function readChunks(png: Uint8Array): Chunk[] {
  assert.deepEqual(
    [...png.subarray(0, 8)],
    [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a],
  );
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  const chunks: Chunk[] = [];
  let offset = 8;
  while (offset < png.length) {
    const length = view.getUint32(offset);
    const type = new TextDecoder().decode(png.subarray(offset + 4, offset + 8));
    const data = png.subarray(offset + 8, offset + 8 + length);
    const crc = view.getUint32(offset + 8 + length);
    assert.equal(
      crc,
      crc32(png.subarray(offset + 4, offset + 8 + length)),
      `CRC of ${type}`,
    );
    chunks.push({ type, data, crc });
    offset += 12 + length;
  }
  assert.equal(offset, png.length);
  return chunks;
}

async function inflate(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes.slice()]).stream().pipeThrough(
    new DecompressionStream("deflate"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function gradient(width: number, height: number): Uint8Array {
  const pixels = new Uint8Array(width * height);
  for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 37) & 0xff;
  return pixels;
}

Deno.test("encodePng() writes signature, IHDR, IDAT, IEND with valid CRCs", async () => {
  const png = await encodePng(gradient(5, 3), 5, 3);
  const chunks = readChunks(png);
  assert.deepEqual(chunks.map((c) => c.type), ["IHDR", "IDAT", "IEND"]);
  const ihdr = new DataView(chunks[0].data.buffer, chunks[0].data.byteOffset);
  assert.equal(chunks[0].data.length, 13);
  assert.equal(ihdr.getUint32(0), 5); // width
  assert.equal(ihdr.getUint32(4), 3); // height
  // bit depth 8, grayscale, deflate, filter method 0, no interlace
  assert.deepEqual([...chunks[0].data.subarray(8)], [8, 0, 0, 0, 0]);
  assert.equal(chunks[2].data.length, 0);
  assert.equal(chunks[2].crc, 0xae426082); // the well-known IEND CRC
});

Deno.test("encodePng() IDAT inflates to filter byte 0 plus each row", async () => {
  for (const [width, height] of [[1, 1], [5, 3], [28, 28], [300, 7]]) {
    const pixels = gradient(width, height);
    const idat = readChunks(await encodePng(pixels, width, height))[1].data;
    const expected = new Uint8Array(height * (width + 1));
    for (let y = 0; y < height; y++) {
      expected[y * (width + 1)] = 0;
      expected.set(
        pixels.subarray(y * width, (y + 1) * width),
        y * (width + 1) + 1,
      );
    }
    assert.deepEqual(await inflate(idat), expected, `${width}x${height}`);
    // A second, independent zlib decoder agrees.
    assert.deepEqual(new Uint8Array(inflateSync(idat)), expected);
  }
});

Deno.test("encodePng() does not modify its input", async () => {
  const pixels = gradient(4, 4);
  const copy = pixels.slice();
  await encodePng(pixels, 4, 4);
  assert.deepEqual(pixels, copy);
});

Deno.test("encodePng() rejects bad sizes with exact messages", async () => {
  const pixels = gradient(4, 3);
  await assert.rejects(() => encodePng(pixels.slice(0, -1), 4, 3), {
    name: "TypeError",
    message:
      "Cannot encode PNG: expected pixels.length to be width * height * channels = 12, got 11",
  });
  await assert.rejects(() => encodePng(pixels, 0, 3), {
    name: "RangeError",
    message: "Cannot encode PNG: expected width to be an integer in [1, 2147483647], got 0",
  });
  await assert.rejects(() => encodePng(pixels, 4, 2.5), {
    name: "RangeError",
    message: "Cannot encode PNG: expected height to be an integer in [1, 2147483647], got 2.5",
  });
  await assert.rejects(
    () => encodePng(new Float32Array(12) as unknown as Uint8Array, 4, 3),
    {
      name: "TypeError",
      message: "Cannot encode PNG: expected pixels to be a Uint8Array, got Float32Array",
    },
  );
});

/** A PNG built here, chunk by chunk (independently of the library): IHDR, optional PLTE/tRNS, IDAT, IEND. */
function buildPng(
  width: number,
  height: number,
  depth: number,
  colourType: number,
  rows: Uint8Array[],
  extra: [string, Uint8Array][] = [],
): Uint8Array {
  const chunk = (type: string, data: Uint8Array) => {
    const out = new Uint8Array(12 + data.length);
    const view = new DataView(out.buffer);
    view.setUint32(0, data.length);
    out.set(new TextEncoder().encode(type), 4);
    out.set(data, 8);
    view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
    return out;
  };
  const ihdr = new Uint8Array(13);
  const view = new DataView(ihdr.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  ihdr.set([depth, colourType, 0, 0, 0], 8);
  const raw = new Uint8Array(rows.reduce((n, r) => n + 1 + r.length, 0));
  rows.reduce((offset, row) => (raw.set(row, offset + 1), offset + 1 + row.length), 0);
  const parts = [
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    ...extra.map(([type, data]) => chunk(type, data)),
    chunk("IDAT", deflateSync(raw)),
    chunk("IEND", new Uint8Array()),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((offset, p) => (out.set(p, offset), offset + p.length), 0);
  return out;
}

Deno.test("decodeImage() reads PNG colour types and depths the library writes", async () => {
  const grey = gradient(5, 3);
  assert.deepEqual(decodeImage(await encodePng(grey, 5, 3)), {
    width: 5,
    height: 3,
    data: grey,
    channels: 1,
    depth: 8,
  });
  const rgba = new Uint8Array(5 * 3 * 4).map((_, i) => (i * 53) & 0xff);
  const image = decodeImage(await encodePng(rgba, 5, 3, { channels: 4 }));
  assert.equal(image.channels, 4);
  assert.deepEqual(image.data, rgba);
});

Deno.test("decodeImage() unpacks 1-bit grey and expands palettes with transparency", () => {
  // 10×2, 1 bit: row 0 alternates 1,0,…; row 1 all ones (rows padded to whole bytes).
  const oneBit = buildPng(10, 2, 1, 0, [
    new Uint8Array([0b10101010, 0b10000000]),
    new Uint8Array([0xff, 0xc0]),
  ]);
  const bits = decodeImage(oneBit);
  assert.deepEqual([...bits.data], [
    255,
    0,
    255,
    0,
    255,
    0,
    255,
    0,
    255,
    0,
    ...new Array(10).fill(255),
  ]);
  // 3×1 palette of red, green, half-transparent blue; 2-bit indices 0, 1, 2.
  const palette = buildPng(3, 1, 2, 3, [new Uint8Array([0b00011000])], [
    ["PLTE", new Uint8Array([255, 0, 0, 0, 255, 0, 0, 0, 255])],
    ["tRNS", new Uint8Array([255, 255, 128])],
  ]);
  const colours = decodeImage(palette);
  assert.equal(colours.channels, 4);
  assert.deepEqual([...colours.data], [255, 0, 0, 255, 0, 255, 0, 255, 0, 0, 255, 128]);
});

Deno.test("decodeImage() reads JPEG as RGBA", () => {
  const rgba = new Uint8Array(16 * 16 * 4);
  for (let i = 0; i < 256; i++) {
    rgba.set(i % 16 < 8 ? [20, 20, 20, 255] : [230, 230, 230, 255], 4 * i);
  }
  const image = decodeImage(encodeJpeg(rgba, 16, 16, 90), "stripes.jpg");
  assert.deepEqual([image.width, image.height, image.channels], [16, 16, 4]);
  assert.ok(Math.abs(image.data[0] - 20) < 12 && Math.abs(image.data[4 * 15] - 230) < 12);
});

Deno.test("decodeImage() names the file and the fault, never an internal error", async () => {
  const png = await encodePng(gradient(5, 3), 5, 3);
  const cases: [Uint8Array, RegExp][] = [
    [new Uint8Array(), /^Cannot decode image "f": expected a PNG or JPEG file, got an empty file$/],
    [
      new TextEncoder().encode("GIF89a"),
      /^Cannot decode image "f": expected a PNG or JPEG file, got bytes 47 49 46 38$/,
    ],
    [
      png.slice(0, 20),
      /^Cannot decode image "f": expected a PNG header of at least 24 bytes, got 20$/,
    ],
    [
      png.slice(0, -20),
      /^Cannot decode image "f": expected a valid PNG, got one that does not decode \(.*[^:\s]\)$/,
    ],
    [
      encodeJpeg(new Uint8Array(64 * 4), 8, 8, 75).slice(0, 100),
      /^Cannot decode image "f": expected a valid JPEG, got one that does not decode \(/,
    ],
  ];
  // A small file declaring a huge image is refused from its header.
  const huge = png.slice();
  new DataView(huge.buffer).setUint32(16, 100_000);
  new DataView(huge.buffer).setUint32(20, 100_000);
  cases.push([huge, new RegExp(`expected at most ${MAX_IMAGE_PIXELS} pixels, got 100000×100000$`)]);
  for (const [bytes, message] of cases) {
    assert.throws(() => decodeImage(bytes, "f"), (error: Error) => {
      assert.ok(error instanceof ImageFormatError, String(error));
      assert.match(error.message, message);
      return true;
    });
  }
});
