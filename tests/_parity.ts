/** Helpers for tests that compare the wasm backend with the cpu backend. */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../lib/backend.ts";

/** Relative error: max |a - b| over max |a|. */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let diff = 0, scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(a[i]));
  }
  return diff / scale;
}

/** Run `f` on the cpu and on the wasm backend; returns both results. */
export async function onBoth(f: () => tf.Tensor): Promise<[Float32Array, Float32Array]> {
  await selectBackend("cpu");
  const cpu = tf.tidy(f);
  const a = await cpu.data() as Float32Array;
  cpu.dispose();
  await selectBackend("wasm");
  const wasm = tf.tidy(f);
  const b = await wasm.data() as Float32Array;
  wasm.dispose();
  return [a, b];
}
