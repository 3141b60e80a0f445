import assert from "node:assert/strict";
import { inflateSync } from "node:zlib";
import { PREVIEW_ROWS, renderPreview } from "../lib/preview.ts";
import { createRng } from "../lib/rng.ts";

const P = 784;

function randomBatch(count: number, seed: number): Float32Array {
  const rng = createRng(seed);
  const out = new Float32Array(count * P);
  for (let i = 0; i < out.length; i++) out[i] = rng.next();
  return out;
}

/** Width, height and pixel rows of a PNG written by encodePng. */
function decode(png: Uint8Array) {
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  const width = view.getUint32(16), height = view.getUint32(20);
  const idatLength = view.getUint32(33);
  assert.equal(
    new TextDecoder().decode(png.subarray(37, 41)),
    "IDAT",
  );
  const raw = inflateSync(png.subarray(41, 41 + idatLength));
  const pixels = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    pixels.set(
      raw.subarray(y * (width + 1) + 1, (y + 1) * (width + 1)),
      y * width,
    );
  }
  return { width, height, pixels };
}

Deno.test("PREVIEW_ROWS lists the originals first and the full augmentation last", () => {
  assert.equal(PREVIEW_ROWS.length, 6);
  assert.equal(PREVIEW_ROWS[0], "original");
  assert.equal(PREVIEW_ROWS.at(-1), "augment (all)");
});

Deno.test("renderPreview() grid size matches columns, rows, zoom and gap", async () => {
  const images = randomBatch(10, 1);
  const rows = PREVIEW_ROWS.length;
  const cases: [Parameters<typeof renderPreview>[1], number, number][] = [
    [undefined, 8 * 56 + 9 * 2, rows * 56 + (rows + 1) * 2],
    [{ columns: 3, zoom: 1, gap: 1 }, 3 * 28 + 4, rows * 28 + rows + 1],
    [{ columns: 20, zoom: 3, gap: 0 }, 10 * 84, rows * 84], // only 10 images
  ];
  for (const [options, width, height] of cases) {
    const png = await renderPreview(images, options);
    const decoded = decode(png);
    assert.equal(decoded.width, width, JSON.stringify(options));
    assert.equal(decoded.height, height, JSON.stringify(options));
  }
});

Deno.test("renderPreview() row 0 shows the originals, zoomed", async () => {
  const images = randomBatch(2, 2);
  const zoom = 2, gap = 1;
  const { width, pixels } = decode(
    await renderPreview(images, { zoom, gap, columns: 2 }),
  );
  assert.equal(pixels[0], 96); // grey gap in the corner
  for (let n = 0; n < 2; n++) {
    const left = gap + n * (28 * zoom + gap);
    for (const [x, y] of [[0, 0], [5, 9], [27, 27], [13, 20]]) {
      const expected = Math.round(images[n * P + y * 28 + x] * 255);
      for (const [ox, oy] of [[0, 0], [1, 1]]) {
        const px = left + x * zoom + ox, py = gap + y * zoom + oy;
        assert.equal(pixels[py * width + px], expected);
      }
    }
  }
});

Deno.test("renderPreview() is reproducible per seed", async () => {
  const images = randomBatch(4, 3);
  const a = await renderPreview(images, { seed: 5 });
  assert.deepEqual(await renderPreview(images, { seed: 5 }), a);
  assert.notDeepEqual(await renderPreview(images, { seed: 6 }), a);
});

Deno.test("renderPreview() rejects bad input with exact messages", async () => {
  const images = randomBatch(2, 4);
  await assert.rejects(() => renderPreview(new Float32Array(0)), {
    name: "RangeError",
    message: "Cannot render preview: expected at least 1 image, got 0",
  });
  await assert.rejects(() => renderPreview(images.slice(0, -100)), {
    name: "TypeError",
    message: "Cannot render preview: expected a multiple of 784 pixels (n × 28 × 28), got 1468",
  });
  await assert.rejects(() => renderPreview(images, { zoom: 0 }), {
    name: "RangeError",
    message: "Cannot render preview: expected options.zoom to be an integer in [1, 16], got 0",
  });
  await assert.rejects(() => renderPreview(images, { columns: 2.5 }), {
    name: "RangeError",
    message:
      "Cannot render preview: expected options.columns to be an integer in [1, 9007199254740991], got 2.5",
  });
  await assert.rejects(
    () => renderPreview(images, { augment: { noiseSigma: -1 } }),
    {
      name: "RangeError",
      message:
        "Cannot augment images: expected options.noiseSigma to be a finite number >= 0, got -1",
    },
  );
});
