/**
 * A faster inference path for models that are a plain chain of the layers
 * the presets use: each convolution with the batch norm after it folded into
 * one convolution with a bias (Jacob et al. 2018, arXiv:1712.05877, §3.2),
 * and the ReLU after it fused into the same kernel (`tf.fused.conv2d`), the
 * dense layer's bias and ReLU likewise (`tf.fused.matMul`). About 10 kernels
 * a forward pass instead of about 20 layers' worth, and no batch-norm pass
 * over the activations.
 *
 * A Rescaling layer at the front (the presets' input normalisation) runs on
 * the host as the input tensor is made, for up to {@linkcode HOST_RESCALE_MAX}
 * images: one pass in JavaScript over the pixels instead of two kernels, with
 * the same float32 products and sums (on wasm, in scratch runs of `predict`
 * taken in turn with the kernels: 1–15% more images/s at batch 1 in nine
 * pairs of runs; at batch 1000 the kernels were 4% faster).
 *
 * The folded weights are kept on the device and made again whenever a weight
 * of the model changes (TensorFlow.js gives a variable new data on every
 * assignment, so the identity of each variable's data is the key). The
 * result equals `model.predict` up to float rounding (≤ 1e-6 on the
 * presets). Internal.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { type LayerConfig, pair } from "./layer_config.ts";
import { IMAGE_SIZE } from "./images.ts";
import {
  foldIntoConv,
  isChannelsLastBatchNorm,
  isFoldable,
  weightsByName,
} from "./fold_batch_norm.ts";

/** One step of the chain, on the current (folded) tensors. */
type Step = (x: tf.Tensor) => tf.Tensor;

/** Whether a layer runs as `activation` allows: linear or relu (and softmax when `softmax`). */
const plainActivation = (config: LayerConfig, softmax = false) =>
  [undefined, "linear", "relu", ...(softmax ? ["softmax"] : [])].includes(config.activation);

/** Whether `layer` is a ReLU layer without a cap. */
const isPlainRelu = (layer: tf.layers.Layer | undefined) =>
  layer?.getClassName() === "ReLU" && (layer.getConfig() as LayerConfig).maxValue == null;

/** A Rescaling layer's `x · scale + offset`, as float32 numbers. */
interface Rescale {
  scale: number;
  offset: number;
}

/** A Rescaling layer's `x · scale + offset` as two kernels. */
const rescaleKernels = (x: tf.Tensor, { scale, offset }: Rescale) =>
  tf.add(tf.mul(x, scale), offset);

/**
 * The steps of `net` with its current weights (folded tensors are made here
 * and returned in `kept`), or `null` when a layer is not one this path runs.
 * A Rescaling layer before any other is returned as `rescale`, for the host.
 */
function plan(
  net: tf.LayersModel,
): { rescale: Rescale | null; steps: Step[]; kept: tf.Tensor[] } | null {
  const layers = net.layers;
  const steps: Step[] = [];
  let rescale: Rescale | null = null;
  const kept: tf.Tensor[] = [];
  const keep = <T extends tf.Tensor>(t: T) => (kept.push(tf.keep(t)), t);
  let complete = false;
  try {
    for (let i = 0; i < layers.length; i++) {
      const layer = layers[i];
      const type = layer.getClassName();
      const config = layer.getConfig() as LayerConfig;
      if (config.dataFormat !== undefined && config.dataFormat !== "channelsLast") return null;
      if (type === "InputLayer" || type === "Dropout") continue;
      if (type === "Rescaling") {
        const layerRescale = {
          scale: Math.fround(Number(config.scale ?? 1)),
          offset: Math.fround(Number(config.offset ?? 0)),
        };
        if (steps.length === 0 && rescale === null) rescale = layerRescale;
        else steps.push((x) => rescaleKernels(x, layerRescale));
      } else if (type === "Conv2D" && plainActivation(config)) {
        const w = weightsByName(layer);
        let [kernel, bias] = [w.get("kernel")!, w.get("bias") ?? null];
        if (config.activation !== "relu" && isFoldable(layers, i)) {
          [kernel, bias] = foldIntoConv(layer, layers[i + 1]).map(keep);
          i++;
        }
        let relu = config.activation === "relu";
        if (!relu && isPlainRelu(layers[i + 1])) {
          relu = true;
          i++;
        }
        const [k, b] = [kernel, bias];
        steps.push((x) =>
          tf.fused.conv2d({
            x: x as tf.Tensor4D,
            filter: k as tf.Tensor4D,
            strides: pair(config.strides),
            pad: config.padding ?? "valid",
            dilations: pair(config.dilationRate),
            bias: b ?? undefined,
            activation: relu ? "relu" : "linear",
          })
        );
      } else if (isChannelsLastBatchNorm(layer)) {
        const bn = weightsByName(layer);
        const { epsilon = 1e-3 } = config;
        steps.push((x) =>
          tf.batchNorm(
            x,
            bn.get("moving_mean")!,
            bn.get("moving_variance")!,
            bn.get("beta"),
            bn.get("gamma"),
            epsilon,
          )
        );
      } else if (isPlainRelu(layer)) {
        steps.push((x) => tf.relu(x));
      } else if (type === "MaxPooling2D") {
        const size = pair(config.poolSize, 2);
        const strides = config.strides === undefined ? size : pair(config.strides);
        steps.push((x) => tf.maxPool(x as tf.Tensor4D, size, strides, config.padding ?? "valid"));
      } else if (type === "Flatten") {
        steps.push((x) => tf.reshape(x, [x.shape[0], -1]));
      } else if (type === "Dense" && plainActivation(config, true)) {
        const w = weightsByName(layer);
        const kernel = w.get("kernel")!, bias = w.get("bias");
        const activation = config.activation === "relu" ? "relu" : "linear";
        steps.push((x) => {
          if (x.rank !== 2) throw new RangeError("dense on more than 2 axes"); // not in a plan
          const y = tf.fused.matMul({
            a: x as tf.Tensor2D,
            b: kernel as tf.Tensor2D,
            bias,
            activation,
          });
          return config.activation === "softmax" ? tf.softmax(y) : y;
        });
      } else {
        return null;
      }
    }
    complete = true;
    return { rescale, steps, kept };
  } finally {
    // Declined half-way, or failed: nothing made here is left behind.
    if (!complete) tf.dispose(kept);
  }
}

/** Runs a model's inference path; see {@linkcode inferenceRunner}. Internal. */
export interface InferenceRunner {
  /**
   * The model's output for `count` images (`pixels`: `count × 784` floats,
   * row-major 28 × 28 each) in inference mode. Call inside `tf.tidy`;
   * folded weights are made again first if a weight changed since.
   */
  run(pixels: Float32Array, count: number): tf.Tensor;
  /** Release the folded weights. */
  dispose(): void;
}

/** Most images whose input rescaling runs on the host rather than as kernels. */
const HOST_RESCALE_MAX = 64;

/** `x · scale + offset` for each pixel, rounded to float32 after each operation, as kernels do. */
function rescaled(pixels: Float32Array, { scale, offset }: Rescale): Float32Array {
  const out = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) out[i] = Math.fround(pixels[i] * scale) + offset;
  return out;
}

/**
 * The model's output for `count` images (`pixels`: `count × 784` floats) in
 * inference mode: through `runner` where the model has one, else
 * `net.predict`. Call inside `tf.tidy`. Internal.
 */
export function predictImages(
  net: tf.LayersModel,
  runner: InferenceRunner | null,
  pixels: Float32Array,
  count: number,
): tf.Tensor {
  if (runner) return runner.run(pixels, count);
  return net.predict(tf.tensor4d(pixels, [count, IMAGE_SIZE, IMAGE_SIZE, 1])) as tf.Tensor;
}

/**
 * A runner for `net`'s fast inference path, or `null` when the model is not
 * a Sequential chain of InputLayer, Rescaling, Conv2D, BatchNormalization,
 * ReLU, MaxPooling2D, Dropout, Flatten and Dense layers (channels last;
 * linear, ReLU or, for Dense, softmax activations) with a rank-2 input to
 * each Dense layer. Such models go through `net.predict` instead.
 *
 * @param net The model.
 * @returns A runner, or `null`.
 */
export function inferenceRunner(net: tf.LayersModel): InferenceRunner | null {
  if (net.getClassName() !== "Sequential") return null;
  // A Dense layer must see a flat input: after Flatten, or another Dense.
  let flat = false;
  for (const layer of net.layers) {
    const type = layer.getClassName();
    if (type === "Flatten") flat = true;
    if (type === "Dense" && !flat) return null;
    if (type === "Conv2D" || type === "MaxPooling2D") flat = false;
  }
  let current:
    | { key: object[]; rescale: Rescale | null; steps: Step[]; kept: tf.Tensor[] }
    | null = null;
  const keyOf = () => net.weights.map((w) => w.read().dataId);
  const first = plan(net);
  if (!first) return null;
  current = { key: keyOf(), ...first };
  return {
    run(pixels, count) {
      const key = keyOf();
      if (key.length !== current!.key.length || key.some((k, i) => k !== current!.key[i])) {
        tf.dispose(current!.kept);
        const next = plan(net)!;
        current = { key, ...next };
      }
      const { rescale, steps } = current!;
      const shape: [number, number, number, number] = [count, IMAGE_SIZE, IMAGE_SIZE, 1];
      let x: tf.Tensor;
      if (!rescale) x = tf.tensor4d(pixels, shape);
      else if (count <= HOST_RESCALE_MAX) x = tf.tensor4d(rescaled(pixels, rescale), shape);
      else x = rescaleKernels(tf.tensor4d(pixels, shape), rescale);
      return steps.reduce((h, step) => step(h), x);
    },
    dispose() {
      if (current) tf.dispose(current.kept);
      current = null;
    },
  };
}
