/**
 * Parsing and scaling the 60,000 MNIST training images.
 *
 * Run: `TINYMNIST_DATA_DIR=../shared/mnist deno bench --allow-read --allow-env bench/idx_bench.ts`
 *
 * @module
 */

import { parseIdxImages } from "../lib/idx.ts";
import { toFloat32Images } from "../lib/mnist.ts";

const dir = Deno.env.get("TINYMNIST_DATA_DIR");
if (!dir) {
  throw new Error(
    "TINYMNIST_DATA_DIR is not set: point it at a directory holding train-images-idx3-ubyte.gz (in this workspace: ../shared/mnist)",
  );
}
const gz = await Deno.readFile(`${dir}/train-images-idx3-ubyte.gz`);
const bytes = new Uint8Array(
  await new Response(
    new Blob([gz]).stream().pipeThrough(new DecompressionStream("gzip")),
  ).arrayBuffer(),
);
const { pixels } = parseIdxImages(bytes);

Deno.bench({
  name: "copy 47 MB (bytes.slice)",
  group: "parse train images",
  baseline: true,
  fn: () => {
    bytes.slice();
  },
});

Deno.bench({
  name: "parseIdxImages (header checks + zero-copy view)",
  group: "parse train images",
  fn: () => {
    parseIdxImages(bytes, "train-images-idx3-ubyte");
  },
});

Deno.bench({
  name: "new Float32Array(pixels) (no scaling)",
  group: "uint8 to float32",
  baseline: true,
  fn: () => {
    new Float32Array(pixels);
  },
});

Deno.bench({
  name: "toFloat32Images (lookup table)",
  group: "uint8 to float32",
  fn: () => {
    toFloat32Images(pixels);
  },
});

Deno.bench({
  name: "divide loop (pixel / 255)",
  group: "uint8 to float32",
  fn: () => {
    const out = new Float32Array(pixels.length);
    for (let i = 0; i < pixels.length; i++) out[i] = pixels[i] / 255;
  },
});
