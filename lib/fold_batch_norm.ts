/**
 * Batch-norm folding: the inference-time network in which each
 * convolution followed by a batch norm becomes one convolution with a bias.
 *
 * At inference a batch norm is an affine map per channel,
 * y = γ (x − μ) / √(σ² + ε) + β, so after a convolution with kernel W and
 * bias b it can be merged into the convolution: with g = γ / √(σ² + ε) per
 * output channel c, W'[…, c] = g_c W[…, c] and b'_c = g_c (b_c − μ_c) + β_c
 * (B. Jacob et al. 2018, "Quantization and Training of Neural Networks for
 * Efficient Integer-Arithmetic-Only Inference", arXiv:1712.05877, §3.2, as
 * TensorFlow Lite's converter does). The result computes the same function
 * as the model in inference mode, with fewer weights to store. Internal to
 * quantized saving and int8 ONNX export.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";

/** A layer as the layers format's topology writes it. */
interface LayerJson {
  class_name: string;
  config: Record<string, unknown>;
}

/** A Sequential topology as `LayersModel.toJSON` writes it. */
interface SequentialJson {
  class_name: string;
  config: { name?: string; layers: LayerJson[] };
}

/** Whether `layer` is a batch norm over the channel axis of NHWC activations. */
export function isChannelsLastBatchNorm(layer: tf.layers.Layer | undefined): boolean {
  if (layer?.getClassName() !== "BatchNormalization") return false;
  const { axis } = layer.getConfig() as { axis?: number | number[] };
  const axes = Array.isArray(axis) ? axis : [axis ?? -1];
  return axes.length === 1 && (axes[0] === -1 || axes[0] === 3);
}

/** Whether layer `i` is a linear Conv2D whose output goes straight into such a batch norm. */
export function isFoldable(layers: readonly tf.layers.Layer[], i: number): boolean {
  const { activation } = layers[i].getConfig() as { activation?: string };
  return layers[i].getClassName() === "Conv2D" && (activation ?? "linear") === "linear" &&
    isChannelsLastBatchNorm(layers[i + 1]);
}

/** A layer's current weight tensors by the last part of their names ("kernel", "gamma", …). */
export function weightsByName(layer: tf.layers.Layer): Map<string, tf.Tensor> {
  return new Map(layer.weights.map((w) => [w.originalName.split("/").at(-1)!, w.read()]));
}

/**
 * The kernel and bias of convolution `conv` merged with the batch norm `bn`
 * after it (see the module docs): W' = g·W and b' = g·(b − μ) + β per output
 * channel, g = γ / √(σ² + ε). New tensors; the caller disposes them.
 */
export function foldIntoConv(conv: tf.layers.Layer, bn: tf.layers.Layer): [tf.Tensor, tf.Tensor] {
  const w = weightsByName(conv), n = weightsByName(bn);
  const { epsilon = 1e-3 } = bn.getConfig() as { epsilon?: number };
  return tf.tidy(() => {
    const gamma = n.get("gamma"), beta = n.get("beta"), bias = w.get("bias");
    let g = tf.rsqrt(tf.add(n.get("moving_variance")!, epsilon));
    if (gamma) g = tf.mul(g, gamma);
    let b = tf.mul(bias ? tf.sub(bias, n.get("moving_mean")!) : tf.neg(n.get("moving_mean")!), g);
    if (beta) b = tf.add(b, beta);
    return [tf.mul(w.get("kernel")!, g), b];
  });
}

/**
 * The same network in inference mode with every Conv2D → BatchNormalization
 * pair merged into one Conv2D with a bias (see the module docs). Other
 * layers and weights are copied as they are. The input is not changed; the
 * caller disposes the result.
 *
 * @param net A Sequential model.
 * @returns A new Sequential model with the same names for the layers it keeps.
 * @throws {TypeError} If `net` is not a Sequential model.
 */
export async function foldBatchNorm(net: tf.LayersModel): Promise<tf.LayersModel> {
  const topology = net.toJSON(null, false) as unknown as SequentialJson;
  if (topology.class_name !== "Sequential") {
    throw new TypeError(
      `Cannot fold batch norm: expected a Sequential model, got ${topology.class_name}`,
    );
  }
  // Sequential's topology lists the input layer first when the model has one.
  const offset = topology.config.layers.length - net.layers.length;
  const layers: LayerJson[] = topology.config.layers.slice(0, offset);
  const weights: tf.Tensor[][] = [];
  const made: tf.Tensor[] = []; // the folded tensors (the others are the model's own)
  for (let i = 0; i < net.layers.length; i++) {
    if (isFoldable(net.layers, i)) {
      const pair = foldIntoConv(net.layers[i], net.layers[i + 1]);
      made.push(...pair);
      weights.push(pair);
      const json = topology.config.layers[offset + i];
      layers.push({ ...json, config: { ...json.config, use_bias: true } });
      i++; // the batch norm is merged
    } else {
      weights.push(net.layers[i].weights.map((w) => w.read()));
      layers.push(topology.config.layers[offset + i]);
    }
  }
  const folded = await tf.models.modelFromJSON({
    modelTopology: { ...topology, config: { ...topology.config, layers } },
  } as unknown as tf.io.ModelJSON);
  folded.layers.forEach((layer, i) => layer.setWeights(weights[i]));
  tf.dispose(made); // the new variables hold their own reference
  return folded;
}
