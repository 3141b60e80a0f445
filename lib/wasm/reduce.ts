/**
 * `Sum` and `Mean` over the leading axes on the WASM backend. Internal.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { type KernelArgs, replaceKernel, type WasmHeapBackend } from "./kernel.ts";

/**
 * Sum or mean over the leading axes of a float32 tensor (all but the channel
 * axis, as batch-norm and bias gradients reduce), in one pass in plain
 * JavaScript. The backend's kernel transposes the channel axis to the front
 * first. Other reductions go to the backend's own kernel.
 */
function reduceLeadingWasm(kind: "Sum" | "Mean", args: KernelArgs): tf.TensorInfo | null {
  const backend = args.backend as WasmHeapBackend;
  const x = args.inputs.x as tf.TensorInfo;
  const { axis, keepDims } = args.attrs as unknown as tf.SumAttrs;
  const rank = x.shape.length;
  const axes = tf.util.parseAxisParam(axis, x.shape).sort((a, b) => a - b);
  if (x.dtype !== "float32" || rank < 2 || axes.length !== rank - 1) return null;
  if (axes.some((a, i) => a !== i)) return null;
  const channels = x.shape[rank - 1];
  const rows = tf.util.sizeFromShape(x.shape) / channels;
  const sums = new Float64Array(channels);
  const xs = backend.typedArrayFromHeap(x) as Float32Array;
  for (let r = 0, i = 0; r < rows; r++) {
    for (let c = 0; c < channels; c++, i++) sums[c] += xs[i];
  }
  const out = backend.makeOutput(
    keepDims ? x.shape.map((d, i) => (i === rank - 1 ? d : 1)) : [channels],
    "float32",
  );
  const values = backend.typedArrayFromHeap(out) as Float32Array;
  for (let c = 0; c < channels; c++) values[c] = kind === "Mean" ? sums[c] / rows : sums[c];
  return out;
}

/** Register `Sum` and `Mean`, falling back to the backend's for other axes. Internal. */
export function registerReduceKernels(): void {
  for (const kind of ["Sum", "Mean"] as const) {
    const original = replaceKernel(
      kind,
      (args) => reduceLeadingWasm(kind, args) ?? original!(args),
    );
  }
}
