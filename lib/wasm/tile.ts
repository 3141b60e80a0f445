/**
 * `Tile` on the WASM backend with block copies. Internal.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs";
import { type KernelArgs, type KernelFn, replaceKernel, type WasmHeapBackend } from "./kernel.ts";

let originalTile: KernelFn | undefined;

/**
 * Tile on the WASM backend with block copies in JavaScript. The backend's own
 * kernel indexes element by element and was the second largest cost of a
 * batch-norm training step (its gradient tiles the inverse deviation to the
 * full activation shape).
 */
function tileWasm(args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as WasmHeapBackend;
  const x = args.inputs.x as tf.TensorInfo;
  const reps = (args.attrs as unknown as tf.TileAttrs).reps;
  if (x.dtype === "string") return originalTile!(args);
  const outShape = x.shape.map((d, i) => d * reps[i]);
  const out = backend.makeOutput(outShape, x.dtype);
  tileInto(backend.typedArrayFromHeap(x), x.shape, reps, backend.typedArrayFromHeap(out));
  return out;
}

/**
 * Write `src` (of `shape`) repeated `reps[i]` times along each axis into
 * `dst`. Each source row is copied once; every repetition is a block copy
 * (`copyWithin`) of the part already written.
 */
export function tileInto(
  src: ArrayLike<number>,
  shape: readonly number[],
  reps: readonly number[],
  dst: Float32Array | Int32Array | Uint8Array,
): void {
  const rank = shape.length;
  if (rank === 0) {
    dst[0] = src[0];
    return;
  }
  // Elements below one index of each axis, in the output and in the source.
  const outInner = new Array<number>(rank), srcInner = new Array<number>(rank);
  outInner[rank - 1] = srcInner[rank - 1] = 1;
  for (let i = rank - 2; i >= 0; i--) {
    outInner[i] = outInner[i + 1] * shape[i + 1] * reps[i + 1];
    srcInner[i] = srcInner[i + 1] * shape[i + 1];
  }
  const fill = (axis: number, from: number, to: number): void => {
    if (axis === rank - 1) {
      for (let j = 0; j < shape[axis]; j++) dst[to + j] = src[from + j];
    } else {
      for (let i = 0; i < shape[axis]; i++) {
        fill(axis + 1, from + i * srcInner[axis], to + i * outInner[axis]);
      }
    }
    const block = shape[axis] * outInner[axis];
    for (let k = 1; k < reps[axis]; k++) dst.copyWithin(to + k * block, to, to + block);
  };
  fill(0, 0, 0);
}

/** Register the `Tile` kernel. Internal. */
export function registerTileKernel(): void {
  originalTile = replaceKernel("Tile", tileWasm);
}
