/**
 * The softmax cross-entropy kernels of `loss.ts` on the WASM backend: one
 * pass in plain JavaScript over `[n, 10]` logits each way, where
 * TensorFlow.js's composition of `logSoftmax`, `oneHot`, `mul` and `sum`
 * runs about 25 kernels forward and backward. Internal.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs";
import { SOFTMAX_CROSS_ENTROPY, SOFTMAX_CROSS_ENTROPY_GRAD } from "../loss.ts";
import { type KernelArgs, registerNewKernels, type WasmHeapBackend } from "./kernel.ts";

/** The label-smoothed target of class `j` for a row whose label is `label`. */
function target(j: number, label: number, smoothing: number, classes: number): number {
  return (j === label ? 1 - smoothing : 0) + smoothing / classes;
}

/** A kernel's inputs, its `smoothing` and a view of a tensor's values on the heap. */
function kernelParts(args: KernelArgs) {
  const backend = args.backend as WasmHeapBackend;
  return {
    inputs: args.inputs as Record<string, tf.TensorInfo>,
    smoothing: (args.attrs as { smoothing: number }).smoothing,
    heap: (t: tf.TensorInfo) => backend.typedArrayFromHeap(t),
  };
}

/**
 * Losses (Σⱼ tⱼ) logsumexp(z) − Σⱼ tⱼ zⱼ and probabilities exp(zⱼ −
 * logsumexp(z)), row by row in double precision (the max subtracted first).
 * Σⱼ tⱼ is 1 but for a label outside the classes, which has no hot class.
 */
function softmaxCrossEntropyWasm(args: KernelArgs): tf.TensorInfo[] {
  const { heap, inputs: { logits, labels }, smoothing } = kernelParts(args);
  const [n, classes] = logits.shape;
  const backend = args.backend as WasmHeapBackend;
  const losses = backend.makeOutput([n], "float32");
  const probs = backend.makeOutput([n, classes], "float32");
  const [z, y, loss, p] = [logits, labels, losses, probs].map(heap);
  for (let i = 0, row = 0; i < n; i++, row += classes) {
    let max = -Infinity;
    for (let j = 0; j < classes; j++) max = Math.max(max, z[row + j]);
    let sum = 0, dot = 0, mass = 0;
    for (let j = 0; j < classes; j++) {
      const t = target(j, y[i], smoothing, classes);
      sum += Math.exp(z[row + j] - max);
      dot += t * z[row + j];
      mass += t;
    }
    const logSumExp = max + Math.log(sum);
    loss[i] = mass * logSumExp - dot;
    for (let j = 0; j < classes; j++) p[row + j] = Math.exp(z[row + j] - logSumExp);
  }
  return [losses, probs];
}

/** ∂logits = dy · ((Σⱼ tⱼ) p − t), row by row. */
function softmaxCrossEntropyGradWasm(args: KernelArgs): tf.TensorInfo {
  const { heap, inputs: { dy, probs, labels }, smoothing } = kernelParts(args);
  const [n, classes] = probs.shape;
  const out = (args.backend as WasmHeapBackend).makeOutput([n, classes], "float32");
  const [d, p, y, dz] = [dy, probs, labels, out].map(heap);
  for (let i = 0, row = 0; i < n; i++, row += classes) {
    const mass = y[i] >= 0 && y[i] < classes ? 1 : smoothing;
    for (let j = 0; j < classes; j++) {
      dz[row + j] = d[i] * (mass * p[row + j] - target(j, y[i], smoothing, classes));
    }
  }
  return out;
}

/** Register the softmax cross-entropy kernels for the WASM backend. Internal. */
export function registerSoftmaxCrossEntropyKernels(): void {
  registerNewKernels([
    [SOFTMAX_CROSS_ENTROPY, softmaxCrossEntropyWasm],
    [SOFTMAX_CROSS_ENTROPY_GRAD, softmaxCrossEntropyGradWasm],
  ]);
}
