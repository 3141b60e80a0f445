import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../lib/backend.ts";
import { DifficultyTracker } from "../lib/difficulty_tracker.ts";
import { createRng } from "../lib/rng.ts";

const ALL = Int32Array.of(0, 1, 2, 3, 4, 5);

Deno.test("difficulty is relative to the batch: a high loss in an easy batch ranks first", () => {
  const tracker = new DifficultyTracker(6);
  tracker.record(Int32Array.of(0, 1, 2), Float32Array.of(4, 5, 6)); // early: all high, 0.8–1.2
  tracker.record(Int32Array.of(3, 4, 5), Float32Array.of(0.1, 0.1, 1)); // later: 5 stands out
  assert.deepEqual([...tracker.hardest(1, ALL, createRng(1))], [5]);
  assert.deepEqual(
    [...tracker.hardest(3, ALL, createRng(1))].sort(),
    [1, 2, 5],
    "5 (2.5×), 2 (1.2×), 1 (1.0×)",
  );
});

Deno.test("only seen examples are picked, and the latest presentation counts", () => {
  const tracker = new DifficultyTracker(6);
  tracker.record(Int32Array.of(0, 1), Float32Array.of(1, 3));
  assert.deepEqual([...tracker.hardest(5, ALL, createRng(2))].sort(), [0, 1]);
  tracker.record(Int32Array.of(1, 2), Float32Array.of(1, 3)); // 1 is now easy
  assert.deepEqual([...tracker.hardest(1, ALL, createRng(2))], [2]);
  assert.deepEqual([...tracker.hardest(3, Int32Array.of(0, 1), createRng(2))].sort(), [0, 1]);
});

Deno.test("deferred losses are read back at flush and their tensors freed", async () => {
  await selectBackend("cpu");
  const before = tf.memory().numTensors;
  const tracker = new DifficultyTracker(6);
  tracker.defer(Int32Array.of(0, 1), tf.tensor1d([1, 1]));
  tracker.defer(Int32Array.of(2, 3), tf.tensor1d([0.1, 1.9]));
  assert.deepEqual([...tracker.hardest(1, ALL, createRng(3))], [], "not flushed yet");
  await tracker.flush();
  assert.deepEqual([...tracker.hardest(1, ALL, createRng(3))], [3]);
  assert.equal(tf.memory().numTensors, before);
  tracker.defer(Int32Array.of(4), tf.tensor1d([1]));
  tracker.dispose();
  assert.equal(tf.memory().numTensors, before);
});
