/**
 * `deno task export` on the shared trained model: the quantized model is
 * saved, loads in tinymnist and in plain TensorFlow.js, and loses at most
 * 0.3 points of test accuracy for model files at least 3.5× smaller; the ONNX
 * file is written atomically where asked.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../lib/backend.ts";
import { loadModel } from "../lib/io.ts";
import { runCli } from "./_cli.ts";
import { trainedModel } from "./_trained.ts";

Deno.test("export --quantize int8 --onnx: sizes and test accuracy measured, both files written", async () => {
  const { data, path } = await trainedModel();
  await selectBackend("wasm");
  const dir = await Deno.makeTempDir({ prefix: "tinymnist-export-" });
  try {
    const onnx = `${dir}/onnx/model-int8.onnx`;
    const { code, stdout, stderr } = await runCli([
      "export",
      "--model",
      path,
      "--quantize",
      "int8",
      "--onnx",
      onnx,
      "--out",
      dir,
      "--json",
    ]);
    assert.equal(code, 0, stderr);
    const summary = JSON.parse(stdout);
    // The model files: the whole folder, model.json (topology, manifest, card) included.
    const { float, quantized } = summary.bytes;
    const total = (files: Record<string, number>) =>
      Object.values(files).reduce((a, b) => a + b, 0);
    assert.deepEqual(Object.keys(quantized).sort(), ["model.json", "weights.bin"]);
    assert.ok(total(float) / total(quantized) >= 3.5, JSON.stringify(summary.bytes));
    const drop = summary.testAccuracy.float - summary.testAccuracy.quantized;
    assert.ok(drop <= 0.003, `accuracy ${JSON.stringify(summary.testAccuracy)}`);
    assert.equal((await Deno.stat(onnx)).size, summary.onnxBytes);
    assert.deepEqual([...Deno.readDirSync(`${dir}/onnx`)].map((e) => e.name), ["model-int8.onnx"]);

    // The quantized folder: tinymnist reads its card; plain TensorFlow.js loads it too.
    const mine = await loadModel(summary.quantized);
    assert.equal(mine.card?.weights, "uint8");
    // Its card records its own test accuracy, as measured by the export.
    assert.equal(mine.card?.testAccuracy, summary.testAccuracy.quantized);
    assert.deepEqual(
      [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.startsWith(".")),
      [],
      "no scratch copy left behind",
    );
    const json = JSON.parse(await Deno.readTextFile(`${summary.quantized}/model.json`));
    const plain = await tf.loadLayersModel(tf.io.fromMemory({
      modelTopology: json.modelTopology,
      weightSpecs: json.weightsManifest[0].weights,
      weightData: (await Deno.readFile(`${summary.quantized}/weights.bin`)).buffer,
    }));
    const images = data.test.images.subarray(0, 100 * 784);
    const out = plain.predict(tf.tensor4d(images, [100, 28, 28, 1])) as tf.Tensor;
    const theirs = await out.data() as Float32Array;
    const ours = await mine.predict(images);
    assert.ok(ours.every((p, i) => Math.abs(p - theirs[i]) < 1e-5));
    tf.dispose([out]);
    plain.dispose();
    mine.dispose();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("export needs something to do", async () => {
  const { code, stderr } = await runCli(["export"]);
  assert.equal(code, 2);
  assert.equal(
    stderr,
    "error: Cannot export: expected --onnx FILE, --quantize int8, or both, got neither (see --help)\n",
  );
});
