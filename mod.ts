/**
 * tinymnist: train, evaluate, save and serve tiny (<25,000-parameter)
 * convolutional networks for MNIST digits with TensorFlow.js, on Deno's
 * WebGPU, WASM or the plain CPU backend.
 *
 * @example Train on a few synthetic images, evaluate, save and load back
 * ```ts
 * import {
 *   createModel,
 *   evaluate,
 *   loadModel,
 *   saveModel,
 *   selectBackend,
 *   train,
 * } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * const backend = await selectBackend("wasm"); // or "auto": the fastest that works
 * assert.equal(backend.name, "wasm");
 * // Real data: `const { train: trainSet, test } = await loadMnist();`
 * const count = 64;
 * const labels = new Uint8Array(count).map((_, i) => i % 2);
 * const images = new Float32Array(count * 784).map((_, p) =>
 *   (p % 28 < 14) === (labels[Math.floor(p / 784)] === 0) ? 1 : 0
 * );
 * const model = createModel();
 * await train(model, { images, labels, count }, { batchSize: 16, epochs: 3 });
 * const { accuracy } = await evaluate(model, { images, labels, count });
 * assert.ok(accuracy > 0.9);
 *
 * const dir = await Deno.makeTempDir();
 * const loaded = await loadModel(await saveModel(model, dir));
 * assert.deepEqual(await loaded.predict(images), await model.predict(images));
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @module
 */
export { createRng, type Rng, shuffle } from "./lib/rng.ts";
export {
  addNoise,
  affineBatch,
  type AffineParams,
  augmentBatch,
  type AugmentOptions,
  elasticBatch,
  rotateBatch,
  shiftBatch,
} from "./lib/augment.ts";
export {
  decodeImage,
  encodeJpeg,
  encodePng,
  type EncodePngOptions,
  ImageFormatError,
  MAX_IMAGE_PIXELS,
} from "./lib/image_file.ts";
export { PREVIEW_ROWS, type PreviewOptions, renderPreview } from "./lib/preview.ts";
export {
  encodeIdx,
  type IdxArray,
  IdxFormatError,
  type IdxImages,
  parseIdx,
  parseIdxImages,
  parseIdxLabels,
} from "./lib/idx.ts";
export {
  type Dataset,
  loadMnist,
  type LoadMnistOptions,
  type MnistData,
  MnistDataError,
  type MnistProgressEvent,
  type MnistSplit,
  toFloat32Images,
} from "./lib/mnist.ts";
export {
  BACKEND_ORDER,
  BackendError,
  type BackendName,
  type BackendPreference,
  type BackendSelection,
  type BackendTiming,
  DISABLE_WEBGPU_ENV,
  type GpuAdapterLike,
  type GpuLike,
  registerWasmTrainingKernels,
  selectBackend,
  type SelectBackendOptions,
} from "./lib/backend.ts";
export {
  checkImages,
  type CheckImagesOptions,
  checkLabelled,
  IMAGE_PIXELS,
  IMAGE_SIZE,
  type LabelledImages,
  NUM_CLASSES,
} from "./lib/images.ts";
export { type PixelImage, preprocessDigit } from "./lib/preprocess.ts";
export { formatModelCard, type ModelCard, type ModelCardInput, VERSION } from "./lib/model_card.ts";
export {
  type Classifier,
  countParams,
  createModel,
  MODEL_PRESETS,
  type ModelOptions,
  type ModelPreset,
  type PredictOptions,
} from "./lib/model.ts";
export {
  type BatchEvent,
  DivergenceError,
  type EpochEvent,
  MILD_AUGMENTATION,
  STRONG_AUGMENTATION,
  train,
  type TrainOptions,
  type TrainResult,
} from "./lib/train.ts";
export { learningRateAt } from "./lib/training_plan.ts";
export {
  evaluate,
  type EvaluateOptions,
  type Evaluation,
  noiseRobustness,
  robustness,
  ROBUSTNESS_IMAGES,
  type RobustnessOptions,
  type RobustnessReport,
} from "./lib/evaluate.ts";
export {
  loadModel,
  ModelFileError,
  modelFolderName,
  newestModel,
  saveModel,
  type SaveModelOptions,
} from "./lib/io.ts";
export { exportOnnx, type ExportOnnxOptions } from "./lib/onnx.ts";
export {
  type HistoryBatch,
  type HistoryRecorder,
  recordHistory,
  type TrainingHistory,
} from "./lib/history.ts";
export {
  type Predictions,
  type ReportFiles,
  type ReportHeader,
  type ReportInput,
  type ReportOptions,
  writeReport,
} from "./lib/report.ts";
export { TensorBoardWriter } from "./lib/tensorboard.ts";
export {
  MAX_PREDICT_PIXELS,
  type ModelServer,
  serve,
  ServeError,
  type ServeOptions,
} from "./lib/serve.ts";
