/**
 * Save and load classifiers in the TensorFlow.js layers format
 * (`model.json` + `weights.bin`), in folders named
 * `mnist_model_YYYYMMDD_HHMMSS`, written atomically. Loading reads the
 * standard format as the TensorFlow.js converter writes it: any shard file
 * names, several shards, several weight groups.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { dirname, join } from "node:path";
import { IMAGE_SIZE, NUM_CLASSES } from "./images.ts";
import { type Classifier, layersModelOf, wrapLayersModel } from "./model.ts";
import { ensureBackend } from "./backend.ts";
import { type ModelCard, type ModelCardInput, readModelCard, VERSION } from "./model_card.ts";
import { writeNewFolder } from "./new_folder.ts";
import { quantizeModel } from "./quantize.ts";

/**
 * Thrown when a saved model is missing, corrupt or truncated, or a model
 * folder cannot be read or written.
 */
export class ModelFileError extends Error {
  /**
   * Create a model-file error.
   * @param message What is wrong with which file or folder.
   * @param options Standard error options, e.g. `cause`.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ModelFileError";
  }
}

/** Options for {@linkcode saveModel}. */
export interface SaveModelOptions {
  /**
   * The time that names the folder (UTC).
   * @default {new Date()}
   */
  date?: Date;
  /**
   * What to record about how the model was made (dataset, seed, training
   * options, backend, time, test accuracy); the version, preset, parameter
   * count, date and weight format are filled in.
   * @default {{}}
   */
  card?: ModelCardInput;
  /**
   * `"uint8"`: save the inference-time network with every kernel as 8-bit
   * values with a scale (see `lib/quantize.ts`: batch norm folded into the
   * convolution before it, output channels normalised, then uint8 per
   * tensor): weights about 4× smaller and the folder about 3.7× (the tiny
   * preset), which plain TensorFlow.js loads as well; the
   * saved network has no batch-norm layers (the tiny preset's 17,018
   * parameters become 16,938) and is meant for inference, not more
   * training. `"none"`: float32, the network as it is.
   * @default {"none"}
   */
  quantize?: "none" | "uint8";
}

/**
 * The folder name for a model saved at `date`: `mnist_model_YYYYMMDD_HHMMSS` (UTC).
 *
 * @param date The time of saving.
 * @returns The folder name.
 *
 * @example
 * ```ts
 * import { modelFolderName } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * assert.equal(modelFolderName(new Date(Date.UTC(2026, 10, 29, 9, 5, 3))), "mnist_model_20261129_090503");
 * ```
 */
export function modelFolderName(date: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `mnist_model_${date.getUTCFullYear()}${p(date.getUTCMonth() + 1)}${
    p(date.getUTCDate())
  }_` +
    `${p(date.getUTCHours())}${p(date.getUTCMinutes())}${p(date.getUTCSeconds())}`;
}

/**
 * Save a classifier into a new folder `mnist_model_YYYYMMDD_HHMMSS` under
 * `dir`. The files are written to a hidden temporary folder, flushed to disk
 * (fsync), and the folder is renamed into place (then its parent flushed), so
 * a crash never leaves a half-written model; temporary folders left by a
 * killed save are removed by the next save into `dir`. An existing model is
 * never overwritten: if the name is taken, `_2`, `_3`, … is appended. The
 * folder and files get the modes of a plain `mkdir`/`writeFile` under the
 * umask.
 *
 * @param model The classifier to save.
 * @param dir The parent folder; created if missing.
 * @param options The time that names the folder.
 * @returns The path of the new model folder.
 * @throws {RangeError} When a weight is not finite (a diverged model is not saved).
 * @throws {TypeError} When `dir` is not a non-empty string.
 * @throws {ModelFileError} When the folder cannot be created or written
 * (a file of that name, no permission, a read-only file system).
 *
 * @example Save and load back
 * ```ts
 * import { createModel, loadModel, saveModel, selectBackend } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * await selectBackend("cpu");
 * const dir = await Deno.makeTempDir();
 * const model = createModel();
 * const path = await saveModel(model, dir);
 * const loaded = await loadModel(path);
 * assert.equal(loaded.params, model.params);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function saveModel(
  model: Classifier,
  dir: string,
  options: SaveModelOptions = {},
): Promise<string> {
  const net = layersModelOf(model);
  if (typeof dir !== "string" || dir === "") {
    throw new TypeError(`Cannot save model: expected a folder path, got ${JSON.stringify(dir)}`);
  }
  for (const w of net.weights) {
    const bad = countNonFinite(await w.read().data() as Float32Array);
    if (bad > 0) {
      throw new RangeError(
        `Cannot save model: expected finite weights, got ${nonFinite(bad)} in "${w.originalName}"`,
      );
    }
  }
  const quantize = options.quantize ?? "none";
  if (quantize !== "none" && quantize !== "uint8") {
    throw new RangeError(
      `Cannot save model: expected quantize "none" or "uint8", got ${JSON.stringify(quantize)}`,
    );
  }
  let artifacts: tf.io.ModelArtifacts | undefined;
  await net.save(tf.io.withSaveHandler((a) => {
    artifacts = a;
    return Promise.resolve({ modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(a) });
  }));
  let specs = artifacts!.weightSpecs!;
  let weights = new Uint8Array(tf.io.CompositeArrayBuffer.join(artifacts!.weightData!));
  let topology = artifacts!.modelTopology;
  let params = model.params;
  if (quantize === "uint8") {
    const quantized = await quantizeModel(net);
    const encoded = quantized.weights;
    specs = encoded.map((e) => e.spec);
    weights = new Uint8Array(encoded.reduce((n, e) => n + e.bytes.length, 0));
    encoded.reduce((offset, e) => (weights.set(e.bytes, offset), offset + e.bytes.length), 0);
    topology = quantized.topology;
    params = quantized.params;
  }
  const date = options.date ?? new Date();
  const card: ModelCard = {
    ...options.card,
    version: VERSION,
    preset: model.preset,
    params,
    savedAt: date.toISOString(),
    weights: quantize === "uint8" ? "uint8" : "float32",
  };
  const json = {
    format: "layers-model",
    generatedBy: `TensorFlow.js tfjs-layers v${tf.version_layers}`,
    convertedBy: null,
    modelTopology: topology,
    weightsManifest: [{ paths: ["weights.bin"], weights: specs }],
    userDefinedMetadata: { tinymnist: card },
  };
  try {
    return await writeNewFolder(dir, modelFolderName(date), {
      "model.json": new TextEncoder().encode(JSON.stringify(json)),
      "weights.bin": weights,
    });
  } catch (error) {
    throw new ModelFileError(
      `Cannot save model in ${JSON.stringify(dir)}: expected a folder it can write, got an error (${
        (error as Error).message
      })`,
      { cause: error },
    );
  }
}

/** Trainable parameters of a model. */
function countTrainableOf(net: tf.LayersModel): number {
  return net.trainableWeights.reduce(
    (n, w) => n + (w.shape as number[]).reduce((a, b) => a * b, 1),
    0,
  );
}

/** "1 non-finite value", "3 non-finite values". */
const nonFinite = (n: number) => `${n} non-finite value${n === 1 ? "" : "s"}`;

/** How many values are below 0. */
function countNegative(values: ArrayLike<number>): number {
  let negative = 0;
  for (let i = 0; i < values.length; i++) if (values[i] < 0) negative++;
  return negative;
}

/** How many values of `values` are NaN or ±Infinity. */
function countNonFinite(values: ArrayLike<number>): number {
  let bad = 0;
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) bad++;
  return bad;
}

/** Bytes per value of each dtype a weight may have in the layers format. */
const BYTES_PER: Readonly<Record<string, number>> = { float32: 4, int32: 4, bool: 1 };
/** Bytes per value of each quantized dtype (tf.io's `quantization.dtype`). */
const QUANTIZED_BYTES_PER: Readonly<Record<string, number>> = { uint8: 1, uint16: 2, float16: 2 };
/**
 * The largest number accepted anywhere in `modelTopology`. TensorFlow.js
 * allocates each layer's weights from the topology before it compares them
 * with the files, so a corrupt `"units": 1e12` would otherwise be an
 * allocation failure; real layer sizes of small models are far below this.
 */
const MAX_TOPOLOGY_NUMBER = 65_536;

/** A weights-manifest group as the layers format writes it. */
interface ManifestGroup {
  paths: string[];
  weights: tf.io.WeightsManifestEntry[];
}

/**
 * The JSON file {@linkcode loadModel} reads for `path`: the path itself when
 * it ends in ".json" and is not a folder, else `model.json` inside it.
 * Internal.
 *
 * @param path A saved model's folder or its .json file.
 * @returns The path of the model's JSON file (which may not exist).
 */
export async function modelJsonPath(path: string): Promise<string> {
  const isFolder = !path.endsWith(".json") ||
    (await Deno.stat(path).then((info) => info.isDirectory, () => false));
  return isFolder ? join(path, "model.json") : path;
}

/**
 * Load a classifier in the TensorFlow.js layers format: what
 * {@linkcode saveModel} writes, or what the TensorFlow.js converter and
 * `model.save("file://…")` write (`group1-shard1of1.bin`, several shards,
 * several weight groups). Everything is checked before TensorFlow.js sees
 * it: the JSON, the manifest (shard names must be plain file names in the
 * folder), each group's byte size, every number and layer name in the
 * topology, that every weight is finite, that the model maps 28×28×1 images
 * to 10 classes, and that a blank image comes out as 10 finite probabilities
 * (a corrupt layer option would otherwise fail only at the first predict).
 *
 * @param path The model folder, or the path of its JSON file (any name
 * ending in `.json`; the shards are read from the folder it is in).
 * @returns The loaded classifier.
 * @throws {ModelFileError} When a file is missing, corrupt or truncated, a
 * weight is not finite, or the model is not a working 28×28 → 10 classifier.
 * @throws {TypeError} When `path` is not a non-empty string.
 *
 * @example A missing folder is a ModelFileError
 * ```ts
 * import { loadModel, ModelFileError } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * await assert.rejects(loadModel("/nonexistent/mnist_model_x"), ModelFileError);
 * ```
 */
export async function loadModel(path: string): Promise<Classifier> {
  if (typeof path !== "string" || path === "") {
    throw new TypeError(`Cannot load model: expected a path, got ${JSON.stringify(path)}`);
  }
  ensureBackend();
  const jsonPath = await modelJsonPath(path);
  const dir = dirname(jsonPath);
  const fail = (detail: string) => new ModelFileError(`Cannot load model "${path}": ${detail}`);
  const read = async (file: string, what: string): Promise<Uint8Array> => {
    try {
      return await Deno.readFile(file);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw fail(`expected ${what} "${file}", got none`);
      }
      if (
        error instanceof Deno.errors.IsADirectory || (error as { code?: string }).code === "EISDIR"
      ) {
        throw fail(`expected ${what} "${file}" to be a file, got a folder`);
      }
      if (error instanceof Deno.errors.NotADirectory) {
        throw fail(`expected a model folder or a .json file, got another kind of file`);
      }
      throw fail(`cannot read ${what} "${file}" (${(error as Error).message})`);
    }
  };
  const text = new TextDecoder().decode(await read(jsonPath, "the model's JSON file"));
  let json: {
    modelTopology?: unknown;
    weightsManifest?: unknown;
    userDefinedMetadata?: { tinymnist?: unknown };
  };
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw fail(`model.json is not valid JSON (${(error as Error).message})`);
  }
  if (typeof json !== "object" || json === null) {
    throw fail(`expected model.json to hold an object, got ${JSON.stringify(json)}`);
  }
  if (typeof json.modelTopology !== "object" || json.modelTopology === null) {
    throw fail("expected model.json to have a modelTopology object, got none");
  }
  const huge = largestNumber(json.modelTopology);
  if (huge > MAX_TOPOLOGY_NUMBER) {
    throw fail(
      `expected numbers in modelTopology up to ${MAX_TOPOLOGY_NUMBER}, got ${huge} (corrupt file?)`,
    );
  }
  const badName = invalidName(json.modelTopology);
  if (badName !== undefined) {
    throw fail(`expected layer names in modelTopology to be valid tensor names, got ${badName}`);
  }
  const groups = checkManifest(json.weightsManifest, fail);
  const specs: tf.io.WeightsManifestEntry[] = [];
  const parts: Uint8Array[] = [];
  for (const [g, group] of groups.entries()) {
    const expected = group.weights.reduce((sum, spec) => sum + specBytes(spec, fail), 0);
    const shards = [];
    for (const name of group.paths) shards.push(await read(join(dir, name), "weights file"));
    const got = shards.reduce((sum, b) => sum + b.byteLength, 0);
    if (got !== expected) {
      throw fail(
        `expected weight group ${g + 1} (${
          group.paths.map((p) => `"${p}"`).join(", ")
        }) to have ${expected} bytes, got ${got}`,
      );
    }
    specs.push(...group.weights);
    parts.push(...shards);
  }
  const weightData = new Uint8Array(parts.reduce((sum, b) => sum + b.byteLength, 0));
  parts.reduce((offset, b) => (weightData.set(b, offset), offset + b.byteLength), 0);

  const net = await oneAtATime(() => buildModel(json.modelTopology, specs, weightData, fail));
  try {
    for (const w of net.weights) {
      const values = await w.read().data() as Float32Array;
      const bad = countNonFinite(values);
      if (bad > 0) {
        throw fail(`expected finite weights, got ${nonFinite(bad)} in "${w.originalName}"`);
      }
      const negative = w.originalName.endsWith("moving_variance") ? countNegative(values) : 0;
      if (negative > 0) {
        throw fail(
          `expected moving variances ≥ 0, got ${negative} negative in "${w.originalName}"`,
        );
      }
    }
    const inShape = JSON.stringify(net.inputs[0].shape);
    const outShape = JSON.stringify(net.outputs[0].shape);
    if (
      net.inputs.length !== 1 || net.outputs.length !== 1 ||
      inShape !== JSON.stringify([null, IMAGE_SIZE, IMAGE_SIZE, 1]) ||
      outShape !== JSON.stringify([null, NUM_CLASSES]) || net.inputs[0].dtype !== "float32"
    ) {
      throw fail(`expected a model from [n,28,28,1] to [n,10], got ${inShape} to ${outShape}`);
    }
    // The topology can still be wrong inside (a corrupt layer option): one blank
    // image must come out as 10 finite probabilities.
    let probabilities: Float32Array;
    try {
      const output = tf.tidy(() =>
        net.predict(tf.zeros([1, IMAGE_SIZE, IMAGE_SIZE, 1])) as tf.Tensor
      );
      probabilities = await output.data() as Float32Array; // async: webgpu cannot read synchronously
      output.dispose();
    } catch (error) {
      throw fail(`TensorFlow.js cannot run the model (${(error as Error)?.message ?? error})`);
    }
    if (probabilities.length !== NUM_CLASSES || countNonFinite(probabilities) > 0) {
      throw fail(
        `expected a blank image to give ${NUM_CLASSES} finite probabilities, got [${
          probabilities.join(", ")
        }]`,
      );
    }
  } catch (error) {
    net.dispose();
    throw error;
  }
  const card = readModelCard(json.userDefinedMetadata?.tinymnist, countTrainableOf(net));
  return wrapLayersModel(net, card?.preset ?? "custom", card);
}

/**
 * Build the model from its topology, then set its weights, so that what
 * TensorFlow.js made before rejecting either is freed here (its own
 * `loadLayersModel` leaks the decoded weights when they do not fit).
 */
async function buildModel(
  topology: unknown,
  specs: tf.io.WeightsManifestEntry[],
  weightData: Uint8Array,
  fail: (detail: string) => ModelFileError,
): Promise<tf.LayersModel> {
  const rejected = (error: unknown) =>
    fail(`TensorFlow.js rejected the model (${(error as Error)?.message ?? error})`);
  // Called one load at a time, so the variables made meanwhile are this load's.
  const variablesBefore = new Set(Object.keys(tf.engine().registeredVariables));
  let net: tf.LayersModel;
  try {
    net = await tf.loadLayersModel(tf.io.fromMemory({
      modelTopology: topology as tf.io.ModelJSON["modelTopology"],
    }));
  } catch (error) {
    for (const [name, variable] of Object.entries(tf.engine().registeredVariables)) {
      if (!variablesBefore.has(name)) variable.dispose();
    }
    throw rejected(error);
  }
  let weights: tf.NamedTensorMap = {};
  try {
    // In a tidy: a decode that fails half-way frees what it had decoded.
    weights = tf.tidy(() => tf.io.decodeWeights(weightData.buffer as ArrayBuffer, specs));
    net.loadWeights(weights, true);
    return net;
  } catch (error) {
    net.dispose();
    throw rejected(error);
  } finally {
    tf.dispose(Object.values(weights));
  }
}

let queue: Promise<unknown> = Promise.resolve();
/** Run `task` after every task queued before it has settled. */
function oneAtATime<T>(task: () => Promise<T>): Promise<T> {
  const result = queue.then(task, task);
  queue = result.catch(() => {});
  return result;
}

/** Names TensorFlow.js accepts for tensors and variables (its own rule). */
const TENSOR_NAME = /^[A-Za-z0-9][-A-Za-z0-9._/]*$/;

/**
 * The first `"name"` field of a JSON value that is not a valid tensor name,
 * as JSON, or undefined. Checked before TensorFlow.js builds the model,
 * which would fail half-way (and leak a tensor) on such a name.
 */
function invalidName(value: unknown): string | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  for (const [key, v] of Object.entries(value)) {
    if (key === "name" && !(typeof v === "string" && TENSOR_NAME.test(v))) return JSON.stringify(v);
    const inner = invalidName(v);
    if (inner !== undefined) return inner;
  }
  return undefined;
}

/** The largest number anywhere in a JSON value (0 if none). */
function largestNumber(value: unknown): number {
  if (typeof value === "number") return Number.isNaN(value) ? Infinity : Math.abs(value);
  if (typeof value !== "object" || value === null) return 0;
  let max = 0;
  for (const v of Object.values(value)) max = Math.max(max, largestNumber(v));
  return max;
}

/** Check `weightsManifest`: groups of plain shard names and weight specs. */
function checkManifest(
  manifest: unknown,
  fail: (detail: string) => ModelFileError,
): ManifestGroup[] {
  if (!Array.isArray(manifest) || manifest.length === 0) {
    throw fail("expected model.json to have a weightsManifest with at least one group, got none");
  }
  for (const [g, group] of manifest.entries()) {
    const where = `weightsManifest[${g}]`;
    if (typeof group !== "object" || group === null) {
      throw fail(`expected ${where} to be an object, got ${JSON.stringify(group)}`);
    }
    if (!Array.isArray(group.paths) || group.paths.length === 0) {
      throw fail(
        `expected ${where}.paths to list the group's files, got ${JSON.stringify(group.paths)}`,
      );
    }
    for (const name of group.paths) {
      // Plain names only: a manifest must not reach outside the model's folder.
      if (typeof name !== "string" || !/^[^/\\]+$/.test(name) || name === "." || name === "..") {
        throw fail(`expected ${where}.paths to hold plain file names, got ${JSON.stringify(name)}`);
      }
    }
    if (!Array.isArray(group.weights)) {
      throw fail(
        `expected ${where}.weights to list the weights, got ${JSON.stringify(group.weights)}`,
      );
    }
    for (const spec of group.weights) {
      if (typeof spec !== "object" || spec === null || typeof spec.name !== "string") {
        throw fail(
          `expected each entry of ${where}.weights to have a name, got ${JSON.stringify(spec)}`,
        );
      }
    }
  }
  return manifest as ManifestGroup[];
}

/** The bytes a weight spec takes in its shard, checking shape and dtype. */
function specBytes(
  spec: tf.io.WeightsManifestEntry,
  fail: (detail: string) => ModelFileError,
): number {
  const { shape, dtype, quantization } = spec;
  if (
    !Array.isArray(shape) ||
    !shape.every((d: unknown) => Number.isSafeInteger(d) && (d as number) >= 0)
  ) {
    throw fail(`weight "${spec.name}" has an invalid shape ${JSON.stringify(shape)}`);
  }
  let bytes = BYTES_PER[dtype];
  if (quantization !== undefined) {
    bytes = QUANTIZED_BYTES_PER[quantization?.dtype];
    const { scale, min } = quantization ?? {};
    const finite = (x: unknown) => x === undefined || Number.isFinite(x);
    if (dtype !== "float32" || !bytes || !finite(scale) || !finite(min)) {
      throw fail(
        `weight "${spec.name}" has an invalid quantization ${JSON.stringify(quantization)}`,
      );
    }
  }
  if (!bytes) throw fail(`weight "${spec.name}" has an unsupported dtype ${JSON.stringify(dtype)}`);
  return bytes * shape.reduce((a: number, b: number) => a * b, 1);
}

/**
 * The newest model folder (`mnist_model_YYYYMMDD_HHMMSS`, latest name) in a
 * folder, as `deno task predict` and `deno task serve` pick by default.
 *
 * @param dir The folder that holds model folders.
 * @returns Its path, or `undefined` when there is none (or no such folder).
 *
 * @example
 * ```ts
 * import { createModel, newestModel, saveModel, selectBackend } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * await selectBackend("cpu");
 * const dir = await Deno.makeTempDir();
 * assert.equal(await newestModel(dir), undefined);
 * const model = createModel();
 * await saveModel(model, dir, { date: new Date(Date.UTC(2026, 0, 1)) });
 * const newer = await saveModel(model, dir, { date: new Date(Date.UTC(2026, 5, 1)) });
 * assert.equal(await newestModel(dir), newer);
 * model.dispose();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function newestModel(dir: string): Promise<string | undefined> {
  let names: string[];
  try {
    names = (await Array.fromAsync(Deno.readDir(dir)))
      .filter((e) => e.isDirectory && /^mnist_model_\d{8}_\d{6}(_\d+)?$/.test(e.name))
      .map((e) => e.name);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  // Same timestamp: the highest _N suffix is the newest.
  const key = (name: string) => {
    const [, stamp, n] = /^mnist_model_(\d{8}_\d{6})(?:_(\d+))?$/.exec(name)!;
    return `${stamp}_${(n ?? "1").padStart(6, "0")}`;
  };
  names.sort((a, b) => key(a) < key(b) ? -1 : 1);
  return names.length ? `${dir}/${names.at(-1)}` : undefined;
}
