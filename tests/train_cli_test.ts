/**
 * `deno task train --report DIR --logdir DIR` end to end, in process: one
 * real pass, then the report (opened from disk in headless Chromium: every
 * figure renders, no console errors), the TensorBoard event file and the
 * model card of the saved model; and `--teacher`, which distils the shared
 * trained model into `mini` and says that its loss is the distillation loss.
 */
import assert from "node:assert/strict";
import { loadModel } from "../lib/io.ts";
import { runBrowser } from "./_browser.ts";
import { runCli } from "./_cli.ts";
import { trainedModel } from "./_trained.ts";

Deno.test("train --report --logdir writes a report Chromium renders, TensorBoard events and a model card", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tinymnist-train-cli-" });
  try {
    const dataDir = Deno.env.get("TINYMNIST_DATA_DIR");
    assert.ok(dataDir, "this test needs TINYMNIST_DATA_DIR (../shared/mnist, as .ci/run sets it)");
    const { code, stdout, stderr } = await runCli([
      "train",
      "--backend",
      "wasm",
      "--data-dir",
      dataDir,
      "--out",
      `${dir}/models`,
      "--report",
      `${dir}/out`,
      "--logdir",
      `${dir}/logs`,
      "--json",
    ]);
    assert.equal(code, 0, stderr);
    const summary = JSON.parse(stdout.split("\n").at(-1)!);
    assert.ok(summary.testAccuracy >= 0.99);

    // Each phase's wall seconds, measured; they add up to the total.
    const { total, ...phases } = summary.seconds;
    assert.deepEqual(Object.keys(phases), [
      "setup",
      "train",
      "evaluate",
      "robustness",
      "save",
      "report",
    ]);
    const sum = Object.values(phases as Record<string, number>).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(total - sum) < 0.5, JSON.stringify(summary.seconds));
    assert.ok(phases.train >= summary.trainSeconds, "the train phase includes training");
    assert.match(
      stderr,
      /^seconds: setup \d+\.\d, train \d+\.\d, .*; total \d+\.\d \(\d\.\d\d× the training time\)$/m,
    );
    // The robustness report scores 2,000 of the test images (the default) under each perturbation.
    assert.equal(summary.robustness.images, 2000);

    // The model card records how the model was made.
    const model = await loadModel(summary.modelPath);
    assert.equal(model.card?.dataset, "mnist");
    assert.equal(model.card?.seed, 42);
    assert.equal(model.card?.testAccuracy, summary.testAccuracy);
    assert.equal(model.card?.training?.epochs, 1);
    assert.equal(model.card?.training?.augment, "mild", "the default augmentation, by name");
    model.dispose();
    assert.match(stderr, /^augmentation: mild, strength decaying to 0 over the run$/m);

    // Progress without a terminal: a line per 10%. The first batch includes the start-up, so it
    // gives no speed or ETA; the loss is labelled as the latest, the epoch line's as the mean.
    const progress = stderr.split("\n").filter((line) => line.startsWith("progress "));
    assert.match(
      progress[0],
      /^progress 0% 64\/60000 img {2}- img\/s {2}latest loss .{6} {2}ETA -$/,
    );
    assert.ok(progress.length >= 10, progress.join("\n"));
    for (const line of progress.slice(1)) {
      assert.match(
        line,
        /^progress \d+% \d+\/60000 img {2}\d+ img\/s {2}latest loss .{6} {2}ETA \d+s$/,
      );
    }
    assert.match(stderr, /^epoch 1\/1: mean loss \d\.\d{4}, /m);

    // TensorBoard: one event file with records (its format is checked in tensorboard_test.ts).
    const events = [...Deno.readDirSync(`${dir}/logs`)].map((e) => e.name);
    assert.equal(events.length, 1);
    assert.match(events[0], /^events\.out\.tfevents\.\d+\./);
    assert.ok(Deno.statSync(`${dir}/logs/${events[0]}`).size > 1000);

    // The report: opened from disk in Chromium, every figure drawn, no errors.
    const files = [...Deno.readDirSync(`${dir}/out`)].map((e) => e.name).sort();
    assert.deepEqual(files, [
      "confusion-matrix.svg",
      "learning-rate.svg",
      "loss.svg",
      "misclassified.svg",
      "per-class-accuracy.svg",
      "report.html",
      "robustness.svg",
    ]);
    const seen = await runBrowser({
      url: `file://${dir}/out/report.html`,
      viewport: { width: 1000, height: 800 },
      digits: [],
      inspect: true,
    });
    assert.equal(seen.error, undefined, seen.error);
    assert.deepEqual(seen.problems, []);
    assert.equal(seen.figures?.length, 6);
    for (const f of seen.figures!) {
      assert.ok(f.width > 100 && f.height > 100 && f.marks > 10, JSON.stringify(f));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("train --teacher distils a saved model into mini and names its loss the distillation loss", async () => {
  const dataDir = Deno.env.get("TINYMNIST_DATA_DIR");
  assert.ok(dataDir, "this test needs TINYMNIST_DATA_DIR (../shared/mnist, as .ci/run sets it)");
  const { path } = await trainedModel();
  const { code, stdout, stderr } = await runCli([
    "train",
    "--preset",
    "mini",
    "--teacher",
    path,
    "--backend",
    "wasm",
    "--data-dir",
    dataDir,
    "--no-save",
    "--json",
  ]);
  assert.equal(code, 0, stderr);
  const summary = JSON.parse(stdout.split("\n").at(-1)!);
  assert.equal(summary.params, 5058);
  assert.ok(summary.testAccuracy >= 0.98, String(summary.testAccuracy));
  assert.match(stderr, /^teacher: .* \(tiny, 17,018 /m);
  // Its loss adds the T²-weighted soft term, so it is not the label loss of a run without one.
  assert.match(stderr, /^epoch 1\/1: mean distillation loss \d\.\d{4}, /m);
});
