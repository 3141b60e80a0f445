/**
 * The forward pass used for training. For a model that is a plain chain of
 * layers it computes the same function as `model.apply(x, { training: true })`
 * with fewer kernels:
 *
 * - batch normalisation is one op with a hand-written gradient (about 20
 *   kernels forward and backward, against about 100 for the layer's own
 *   composition of `moments` and `batchNorm`), and updates the moving
 *   statistics as the layer does;
 * - a linear convolution is a plain `conv2d`, whose gradient with respect to
 *   its input is computed only when needed (the layer's fused op always
 *   computes it, even for the first layer, whose input is the image).
 *
 * Other layers, and models that are not chains, run through TensorFlow.js.
 * Internal.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { batchNormTraining } from "./batch_norm.ts";

/** The parts of a layer's configuration this module reads. */
interface LayerConfig {
  activation?: string;
  strides?: number | number[];
  padding?: "same" | "valid";
  dilationRate?: number | number[];
  dataFormat?: string;
  axis?: number;
  center?: boolean;
  scale?: boolean;
  epsilon?: number;
  momentum?: number;
}

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
  const layers = chainOf(model);
  if (!layers) return model.apply(x, { training: true }) as tf.Tensor;
  return tf.tidy(() => {
    let h = x;
    for (const layer of layers) h = applyLayer(layer, h);
    return h;
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
    const pair = (v: number | number[] | undefined) =>
      (Array.isArray(v) ? v : [v ?? 1, v ?? 1]) as [number, number];
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
  if (
    layer.getClassName() === "BatchNormalization" && (config.axis ?? -1) === -1 &&
    config.center !== false && config.scale !== false && weights.gamma && weights.beta &&
    weights.movingMean && weights.movingVariance
  ) {
    const stats: tf.Tensor[] = [];
    const y = batchNormTraining(x, weights.gamma.read(), weights.beta.read(), {
      epsilon: config.epsilon ?? 1e-3,
      onStatistics: (mean, variance) => stats.push(tf.keep(mean), tf.keep(variance)),
    });
    // As the layer does: moving = moving − (moving − batch) × (1 − momentum).
    const decay = 1 - (config.momentum ?? 0.99);
    [weights.movingMean, weights.movingVariance].forEach((moving, i) => {
      const old = moving.read();
      moving.write(tf.sub(old, tf.mul(tf.sub(old, stats[i]), decay)));
    });
    tf.dispose(stats);
    return y;
  }
  return layer.apply(x, { training: true }) as tf.Tensor;
}
