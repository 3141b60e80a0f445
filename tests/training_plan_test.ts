import assert from "node:assert/strict";
import { learningRateAt, type PlanSettings, planTraining } from "../lib/training_plan.ts";

Deno.test("one-cycle schedule: warm-up to the peak at 20%, cosine decay to peak/1000", () => {
  assert.equal(learningRateAt(0, 100, 0.01, "one-cycle"), 0.01 / 25);
  assert.equal(learningRateAt(20, 100, 0.01, "one-cycle"), 0.01);
  assert.ok(Math.abs(learningRateAt(99, 100, 0.01, "one-cycle") - 0.01 / 1000) < 1e-12);
  for (let s = 21; s < 100; s++) {
    assert.ok(
      learningRateAt(s, 100, 0.01, "one-cycle") <= learningRateAt(s - 1, 100, 0.01, "one-cycle"),
    );
  }
  assert.equal(learningRateAt(50, 100, 0.01, "constant"), 0.01);
});

const DEFAULTS: PlanSettings = {
  epochs: 1,
  batchSize: 64,
  miniEpochs: 1,
  hardExamples: 0.15,
  learningRate: 0.03,
  miniEpochDecay: 0.7,
  schedule: "one-cycle",
};

Deno.test("a pass presents every image's worth: fresh plus difficult equals the count", () => {
  for (const count of [1, 7, 1000, 60_000]) {
    for (const miniEpochs of [1, 2, 3, 7]) {
      for (const hardExamples of [0, 0.15, 0.5]) {
        const plan = planTraining(count, { ...DEFAULTS, miniEpochs, hardExamples });
        assert.equal(plan.chunks.length, miniEpochs);
        const total = plan.chunks.reduce((a, c) => a + c.fresh + c.hard, 0);
        assert.equal(total, count, `count ${count}, ${miniEpochs} mini-epochs, ${hardExamples}`);
        for (const c of plan.chunks) {
          assert.equal(c.steps, Math.ceil(c.fresh / 64) + Math.ceil(c.hard / 64));
        }
        assert.equal(plan.stepsPerEpoch, plan.chunks.reduce((a, c) => a + c.steps, 0));
      }
    }
  }
});

Deno.test("the default plan: 15% difficult, 938 steps a pass of 60,000", () => {
  const plan = planTraining(60_000, { ...DEFAULTS, epochs: 3 });
  assert.deepEqual(plan.chunks, [{ fresh: 51_000, hard: 9_000, steps: 797 + 141 }]);
  assert.equal(plan.stepsPerEpoch, 938);
  assert.equal(plan.totalSteps, 3 * 938);
});

Deno.test("with mini-epochs the first chunk is all fresh and the others make up its share", () => {
  const plan = planTraining(3000, { ...DEFAULTS, miniEpochs: 3, hardExamples: 0.2 });
  assert.deepEqual(plan.chunks.map((c) => c.hard), [0, 300, 300]);
  assert.equal(plan.chunks.reduce((a, c) => a + c.hard, 0), 0.2 * 3000);
});

Deno.test("one schedule spans all passes; mini-epochs restart it with peaks decaying", () => {
  const whole = planTraining(640, { ...DEFAULTS, epochs: 2, hardExamples: 0 });
  assert.equal(whole.totalSteps, 20);
  assert.equal(whole.learningRate(1, 0, 3), learningRateAt(13, 20, 0.03, "one-cycle"));
  const restarts = planTraining(640, { ...DEFAULTS, miniEpochs: 2, hardExamples: 0 });
  assert.equal(restarts.learningRate(0, 1, 1), learningRateAt(1, 5, 0.03 * 0.7, "one-cycle"));
  assert.equal(restarts.learningRate(0, 0, 1), learningRateAt(1, 5, 0.03, "one-cycle"));
});
