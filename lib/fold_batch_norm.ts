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

/** Values of one weight, with its shape. */
interface Values {
  shape: number[];
  values: Float32Array;
}

/** Whether layer `i` is a Conv2D whose output goes straight into a channels-last batch norm. */
function foldable(layers: tf.layers.Layer[], i: number): boolean {
  const next = layers[i + 1];
  if (layers[i].getClassName() !== "Conv2D" || next?.getClassName() !== "BatchNormalization") {
    return false;
  }
  const conv = layers[i].getConfig() as { activation?: string };
  const bn = next.getConfig() as { axis?: number | number[] };
  const axis = Array.isArray(bn.axis) ? bn.axis : [bn.axis ?? -1];
  return (conv.activation ?? "linear") === "linear" && axis.length === 1 &&
    (axis[0] === -1 || axis[0] === 3);
}

/** A layer's weights by the last part of their names ("kernel", "gamma", …). */
async function weightsOf(layer: tf.layers.Layer): Promise<Map<string, Values>> {
  const out = new Map<string, Values>();
  for (const w of layer.weights) {
    out.set(w.originalName.split("/").at(-1)!, {
      shape: w.shape as number[],
      values: (await w.read().data() as Float32Array).slice(),
    });
  }
  return out;
}

/** W' and b' of a convolution (`conv`) merged with the batch norm after it (`bn`, `epsilon`). */
function fold(conv: Map<string, Values>, bn: Map<string, Values>, epsilon: number): Values[] {
  const kernel = conv.get("kernel")!;
  const channels = kernel.shape.at(-1)!;
  const bias = conv.get("bias")?.values ?? new Float32Array(channels);
  const mean = bn.get("moving_mean")!.values, variance = bn.get("moving_variance")!.values;
  const gamma = bn.get("gamma")?.values, beta = bn.get("beta")?.values;
  const gain = Float32Array.from(
    mean,
    (_, c) => (gamma ? gamma[c] : 1) / Math.sqrt(variance[c] + epsilon),
  );
  const w = kernel.values.slice();
  for (let i = 0; i < w.length; i++) w[i] *= gain[i % channels];
  const b = Float32Array.from(
    bias,
    (v, c) => gain[c] * (v - mean[c]) + (beta ? beta[c] : 0),
  );
  return [{ shape: kernel.shape, values: w }, { shape: [channels], values: b }];
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
  const weights: Values[][] = [];
  for (let i = 0; i < net.layers.length; i++) {
    const layer = net.layers[i];
    const own = await weightsOf(layer);
    if (foldable(net.layers, i)) {
      const bn = net.layers[i + 1];
      const { epsilon } = bn.getConfig() as { epsilon: number };
      weights.push(fold(own, await weightsOf(bn), epsilon));
      const json = topology.config.layers[offset + i];
      layers.push({ ...json, config: { ...json.config, use_bias: true } });
      i++; // the batch norm is merged
    } else {
      weights.push([...own.values()]);
      layers.push(topology.config.layers[offset + i]);
    }
  }
  const folded = await tf.models.modelFromJSON({
    modelTopology: { ...topology, config: { ...topology.config, layers } },
  } as unknown as tf.io.ModelJSON);
  folded.layers.forEach((layer, i) => {
    const tensors = weights[i].map((w) => tf.tensor(w.values, w.shape));
    layer.setWeights(tensors);
    tf.dispose(tensors);
  });
  return folded;
}
