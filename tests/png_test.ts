import assert from "node:assert/strict";
import { inflateSync } from "node:zlib";
import { encodePng } from "../lib/png.ts";

interface Chunk {
  type: string;
  data: Uint8Array;
  crc: number;
}

/** Bitwise CRC-32, independent of the table-driven one in png.ts. */
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
    message: "Cannot encode PNG: expected pixels.length to be width * height = 12, got 11",
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
