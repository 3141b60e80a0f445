import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { type LayerConfig, pair } from "../lib/layer_config.ts";

Deno.test("pair reads the 2-D sizes of real layer configurations", () => {
  const conv = tf.layers.conv2d({ filters: 1, kernelSize: 3, strides: 2, dilationRate: 1 });
  const config = conv.getConfig() as LayerConfig;
  assert.deepEqual(pair(config.strides), [2, 2]);
  assert.deepEqual(pair(config.dilationRate), [1, 1]);
  const pool = tf.layers.maxPooling2d({ poolSize: [2, 3] }).getConfig() as LayerConfig;
  assert.deepEqual(pair(pool.poolSize, 2), [2, 3]);
  assert.deepEqual(pair(undefined, 2), [2, 2]);
});
