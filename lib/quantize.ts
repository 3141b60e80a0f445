/**
 * Post-training 8-bit weight quantization in a form plain TensorFlow.js
 * loads: the layers format's weight manifest stores each kernel as uint8
 * with a `scale` and `min` (value = q × scale + min), per tensor.
 *
 * Three steps:
 * 1. Batch norm is folded into the convolution before it (`foldBatchNorm`:
 *    the inference-time network, B. Jacob et al. 2018, arXiv:1712.05877,
 *    §3.2), so only kernels and biases remain to be stored.
 * 2. Per-tensor scales waste levels when a kernel's output channels have
 *    very different ranges, so each output channel c of a layer (kernel and
 *    bias) is divided by its largest magnitude s_c, and the weights that read
 *    that channel in the next layer are multiplied by s_c. A ReLU network
 *    computes the same function (ReLU, max pooling, dropout and flatten
 *    commute with a positive scale per channel: M. Nagel et al. 2019,
 *    "Data-Free Quantization Through Weight Equalization and Bias
 *    Correction", arXiv:1906.04721, §4.1), and every output channel of every
 *    layer but the last then spans [-1, 1]: one uint8 scale per tensor acts
 *    as one per output channel. (Nagel et al.'s balanced scales,
 *    s_c = √(r1_c / r2_c), were measured too and were no closer to the float
 *    model on these networks.)
 * 3. Each kernel is quantized affinely to uint8 with one scale and offset
 *    (R. Krishnamoorthi 2018, "Quantizing deep convolutional networks for
 *    efficient inference: A whitepaper", arXiv:1806.08342, §2.1). Biases
 *    (under 1% of the values) stay float32.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs";
import { foldBatchNorm } from "./fold_batch_norm.ts";

/** One weight as the manifest describes it, with its bytes. */
export interface EncodedWeight {
  /** The manifest entry (with `quantization` for quantized kernels). */
  spec: tf.io.WeightsManifestEntry;
  /** The bytes in the weights file. */
  bytes: Uint8Array;
}

/** A quantized network: its topology and its weights in the model's weight order. */
export interface QuantizedModel {
  /** The layers-format topology of the folded network (`modelTopology` in model.json). */
  topology: object;
  /** The manifest entries and bytes, in the folded network's weight order. */
  weights: EncodedWeight[];
  /** Trainable parameters of the folded network. */
  params: number;
}

/** One weight's float values. */
interface Weight {
  name: string;
  shape: number[];
  values: Float32Array;
}

/** Layers between two weighted layers across which a positive per-channel scale passes unchanged (a ReLU only without a cap). */
const SCALE_COMMUTING = new Set(["ReLU", "MaxPooling2D", "Dropout", "Flatten"]);

/** Activations inside a weighted layer that commute with a positive scale. */
const HOMOGENEOUS = new Set(["linear", "relu"]);

/** A layer with a kernel (Conv2D or Dense), its bias, and what follows it. */
interface Weighted {
  kernel: Weight;
  bias?: Weight;
  /** The next weighted layer, when a per-channel scale can pass from this one to it. */
  next?: Weighted;
}

/** The chains of weighted layers of `net` across which scales may be moved. */
function weightedChain(net: tf.LayersModel, byName: Map<string, Weight>): Weighted[] {
  const chain: Weighted[] = [];
  let open: Weighted | undefined; // the last weighted layer, while a scale can still pass it
  for (const layer of net.layers) {
    const type = layer.getClassName();
    const kernel = byName.get(`${layer.name}/kernel`);
    if ((type === "Conv2D" || type === "Dense") && kernel) {
      const item: Weighted = { kernel, bias: byName.get(`${layer.name}/bias`) };
      if (open) open.next = item;
      chain.push(item);
      const { activation } = layer.getConfig() as { activation?: string };
      open = HOMOGENEOUS.has(activation ?? "linear") ? item : undefined;
    } else if (
      !SCALE_COMMUTING.has(type) && type !== "InputLayer" ||
      type === "ReLU" && (layer.getConfig() as { maxValue?: number }).maxValue != null
    ) { // a capped ReLU does not commute with a scale
      open = undefined;
    }
  }
  return chain;
}

/**
 * Scale every output channel of each layer that has a `next` to largest
 * magnitude 1, and move the scale into the weights of the next layer that
 * read that channel. In chain order, so that each layer is normalised after
 * it has taken the scales of the layer before it.
 */
function normaliseChannels(chain: Weighted[]): void {
  for (const a of chain) {
    const b = a.next;
    if (!b) continue;
    const channels = a.kernel.shape.at(-1)!, units = b.kernel.shape.at(-1)!;
    const s = new Float64Array(channels);
    a.kernel.values.forEach((v, i) => s[i % channels] = Math.max(s[i % channels], Math.abs(v)));
    s.forEach((v, c) => s[c] = v > 0 ? v : 1); // a channel of zeros stays as it is
    for (let i = 0; i < a.kernel.values.length; i++) a.kernel.values[i] /= s[i % channels];
    if (a.bias) { for (let c = 0; c < channels; c++) a.bias.values[c] /= s[c]; }
    // Element i of b's kernel reads input feature ⌊i / units⌋, which is channel
    // (⌊i / units⌋ mod channels): Conv2D kernels are [kh, kw, in, out], and a
    // flattened NHWC input puts the channel innermost.
    for (let i = 0; i < b.kernel.values.length; i++) {
      b.kernel.values[i] *= s[Math.floor(i / units) % channels];
    }
  }
}

/** uint8 affine quantization of one tensor: q = round((w - min) / scale). */
function quantizeUint8(values: Float32Array): { bytes: Uint8Array; scale: number; min: number } {
  let min = Infinity, max = -Infinity;
  for (const v of values) [min, max] = [Math.min(min, v), Math.max(max, v)];
  const scale = max > min ? (max - min) / 255 : 1;
  const bytes = Uint8Array.from(values, (v) => Math.round((v - min) / scale));
  return { bytes, scale, min };
}

/** A JSON value of a layers-format topology. */
type TopologyNode = null | boolean | number | string | TopologyNode[] | {
  [key: string]: TopologyNode;
};

/**
 * A topology without what only training reads: initialisers, regularisers,
 * constraints and `trainable: true` (each layer's default when absent), so
 * that a quantized model.json stays small.
 */
function inferenceTopology(node: TopologyNode): TopologyNode {
  if (Array.isArray(node)) return node.map(inferenceTopology);
  if (node === null || typeof node !== "object") return node;
  const trainingOnly = /_(initializer|regularizer|constraint)$/;
  return Object.fromEntries(
    Object.entries(node)
      .filter(([key, value]) => !trainingOnly.test(key) && !(key === "trainable" && value === true))
      .map(([key, value]) => [key, inferenceTopology(value)]),
  );
}

/**
 * The inference-time network of a model with batch norm folded in, its
 * output channels normalised and every kernel quantized to uint8 (see the module
 * docs). Does not change the model. Internal to `saveModel`.
 *
 * @param net The TensorFlow.js model (Sequential).
 * @returns The folded topology and its weights as the layers format stores them.
 */
export async function quantizeModel(net: tf.LayersModel): Promise<QuantizedModel> {
  const folded = await foldBatchNorm(net);
  try {
    const weights: Weight[] = [];
    for (const w of folded.weights) {
      weights.push({
        name: w.originalName,
        shape: w.shape as number[],
        values: (await w.read().data() as Float32Array).slice(),
      });
    }
    const chain = weightedChain(folded, new Map(weights.map((w) => [w.name, w])));
    normaliseChannels(chain);
    return {
      topology: inferenceTopology(folded.toJSON(null, false) as unknown as TopologyNode) as object,
      params: folded.trainableWeights.reduce(
        (n, w) => n + (w.shape as number[]).reduce((a, b) => a * b, 1),
        0,
      ),
      weights: weights.map(({ name, shape, values }) => {
        if (name.endsWith("/kernel")) {
          const { bytes, scale, min } = quantizeUint8(values);
          return {
            spec: { name, shape, dtype: "float32", quantization: { dtype: "uint8", scale, min } },
            bytes,
          };
        }
        return { spec: { name, shape, dtype: "float32" }, bytes: new Uint8Array(values.buffer) };
      }),
    };
  } finally {
    folded.dispose();
  }
}
