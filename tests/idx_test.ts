import assert from "node:assert/strict";
import { encodeIdx, IdxFormatError, parseIdx, parseIdxImages, parseIdxLabels } from "../lib/idx.ts";
import { gzip, makeIdx, makeImagesIdx, makeLabelsIdx } from "./_fixtures.ts";

/** Assert `fn` throws an IdxFormatError (a SyntaxError) with this message. */
function assertIdxError(fn: () => unknown, message: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(
      error instanceof IdxFormatError,
      `not an IdxFormatError: ${error}`,
    );
    assert.ok(error instanceof SyntaxError);
    assert.equal(error.name, "IdxFormatError");
    assert.equal(error.message, message);
    return true;
  });
}

Deno.test("encodeIdx writes the same bytes as the fixture builder", () => {
  const pixels = new Uint8Array(2 * 3 * 4).map((_, i) => i);
  assert.deepEqual(
    encodeIdx(pixels, [2, 3, 4]),
    makeIdx(0x08, [2, 3, 4], pixels),
  );
  assert.deepEqual(
    [...encodeIdx(new Uint8Array([7, 2, 1]), [3])],
    [0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1],
  );
});

Deno.test("parseIdx round-trips every rank from 1 to 4", () => {
  for (const dims of [[5], [2, 3], [2, 3, 4], [2, 1, 3, 2], [0, 28, 28]]) {
    const n = dims.reduce((a, b) => a * b, 1);
    const data = new Uint8Array(n).map((_, i) => (i * 7) % 256);
    const parsed = parseIdx(encodeIdx(data, dims));
    assert.deepEqual(parsed.dims, dims);
    assert.deepEqual(parsed.data, data);
  }
});

Deno.test("parseIdx returns a zero-copy view, also of a view", () => {
  const file = makeImagesIdx(2, 3, 3);
  const padded = new Uint8Array(file.length + 10);
  padded.set(file, 5);
  const bytes = padded.subarray(5, 5 + file.length);
  const { dims, data } = parseIdx(bytes);
  assert.deepEqual(dims, [2, 3, 3]);
  assert.equal(data.buffer, padded.buffer);
  assert.equal(data.byteOffset, 5 + 16);
  assert.deepEqual([...data], Array.from({ length: 18 }, (_, i) => i));
});

Deno.test("parseIdxImages reads count, size and pixels", () => {
  const bytes = makeImagesIdx(3, 28, 28, (i) => (i * 31) % 256);
  const images = parseIdxImages(bytes, "fixture");
  assert.equal(images.count, 3);
  assert.equal(images.rows, 28);
  assert.equal(images.cols, 28);
  assert.equal(images.pixels.length, 3 * 28 * 28);
  assert.equal(images.pixels[100], (100 * 31) % 256);
  assert.equal(images.pixels.buffer, bytes.buffer);
});

Deno.test("parseIdxLabels reads labels 0 to 9", () => {
  const labels = parseIdxLabels(makeLabelsIdx([5, 0, 4, 1, 9, 2]));
  assert.deepEqual([...labels], [5, 0, 4, 1, 9, 2]);
});

Deno.test("parseIdxImages rejects a labels file (wrong magic)", () => {
  assertIdxError(
    () => parseIdxImages(makeLabelsIdx([5, 0, 4]), "train-images-idx3-ubyte"),
    'Cannot parse IDX images "train-images-idx3-ubyte": expected magic number 2051, got 2049',
  );
});

Deno.test("parseIdxLabels rejects an images file (wrong magic)", () => {
  assertIdxError(
    () => parseIdxLabels(makeImagesIdx(1), "train-labels-idx1-ubyte"),
    'Cannot parse IDX labels "train-labels-idx1-ubyte": expected magic number 2049, got 2051',
  );
});

Deno.test("parseIdx points out gzip data", async () => {
  const gz = await gzip(makeLabelsIdx([1, 2, 3]));
  assertIdxError(
    () => parseIdx(gz, "labels.gz"),
    'Cannot parse IDX file "labels.gz": expected the first two bytes to be 0x00 0x00, got 0x1f 0x8b (this looks like gzip data; gunzip it first)',
  );
  assertIdxError(
    () => parseIdxLabels(gz),
    `Cannot parse IDX labels: expected magic number 2049, got ${
      new DataView(gz.buffer).getUint32(0)
    } (this looks like gzip data; gunzip it first)`,
  );
});

Deno.test("parseIdx rejects nonzero leading bytes", () => {
  const bytes = makeLabelsIdx([1, 2, 3]);
  bytes[1] = 0x01;
  assertIdxError(
    () => parseIdx(bytes),
    "Cannot parse IDX file: expected the first two bytes to be 0x00 0x00, got 0x00 0x01",
  );
});

Deno.test("parseIdx rejects an unknown type byte", () => {
  assertIdxError(
    () => parseIdx(makeIdx(0x07, [3], new Uint8Array(3)), "x"),
    'Cannot parse IDX file "x": unknown data type 0x07, expected one of 0x08, 0x09, 0x0b, 0x0c, 0x0d, 0x0e',
  );
});

Deno.test("parseIdx rejects a known but unsupported type", () => {
  assertIdxError(
    () => parseIdx(makeIdx(0x0d, [2], new Uint8Array(8))),
    "Cannot parse IDX file: unsupported data type 0x0d (float), only 0x08 (unsigned byte) is supported",
  );
});

Deno.test("parseIdx rejects a rank of 0 or above 4", () => {
  assertIdxError(
    () => parseIdx(makeIdx(0x08, [], new Uint8Array(0))),
    "Cannot parse IDX file: expected rank 1 to 4, got 0",
  );
  assertIdxError(
    () => parseIdx(makeIdx(0x08, [1, 1, 1, 1, 1], new Uint8Array(1))),
    "Cannot parse IDX file: expected rank 1 to 4, got 5",
  );
});

Deno.test("parseIdx rejects a truncated header", () => {
  const bytes = makeImagesIdx(10);
  assertIdxError(
    () => parseIdx(bytes.slice(0, 2)),
    "Cannot parse IDX file: truncated header: expected at least 4 bytes, got 2",
  );
  assertIdxError(
    () => parseIdx(new Uint8Array(0)),
    "Cannot parse IDX file: truncated header: expected at least 4 bytes, got 0",
  );
  assertIdxError(
    () => parseIdxImages(bytes.slice(0, 10), "t10k-images-idx3-ubyte"),
    'Cannot parse IDX images "t10k-images-idx3-ubyte": truncated header: expected at least 16 bytes for rank 3, got 10',
  );
});

Deno.test("parseIdx rejects truncated data", () => {
  const bytes = makeImagesIdx(10);
  assertIdxError(
    () => parseIdxImages(bytes.slice(0, -100), "train-images-idx3-ubyte"),
    'Cannot parse IDX images "train-images-idx3-ubyte": truncated data: expected 7856 bytes (16-byte header + 7840 data bytes for dims 10x28x28), got 7756',
  );
  assertIdxError(
    () => parseIdxLabels(makeLabelsIdx([1, 2, 3]).slice(0, -1)),
    "Cannot parse IDX labels: truncated data: expected 11 bytes (8-byte header + 3 data bytes for dims 3), got 10",
  );
});

Deno.test("parseIdx rejects extra bytes after the data", () => {
  const bytes = makeImagesIdx(10);
  const extra = new Uint8Array(bytes.length + 100);
  extra.set(bytes);
  assertIdxError(
    () => parseIdx(extra),
    "Cannot parse IDX file: unexpected trailing data: expected 7856 bytes (16-byte header + 7840 data bytes for dims 10x28x28), got 7956",
  );
});

Deno.test("parseIdxLabels rejects a label above 9", () => {
  assertIdxError(
    () => parseIdxLabels(makeLabelsIdx([5, 0, 4, 10, 1]), "labels"),
    'Cannot parse IDX labels "labels": label at index 3 is 10, expected 0 to 9',
  );
  assertIdxError(
    () => parseIdxLabels(makeLabelsIdx([255])),
    "Cannot parse IDX labels: label at index 0 is 255, expected 0 to 9",
  );
});

Deno.test("parseIdx rejects input that is not a Uint8Array", () => {
  assert.throws(
    () => parseIdx([0, 0, 8, 1] as unknown as Uint8Array),
    new TypeError("Cannot parse IDX file: expected a Uint8Array, got Array"),
  );
  assert.throws(
    () => parseIdxImages(null as unknown as Uint8Array),
    new TypeError("Cannot parse IDX images: expected a Uint8Array, got null"),
  );
});

Deno.test("encodeIdx rejects bad data and dims", () => {
  assert.throws(
    () => encodeIdx(new Uint8Array(700), [1, 28, 28]),
    new RangeError(
      "Cannot encode IDX: expected 784 data bytes for dims 1x28x28, got 700",
    ),
  );
  assert.throws(
    () => encodeIdx(new Uint8Array(0), []),
    new RangeError("Cannot encode IDX: expected 1 to 4 dims, got 0"),
  );
  assert.throws(
    () => encodeIdx(new Uint8Array(1), [1, 1, 1, 1, 1]),
    new RangeError("Cannot encode IDX: expected 1 to 4 dims, got 5"),
  );
  assert.throws(
    () => encodeIdx(new Uint8Array(3), [1.5, 2]),
    new RangeError(
      "Cannot encode IDX: expected dim 0 to be an integer from 0 to 4294967295, got 1.5",
    ),
  );
  assert.throws(
    () => encodeIdx(new Uint8Array(0), [-1]),
    new RangeError(
      "Cannot encode IDX: expected dim 0 to be an integer from 0 to 4294967295, got -1",
    ),
  );
  assert.throws(
    () => encodeIdx(new Float32Array(3) as unknown as Uint8Array, [3]),
    new TypeError(
      "Cannot encode IDX: expected data to be a Uint8Array, got Float32Array",
    ),
  );
});
