/**
 * The WASM backend's training kernels, one op family a file, and their one
 * registration entry.
 *
 * @module
 */
import { registerBatchNormKernels } from "./batch_norm.ts";
import { registerConvKernels } from "./conv.ts";
import { registerIdentityKernel } from "./identity.ts";
import { registerMaxPoolGradKernel } from "./max_pool.ts";
import { registerReduceKernels } from "./reduce.ts";
import { registerSoftmaxCrossEntropyKernels } from "./softmax_cross_entropy.ts";
import { registerTileKernel } from "./tile.ts";

let registered = false;

/**
 * Register the kernels the WASM backend needs to train a convolutional
 * network quickly: `Conv2DBackpropFilter` (missing from the backend), and
 * for stride-1 convolutions with output channels a multiple of 8 our own
 * SIMD convolutions (`Conv2D`, `FusedConv2D`, `Conv2DBackpropInput` and
 * `Conv2DBackpropFilter`: direct, or for 3 × 3 filters Winograd's
 * F(4 × 4, 3 × 3), with relaxed SIMD's fused multiply-add where the runtime
 * has it), a block-copy `Tile`, an `Identity` that shares memory instead of copying,
 * `MaxPoolGrad`, `Sum` and `Mean` (over all but the channel axis) in plain
 * JavaScript, the batch-norm kernels of `batch_norm.ts` and the softmax
 * cross-entropy kernels of `loss.ts`. Each is tested for parity with the cpu backend. Safe to
 * call more than once; `selectBackend` calls it for you.
 *
 * @returns `true` if this call registered the kernels, `false` if they were already there.
 *
 * @example Register once
 * ```ts
 * import { registerWasmTrainingKernels } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * registerWasmTrainingKernels();
 * assert.equal(registerWasmTrainingKernels(), false);
 * ```
 */
export function registerWasmTrainingKernels(): boolean {
  if (registered) return false;
  registerConvKernels();
  registerTileKernel();
  registerMaxPoolGradKernel();
  registerIdentityKernel();
  registerBatchNormKernels();
  registerReduceKernels();
  registerSoftmaxCrossEntropyKernels();
  registered = true;
  return true;
}
