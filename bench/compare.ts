/**
 * Side by side with PyTorch on this machine: one training pass, test
 * accuracy, time to 99%, and inference images/s at batch 1 and 1000, for
 * tinymnist's backends (with its default recipe, and with the reference's:
 * no augmentation, no difficult examples) and, when `python3` can import
 * `torch`, for the PyTorch reference in bench/reference/ (same architecture,
 * batch size, optimiser and schedule, 2 threads). Run one at a time:
 * `deno task bench:compare`.
 *
 * The default recipe's model (the first backend's, on a full pass) is also
 * exported to ONNX (`exportOnnx`) and timed in onnxruntime-node, in one
 * thread and with its default thread count, for a second table.
 *
 * Never part of `deno task test`. Prints two Markdown tables and the ratios.
 */
import { loadData, parseFlags, usage } from "./_usage.ts";
import { type BackendName, selectBackend } from "../lib/backend.ts";
import { evaluate } from "../lib/evaluate.ts";
import * as tf from "@tensorflow/tfjs";
import { type Classifier, createModel, layersModelOf, type ModelPreset } from "../lib/model.ts";
import { train, type TrainOptions } from "../lib/train.ts";
import { parallelClassifier } from "../lib/parallel_classifier.ts";
import { trainingLogits } from "../lib/forward.ts";
import { softmaxCrossEntropy } from "../lib/loss.ts";
import { exportOnnx } from "../lib/onnx.ts";

const { values } = parseFlags(
  "run the comparison",
  "bench:compare",
  {
    backends: { type: "string", default: "wasm" },
    preset: { type: "string", default: "tiny" },
    "data-dir": { type: "string" },
  },
  `Usage: deno task bench:compare [--backends LIST] [--preset NAME] [--data-dir DIR]

Train one pass on each backend in LIST (default wasm; NAME:N trains on N
images only, for speed), twice: with tinymnist's default recipe, and with the
reference's (no augmentation, no difficult examples); then the PyTorch
reference in bench/reference/ when python3 can import torch. Print test
accuracy, time to 99%, training and inference images/s as a Markdown table,
and the ratios; then the default recipe's model in onnxruntime-node (inference
only). Run it alone: another process on the machine makes both sides
slower by different amounts (it warns when the CPUs were busy just before).`,
);
/** Presets the PyTorch reference builds too (bench/reference/torch_mnist.py). */
const PRESETS = ["tiny", "small", "seed"];
if (!PRESETS.includes(values.preset!)) {
  usage(
    "run the comparison",
    `expected --preset to be one of ${
      PRESETS.join(", ")
    } (the reference builds those), got "${values.preset}"`,
  );
}
const BACKENDS = ["wasm", "webgpu", "cpu"];
for (const spec of values.backends!.split(",")) {
  const [backend, limit] = spec.split(":");
  if (!BACKENDS.includes(backend) || (limit !== undefined && !/^[1-9]\d*$/.test(limit))) {
    usage(
      "run the comparison",
      `expected --backends to list ${BACKENDS.join(", ")}, each with an optional :N, got "${spec}"`,
    );
  }
}
const preset = values.preset as ModelPreset;

/**
 * How busy the machine's CPUs were over one second, from 0 to 1, read from
 * Linux's /proc/stat while this process sleeps (so: other processes); null
 * where there is no /proc/stat.
 */
async function othersBusy(): Promise<number | null> {
  const sample = async () => {
    const line = (await Deno.readTextFile("/proc/stat")).split("\n")[0];
    const ticks = line.trim().split(/\s+/).slice(1).map(Number);
    return { idle: ticks[3] + (ticks[4] ?? 0), total: ticks.reduce((a, b) => a + b, 0) };
  };
  try {
    const a = await sample();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const b = await sample();
    return 1 - (b.idle - a.idle) / Math.max(1, b.total - a.total);
  } catch {
    return null;
  }
}
// Before the busy check: missing data fails at once.
const data = await loadData(values["data-dir"]);
const busy = await othersBusy();
if (busy !== null && busy > 0.1) {
  console.error(
    `warning: other processes kept the CPUs ${
      Math.round(100 * busy)
    }% busy just before this run; ` +
      "both sides will be slower by different amounts, so the ratios are off. Run it alone.",
  );
}

interface Row {
  name: string;
  /** Images trained on, when fewer than a full pass (speed only). */
  partial?: number;
  /** Kernel milliseconds of one training step at batch 64, from tf.time(). */
  kernelMs?: number;
  trainImagesPerSecond: number;
  trainSeconds: number;
  testAccuracy: number;
  inferenceBatch1: number;
  inferenceBatch1000: number;
  /** Inference at batch 1000 split between the trainer's wasm workers (both cores). */
  inferenceBatch1000Workers?: number;
}

/**
 * Calls before timing inference at batch 1, and calls timed (as `torch_mnist.py` makes). The
 * JavaScript side reaches its steady speed only after some hundreds of calls, as V8 optimises the
 * call path (a scratch run right after training: 2,800 img/s over calls 50–350, then 3,100–3,700).
 */
const BATCH1_CALLS = 1000;

async function inferenceRate(predict: (x: Float32Array) => Promise<unknown>, batch: number) {
  const x = data.test.images.subarray(0, batch * 784);
  for (let i = 0; i < (batch === 1 ? BATCH1_CALLS : 1); i++) await predict(x); // warm-up
  const repeats = batch === 1 ? BATCH1_CALLS : 5;
  const t0 = performance.now();
  for (let i = 0; i < repeats; i++) await predict(x);
  return (batch * repeats) / ((performance.now() - t0) / 1000);
}

/**
 * Kernel time of one training step at batch 64 in one thread (forward,
 * backward and Adam as `train` computes them), from tf.time(), where the
 * backend can time kernels.
 */
async function stepKernelMs(model: Classifier): Promise<number | undefined> {
  const net = layersModelOf(model);
  const optimizer = tf.train.adam(0.001);
  const x = tf.tensor4d(data.train.images.subarray(0, 64 * 784), [64, 28, 28, 1]);
  const y = tf.tensor1d(data.train.labels.subarray(0, 64), "int32");
  const step = () =>
    optimizer.minimize(
      () => softmaxCrossEntropy(trainingLogits(net, x), y, 0.1).mean().asScalar(),
      true,
    )!;
  (step()).dispose(); // warm-up: shader compilation stays out of the figure
  const timing = await tf.time(() => step().dispose());
  tf.dispose([x, y]);
  optimizer.dispose();
  return "error" in timing ? undefined : timing.kernelMs as number;
}

const rows: Row[] = [];

/** Inference images/s of one model in one runtime, for the onnxruntime table. */
interface InferenceRow {
  name: string;
  batch1?: number;
  batch1000: number;
}

/** The default recipe's model in tinymnist (one thread, and its workers) and in onnxruntime. */
interface OnnxComparison {
  ours: InferenceRow;
  workers?: InferenceRow;
  ortOneThread: InferenceRow;
  ortDefaultThreads: InferenceRow;
}
let onnx: OnnxComparison | undefined;

/**
 * The trained model exported to ONNX and run in onnxruntime-node (CPU), in one
 * thread and with its default threads, next to tinymnist's own figures for the
 * same model (`row`).
 */
async function compareOnnx(model: Classifier, row: Row): Promise<OnnxComparison> {
  const ort = await import("onnxruntime-node");
  const bytes = await exportOnnx(model);
  const time = async (threads: string, options: { intraOpNumThreads?: number }) => {
    const session = await ort.InferenceSession.create(bytes, options);
    const run = async (x: Float32Array) => {
      const batch = x.length / 784;
      await session.run({ images: new ort.Tensor("float32", x, [batch, 28, 28, 1]) });
    };
    const timed: InferenceRow = {
      name: `onnxruntime-node ${ort.env.versions.node}, ${threads}`,
      batch1: await inferenceRate(run, 1),
      batch1000: await inferenceRate(run, 1000),
    };
    await session.release();
    return timed;
  };
  return {
    ours: {
      name: `${row.name}, 1 thread`,
      batch1: row.inferenceBatch1,
      batch1000: row.inferenceBatch1000,
    },
    workers: row.inferenceBatch1000Workers === undefined
      ? undefined
      : { name: `${row.name}, 2 workers`, batch1000: row.inferenceBatch1000Workers },
    ortOneThread: await time("1 thread", { intraOpNumThreads: 1 }),
    ortDefaultThreads: await time("default threads", {}),
  };
}
/**
 * The two recipes each backend trains: tinymnist's default, and the
 * reference's own (no augmentation, no difficult examples), like for like.
 */
const recipes: [string, TrainOptions][] = [
  ["", {}],
  [", PyTorch's recipe", { augment: false, hardExamples: 0 }],
];
// "wasm" trains a full pass; "cpu:640" trains on 640 images only (speed, no accuracy).
for (const spec of values.backends!.split(",")) {
  for (const [recipe, options] of recipes) {
    const [backend, limit] = spec.split(":") as [BackendName, string | undefined];
    const selection = await selectBackend(backend);
    const model = createModel({ preset });
    const count = limit ? Number(limit) : data.train.count;
    const subset = {
      images: data.train.images.subarray(0, count * 784),
      labels: data.train.labels.subarray(0, count),
      count,
    };
    const result = await train(model, subset, options);
    const { accuracy } = limit ? { accuracy: NaN } : await evaluate(model, data.test);
    rows.push({
      name: `tinymnist ${selection.description}${recipe}`,
      partial: limit ? count : undefined,
      kernelMs: await stepKernelMs(model),
      trainImagesPerSecond: result.imagesPerSecond,
      trainSeconds: data.train.count / result.imagesPerSecond,
      testAccuracy: accuracy,
      inferenceBatch1: await inferenceRate((x) => model.predict(x), 1),
      inferenceBatch1000: await inferenceRate((x) => model.predict(x), 1000),
      inferenceBatch1000Workers: result.workers > 0
        ? await (async () => {
          const scorer = await parallelClassifier(model, result.workers);
          try {
            return await inferenceRate((x) => scorer.predict(x), 1000);
          } finally {
            scorer.dispose();
          }
        })()
        : undefined,
    });
    if (rows.length === 1 && !limit) onnx = await compareOnnx(model, rows[0]);
    model.dispose();
  }
}

// Debian's python3-torch lives in /usr/bin/python3, which a pyenv or venv
// python3 earlier on PATH may hide.
let python: string | undefined;
for (const candidate of ["python3", "/usr/bin/python3"]) {
  const ok = await new Deno.Command(candidate, { args: ["-c", "import torch"], stderr: "null" })
    .output().then((o) => o.success, () => false);
  if (ok) {
    python = candidate;
    break;
  }
}
if (python) {
  const out = await new Deno.Command(python, {
    args: [
      new URL("./reference/torch_mnist.py", import.meta.url).pathname,
      "--data-dir",
      data.source,
      "--preset",
      preset,
    ],
  }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
  const ref = JSON.parse(lines[lines.length - 1]);
  rows.push({ ...ref, name: `${ref.framework}, ${ref.threads} threads` });
} else {
  console.log(
    "PyTorch comparison skipped: python3 cannot import torch (apt-get install python3-torch)",
  );
}

const f = (x: number, d = 0) => x.toFixed(d);
const timeTo99 = (r: Row) =>
  r.partial ? "—" : r.testAccuracy >= 0.99 ? `${f(r.trainSeconds, 1)} s` : "not reached";
const secondsPerPass = (r: Row) =>
  r.partial ? `${f(r.trainSeconds, 0)} (est. from ${r.partial} images)` : f(r.trainSeconds, 1);
const accuracyText = (r: Row) => (r.partial ? "—" : `${f(100 * r.testAccuracy, 2)}%`);
console.log(
  `\nOne pass of the ${preset} model, batch 64, ${data.train.count} images; machine: ${navigator.hardwareConcurrency} cores\n`,
);
console.log(
  "| runtime | train img/s | s / pass | test acc. | time to 99% | infer img/s (b=1) | infer img/s (b=1000) | infer img/s (b=1000, 2 workers) | kernel ms / step (b=64, 1 thread) |",
);
console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
for (const r of rows) {
  const kernel = r.kernelMs === undefined ? "n/a" : f(r.kernelMs, 1);
  console.log(
    `| ${r.name} | ${f(r.trainImagesPerSecond)} | ${secondsPerPass(r)} | ${accuracyText(r)} | ${
      timeTo99(r)
    } | ${f(r.inferenceBatch1)} | ${f(r.inferenceBatch1000)} | ${
      r.inferenceBatch1000Workers === undefined ? "—" : f(r.inferenceBatch1000Workers)
    } | ${kernel} |`,
  );
}
const torch = rows.find((r) => r.name.startsWith("PyTorch"));
if (torch) {
  for (const r of rows.filter((r) => r !== torch)) {
    console.log(
      `\n${r.name} / PyTorch: time per pass ×${f(r.trainSeconds / torch.trainSeconds, 2)}, ` +
        `training images/s ×${f(r.trainImagesPerSecond / torch.trainImagesPerSecond, 2)}, ` +
        `inference images/s at b=1 ×${f(r.inferenceBatch1 / torch.inferenceBatch1, 2)}, ` +
        `at b=1000 ×${f(r.inferenceBatch1000 / torch.inferenceBatch1000, 2)}` +
        (r.inferenceBatch1000Workers === undefined
          ? ""
          : ` (×${f(r.inferenceBatch1000Workers / torch.inferenceBatch1000, 2)} in 2 workers)`),
    );
  }
}

if (onnx) {
  const { ours, workers, ortOneThread, ortDefaultThreads } = onnx;
  console.log(
    `\nInference of the default recipe's model, exported to ONNX for onnxruntime-node (CPU)\n`,
  );
  console.log("| runtime | infer img/s (b=1) | infer img/s (b=1000) |\n| --- | ---: | ---: |");
  for (const r of [ours, ...(workers ? [workers] : []), ortOneThread, ortDefaultThreads]) {
    console.log(
      `| ${r.name} | ${r.batch1 === undefined ? "—" : f(r.batch1)} | ${f(r.batch1000)} |`,
    );
  }
  console.log(
    `\ntinymnist / onnxruntime-node, 1 thread each: inference images/s at b=1 ×${
      f(ours.batch1! / ortOneThread.batch1!, 2)
    }, at b=1000 ×${f(ours.batch1000 / ortOneThread.batch1000, 2)}` +
      (workers
        ? `; tinymnist's 2 workers / onnxruntime's default threads at b=1000 ×${
          f(workers.batch1000 / ortDefaultThreads.batch1000, 2)
        }`
        : ""),
  );
}
