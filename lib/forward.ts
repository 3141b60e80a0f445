/**
 * The forward pass used for training. For a model that is a plain chain of
 * layers it computes the same function as `model.apply(x, { training: true })`
 * with fewer kernels:
 *
 * - batch normalisation is one op with a hand-written gradient (about 20
 *   kernels forward and backward, against about 100 for the layer's own
 *   composition of `moments` and `batchNorm`, and 2 on WASM), and updates
 *   the moving statistics as the layer does;
 * - on WASM, batch norm → ReLU → 2×2 max-pool is one op (see
 *   `batchNormReluPoolTraining`);
 * - a linear convolution is a plain `conv2d`, whose gradient with respect to
 *   its input is computed only when needed (the layer's fused op always
 *   computes it, even for the first layer, whose input is the image);
 * - a seeded dropout layer draws a new mask each pass (the layer's own
 *   would repeat its first mask).
 *
 * Other layers, and models that are not chains, run through TensorFlow.js.
 * Internal.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { type LayerConfig, pair } from "./layer_config.ts";
import {
  batchNormReluPoolTraining,
  batchNormTraining,
  canFuseBatchNormReluPool,
} from "./batch_norm.ts";

/** Internal fields of tfjs-layers layers that this module reads. */
interface LayerInternals {
  kernel?: tf.LayerVariable;
  bias?: tf.LayerVariable | null;
  gamma?: tf.LayerVariable;
  beta?: tf.LayerVariable;
  movingMean?: tf.LayerVariable;
  movingVariance?: tf.LayerVariable;
}

/**
 * `model.apply(x, { training: true })`, computed with fewer kernels where the
 * model is a chain of layers. Updates batch-norm moving statistics.
 *
 * @param model The model.
 * @param x A batch of inputs.
 * @returns The model's output.
 */
export function trainingForward(model: tf.LayersModel, x: tf.Tensor): tf.Tensor {
  return chainForward(model, x, false);
}

/**
 * The logits z of a classifier whose output is softmax(z), in training mode
 * (as {@linkcode trainingForward}): a chain whose last layer is a dense layer
 * with a softmax activation runs that layer without its activation. For
 * another model the logits are log p, with p clipped to [1e-7, 1] (softmax of
 * log p is p again). Updates batch-norm moving statistics.
 *
 * @param model The classifier.
 * @param x A batch of inputs.
 * @returns `[n, classes]` logits.
 */
export function trainingLogits(model: tf.LayersModel, x: tf.Tensor): tf.Tensor {
  return chainForward(model, x, true);
}

/** The forward pass of {@linkcode trainingForward}, or of {@linkcode trainingLogits} when `logits`. */
function chainForward(model: tf.LayersModel, x: tf.Tensor, logits: boolean): tf.Tensor {
  const layers = chainOf(model);
  const last = layers?.[layers.length - 1];
  if (!layers || (logits && !isSoftmaxDense(last!))) {
    return tf.tidy(() => {
      const probs = model.apply(x, { training: true }) as tf.Tensor;
      return logits ? tf.log(probs.clipByValue(1e-7, 1)) : probs;
    });
  }
  return tf.tidy(() => {
    let h = x;
    for (let i = 0; i < layers.length; i++) {
      if (logits && i === layers.length - 1) {
        // As the layer computes it before its softmax: the bias added on its own.
        const weights = layers[i] as unknown as LayerInternals;
        const z = tf.matMul(h as tf.Tensor2D, weights.kernel!.read() as tf.Tensor2D);
        return weights.bias ? tf.add(z, weights.bias.read()) : z;
      }
      // Batch norm → ReLU → 2×2 max-pool: one op where the backend has it.
      const padding = blockTailPadding(layers, i);
      if (padding && canFuseBatchNormReluPool(h.shape)) {
        h = batchNorm(
          layers[i],
          h,
          (x, gamma, beta, options) => batchNormReluPoolTraining(x, gamma, beta, options, padding),
        );
        i += 2;
      } else {
        h = applyLayer(layers[i], h);
      }
    }
    return h;
  });
}

/**
 * The pool's padding when layers i, i+1, i+2 are a batch norm, a plain ReLU
 * and a 2×2, stride-2 max-pool; else `null`.
 */
function blockTailPadding(layers: tf.layers.Layer[], i: number): "valid" | "same" | null {
  if (i + 2 >= layers.length || !isBatchNorm(layers[i])) return null;
  const relu = layers[i + 1], pool = layers[i + 2];
  const reluConfig = relu.getConfig() as LayerConfig;
  const plainRelu = (relu.getClassName() === "ReLU" && reluConfig.maxValue == null) ||
    (relu.getClassName() === "Activation" && reluConfig.activation === "relu");
  const poolConfig = pool.getConfig() as LayerConfig;
  const padding = poolConfig.padding;
  return plainRelu && pool.getClassName() === "MaxPooling2D" &&
      JSON.stringify(poolConfig.poolSize) === "[2,2]" &&
      JSON.stringify(poolConfig.strides) === "[2,2]" &&
      (padding === "valid" || padding === "same") &&
      (poolConfig.dataFormat ?? "channelsLast") === "channelsLast"
    ? padding
    : null;
}

/** Whether a layer is a dense layer with a softmax activation, on rank-2 inputs. */
function isSoftmaxDense(layer: tf.layers.Layer): boolean {
  const config = layer.getConfig() as LayerConfig;
  return layer.getClassName() === "Dense" && config.activation === "softmax" &&
    !!(layer as unknown as LayerInternals).kernel &&
    (layer.input as tf.SymbolicTensor).shape.length === 2;
}

/** Whether a layer is a batch norm over the last axis with both γ and β. */
function isBatchNorm(layer: tf.layers.Layer): boolean {
  const config = layer.getConfig() as LayerConfig;
  const weights = layer as unknown as LayerInternals;
  return layer.getClassName() === "BatchNormalization" && (config.axis ?? -1) === -1 &&
    config.center !== false && config.scale !== false && !!weights.gamma && !!weights.beta &&
    !!weights.movingMean && !!weights.movingVariance;
}

/**
 * A batch-norm layer in training mode through `op` (which may also apply
 * what follows it); updates the moving statistics as the layer does:
 * moving = moving − (moving − batch) × (1 − momentum).
 */
function batchNorm(
  layer: tf.layers.Layer,
  x: tf.Tensor,
  op: typeof batchNormTraining,
): tf.Tensor {
  const config = layer.getConfig() as LayerConfig;
  const weights = layer as unknown as Required<LayerInternals>;
  return op(x, weights.gamma.read(), weights.beta.read(), {
    epsilon: config.epsilon ?? 1e-3,
    moving: {
      mean: weights.movingMean.read(),
      variance: weights.movingVariance.read(),
      momentum: config.momentum ?? 0.99,
      update: (mean, variance) => {
        weights.movingMean.write(mean);
        weights.movingVariance.write(variance);
      },
    },
  });
}

/** The layers of `model` in order if each feeds only the next, else `null`. */
function chainOf(model: tf.LayersModel): tf.layers.Layer[] | null {
  const layers = model.layers.filter((l) => l.getClassName() !== "InputLayer");
  for (let i = 1; i < layers.length; i++) {
    const nodes = layers[i].inboundNodes;
    if (nodes.length !== 1 || nodes[0].inboundLayers.length !== 1) return null;
    if (nodes[0].inboundLayers[0] !== layers[i - 1]) return null;
  }
  return layers;
}

function applyLayer(layer: tf.layers.Layer, x: tf.Tensor): tf.Tensor {
  const config = layer.getConfig() as LayerConfig;
  const weights = layer as unknown as LayerInternals;
  const channelsLast = config.dataFormat === undefined || config.dataFormat === "channelsLast";
  if (
    layer.getClassName() === "Conv2D" && config.activation === "linear" && channelsLast &&
    weights.kernel && x.rank === 4
  ) {
    let y: tf.Tensor = tf.conv2d(
      x as tf.Tensor4D,
      weights.kernel.read() as tf.Tensor4D,
      pair(config.strides),
      config.padding ?? "valid",
      "NHWC",
      pair(config.dilationRate),
    );
    if (weights.bias) y = tf.add(y, weights.bias.read());
    return y;
  }
  if (isBatchNorm(layer)) return batchNorm(layer, x, batchNormTraining);
  if (layer.getClassName() === "Dropout") return dropout(layer, x);
  return layer.apply(x, { training: true }) as tf.Tensor;
}

/** Training passes each seeded dropout layer has run: its next mask's number. */
const dropoutPasses = new WeakMap<tf.layers.Layer, number>();

/**
 * A dropout layer in training mode. With a seed, TensorFlow.js's layer
 * draws every mask from a fresh generator seeded alike, so each pass would
 * repeat the first pass's mask (one mask per position in the batch); here
 * pass k of a layer seeded s draws its mask with seed s on the first pass
 * and `s:k` after, so the masks change every pass and a model built from
 * the same seed draws the same sequence; each data-parallel worker's
 * replica draws that sequence for its own shard. Without a seed, the
 * layer's own unseeded draw.
 */
function dropout(layer: tf.layers.Layer, x: tf.Tensor): tf.Tensor {
  const config = layer.getConfig() as { rate: number; noiseShape?: number[]; seed?: number };
  if (config.seed == null || config.rate === 0) {
    return layer.apply(x, { training: true }) as tf.Tensor;
  }
  const pass = dropoutPasses.get(layer) ?? 0;
  dropoutPasses.set(layer, pass + 1);
  const seed = pass === 0 ? config.seed : `${config.seed}:${pass}`;
  return tf.dropout(x, config.rate, config.noiseShape, seed);
}
