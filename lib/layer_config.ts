/**
 * The parts of a tfjs-layers layer's configuration that tinymnist's own
 * forward passes read (`forward.ts` for training, `inference.ts` for
 * inference), and the reading of its 2-D sizes. Internal.
 *
 * @module
 */

/** The fields of `layer.getConfig()` read for convolution, batch-norm, ReLU, pool and rescaling layers. */
export interface LayerConfig {
  activation?: string;
  strides?: number | number[];
  padding?: "same" | "valid";
  dilationRate?: number | number[];
  dataFormat?: string;
  poolSize?: number | number[];
  useBias?: boolean;
  /** Batch norm. */
  axis?: number;
  center?: boolean;
  epsilon?: number;
  momentum?: number;
  /** Batch norm's `scale` (a boolean) or rescaling's (a number). */
  scale?: number | boolean;
  /** Rescaling. */
  offset?: number;
  /** ReLU. */
  maxValue?: number | null;
}

/**
 * A 2-D size or stride as `[height, width]`: a number applies to both.
 *
 * @param value The configured value, one number or two.
 * @param fill Used for both when `value` is undefined.
 * @returns `[height, width]`.
 *
 * @example
 * ```ts
 * import { pair } from "./layer_config.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(pair(2), [2, 2]);
 * assert.deepEqual(pair([1, 3]), [1, 3]);
 * assert.deepEqual(pair(undefined, 2), [2, 2]);
 * ```
 */
export function pair(value: number | number[] | undefined, fill = 1): [number, number] {
  return (Array.isArray(value) ? value : [value ?? fill, value ?? fill]) as [number, number];
}
