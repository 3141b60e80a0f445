/**
 * Test helpers: IDX bytes built in memory (independently of `encodeIdx`, so
 * the parser is not tested against itself), gzip and SHA-256.
 *
 * @module
 */

/**
 * Build raw IDX bytes: magic `00 00 type rank`, big-endian uint32 dims, data.
 * Nothing is checked, so broken files can be built too.
 *
 * @param type The type byte (0x08 for unsigned byte).
 * @param dims The dims written in the header.
 * @param data The bytes after the header.
 * @returns The IDX file.
 */
export function makeIdx(
  type: number,
  dims: number[],
  data: Uint8Array,
): Uint8Array<ArrayBuffer> {
  const header = 4 + 4 * dims.length;
  const out = new Uint8Array(header + data.length);
  const view = new DataView(out.buffer);
  out[2] = type;
  out[3] = dims.length;
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d));
  out.set(data, header);
  return out;
}

/**
 * Build an IDX images file (magic 2051) of `count` images.
 *
 * @param count Number of images.
 * @param rows Rows per image.
 * @param cols Columns per image.
 * @param fill Value of pixel `i` (flat index over all images), 0..255.
 * @returns The IDX file.
 */
export function makeImagesIdx(
  count: number,
  rows = 28,
  cols = 28,
  fill: (i: number) => number = (i) => i % 256,
): Uint8Array<ArrayBuffer> {
  const pixels = new Uint8Array(count * rows * cols);
  for (let i = 0; i < pixels.length; i++) pixels[i] = fill(i);
  return makeIdx(0x08, [count, rows, cols], pixels);
}

/**
 * Build an IDX labels file (magic 2049).
 *
 * @param labels The labels (not checked, so out-of-range ones can be built).
 * @returns The IDX file.
 */
export function makeLabelsIdx(labels: number[]): Uint8Array<ArrayBuffer> {
  return makeIdx(0x08, [labels.length], new Uint8Array(labels));
}

/**
 * Gzip bytes with `CompressionStream`.
 *
 * @param bytes The bytes to compress.
 * @returns The gzip file.
 */
export async function gzip(
  bytes: Uint8Array,
): Promise<Uint8Array<ArrayBuffer>> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream()
    .pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

export { sha256Hex } from "../lib/mnist.ts";

/**
 * The real MNIST, found as `deno task train` finds it: TINYMNIST_DATA_DIR
 * (CI points it at ../shared/mnist), then the cache data/mnist/, then a
 * checked download. Fails, never skips, with how to get the data.
 *
 * @returns The train and test sets.
 */
export async function loadRealMnist(): Promise<import("../lib/mnist.ts").MnistData> {
  const { loadMnist } = await import("../lib/mnist.ts");
  try {
    return await loadMnist();
  } catch (error) {
    throw new Error(
      "This test needs the real MNIST and could not find or download it: set " +
        "TINYMNIST_DATA_DIR to a folder with the four *-ubyte.gz files (in this workspace: " +
        "TINYMNIST_DATA_DIR=../shared/mnist, as .ci/run does) or run `deno task train` once " +
        `with internet access to fill data/mnist/ (${(error as Error).message})`,
    );
  }
}
