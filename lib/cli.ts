/**
 * The command line: `deno task train`, `predict`, `export`, `serve` and `preview`. The
 * only module of tinymnist that prints.
 *
 * @module
 */
import { dirname } from "node:path";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { decimal, decimalInteger, joinNegativeValues } from "./flag_values.ts";
import { BACKEND_ORDER, type BackendPreference, selectBackend } from "./backend.ts";
import { evaluate, robustness, ROBUSTNESS_IMAGES } from "./evaluate.ts";
import { parallelClassifier } from "./parallel_classifier.ts";
import { loadModel, modelJsonPath, newestModel, saveModel } from "./io.ts";
import { decodeImage, encodePng } from "./image_file.ts";
import { IMAGE_PIXELS, NUM_CLASSES } from "./images.ts";
import { formatModelCard, VERSION } from "./model_card.ts";
import { exportOnnx } from "./onnx.ts";
import { recordHistory } from "./history.ts";
import { writeReport } from "./report.ts";
import { TensorBoardWriter } from "./tensorboard.ts";
import { serve } from "./serve.ts";
import { preprocessDigit } from "./preprocess.ts";
import { type Dataset, loadMnist } from "./mnist.ts";
import { createModel, MODEL_PRESETS, type ModelPreset } from "./model.ts";
import { PREVIEW_ROWS, renderPreview } from "./preview.ts";
import { type BatchEvent, MILD_AUGMENTATION, STRONG_AUGMENTATION, train } from "./train.ts";
import { usageReason } from "./usage_reason.ts";

/**
 * Each preset and its description for `train --help`, wrapped to 80 columns
 * under a hanging indent.
 */
function presetLines(): string {
  const indent = " ".repeat(9);
  return Object.entries(MODEL_PRESETS).map(([name, description]) => {
    const lines = [`  ${name.padEnd(indent.length - 2)}`];
    // A count stays on the line of its unit.
    for (const word of description.split(/ (?!params\b)/)) {
      const last = lines.length - 1;
      const spaced = lines[last].length > indent.length ? " " : "";
      if (lines[last].length + spaced.length + word.length > 80) lines.push(indent + word);
      else lines[last] += spaced + word;
    }
    return lines.join("\n");
  }).join("\n");
}

const TRAIN_HELP = `Usage: deno task train [options]

Train a tiny CNN on MNIST for one pass (by default), evaluate it on the test
set and save it as <out>/mnist_model_YYYYMMDD_HHMMSS.

Options:
  --epochs N         passes over the 60,000 training images (default 1)
  --batch-size N     images per step (default 64)
  --lr X             peak learning rate of the one-cycle schedule, in (0, 1]
                     (default 0.03)
  --mini-epochs K    split the pass into K chunks with their own schedule
                     (default 1)
  --hard-examples F  re-present the highest-loss examples for this fraction of
                     the pass, within the same budget; 0 to 0.5 (default 0.15)
  --workers N        data-parallel wasm workers, 0 for this thread only
                     (default 2 on wasm, 0 on webgpu and cpu)
  --teacher PATH     distil this trained model into the new one (soft targets
                     at temperature 2, weight 0.5; e.g. with --preset mini);
                     the loss shown is then the distillation loss,
                     0.5·2²·CE(soft targets) + 0.5·CE(labels)
  --augment NAME     mild or strong augmentation of training batches, its
                     strength decaying to 0 over the run (default mild: ±10°
                     rotation, ±10% shift, elastic on 20% of images; strong:
                     ±15°, ±12%, elastic on 40%, for runs of many passes)
  --no-augment       do not augment training batches
  --preset NAME      model: ${Object.keys(MODEL_PRESETS).join(", ")} (default tiny;
                     see Presets below)
  --backend NAME     auto, ${BACKEND_ORDER.join(", ")} (default auto: the fastest that
                     works; when webgpu and wasm both work, a training step is
                     timed on each, about a second in all)
  --no-probe         with --backend auto, take the first that works, untimed
  --robustness-images N
                     test images scored under each perturbation of the
                     robustness report, spread evenly over the test set
                     (default ${ROBUSTNESS_IMAGES}; 10000 for all)
  --data-dir DIR     folder with the four MNIST files (.gz or not); default:
                     $TINYMNIST_DATA_DIR, then data/<dataset>/, then download
  --dataset NAME     mnist or fashion-mnist (default mnist)
  --seed N           seed of the weights, shuffling, augmentation and dropout
                     masks (default 42)
  --out DIR          where to save the model (default ./models); checked before
                     training: elsewhere needs a wider --allow-write, and the
                     error prints the command that grants it
  --no-save          do not save the model
  --report DIR       write DIR/report.html (self-contained) and its figures
                     as SVG: loss, learning rate, per-class accuracy,
                     confusion matrix, misclassified digits, robustness
  --logdir DIR       write TensorBoard event files (loss, learning rate, test
                     accuracy, misclassified digits): tensorboard --logdir DIR
  --json             print a JSON summary as the last line of stdout
  --help             show this help

Presets:
${presetLines()}

Other commands: deno task predict, export, serve and preview (each with --help).
Measurements (README, "Results"): deno task bench, bench:compare, bench:gpu,
bench:profile and ablation.`;

const PREDICT_HELP = `Usage: deno task predict [options] IMAGE [IMAGE ...]

Classify the digit in each PNG or JPEG file with a trained model. Each image
is prepared the MNIST way: grey, light digit on black, cropped to the digit,
longer side scaled to 20 px, centred by centre of mass in 28×28.

Options:
  --model PATH       model folder or its .json file (default: the newest
                     mnist_model_* in ./models)
  --top K            print the K most probable digits (default 1)
  --json             print one JSON object to stdout
  --info             print the model's card (how it was made) and stop
  --backend NAME     auto, ${BACKEND_ORDER.join(", ")} (default wasm)
  --help             show this help

Exit code 0 when every file was classified, 1 when some could not be (each
named on stderr; the others are still classified), 2 for bad usage.`;

const EXPORT_HELP = `Usage: deno task export [options]

Export a trained model: as ONNX (--onnx FILE), and/or quantized to 8 bits
(--quantize int8: a TensorFlow.js folder for inference, batch norm folded in
and uint8 kernels, saved under --out; and int8 weights in the ONNX file).
Quantizing measures the test accuracy before and after, and the file sizes.

Options:
  --model PATH       model folder or its .json file (default: the newest
                     mnist_model_* in ./models)
  --onnx FILE        write an ONNX file (opset 13, IR 8) for onnxruntime & co.
  --quantize int8    quantize the weights (see above)
  --out DIR          where the quantized model folder goes (default ./exports,
                     so that it does not become the newest model in ./models)
  --data-dir DIR     MNIST files for the accuracy check (as for train)
  --json             print one JSON summary to stdout
  --help             show this help`;

const SERVE_HELP = `Usage: deno task serve [options]

Serve a page where you draw a digit and watch the model's ten probabilities
(TensorFlow.js in the browser: webgpu, else webgl, else cpu), and
POST /predict (a PNG or JPEG body, or JSON {"pixels": [784 values]}), on
127.0.0.1 only. Ctrl-C stops it.

Options:
  --model PATH       model folder or its .json file (default: the newest
                     mnist_model_* in ./models)
  --port N           TCP port (default 8000; 0 picks a free one)
  --help             show this help`;

const PREVIEW_HELP = `Usage: deno task preview [options]

Write a PNG grid: a row of test digits, then one row per augmentation.

Options:
  --data-dir DIR     folder with the MNIST files (as for train)
  --out FILE         output file (default augmentation-preview.png)
  --seed N           seed of the random transforms (default 1)
  --help             show this help`;

/** A bad flag or value: printed as one line, exit code 2. */
class UsageError extends Error {}

/**
 * Something that would fail after training (e.g. saving), found before it
 * starts: printed as one line with the fix, exit code 2.
 */
class PreflightError extends UsageError {}

/**
 * The permissions each task runs with (deno.json's tasks; a test keeps them
 * equal). Used to print the exact command that widens them.
 */
export const TASK_PERMISSIONS: Readonly<Record<"train" | "export" | "serve", readonly string[]>> = {
  train: [
    "--allow-read",
    "--allow-write=.",
    "--allow-net=ossci-datasets.s3.amazonaws.com,storage.googleapis.com,raw.githubusercontent.com",
    "--allow-env=TINYMNIST_DATA_DIR,TINYMNIST_DISABLE_WEBGPU,XDG_RUNTIME_DIR",
    "--allow-sys=hostname",
  ],
  serve: [
    "--allow-net=127.0.0.1",
    "--allow-read=./web,./models,./node_modules/.deno/@tensorflow+tfjs@4.22.0/node_modules/@tensorflow/tfjs/dist/tf.es2017.min.js,./node_modules/.deno/@tensorflow+tfjs-backend-webgpu@4.22.0/node_modules/@tensorflow/tfjs-backend-webgpu/dist/tf-backend-webgpu.es2017.min.js,./node_modules/.deno/@tensorflow+tfjs-backend-wasm@4.22.0/node_modules/@tensorflow/tfjs-backend-wasm/dist",
    "--allow-env=TINYMNIST_DISABLE_WEBGPU,XDG_RUNTIME_DIR",
  ],
  export: [
    "--allow-read",
    "--allow-write=.",
    "--allow-net=ossci-datasets.s3.amazonaws.com,storage.googleapis.com,raw.githubusercontent.com",
    "--allow-env=TINYMNIST_DATA_DIR,TINYMNIST_DISABLE_WEBGPU,XDG_RUNTIME_DIR",
  ],
};

/** Quote a word for a POSIX shell where needed. */
const shellWord = (word: string) =>
  /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`;

/**
 * Throw a PreflightError with the exact command that grants the task read
 * and write access to every path it will write, unless it has them all; the
 * message names the first path without access.
 */
async function checkPermissions(
  targets: readonly { path: string; action: string }[],
  task: keyof typeof TASK_PERMISSIONS,
  args: readonly string[],
): Promise<void> {
  const missing: { path: string; action: string; read: boolean }[] = [];
  for (const { path, action } of targets) {
    const write = await Deno.permissions.query({ name: "write", path });
    const read = await Deno.permissions.query({ name: "read", path });
    if (write.state !== "granted" || read.state !== "granted") {
      missing.push({ path, action, read: read.state !== "granted" });
    }
  }
  if (missing.length === 0) return;
  const paths = [...new Set(missing.map((m) => m.path))].join(",");
  const flags = TASK_PERMISSIONS[task].map((flag) =>
    flag.startsWith("--allow-write=") ? `${flag},${paths}` : flag
  );
  const unreadable = [...new Set(missing.filter((m) => m.read).map((m) => m.path))];
  if (unreadable.length > 0) flags.unshift(`--allow-read=${unreadable.join(",")}`);
  const command = ["deno", "run", ...flags, "lib/cli.ts", task, ...args].map(shellWord);
  const allowed = TASK_PERMISSIONS[task].find((f) => f.startsWith("--allow-write="))!.slice(14);
  throw new PreflightError(
    `${
      missing[0].action
    }: expected write permission for it, got none (deno task ${task} may write under ${
      allowed.replaceAll(",", ", ")
    } only); run instead: ${command.join(" ")}`,
  );
}

/**
 * Check, before any long work, that files can be written under `out` (after
 * {@linkcode checkPermissions}): a writable folder, created if missing, as
 * saving would.
 */
async function checkSaveFolder(out: string, action: string): Promise<void> {
  try {
    await Deno.mkdir(out, { recursive: true });
    const probe = await Deno.makeTempFile({ dir: out, prefix: ".tinymnist-write-check-" });
    await Deno.remove(probe);
  } catch (error) {
    const why = error instanceof Deno.errors.AlreadyExists
      ? "it is a file"
      : error instanceof Deno.errors.PermissionDenied
      ? "the system refuses to write there"
      : (error as Error).message;
    throw new PreflightError(`${action}: expected a writable folder, got an error (${why})`);
  }
}

/**
 * node:util's `parseArgs`, with a negative number after an option that takes
 * a value read as that value (`--seed -1`, for the command to check).
 */
function parseCommandArgs<T extends ParseArgsConfig>(config: T) {
  return parseArgs({ ...config, args: joinNegativeValues(config.args ?? [], config.options) });
}

/**
 * The integer value of the flag `--name` (`fallback` when it is not given),
 * written in decimal digits, from `min` to `max`: the limits of what it sets
 * (`train`'s own, so that a run is refused before it loads data), else 2^53 − 1,
 * above which a number is no longer exact (and `train` refuses such a seed).
 */
function integer(
  name: string,
  value: string | undefined,
  fallback: number,
  min = 1,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (value === undefined) return fallback;
  const n = decimalInteger(value);
  if (!Number.isInteger(n) || n < min) {
    throw new UsageError(`expected --${name} to be an integer ≥ ${min}, got "${value}"`);
  }
  if (n > max) {
    throw new UsageError(
      `expected --${name} to be an integer from ${min} to ${max}, got "${value}"`,
    );
  }
  return n;
}

function oneOf<T extends string>(
  name: string,
  value: string | undefined,
  allowed: readonly T[],
  fallback: T,
): T {
  if (value === undefined) return fallback;
  if (!allowed.includes(value as T)) {
    throw new UsageError(`expected --${name} to be one of ${allowed.join(", ")}, got "${value}"`);
  }
  return value as T;
}

/**
 * `message` naming `file` after its action, as decodeImage names it
 * ("Cannot preprocess image: …" becomes `Cannot preprocess image "f": …`),
 * unless it names the file already.
 */
function namingFile(message: string, file: string): string {
  const quoted = JSON.stringify(file);
  if (message.includes(quoted)) return message;
  return message.replace(/^(Cannot [^:"]+):/, `$1 ${quoted}:`);
}

const encoder = new TextEncoder();
const err = (text: string) => Deno.stderr.writeSync(encoder.encode(text));

/**
 * Renders training progress: a bar on a terminal, a line per 10% otherwise.
 * The speed and ETA leave out the first batch, which includes the start-up
 * (workers, shaders); the loss is the latest one read back (the epoch line
 * gives the epoch's mean).
 */
function progressReporter(tty: boolean): (e: BatchEvent) => void {
  let lastDraw = 0, lastDecile = -1;
  let first: BatchEvent | undefined;
  return (e) => {
    first ??= e;
    const fraction = e.images / e.totalImages;
    const rate = (e.images - first.images) / Math.max(e.seconds - first.seconds, 1e-9);
    const measured = e !== first;
    const speed = measured ? `${rate.toFixed(0)} img/s` : "- img/s";
    const eta = measured
      ? `${((e.totalImages - e.images) / Math.max(rate, 1e-9)).toFixed(0)}s`
      : "-";
    const loss = Number.isNaN(e.loss) ? "  -   " : e.loss.toFixed(4);
    const text = `${e.images}/${e.totalImages} img  ${speed}  latest loss ${loss}  ETA ${eta}`;
    if (tty) {
      const now = performance.now();
      if (now - lastDraw < 100 && fraction < 1) return;
      lastDraw = now;
      const width = 30, filled = Math.round(fraction * width);
      err(
        `\r[${"#".repeat(filled)}${".".repeat(width - filled)}] ${
          (100 * fraction).toFixed(0).padStart(3)
        }% ${text}\x1b[K`,
      );
      if (fraction >= 1) err("\n");
    } else {
      const decile = Math.floor(fraction * 10);
      if (decile > lastDecile) {
        lastDecile = decile;
        err(`progress ${(100 * fraction).toFixed(0)}% ${text}\n`);
      }
    }
  };
}

/**
 * Progress of a phase that is not training (scoring the test set, the
 * robustness report): a bar on a terminal, nothing otherwise.
 */
function phaseProgress(tty: boolean, label: string): (done: number, total: number) => void {
  return (done, total) => {
    if (!tty) return;
    const width = 30, filled = Math.round((done / total) * width);
    err(
      `\r[${"#".repeat(filled)}${".".repeat(width - filled)}] ${
        (100 * done / total).toFixed(0).padStart(3)
      }% ${label} ${done}/${total}\x1b[K`,
    );
    if (done >= total) err("\r\x1b[K");
  };
}

const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
/** A difference with its sign: "+0.03", "-0.10", "0.00". */
const signed = (x: number) => (x > 0.005 ? "+" : "") + x.toFixed(2);

async function trainCommand(args: string[]): Promise<number> {
  const { values } = parseCommandArgs({
    args,
    strict: true,
    options: {
      epochs: { type: "string" },
      "batch-size": { type: "string" },
      lr: { type: "string" },
      preset: { type: "string" },
      "mini-epochs": { type: "string" },
      "hard-examples": { type: "string" },
      workers: { type: "string" },
      augment: { type: "string" },
      "no-augment": { type: "boolean" },
      teacher: { type: "string" },
      backend: { type: "string" },
      "data-dir": { type: "string" },
      dataset: { type: "string" },
      seed: { type: "string" },
      out: { type: "string" },
      "no-save": { type: "boolean" },
      "no-probe": { type: "boolean" },
      "robustness-images": { type: "string" },
      report: { type: "string" },
      logdir: { type: "string" },
      json: { type: "boolean" },
      help: { type: "boolean" },
    },
  });
  if (values.help) {
    console.log(TRAIN_HELP);
    return 0;
  }
  const epochs = integer("epochs", values.epochs, 1, 1, 10_000);
  const batchSize = integer("batch-size", values["batch-size"], 64, 1, 65_536);
  const seed = integer("seed", values.seed, 42, 0);
  const learningRate = values.lr === undefined ? undefined : decimal(values.lr);
  if (learningRate !== undefined && !(learningRate > 0 && learningRate <= 1)) {
    throw new UsageError(`expected --lr to be a number in (0, 1], got "${values.lr}"`);
  }
  const miniEpochs = integer("mini-epochs", values["mini-epochs"], 1, 1, 1_000);
  if (values.augment !== undefined && values["no-augment"]) {
    throw new UsageError(`expected --augment or --no-augment, got both`);
  }
  const augmentation = values["no-augment"]
    ? "none"
    : oneOf("augment", values.augment, ["mild", "strong"] as const, "mild");
  const robustnessImages = integer(
    "robustness-images",
    values["robustness-images"],
    ROBUSTNESS_IMAGES,
  );
  const workers = values.workers === undefined
    ? undefined
    : integer("workers", values.workers, 0, 0, 64);
  const hardExamples = values["hard-examples"] === undefined
    ? undefined
    : decimal(values["hard-examples"]);
  if (hardExamples !== undefined && !(hardExamples >= 0 && hardExamples <= 0.5)) {
    throw new UsageError(
      `expected --hard-examples to be a fraction in [0, 0.5], got "${values["hard-examples"]}"`,
    );
  }
  const preset = oneOf(
    "preset",
    values.preset,
    Object.keys(MODEL_PRESETS) as ModelPreset[],
    "tiny",
  );
  const backend = oneOf<BackendPreference>(
    "backend",
    values.backend,
    ["auto", ...BACKEND_ORDER],
    "auto",
  );
  const dataset = oneOf<Dataset>("dataset", values.dataset, ["mnist", "fashion-mnist"], "mnist");
  const out = values.out ?? "./models";
  const json = values.json ?? false;
  const say = (line: string) => (json ? err(line + "\n") : console.log(line));
  // Everything written after training is checked now: permissions first (one
  // command grants them all), then that each folder can be written.
  const folders = [
    ...(values["no-save"]
      ? []
      : [{ path: out, action: `Cannot save the model in ${JSON.stringify(out)}` }]),
    ...(values.report === undefined ? [] : [{
      path: values.report,
      action: `Cannot write the report in ${JSON.stringify(values.report)}`,
    }]),
    ...(values.logdir === undefined ? [] : [{
      path: values.logdir,
      action: `Cannot write TensorBoard logs in ${JSON.stringify(values.logdir)}`,
    }]),
  ];
  await checkPermissions(folders, "train", args);
  for (const { path, action } of folders) await checkSaveFolder(path, action);
  // A teacher that is not there is bad usage, found before any long work.
  if (values.teacher !== undefined) {
    const expected = "expected --teacher to be a saved model folder or its .json file";
    const teacherPath = values.teacher;
    const stat = await Deno.stat(teacherPath).catch(() => null);
    if (!stat) {
      throw new UsageError(`${expected}, got "${teacherPath}", which does not exist`);
    }
    // The file loadModel will read must be there.
    const json = await Deno.stat(await modelJsonPath(teacherPath)).catch(() => null);
    if (!json?.isFile) {
      throw new UsageError(
        `${expected}, got "${teacherPath}", ${
          stat.isDirectory ? "a folder without model.json" : "a file that is not .json"
        }`,
      );
    }
  }

  // Wall seconds of each phase, reported so that end-to-end time is measured.
  const started = performance.now();
  const seconds: Record<string, number> = {};
  let phaseStart = started;
  const endPhase = (name: string) => {
    const now = performance.now();
    seconds[name] = (now - phaseStart) / 1000;
    phaseStart = now;
  };
  const tty = Deno.stderr.isTerminal();
  const selection = await selectBackend(backend, { probe: !values["no-probe"] });
  const timed = selection.timings[0];
  say(
    `backend: ${selection.description}${
      timed ? ` (measured: ${timed.msPerStep.toFixed(1)} ms a training step)` : ""
    }`,
  );
  for (const why of selection.rejected) say(`  passed over ${why}`);

  const data = await loadMnist({ dataset, dir: values["data-dir"] });
  say(`data: ${dataset} from ${data.source} (${data.train.count} train, ${data.test.count} test)`);

  const teacher = values.teacher === undefined ? undefined : await loadModel(values.teacher);
  if (teacher) {
    say(
      `teacher: ${values.teacher} (${teacher.preset}, ${
        teacher.params.toLocaleString("en-US")
      } parameters)`,
    );
  }
  endPhase("setup");
  const model = createModel({ preset, seed });
  const progress = progressReporter(tty);
  const recorder = recordHistory();
  say(`model: ${preset}, ${model.params.toLocaleString("en-US")} trainable parameters`);
  say(
    augmentation === "none"
      ? "augmentation: none"
      : `augmentation: ${augmentation}, strength decaying to 0 over the run`,
  );

  const result = await train(model, data.train, {
    epochs,
    batchSize,
    learningRate,
    seed,
    miniEpochs,
    hardExamples,
    workers,
    augment: augmentation === "none"
      ? false
      : augmentation === "strong"
      ? STRONG_AUGMENTATION
      : MILD_AUGMENTATION,
    teacher,
    onBatchEnd: (event) => {
      progress(event);
      recorder.onBatchEnd(event);
    },
    onEpochEnd: (e) =>
      say(
        `epoch ${e.epoch + 1}/${epochs}: mean ${teacher ? "distillation loss" : "loss"} ${
          e.loss.toFixed(4)
        }, ${e.seconds.toFixed(1)} s of steps, ${e.imagesPerSecond.toFixed(0)} img/s`,
      ),
  });
  say(
    `trained ${result.images} images in ${result.seconds.toFixed(1)} s, start-up included (${
      result.imagesPerSecond.toFixed(0)
    } img/s, ${
      result.workers ? `${result.workers} data-parallel wasm workers` : `on ${selection.name}`
    })`,
  );

  endPhase("train");

  // Scored on every core the trainer used: its wasm workers, each with a replica.
  const scorer = result.workers > 0 ? await parallelClassifier(model, result.workers) : model;
  const evaluation = await evaluate(scorer, data.test, { onProgress: phaseProgress(tty, "test") });
  say(`test accuracy: ${pct(evaluation.accuracy)} on ${evaluation.count} images`);
  say(`per class: ${evaluation.perClass.map((a, k) => `${k}:${(100 * a).toFixed(1)}`).join(" ")}`);
  endPhase("evaluate");
  const report = await robustness(scorer, data.test, {
    seed,
    images: robustnessImages,
    onProgress: phaseProgress(tty, "robustness"),
  });
  if (scorer !== model) scorer.dispose();
  const line = (name: string, r: Record<string, number>, unit = "") =>
    `  ${name.padEnd(8)} ${Object.entries(r).map(([k, v]) => `${k}${unit} ${pct(v)}`).join("  ")}`;
  say(`robustness (accuracy under perturbation, ${report.images} test images):`);
  say(line("rotation", report.rotation, "°"));
  say(line("shift", report.shift, "px"));
  say(line("noise σ", report.noise));
  say(line("elastic α", report.elastic));

  endPhase("robustness");

  // The recipe as run, for the model card and the report.
  const trainingOptions = {
    epochs,
    batchSize,
    learningRate: learningRate ?? 0.03,
    miniEpochs,
    hardExamples: hardExamples ?? 0.15,
    augment: augmentation === "none" ? false : augmentation,
    workers: result.workers,
    ...(values.teacher === undefined ? {} : { teacher: values.teacher }),
  };
  const modelPath = values["no-save"] ? null : await saveModel(model, out, {
    card: {
      dataset,
      seed,
      backend: result.workers ? `${selection.name} (${result.workers} workers)` : selection.name,
      trainSeconds: result.seconds,
      testAccuracy: evaluation.accuracy,
      ...(values.teacher === undefined ? {} : { teacher: values.teacher }),
      training: trainingOptions,
    },
  });
  if (modelPath) {
    say(`saved: ${modelPath}`);
    endPhase("save");
  }
  if (values.report !== undefined) {
    const files = await writeReport(values.report, {
      header: {
        dataset,
        backend: selection.name,
        params: model.params,
        trainSeconds: result.seconds,
        seed,
        options: trainingOptions,
        version: VERSION,
      },
      history: recorder.history,
      evaluation,
      robustness: report,
      predictions: { ...data.test, predicted: evaluation.predicted },
    });
    say(`report: ${files.html} (${files.figures.length} figures)`);
  }
  if (values.logdir !== undefined) {
    const writer = await TensorBoardWriter.create(values.logdir);
    for (const batch of recorder.history.batches) {
      writer.scalar("train/learning_rate", batch.learningRate, batch.step);
      if (batch.loss !== null) writer.scalar("train/loss", batch.loss, batch.step);
    }
    const lastStep = recorder.history.batches.at(-1)?.step ?? 0;
    writer.scalar("test/accuracy", evaluation.accuracy, lastStep);
    const grid = misclassifiedGrid(data.test.images, data.test.labels, evaluation.predicted);
    if (grid) {
      writer.image(
        "test/misclassified",
        await encodePng(grid.pixels, grid.width, grid.height),
        lastStep,
      );
    }
    await writer.close();
    say(`tensorboard: ${writer.path} (tensorboard --logdir ${values.logdir})`);
  }
  if (values.report !== undefined || values.logdir !== undefined) endPhase("report");
  model.dispose();
  teacher?.dispose();
  const total = (performance.now() - started) / 1000;
  say(
    `seconds: ${
      Object.entries(seconds).map(([name, s]) => `${name} ${s.toFixed(1)}`).join(", ")
    }; total ${total.toFixed(1)} (${(total / result.seconds).toFixed(2)}× the training time)`,
  );
  if (json) {
    console.log(JSON.stringify({
      seconds: Object.fromEntries(
        Object.entries({ ...seconds, total }).map(([k, v]) => [k, Math.round(v * 1000) / 1000]),
      ),
      params: model.params,
      preset,
      backend: selection.name,
      backendDescription: selection.description,
      backendTimings: selection.timings,
      dataset,
      epochs,
      batchSize,
      seed,
      trainSeconds: result.seconds,
      warmupSeconds: result.warmupSeconds,
      workers: result.workers,
      hardPresentations: result.hardPresentations,
      imagesPerSecond: result.imagesPerSecond,
      testAccuracy: evaluation.accuracy,
      perClassAccuracy: evaluation.perClass,
      noiseAccuracy: report.noise,
      robustness: report,
      modelPath,
    }));
  }
  return 0;
}

/**
 * The model a command uses: `--model`, else the newest in ./models, else an
 * error (naming `command`) saying how to train one.
 */
async function modelPath(flag: string | undefined, command: string): Promise<string> {
  if (flag !== undefined) return flag;
  const newest = await newestModel("./models");
  if (newest === undefined) {
    throw new Error(
      `Cannot ${command}: expected a model in ./models, got none (train one with \`deno task train\`, or pass --model PATH)`,
    );
  }
  return newest;
}

const percent = (p: number) => `${(100 * p).toFixed(2)}%`;

async function predictCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs({
    args,
    strict: true,
    allowPositionals: true,
    options: {
      model: { type: "string" },
      top: { type: "string" },
      json: { type: "boolean" },
      info: { type: "boolean" },
      backend: { type: "string" },
      help: { type: "boolean" },
    },
  });
  if (values.help) {
    console.log(PREDICT_HELP);
    return 0;
  }
  const top = integer("top", values.top, 1, 1, NUM_CLASSES);
  const backend = oneOf<BackendPreference>(
    "backend",
    values.backend,
    ["auto", ...BACKEND_ORDER],
    "wasm",
  );
  if (!values.info && positionals.length === 0) {
    throw new UsageError("expected at least one image file (PNG or JPEG), got none");
  }
  const path = await modelPath(values.model, "predict");
  const selection = await selectBackend(backend);
  const model = await loadModel(path);
  if (values.info) {
    if (values.json) console.log(JSON.stringify({ model: path, card: model.card ?? null }));
    else {
      console.log(`model: ${path}`);
      for (
        const line of model.card
          ? formatModelCard(model.card)
          : ["no model card (not saved by tinymnist)"]
      ) {
        console.log(line);
      }
    }
    model.dispose();
    return 0;
  }
  type Result = { file: string; error: string } | {
    file: string;
    digit: number;
    probability: number;
    top: { digit: number; probability: number }[];
  };
  const results: Result[] = [];
  const inputs: { index: number; pixels: Float32Array }[] = [];
  for (const file of positionals) {
    try {
      inputs.push({
        index: results.length,
        pixels: preprocessDigit(decodeImage(await Deno.readFile(file), file)),
      });
      results.push({ file, error: "" });
    } catch (error) {
      // Named as decodeImage names the file, so that every message about a file reads alike.
      const read = `Cannot read image ${JSON.stringify(file)}: expected a file, got`;
      const message = error instanceof Deno.errors.NotFound
        ? `${read} none at this path`
        : error instanceof Deno.errors.IsADirectory
        ? `${read} a folder`
        : namingFile((error as Error).message, file);
      results.push({ file, error: message });
    }
  }
  if (inputs.length > 0) {
    const batch = new Float32Array(inputs.length * IMAGE_PIXELS);
    inputs.forEach((input, i) => batch.set(input.pixels, i * IMAGE_PIXELS));
    const probs = await model.predict(batch, { count: inputs.length });
    inputs.forEach(({ index }, i) => {
      const row = Array.from(probs.subarray(i * NUM_CLASSES, (i + 1) * NUM_CLASSES));
      const ranked = row.map((probability, digit) => ({ digit, probability }))
        .sort((a, b) => b.probability - a.probability).slice(0, top);
      results[index] = { file: results[index].file, ...ranked[0], top: ranked };
    });
  }
  model.dispose();
  let failed = 0;
  for (const result of results) {
    if ("error" in result) {
      failed++;
      err(`error: ${result.error}\n`);
    } else if (!values.json) {
      console.log(
        `${result.file}: ${
          result.top.map((t) => `${t.digit} (${percent(t.probability)})`).join("  ")
        }`,
      );
    }
  }
  if (values.json) console.log(JSON.stringify({ model: path, backend: selection.name, results }));
  return failed > 0 ? 1 : 0;
}

/**
 * The first misclassified test digits tiled 10 to a row (1 px gaps), as
 * 8-bit grey pixels for a PNG; undefined when there are none.
 */
function misclassifiedGrid(
  images: Float32Array,
  labels: Uint8Array,
  predicted: Uint8Array,
  most = 40,
): { pixels: Uint8Array; width: number; height: number } | undefined {
  const wrong = [...predicted.keys()].filter((i) => predicted[i] !== labels[i]).slice(0, most);
  if (wrong.length === 0) return undefined;
  const columns = Math.min(10, wrong.length), rows = Math.ceil(wrong.length / columns);
  const width = columns * 29 - 1, height = rows * 29 - 1;
  const pixels = new Uint8Array(width * height).fill(128);
  wrong.forEach((index, n) => {
    const [x0, y0] = [(n % columns) * 29, Math.floor(n / columns) * 29];
    for (let y = 0; y < 28; y++) {
      for (let x = 0; x < 28; x++) {
        pixels[(y0 + y) * width + x0 + x] = Math.round(255 * images[index * 784 + y * 28 + x]);
      }
    }
  });
  return { pixels, width, height };
}

/** Bytes of the files in a folder, by name. */
function folderBytes(path: string): Record<string, number> {
  return Object.fromEntries(
    [...Deno.readDirSync(path)].map((e) => [e.name, Deno.statSync(`${path}/${e.name}`).size]),
  );
}

/** Write a file atomically (temporary file, then rename). */
async function writeFileAtomically(path: string, bytes: Uint8Array): Promise<void> {
  const temp = `${path}.tmp-${crypto.randomUUID()}`;
  try {
    await Deno.writeFile(temp, bytes);
    await Deno.rename(temp, path);
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    throw error;
  }
}

async function exportCommand(args: string[]): Promise<number> {
  const { values } = parseCommandArgs({
    args,
    strict: true,
    options: {
      model: { type: "string" },
      onnx: { type: "string" },
      quantize: { type: "string" },
      out: { type: "string" },
      "data-dir": { type: "string" },
      json: { type: "boolean" },
      help: { type: "boolean" },
    },
  });
  if (values.help) {
    console.log(EXPORT_HELP);
    return 0;
  }
  const quantize = values.quantize === undefined
    ? false
    : oneOf("quantize", values.quantize, ["int8"], "int8") === "int8";
  if (!quantize && values.onnx === undefined) {
    throw new UsageError("expected --onnx FILE, --quantize int8, or both, got neither");
  }
  // Not ./models: a quantized copy must not become the newest model that predict picks.
  const out = values.out ?? "./exports";
  const onnxFolder = values.onnx === undefined ? undefined : dirname(values.onnx);
  if (values.onnx !== undefined && (await Deno.stat(values.onnx).catch(() => null))?.isDirectory) {
    throw new UsageError(`expected --onnx to be a file name, got the folder "${values.onnx}"`);
  }
  const folders = [
    ...(quantize ? [{ path: out, action: `Cannot save the model in ${JSON.stringify(out)}` }] : []),
    ...(onnxFolder === undefined ? [] : [{
      path: onnxFolder,
      action: `Cannot write ${JSON.stringify(values.onnx)}`,
    }]),
  ];
  await checkPermissions(folders, "export", args);
  for (const { path, action } of folders) await checkSaveFolder(path, action);
  const say = (line: string) => (values.json ? err(line + "\n") : console.log(line));
  const path = await modelPath(values.model, "export");
  await selectBackend("wasm");
  const model = await loadModel(path);
  say(`model: ${path} (${model.preset}, ${model.params.toLocaleString("en-US")} parameters)`);
  if (quantize && model.card?.weights === "uint8") {
    model.dispose();
    throw new UsageError(
      `expected a float32 model for --quantize int8, got "${path}", which is already quantized`,
    );
  }
  const summary: Record<string, unknown> = { model: path };
  if (quantize) {
    const data = await loadMnist({ dir: values["data-dir"] });
    const floatAccuracy = (await evaluate(model, data.test)).accuracy;
    // Score the quantized model as it loads from disk (a scratch copy beside
    // the final folder), so that its card can record its own test accuracy.
    const scratch = await Deno.makeTempDir({ dir: out, prefix: ".quantizing-" });
    let quantizedAccuracy: number;
    try {
      const loaded = await loadModel(await saveModel(model, scratch, { quantize: "uint8" }));
      quantizedAccuracy = (await evaluate(loaded, data.test)).accuracy;
      loaded.dispose();
    } finally {
      await Deno.remove(scratch, { recursive: true });
    }
    const quantized = await saveModel(model, out, {
      quantize: "uint8",
      card: { ...model.card, testAccuracy: quantizedAccuracy },
    });
    const before = folderBytes(path), after = folderBytes(quantized);
    const total = (files: Record<string, number>) =>
      Object.values(files).reduce((a, b) => a + b, 0);
    say(`quantized: ${quantized}`);
    say(
      `  weights ${before["weights.bin"]} → ${after["weights.bin"]} bytes (${
        (before["weights.bin"] / after["weights.bin"]).toFixed(2)
      }× smaller); whole folder ${total(before)} → ${total(after)} bytes (${
        (total(before) / total(after)).toFixed(2)
      }×)`,
    );
    say(
      `  test accuracy ${pct(floatAccuracy)} → ${pct(quantizedAccuracy)} (${
        signed(100 * (quantizedAccuracy - floatAccuracy))
      } points)`,
    );
    Object.assign(summary, {
      quantized,
      bytes: { float: before, quantized: after },
      testAccuracy: { float: floatAccuracy, quantized: quantizedAccuracy },
    });
  }
  if (values.onnx !== undefined) {
    const bytes = await exportOnnx(model, { quantize: quantize ? "int8" : "none" });
    await Deno.mkdir(dirname(values.onnx), { recursive: true });
    await writeFileAtomically(values.onnx, bytes);
    say(`onnx: ${values.onnx} (${bytes.length} bytes${quantize ? ", int8 weights" : ""})`);
    Object.assign(summary, { onnx: values.onnx, onnxBytes: bytes.length });
  }
  model.dispose();
  if (values.json) console.log(JSON.stringify(summary));
  return 0;
}

async function serveCommand(args: string[]): Promise<number> {
  const { values } = parseCommandArgs({
    args,
    strict: true,
    options: {
      model: { type: "string" },
      port: { type: "string" },
      help: { type: "boolean" },
    },
  });
  if (values.help) {
    console.log(SERVE_HELP);
    return 0;
  }
  const port = integer("port", values.port, 8000, 0, 65_535);
  const model = await modelPath(values.model, "serve");
  if ((await Deno.permissions.query({ name: "read", path: model })).state !== "granted") {
    const flags = TASK_PERMISSIONS.serve.map((flag) =>
      flag.startsWith("--allow-read=") ? `${flag},${model}` : flag
    );
    const command = ["deno", "run", ...flags, "lib/cli.ts", "serve", ...args].map(shellWord);
    throw new PreflightError(
      `Cannot serve ${
        JSON.stringify(model)
      }: expected read permission for it, got none (deno task serve may read ./models only); run instead: ${
        command.join(" ")
      }`,
    );
  }
  await selectBackend("wasm");
  const server = await serve({ model, port });
  console.log(`serving ${server.model} at ${server.url} (Ctrl-C to stop)`);
  const stop = () => void server.shutdown();
  Deno.addSignalListener("SIGINT", stop);
  try {
    await server.finished;
  } finally {
    Deno.removeSignalListener("SIGINT", stop);
  }
  return 0;
}

async function previewCommand(args: string[]): Promise<number> {
  const { values } = parseCommandArgs({
    args,
    strict: true,
    options: {
      "data-dir": { type: "string" },
      out: { type: "string" },
      seed: { type: "string" },
      help: { type: "boolean" },
    },
  });
  if (values.help) {
    console.log(PREVIEW_HELP);
    return 0;
  }
  const seed = integer("seed", values.seed, 1, 0);
  const out = values.out ?? "augmentation-preview.png";
  const data = await loadMnist({ dir: values["data-dir"] });
  const png = await renderPreview(data.test.images.subarray(0, 8 * 784), { seed });
  const temp = `${out}.tmp-${crypto.randomUUID()}`;
  await Deno.writeFile(temp, png);
  await Deno.rename(temp, out);
  console.log(`wrote ${out}: rows ${PREVIEW_ROWS.join(", ")}`);
  return 0;
}

/**
 * Run the command line with the given arguments.
 *
 * @param args The arguments after the program name.
 * @returns The process exit code: 0 on success, 1 on failure, 2 for bad usage.
 */
export async function main(args: string[]): Promise<number> {
  const [command, ...flags] = args[0]?.startsWith("-") || args.length === 0
    ? ["train", ...args]
    : args;
  try {
    if (command === "train") return await trainCommand(flags);
    if (command === "predict") return await predictCommand(flags);
    if (command === "export") return await exportCommand(flags);
    if (command === "serve") return await serveCommand(flags);
    if (command === "preview") return await previewCommand(flags);
    throw new UsageError(
      `Cannot run tinymnist: expected a command (train, predict, export, serve or preview), got "${command}"`,
    );
  } catch (error) {
    const usage = error instanceof UsageError ||
      (error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS");
    const reason = usageReason(error as Error, command);
    // Usage errors name the action: "Cannot train: expected …, got …".
    const message = usage && !reason.startsWith("Cannot ")
      ? `Cannot ${command}: ${reason}`
      : reason;
    const hint = usage && !(error instanceof PreflightError) ? " (see --help)" : "";
    err(`error: ${message}${hint}\n`);
    return usage ? 2 : 1;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
