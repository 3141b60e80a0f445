/**
 * Post-training 8-bit weight quantization in a form plain TensorFlow.js
 * loads: the layers format's weight manifest stores each kernel as uint8
 * with a `scale` and `min` (value = q × scale + min), per tensor.
 *
 * Per-tensor scales waste levels when a kernel's output channels have very
 * different ranges, so each convolution that feeds a batch norm is first
 * equalised per output channel: channel c of the kernel (and its bias) is
 * divided by its largest magnitude s_c, and the batch norm absorbs s_c
 * exactly (moving mean ÷ s_c, moving variance ÷ s_c², γ × √(v + ε s_c²)/√(v + ε)).
 * The stored kernel then has every channel in [-1, 1], and uint8 with one
 * scale acts as per-channel quantization (Krishnamoorthi 2018, "Quantizing
 * deep convolutional networks for efficient inference: A whitepaper",
 * arXiv:1806.08342, §2; the rescaling is the cross-layer equalisation of
 * Nagel et al. 2019, "Data-Free Quantization", arXiv:1906.04721, folded into
 * batch norm). Biases and batch-norm parameters (under 2% of the values) stay
 * float32.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs";

/** One weight as the manifest describes it, with its bytes. */
export interface EncodedWeight {
  /** The manifest entry (with `quantization` for quantized kernels). */
  spec: tf.io.WeightsManifestEntry;
  /** The bytes in the weights file. */
  bytes: Uint8Array;
}

/** A layer's weights by name suffix ("kernel", "gamma", …), as float copies. */
type Named = Map<string, { name: string; shape: number[]; values: Float32Array }>;

/** The float values of every weight of a model, by layer. */
async function readLayers(
  net: tf.LayersModel,
): Promise<{ layer: tf.layers.Layer; weights: Named }[]> {
  const out = [];
  for (const layer of net.layers) {
    const weights: Named = new Map();
    for (const w of layer.weights) {
      const values = (await w.read().data() as Float32Array).slice();
      weights.set(w.originalName.split("/").at(-1)!, {
        name: w.originalName,
        shape: w.shape as number[],
        values,
      });
    }
    out.push({ layer, weights });
  }
  return out;
}

/** Divide each output channel of a conv kernel by its largest magnitude; fold that into the next batch norm. */
function equalise(conv: Named, bn: Named, epsilon: number): void {
  const kernel = conv.get("kernel")!, bias = conv.get("bias");
  const channels = kernel.shape.at(-1)!;
  const gamma = bn.get("gamma"),
    mean = bn.get("moving_mean")!,
    variance = bn.get("moving_variance")!;
  for (let c = 0; c < channels; c++) {
    let s = 0;
    for (let i = c; i < kernel.values.length; i += channels) {
      s = Math.max(s, Math.abs(kernel.values[i]));
    }
    if (s === 0) continue;
    for (let i = c; i < kernel.values.length; i += channels) kernel.values[i] /= s;
    if (bias) bias.values[c] /= s;
    const v = variance.values[c];
    if (gamma) gamma.values[c] *= Math.sqrt(v + epsilon * s * s) / Math.sqrt(v + epsilon);
    mean.values[c] /= s;
    variance.values[c] = v / (s * s);
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

/**
 * The weights of a model as the layers format stores them, with every
 * kernel quantized to uint8 (after per-channel equalisation, see the module
 * docs). Does not change the model. Internal to `saveModel`.
 *
 * @param net The TensorFlow.js model.
 * @returns The manifest entries and bytes, in the model's weight order.
 */
export async function quantizedWeights(net: tf.LayersModel): Promise<EncodedWeight[]> {
  const layers = await readLayers(net);
  layers.forEach(({ layer, weights }, i) => {
    const next = layers[i + 1];
    if (
      layer.getClassName() === "Conv2D" && next?.layer.getClassName() === "BatchNormalization" &&
      next.weights.has("moving_mean")
    ) {
      equalise(weights, next.weights, (next.layer.getConfig() as { epsilon: number }).epsilon);
    }
  });
  // In the model's own weight order, which the manifest must follow.
  const byName = new Map(
    layers.flatMap(({ weights }) => [...weights.values()].map((w) => [w.name, w])),
  );
  return net.weights.map((variable) => {
    const { name, shape, values } = byName.get(variable.originalName)!;
    if (name.endsWith("/kernel")) {
      const { bytes, scale, min } = quantizeUint8(values);
      return {
        spec: { name, shape, dtype: "float32", quantization: { dtype: "uint8", scale, min } },
        bytes,
      };
    }
    return { spec: { name, shape, dtype: "float32" }, bytes: new Uint8Array(values.buffer) };
  });
}
