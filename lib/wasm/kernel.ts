/**
 * What the WASM training kernels share: the arguments TensorFlow.js passes a
 * kernel, the parts of the WASM backend they use, and helpers to call the
 * backend's own kernels and to replace them. Internal.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { BackendError } from "../backend_error.ts";

/** What TensorFlow.js passes a kernel function. Internal. */
export type KernelArgs = {
  inputs: tf.NamedTensorInfoMap;
  backend: tf.KernelBackend;
  attrs?: tf.NamedAttrMap;
};
/** A kernel function with {@linkcode KernelArgs}. Internal. */
export type KernelFn = (args: KernelArgs) => tf.TensorInfo;

/** The WASM backend's own kernel `name` (to call from a kernel written here). Internal. */
export function wasmKernel(name: string): KernelFn {
  const config = tf.getKernel(name, "wasm");
  if (!config) throw new BackendError(`Cannot find the wasm kernel "${name}"`);
  return config.kernelFunc as unknown as KernelFn;
}

/**
 * Run `f` with a `keep` function that registers intermediate results; all of
 * them are freed afterwards, whether `f` returns or throws.
 */
export function withScratch<T>(
  backend: tf.KernelBackend,
  f: (keep: (t: tf.TensorInfo) => tf.TensorInfo) => T,
): T {
  const made: tf.TensorInfo[] = [];
  try {
    return f((t) => (made.push(t), t));
  } finally {
    for (const t of made) backend.disposeData(t.dataId);
  }
}

/** The parts of the WASM backend that kernels written in JavaScript use. Internal. */
export type WasmHeapBackend = tf.KernelBackend & {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
};

/**
 * Register `kernelFunc` as the WASM kernel `name`, keeping the backend's
 * setup; returns the kernel it replaces, if any (for a fallback). Internal.
 */
export function replaceKernel(name: string, kernelFunc: KernelFn): KernelFn | undefined {
  const previous = tf.getKernel(name, "wasm");
  if (previous) tf.unregisterKernel(name, "wasm");
  tf.registerKernel({
    kernelName: name,
    backendName: "wasm",
    kernelFunc: kernelFunc as unknown as tf.KernelFunc,
    // Keep the backend's setup (it binds the wasm function the fallback uses).
    setupFunc: previous?.setupFunc,
  });
  return previous?.kernelFunc as unknown as KernelFn | undefined;
}

/** Register each `[name, kernel]` as a WASM kernel, unless one of that name is there. Internal. */
export function registerNewKernels(
  kernels: readonly (readonly [string, KernelFn | ((args: KernelArgs) => tf.TensorInfo[])])[],
): void {
  for (const [kernelName, kernelFunc] of kernels) {
    if (tf.getKernel(kernelName, "wasm")) continue;
    tf.registerKernel({
      kernelName,
      backendName: "wasm",
      kernelFunc: kernelFunc as unknown as tf.KernelFunc,
    });
  }
}
