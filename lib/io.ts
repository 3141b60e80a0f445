/**
 * Save and load classifiers in the TensorFlow.js layers format
 * (`model.json` + `weights.bin`), in folders named
 * `mnist_model_YYYYMMDD_HHMMSS`, written atomically.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import {
  type Classifier,
  IMAGE_SIZE,
  layersModelOf,
  NUM_CLASSES,
  wrapLayersModel,
} from "./model.ts";

/** Thrown when a saved model is missing, corrupt or truncated. */
export class ModelFileError extends Error {
  /** Create a model-file error with the given message. */
  constructor(message: string) {
    super(message);
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

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/**
 * Save a classifier into a new folder `mnist_model_YYYYMMDD_HHMMSS` under
 * `dir`. The files are written to a hidden temporary folder first and then
 * renamed into place, so a crash never leaves a half-written model. An
 * existing model is never overwritten: if the name is taken, `_2`, `_3`, …
 * is appended.
 *
 * @param model The classifier to save.
 * @param dir The parent folder; created if missing.
 * @param options The time that names the folder.
 * @returns The path of the new model folder.
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
  await Deno.mkdir(dir, { recursive: true });
  const name = modelFolderName(options.date ?? new Date());
  const temp = await Deno.makeTempDir({ dir, prefix: `.${name}.tmp-` });
  try {
    let artifacts: tf.io.ModelArtifacts | undefined;
    await net.save(tf.io.withSaveHandler((a) => {
      artifacts = a;
      return Promise.resolve({ modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(a) });
    }));
    const weights = tf.io.CompositeArrayBuffer.join(artifacts!.weightData!);
    const json = {
      format: "layers-model",
      generatedBy: `TensorFlow.js tfjs-layers v${tf.version_layers}`,
      convertedBy: null,
      modelTopology: artifacts!.modelTopology,
      weightsManifest: [{ paths: ["weights.bin"], weights: artifacts!.weightSpecs }],
      userDefinedMetadata: { tinymnist: { preset: model.preset, params: model.params } },
    };
    await Deno.writeTextFile(`${temp}/model.json`, JSON.stringify(json));
    await Deno.writeFile(`${temp}/weights.bin`, new Uint8Array(weights));
    let path = `${dir}/${name}`;
    for (let i = 2; await exists(path); i++) path = `${dir}/${name}_${i}`;
    await Deno.rename(temp, path);
    return path;
  } catch (error) {
    await Deno.remove(temp, { recursive: true }).catch(() => {});
    throw error;
  }
}

const BYTES_PER: Record<string, number> = { float32: 4, int32: 4, bool: 1 };

/**
 * Load a classifier saved by {@linkcode saveModel}. Everything is checked
 * before TensorFlow.js sees it: the JSON, the manifest, the size of
 * `weights.bin`, and that the model maps 28×28×1 images to 10 classes.
 *
 * @param path The model folder (or its `model.json`).
 * @returns The loaded classifier.
 * @throws {ModelFileError} When the files are missing, corrupt or truncated.
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
  const dir = path.endsWith("model.json") ? path.slice(0, -"/model.json".length) : path;
  const fail = (detail: string) => new ModelFileError(`Cannot load model "${dir}": ${detail}`);
  let text: string, weights: Uint8Array;
  try {
    text = await Deno.readTextFile(`${dir}/model.json`);
    weights = await Deno.readFile(`${dir}/weights.bin`);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw fail("expected model.json and weights.bin in the folder, but they are missing");
    }
    throw error;
  }
  let json: {
    modelTopology?: unknown;
    weightsManifest?: { paths?: unknown; weights?: tf.io.WeightsManifestEntry[] }[];
    userDefinedMetadata?: { tinymnist?: { preset?: string } };
  };
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw fail(`model.json is not valid JSON (${(error as Error).message})`);
  }
  if (typeof json?.modelTopology !== "object" || json.modelTopology === null) {
    throw fail("expected model.json to have a modelTopology object, got none");
  }
  const specs = json.weightsManifest?.[0]?.weights;
  if (!Array.isArray(specs)) {
    throw fail("expected model.json to have weightsManifest[0].weights, got none");
  }
  let expected = 0;
  for (const spec of specs) {
    const bytes = BYTES_PER[spec?.dtype ?? "float32"];
    if (!Array.isArray(spec?.shape) || !bytes) {
      throw fail(`weight "${spec?.name}" has an invalid shape or dtype`);
    }
    expected += bytes * spec.shape.reduce((a: number, b: number) => a * b, 1);
  }
  if (weights.byteLength !== expected) {
    throw fail(`expected weights.bin to have ${expected} bytes, got ${weights.byteLength}`);
  }
  let net: tf.LayersModel;
  try {
    net = await tf.loadLayersModel(tf.io.fromMemory({
      modelTopology: json.modelTopology as tf.io.ModelJSON["modelTopology"],
      weightSpecs: specs,
      weightData: weights.slice().buffer,
    }));
  } catch (error) {
    throw fail(`TensorFlow.js rejected the model (${(error as Error).message})`);
  }
  const inShape = JSON.stringify(net.inputs[0].shape);
  const outShape = JSON.stringify(net.outputs[0].shape);
  if (
    inShape !== JSON.stringify([null, IMAGE_SIZE, IMAGE_SIZE, 1]) ||
    outShape !== JSON.stringify([null, NUM_CLASSES])
  ) {
    net.dispose();
    throw fail(`expected a model from [n,28,28,1] to [n,10], got ${inShape} to ${outShape}`);
  }
  return wrapLayersModel(net, json.userDefinedMetadata?.tinymnist?.preset ?? "custom");
}
