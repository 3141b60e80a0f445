/**
 * ONNX export, checked where it matters: the exported graphs run in
 * onnxruntime-node on the real MNIST test images and give what `predict`
 * gives; the int8 file is smaller and as accurate; the ONNX checker (Debian's
 * python3-onnx) accepts every file. Measured figures are in the step names.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import * as ort from "onnxruntime-node";
import protoPkg from "onnx-proto";
import { selectBackend } from "../lib/backend.ts";
import { loadModel } from "../lib/io.ts";
import {
  argmaxRows,
  type Classifier,
  createModel,
  layersModelOf,
  MODEL_PRESETS,
  type ModelPreset,
  wrapLayersModel,
} from "../lib/model.ts";
import { exportOnnx } from "../lib/onnx.ts";
import { foldBatchNorm } from "../lib/fold_batch_norm.ts";
import { createRng } from "../lib/rng.ts";
import { trainedModel } from "./_trained.ts";

const { onnx } = protoPkg;

/** The parts of an ONNX file these tests read. */
interface OnnxFile {
  irVersion: number;
  producerName: string;
  opsetImport: { domain: string; version: number }[];
  metadataProps: { key: string; value: string }[];
  graph: {
    node: { opType: string; input: string[]; output: string[]; attribute: Attribute[] }[];
    initializer: { name: string; dims: number[]; dataType: number; rawData: Uint8Array }[];
    input: ValueInfo[];
    output: ValueInfo[];
  };
}
interface Attribute {
  name: string;
  i: number;
  ints: number[];
}
interface ValueInfo {
  name: string;
  type: { tensorType: { shape: { dim: { dimValue: number; dimParam: string }[] } } };
}

/** Decode an ONNX file with onnx-proto (64-bit integers as numbers, defaults filled in). */
function decode(bytes: Uint8Array): OnnxFile {
  const proto = onnx.ModelProto.decode(bytes);
  return onnx.ModelProto.toObject(proto, { longs: Number, defaults: true }) as OnnxFile;
}

/** Probabilities for `n` images from an ONNX model in onnxruntime, `batch` images per run. */
async function runOnnx(bytes: Uint8Array, images: Float32Array, batch: number) {
  const session = await ort.InferenceSession.create(bytes);
  try {
    const n = images.length / 784;
    const out = new Float32Array(n * 10);
    for (let start = 0; start < n; start += batch) {
      const end = Math.min(n, start + batch);
      const input = images.slice(start * 784, end * 784); // a copy: no view into a larger buffer
      const { probabilities } = await session.run({
        images: new ort.Tensor("float32", input, [end - start, 28, 28, 1]),
      });
      assert.deepEqual(probabilities.dims, [end - start, 10]);
      out.set(probabilities.data as Float32Array, start * 10);
    }
    return out;
  } finally {
    await session.release();
  }
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  return a.reduce((max, v, i) => Math.max(max, Math.abs(v - b[i])), 0);
}

/** Percentage of rows whose most probable digit is the label. */
function accuracyPct(probs: Float32Array, labels: Uint8Array): number {
  const digits = argmaxRows(probs);
  return 100 * digits.filter((d, i) => d === labels[i]).length / labels.length;
}

/**
 * Run the ONNX checker with `full_check` (shape inference included) on each
 * file, with the first python3 that has the `onnx` module (Debian's
 * python3-onnx installs into /usr/bin/python3, which a pyenv python3 may
 * hide). Fails, never skips, when none has it.
 */
async function onnxCheck(files: Record<string, Uint8Array>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "tinymnist-onnx-" });
  try {
    const paths = [];
    for (const [name, bytes] of Object.entries(files)) {
      paths.push(`${dir}/${name}.onnx`);
      await Deno.writeFile(paths.at(-1)!, bytes);
    }
    const script = "import sys, onnx\n" +
      "for f in sys.argv[1:]: onnx.checker.check_model(onnx.load(f), full_check=True)";
    const tried = [];
    for (const python of ["python3", "/usr/bin/python3"]) {
      const has = await new Deno.Command(python, { args: ["-c", "import onnx"], stderr: "null" })
        .output().then((o) => o.success, () => false);
      if (!has) {
        tried.push(python);
        continue;
      }
      const { success, stderr } = await new Deno.Command(python, { args: ["-c", script, ...paths] })
        .output();
      assert.ok(success, `onnx.checker refused a file:\n${new TextDecoder().decode(stderr)}`);
      return;
    }
    assert.fail(
      `This test needs the ONNX checker: none of ${tried.join(", ")} can import onnx; ` +
        "install Debian's python3-onnx (apt-get install -y --no-install-recommends python3-onnx)",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Files the tests below export; the last test runs the ONNX checker on them. */
const exported: Record<string, Uint8Array> = {};

Deno.test("a trained model in onnxruntime: the same digits and probabilities as predict", async (t) => {
  const { data, model, path } = await trainedModel();
  await selectBackend("wasm");
  const float = await exportOnnx(model);
  exported["trained"] = float;
  const images = data.test.images.subarray(0, 1000 * 784);
  const expected = await model.predict(images);

  const atOnce = await runOnnx(float, images, 1000);
  const diff = maxAbsDiff(atOnce, expected);
  await t.step(
    `1,000 real test images at batch 1000: max |Δp| ${diff.toExponential(2)} ≤ 1e-5`,
    () => {
      assert.deepEqual(argmaxRows(atOnce), argmaxRows(expected));
      assert.ok(diff <= 1e-5, `max |Δp| ${diff}`);
    },
  );

  await t.step("8 of them at batch 1: the same", async () => {
    const few = images.subarray(0, 8 * 784);
    const one = await runOnnx(float, few, 1);
    assert.deepEqual(argmaxRows(one), argmaxRows(expected.subarray(0, 80)));
    assert.ok(maxAbsDiff(one, expected.subarray(0, 80)) <= 1e-5);
  });

  await t.step("the saved and reloaded model exports to the same bytes", async () => {
    const loaded = await loadModel(path);
    assert.deepEqual(await exportOnnx(loaded), float);
    loaded.dispose();
  });
});

Deno.test("int8 export of the trained model: ≥3.5× smaller, accuracy within 0.3 points", async (t) => {
  const { data, model } = await trainedModel();
  await selectBackend("wasm");
  const float = await exportOnnx(model);
  const int8 = await exportOnnx(model, { quantize: "int8" });
  exported["trained_int8"] = int8;

  const ratio = float.length / int8.length;
  await t.step(
    `${float.length} B float, ${int8.length} B int8: ${ratio.toFixed(3)}× ≥ 3.5×`,
    () => {
      assert.ok(ratio >= 3.5, `${float.length} / ${int8.length} = ${ratio}`);
    },
  );

  const { images, labels } = data.test;
  const floatAcc = accuracyPct(await model.predict(images), labels);
  const int8Acc = accuracyPct(await runOnnx(int8, images, 1000), labels);
  await t.step(
    `10,000 test images: float ${floatAcc.toFixed(2)}%, int8 ${
      int8Acc.toFixed(2)
    }%, within 0.3 points`,
    () => assert.ok(Math.abs(floatAcc - int8Acc) <= 0.3, `${floatAcc} vs ${int8Acc}`),
  );

  await t.step("batch norm folded into the convolutions: no BatchNormalization nodes", () => {
    const ops = decode(int8).graph.node.map((n) => n.opType);
    assert.deepEqual(ops.filter((op) => op === "BatchNormalization"), []);
    assert.equal(
      decode(float).graph.node.filter((n) => n.opType === "BatchNormalization").length,
      3,
    );
  });

  await t.step("per output channel: int8 weights, scale max|w|/127, zero point 0", async () => {
    // The float weights the int8 ones stand for: those of the folded network.
    const folded = wrapLayersModel(await foldBatchNorm(layersModelOf(model)), model.preset);
    const floats = decode(await exportOnnx(folded)).graph.initializer;
    folded.dispose();
    const graph = decode(int8).graph;
    const dequantize = graph.node.filter((n) => n.opType === "DequantizeLinear");
    assert.equal(dequantize.length, 4, "3 Conv and 1 Dense kernel");
    for (const node of dequantize) {
      const [qName, scaleName] = node.input; // no zero point: 0
      assert.equal(node.input.length, 2);
      const axis = node.attribute.find((a) => a.name === "axis")!.i;
      const q = graph.initializer.find((i) => i.name === qName)!;
      const s = graph.initializer.find((i) => i.name === scaleName)!;
      const w = floats.find((i) => i.name === node.output[0])!;
      assert.equal(q.dataType, onnx.TensorProto.DataType.INT8);
      assert.deepEqual(q.dims, w.dims);
      // Copies: onnx-proto's bytes may be views into the file.
      const qs = new Int8Array(new Uint8Array(q.rawData).buffer);
      const scales = new Float32Array(new Uint8Array(s.rawData).buffer);
      const ws = new Float32Array(new Uint8Array(w.rawData).buffer);
      const dims = w.dims;
      assert.equal(scales.length, dims[axis], "one scale per output channel");
      const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
      const largest = new Float32Array(scales.length);
      ws.forEach((v, i) => {
        const c = Math.floor(i / inner) % scales.length;
        largest[c] = Math.max(largest[c], Math.abs(v));
        // Rounded to the nearest step of the channel's scale.
        assert.ok(Math.abs(qs[i] * scales[c] - v) <= scales[c] / 2 + 1e-7, `${qName}[${i}]`);
      });
      scales.forEach((scale, c) => assert.equal(scale, Math.fround(largest[c] / 127)));
    }
  });
});

Deno.test("every preset exports and runs in onnxruntime as predict does", async (t) => {
  const { data } = await trainedModel(); // the real test images
  await selectBackend("wasm");
  const images = data.test.images.subarray(0, 200 * 784);
  for (const preset of Object.keys(MODEL_PRESETS) as ModelPreset[]) {
    const model = createModel({ preset, seed: 7 });
    const expected = await model.predict(images);
    const before = tf.memory().numTensors;
    const float = await exportOnnx(model);
    const int8 = await exportOnnx(model, { quantize: "int8" });
    assert.equal(tf.memory().numTensors, before, "exportOnnx leaks no tensors");
    Object.assign(exported, { [preset]: float, [`${preset}_int8`]: int8 });
    const diff = maxAbsDiff(await runOnnx(float, images, 200), expected);
    await t.step(`${preset}: max |Δp| ${diff.toExponential(2)} ≤ 1e-5 on 200 images`, () => {
      assert.ok(diff <= 1e-5, `max |Δp| ${diff}`);
    });
    await t.step(`${preset}: int8 ${float.length} → ${int8.length} B, probabilities`, async () => {
      assert.ok(int8.length < float.length / 2.5);
      const probs = await runOnnx(int8, images, 200);
      for (let i = 0; i < 200; i++) {
        const sum = probs.subarray(i * 10, i * 10 + 10).reduce((a, b) => a + b, 0);
        assert.ok(Math.abs(sum - 1) < 1e-5, `row ${i} sums to ${sum}`);
      }
      assert.ok(maxAbsDiff(probs, expected) < 0.1);
    });
    model.dispose();
  }
});

Deno.test("layer settings beyond the presets' convert too: strides, padding, dilation, ReLU max", async () => {
  await selectBackend("wasm");
  const net = tf.sequential({
    layers: [
      tf.layers.conv2d({
        inputShape: [28, 28, 1],
        filters: 6,
        kernelSize: 3,
        strides: 2,
        padding: "same", // [28,28,1] -> [14,14,6], the odd padding pixel at the end
        activation: "relu",
      }),
      tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: "same" }), // -> [7,7,6]
      tf.layers.conv2d({
        filters: 5,
        kernelSize: 3,
        dilationRate: 2,
        padding: "same",
        useBias: false,
      }),
      tf.layers.reLU({ maxValue: 0.5 }),
      tf.layers.conv2d({ filters: 4, kernelSize: 2 }), // "valid": -> [6,6,4]
      tf.layers.batchNormalization({ epsilon: 0.01 }),
      tf.layers.flatten(), // -> 144
      tf.layers.dense({ units: 12, activation: "relu" }),
      tf.layers.batchNormalization({ center: false }), // on [N, 12]
      tf.layers.dropout({ rate: 0.5 }),
      tf.layers.dense({ units: 10, activation: "softmax", useBias: false }),
    ],
  });
  // Weights that make every parameter count (trained-like batch-norm statistics included).
  const weights = net.weights.map((w, i) => {
    const positive = /gamma|variance/.test(w.originalName);
    return tf.randomUniform(
      w.shape as number[],
      positive ? 0.5 : -0.5,
      positive ? 1.5 : 0.5,
      "float32",
      i,
    );
  });
  net.setWeights(weights);
  tf.dispose(weights);
  const model = wrapLayersModel(net, "custom");
  const rng = createRng(5);
  const images = new Float32Array(50 * 784).map(() => rng.next());
  const expected = await model.predict(images);
  const float = await exportOnnx(model);
  assert.ok(maxAbsDiff(await runOnnx(float, images, 50), expected) <= 1e-5);
  const int8 = await exportOnnx(model, { quantize: "int8" });
  assert.ok(maxAbsDiff(await runOnnx(int8, images, 50), expected) < 0.05);
  Object.assign(exported, { custom: float, custom_int8: int8 });
  model.dispose();
});

Deno.test("the graph: NHWC images [N,28,28,1] in, probabilities [N,10] out, opset 13, IR 8", async () => {
  await selectBackend("wasm");
  const model = createModel();
  const proto = decode(await exportOnnx(model));
  assert.equal(proto.irVersion, 8);
  assert.deepEqual(proto.opsetImport.map((o) => [o.domain, o.version]), [["", 13]]);
  assert.equal(proto.producerName, "tinymnist");
  assert.deepEqual(
    Object.fromEntries(proto.metadataProps.map((p) => [p.key, p.value])),
    { preset: "tiny", params: "17018" },
  );
  const dims = (v: ValueInfo) => v.type.tensorType.shape.dim.map((d) => d.dimParam || d.dimValue);
  const { graph } = proto;
  assert.deepEqual(graph.input.map((v) => [v.name, dims(v)]), [["images", ["N", 28, 28, 1]]]);
  assert.deepEqual(graph.output.map((v) => [v.name, dims(v)]), [["probabilities", ["N", 10]]]);
  // NHWC in, NCHW for the convolutions, NHWC again before Flatten.
  const ops = graph.node.map((n) => n.opType);
  assert.deepEqual(ops, [
    "Mul",
    "Add",
    "Transpose",
    ...Array(3).fill(["Conv", "BatchNormalization", "Relu", "MaxPool"]).flat(),
    "Transpose",
    "Flatten",
    "Gemm",
    "Softmax",
  ]);
  const perms = graph.node.filter((n) => n.opType === "Transpose")
    .map((n) => n.attribute[0].ints);
  assert.deepEqual(perms, [[0, 3, 1, 2], [0, 2, 3, 1]]);
  model.dispose();
});

Deno.test("exportOnnx refuses what it cannot convert, with named errors", async () => {
  await selectBackend("wasm");
  const model = createModel();
  await assert.rejects(
    exportOnnx(model, { quantize: "int4" as "int8" }),
    {
      name: "RangeError",
      message: 'Cannot export model to ONNX: expected quantize "none" or "int8", got "int4"',
    },
  );
  await assert.rejects(exportOnnx({} as Classifier), {
    name: "TypeError",
    message:
      "Cannot use classifier: expected a model made by createModel or loadModel, got another object",
  });

  const pooled = tf.sequential({
    layers: [
      tf.layers.averagePooling2d({ inputShape: [28, 28, 1], poolSize: 2, name: "avg" }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 10, activation: "softmax" }),
    ],
  });
  await assert.rejects(exportOnnx(wrapLayersModel(pooled, "custom")), {
    name: "TypeError",
    message:
      'Cannot export model to ONNX: expected layers InputLayer, Rescaling, Conv2D, BatchNormalization, ReLU, MaxPooling2D, Dropout, Flatten or Dense, got AveragePooling2D "avg"',
  });
  pooled.dispose();

  const input = tf.input({ shape: [784] });
  const functional = tf.model({
    inputs: input,
    outputs: tf.layers.dense({ units: 10 }).apply(input) as tf.SymbolicTensor,
  });
  await assert.rejects(exportOnnx(wrapLayersModel(functional, "custom")), {
    name: "TypeError",
    message: "Cannot export model to ONNX: expected a Sequential model, got a model of class Model",
  });
  functional.dispose();

  const tanh = tf.sequential({
    layers: [
      tf.layers.flatten({ inputShape: [28, 28, 1] }),
      tf.layers.dense({ units: 10, activation: "tanh", name: "out" }),
    ],
  });
  await assert.rejects(exportOnnx(wrapLayersModel(tanh, "custom")), {
    name: "TypeError",
    message:
      'Cannot export model to ONNX: expected activation "linear", "relu" or "softmax", got "tanh" in layer "out"',
  });
  tanh.dispose();

  const dense = layersModelOf(model).layers.at(-1)!;
  const [kernel, bias] = dense.getWeights();
  const broken = await kernel.buffer();
  broken.set(NaN, 0, 0);
  broken.set(Infinity, 1, 0);
  const brokenKernel = broken.toTensor();
  dense.setWeights([brokenKernel, bias]);
  brokenKernel.dispose();
  await assert.rejects(exportOnnx(model), {
    name: "RangeError",
    message: `Cannot export model to ONNX: expected finite weights, got 2 non-finite values in "${
      dense.weights[0].originalName
    }"`,
  });
  model.dispose();
});

Deno.test("the ONNX checker accepts every exported file (python3-onnx)", async () => {
  await selectBackend("wasm");
  for (const preset of Object.keys(MODEL_PRESETS) as ModelPreset[]) {
    if (exported[preset]) continue; // exported above, unless this test runs alone
    const model = createModel({ preset });
    exported[preset] = await exportOnnx(model);
    exported[`${preset}_int8`] = await exportOnnx(model, { quantize: "int8" });
    model.dispose();
  }
  await onnxCheck(exported);
});
