/**
 * `Identity` on the WASM backend without a copy. Internal.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs";
import { type KernelArgs, replaceKernel } from "./kernel.ts";

/**
 * Identity (what `clone` and a custom gradient's saved tensors run) by
 * sharing the input's memory, as the cpu backend and the WASM `Reshape` do.
 * The backend's own kernel copies every value; tensors are immutable, so a
 * shared buffer is safe. Strings go to the backend's kernel.
 */
function identityWasm(args: KernelArgs): tf.TensorInfo | null {
  const x = args.inputs.x as tf.TensorInfo;
  if (x.dtype === "string") return null;
  args.backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

/** Register the `Identity` kernel, falling back to the backend's for strings. Internal. */
export function registerIdentityKernel(): void {
  const original = replaceKernel("Identity", (args) => identityWasm(args) ?? original!(args));
}
