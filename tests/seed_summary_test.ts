/** The ablation's per-variant summary line. */
import assert from "node:assert/strict";
import { seedSummary } from "../bench/_seed_summary.ts";

Deno.test("seedSummary prints a mean without float noise (0.9967, not 0.9966999999999999)", () => {
  // The validation figures of deep's 30-pass row, seeds 42, 1, 2 and 3.
  const summary = seedSummary("deep", [0.9974, 0.9968, 0.9964, 0.9962]);
  assert.deepEqual(summary, { name: "deep", seeds: 4, mean: 0.9967, min: 0.9962 });
  assert.equal(JSON.stringify(summary), '{"name":"deep","seeds":4,"mean":0.9967,"min":0.9962}');
  // Steps of 1/40,000 survive the rounding.
  assert.equal(seedSummary("x", [0.9921, 0.9919, 0.9926, 0.9919]).mean, 0.992125);
});

Deno.test("seedSummary refuses an empty list", () => {
  assert.throws(() => seedSummary("x", []), {
    name: "RangeError",
    message: 'Cannot summarise "x": expected at least one accuracy, got none',
  });
});
