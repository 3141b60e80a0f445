/**
 * Export a classifier to ONNX, so that it runs in onnxruntime, OpenCV, Netron
 * and other tools that read ONNX, with float32 weights or with per-channel
 * int8 weights (a file about 3.8× smaller).
 *
 * The graph takes what `predict` takes: `images`, float32 `[N, 28, 28, 1]`
 * (NHWC, pixels in [0, 1], any batch size N), and returns `probabilities`,
 * float32 `[N, 10]`. TensorFlow.js works in NHWC and ONNX's Conv, MaxPool and
 * BatchNormalization in NCHW, so the graph transposes to NCHW before the first
 * of them (and the kernels from HWIO to OIHW), and back to NHWC before
 * Flatten, which then flattens in TensorFlow.js's (h, w, c) order and the
 * Dense weights are used unchanged.
 *
 * Tensor names are short, because in a 20 KB file they count: `<i>` is the
 * output of layer `i` (its index in the model's layers), `<i>a` the same
 * after the layer's activation, `<i>t` transposed (NHWC ↔ NCHW), as is
 * `imagest`; layer `i`'s parameters are `<i>W` and `<i>B`
 * (Conv/Dense kernel and bias; `<i>Wq` and `<i>Ws` for the int8 kernel and
 * its scales), `<i>g`, `<i>b`, `<i>m`, `<i>v` (batch norm's gamma, beta,
 * moving mean and moving variance), `<i>s`, `<i>o` (Rescaling's scale and
 * offset; `<i>m` is the product before the offset).
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs";
import protoPkg from "onnx-proto";
import type { onnx as Onnx } from "onnx-proto";
import { foldBatchNorm } from "./fold_batch_norm.ts";
import { type Classifier, layersModelOf } from "./model.ts";

const { onnx } = protoPkg;

/**
 * The ONNX operator set the graph uses: 13 is the first with per-axis
 * `DequantizeLinear`, and old enough for the tools in common use.
 */
const OPSET = 13;
/** IR version 8 (ONNX 1.10+); older readers refuse newer files. */
const IR_VERSION = 8;

/** Options for {@linkcode exportOnnx}. */
export interface ExportOnnxOptions {
  /**
   * How Conv and Dense weights are stored. `"none"`: float32, the exact
   * model. `"int8"`: post-training, weight-only, per-channel symmetric int8
   * quantization (R. Krishnamoorthi, "Quantizing deep convolutional networks
   * for efficient inference: A whitepaper", 2018, arXiv:1806.08342: the
   * uniform symmetric quantizer, per-channel granularity, post-training
   * weight-only quantization): for each output channel c,
   * `scale_c = max|w_c| / 127`, zero point 0, `q = round(w / scale_c)` in
   * [-127, 127]. Each such weight is an int8 initializer followed by a
   * `DequantizeLinear` whose `axis` is the output-channel axis (the ONNX
   * operator's per-axis form, opset 13: `w = (q - 0) * scale_c`). Before
   * that, each batch norm is folded into the convolution before it (the
   * inference-time network, B. Jacob et al. 2018, arXiv:1712.05877, §3.2), so
   * the graph has no BatchNormalization nodes. Biases and scales stay
   * float32, and so does the arithmetic: the file is about 3.8× smaller
   * (the float32 biases and scales keep it from 4×), the results within a
   * few thousandths of the float model's.
   * @default {"none"}
   */
  quantize?: "none" | "int8";
}

/** The layer types {@linkcode exportOnnx} converts. */
const LAYER_TYPES = [
  "InputLayer",
  "Rescaling",
  "Conv2D",
  "BatchNormalization",
  "ReLU",
  "MaxPooling2D",
  "Dropout",
  "Flatten",
  "Dense",
] as const;

/**
 * Export a classifier as an ONNX model (IR version 8, opset 13), with input
 * `images` float32 `[N, 28, 28, 1]` (NHWC, pixels in [0, 1], as `predict`
 * takes them) and output `probabilities` float32 `[N, 10]`. The layers are
 * converted one by one; the file records `producer_name` "tinymnist" and the
 * metadata `preset` and `params`. Weights are read with
 * `await data()`, so any backend works (webgpu included).
 *
 * @param model A classifier from `createModel` or `loadModel`.
 * @param options Weight storage: float32 (default) or per-channel int8.
 * @returns The serialized ONNX `ModelProto`.
 * @throws {TypeError} When `model` is not a tinymnist classifier, or holds a
 * layer, activation or layout that has no conversion here.
 * @throws {RangeError} For an unknown `quantize` value, or a weight that is
 * not finite.
 *
 * @example Export and run in onnxruntime
 * ```ts
 * import { createModel, exportOnnx, selectBackend } from "@tinymnist/tinymnist";
 * import * as ort from "onnxruntime-node";
 * import assert from "node:assert/strict";
 *
 * await selectBackend("cpu");
 * const model = createModel();
 * const bytes = await exportOnnx(model);
 * const session = await ort.InferenceSession.create(bytes);
 * const images = new Float32Array(2 * 784).fill(0.5);
 * const { probabilities } = await session.run({
 *   images: new ort.Tensor("float32", images, [2, 28, 28, 1]),
 * });
 * assert.deepEqual(probabilities.dims, [2, 10]);
 * const expected = await model.predict(images);
 * const got = probabilities.data as Float32Array;
 * assert.ok(got.every((p, i) => Math.abs(p - expected[i]) < 1e-5));
 * await session.release();
 * model.dispose();
 * ```
 *
 * @example Per-channel int8 weights: about 3.8× smaller
 * ```ts
 * import { createModel, exportOnnx, selectBackend } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * await selectBackend("cpu");
 * const model = createModel();
 * const float = await exportOnnx(model);
 * const int8 = await exportOnnx(model, { quantize: "int8" });
 * assert.ok(float.length / int8.length > 3.5);
 * model.dispose();
 * ```
 */
export async function exportOnnx(
  model: Classifier,
  options: ExportOnnxOptions = {},
): Promise<Uint8Array> {
  const quantize = options.quantize ?? "none";
  if (quantize !== "none" && quantize !== "int8") {
    throw new RangeError(
      `Cannot export model to ONNX: expected quantize "none" or "int8", got ${
        JSON.stringify(quantize)
      }`,
    );
  }
  const trained = layersModelOf(model);
  if (trained.getClassName() !== "Sequential") {
    throw new TypeError(
      `Cannot export model to ONNX: expected a Sequential model, got a model of class ${trained.getClassName()}`,
    );
  }
  // int8: the inference-time network, batch norm folded into the convolutions.
  const net = quantize === "int8" ? await foldBatchNorm(trained) : trained;
  try {
    return await graphOf(net, model, quantize === "int8");
  } finally {
    if (net !== trained) net.dispose();
  }
}

/** The ONNX bytes of `net` (the network of `model`, or its folded form). */
async function graphOf(net: tf.LayersModel, model: Classifier, int8: boolean): Promise<Uint8Array> {
  const graph: Graph = { nodes: [], initializers: [], int8 };
  const inputShape = net.inputs[0].shape;
  let x: Value = {
    name: "images",
    layout: inputShape.length === 4 ? "NHWC" : "flat",
    shape: inputShape,
  };
  for (const [i, layer] of net.layers.entries()) {
    const type = layer.getClassName();
    if (!(LAYER_TYPES as readonly string[]).includes(type)) {
      throw new TypeError(
        `Cannot export model to ONNX: expected layers ${LAYER_TYPES.slice(0, -1).join(", ")} or ${
          LAYER_TYPES.at(-1)
        }, got ${type} "${layer.name}"`,
      );
    }
    const y = await CONVERTERS[type as LayerType](graph, layer, x, String(i));
    x = { ...y, shape: layer.outputShape as (number | null)[] };
  }
  if (x.layout === "NCHW") x = { ...toNhwc(graph, x), shape: x.shape };
  const output = "probabilities";
  const last = graph.nodes.at(-1);
  if (last?.output?.[0] === x.name) last.output[0] = output;
  else graph.nodes.push({ opType: "Identity", input: [x.name], output: [output] });

  const proto = onnx.ModelProto.create({
    irVersion: IR_VERSION,
    opsetImport: [{ version: OPSET }], // the default domain, ai.onnx
    producerName: "tinymnist",
    metadataProps: [
      { key: "preset", value: model.preset },
      { key: "params", value: String(model.params) },
    ],
    graph: {
      name: "tinymnist",
      node: graph.nodes,
      initializer: graph.initializers,
      input: [valueInfo("images", inputShape)],
      output: [valueInfo(output, net.outputs[0].shape)],
    },
  });
  return onnx.ModelProto.encode(proto).finish();
}

// ---------------------------------------------------------------------------
// Graph building

/** The nodes and initializers built so far, and how weights are stored. */
interface Graph {
  nodes: Onnx.INodeProto[];
  initializers: Onnx.ITensorProto[];
  int8: boolean;
}

/**
 * A tensor of the graph and the order of its axes: rank-4 activations are
 * NHWC (as in TensorFlow.js) or NCHW (as ONNX's Conv wants them); anything
 * else is "flat" (`[N, features]`), where both agree.
 */
interface Tensor {
  name: string;
  layout: "NHWC" | "NCHW" | "flat";
}

/** A layer's input: the tensor, and its shape in TensorFlow.js (NHWC, batch `null`). */
interface Value extends Tensor {
  shape: (number | null)[];
}

type Layer = tf.LayersModel["layers"][number];
type LayerType = typeof LAYER_TYPES[number];
type Converter = (graph: Graph, layer: Layer, x: Value, id: string) => Promise<Tensor>;

/** An ONNX tensor type with a symbolic batch dimension `N` where TensorFlow.js has `null`. */
function valueInfo(name: string, shape: (number | null)[]): Onnx.IValueInfoProto {
  const dim = shape.map((d) => (d === null ? { dimParam: "N" } : { dimValue: d }));
  return {
    name,
    type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim } } },
  };
}

/** Add a node with one output named `output`; returns that name. */
function addNode(
  graph: Graph,
  opType: string,
  input: string[],
  output: string,
  attribute: Onnx.IAttributeProto[] = [],
): string {
  graph.nodes.push({ opType, input, output: [output], attribute });
  return output;
}

const ints = (name: string, values: number[]): Onnx.IAttributeProto => ({
  name,
  type: onnx.AttributeProto.AttributeType.INTS,
  ints: values,
});
const int = (name: string, value: number): Onnx.IAttributeProto => ({
  name,
  type: onnx.AttributeProto.AttributeType.INT,
  i: value,
});
/** An INTS attribute, or none when every value is `fill` (the attribute's ONNX default). */
const intsUnless = (name: string, values: number[], fill: number): Onnx.IAttributeProto[] =>
  values.every((v) => v === fill) ? [] : [ints(name, values)];
const float = (name: string, value: number): Onnx.IAttributeProto => ({
  name,
  type: onnx.AttributeProto.AttributeType.FLOAT,
  f: value,
});

/** Add a float32 initializer (little-endian raw data); returns its name. */
function addFloats(graph: Graph, name: string, dims: number[], values: Float32Array): string {
  const bytes = new Uint8Array(values.length * 4);
  const view = new DataView(bytes.buffer);
  values.forEach((v, i) => view.setFloat32(i * 4, v, true));
  graph.initializers.push({
    name,
    dims,
    dataType: onnx.TensorProto.DataType.FLOAT,
    rawData: bytes,
  });
  return name;
}

/**
 * Add a Conv or Dense weight whose output channels lie along `axis`: float32,
 * or, when the graph is quantized, int8 values and float32 scales followed by
 * a `DequantizeLinear` (its zero-point input is left out: it defaults to 0,
 * the symmetric scheme). Returns the name of the float32 weight either way.
 */
function addWeight(
  graph: Graph,
  name: string,
  dims: number[],
  values: Float32Array,
  axis: number,
): string {
  if (!graph.int8) return addFloats(graph, name, dims, values);
  const { q, scales } = quantizePerChannel(values, dims, axis);
  const int8 = onnx.TensorProto.DataType.INT8;
  graph.initializers.push({
    name: `${name}q`,
    dims,
    dataType: int8,
    rawData: new Uint8Array(q.buffer),
  });
  const scale = addFloats(graph, `${name}s`, [scales.length], scales);
  return dequantizeLinear(graph, [`${name}q`, scale], name, axis);
}

/**
 * Per-channel symmetric int8 quantization (Krishnamoorthi 2018, see
 * {@linkcode ExportOnnxOptions.quantize}): for each index c along `axis`,
 * `scale_c = max|w_c| / 127` and `q = round(w / scale_c)`, so that the
 * largest weight of each channel maps to ±127 and the zero point is 0. An
 * all-zero channel gets scale 1.
 */
function quantizePerChannel(
  values: Float32Array,
  dims: number[],
  axis: number,
): { q: Int8Array; scales: Float32Array } {
  const channels = dims[axis];
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const channelOf = (i: number) => Math.floor(i / inner) % channels;
  const scales = new Float32Array(channels);
  values.forEach((v, i) => {
    const c = channelOf(i);
    scales[c] = Math.max(scales[c], Math.abs(v));
  });
  scales.forEach((max, c) => (scales[c] = max > 0 ? max / 127 : 1));
  const q = Int8Array.from(
    values,
    (v, i) => Math.max(-127, Math.min(127, Math.round(v / scales[channelOf(i)]))),
  );
  return { q, scales };
}

// One helper per ONNX operator.

/** `y = (q - zero_point) * scale`, per slice along `axis`. */
const dequantizeLinear = (graph: Graph, input: string[], y: string, axis: number) =>
  addNode(graph, "DequantizeLinear", input, y, [int("axis", axis)]);
const transpose = (graph: Graph, x: string, y: string, perm: number[]) =>
  addNode(graph, "Transpose", [x], y, [ints("perm", perm)]);
const conv = (graph: Graph, input: string[], y: string, attrs: Onnx.IAttributeProto[]) =>
  addNode(graph, "Conv", input, y, attrs);
const maxPool = (graph: Graph, x: string, y: string, attrs: Onnx.IAttributeProto[]) =>
  addNode(graph, "MaxPool", [x], y, attrs);
const batchNormalization = (graph: Graph, input: string[], y: string, epsilon: number) =>
  addNode(graph, "BatchNormalization", input, y, [float("epsilon", epsilon)]);
const relu = (graph: Graph, x: string, y: string) => addNode(graph, "Relu", [x], y);
const clip = (graph: Graph, input: string[], y: string) => addNode(graph, "Clip", input, y);
const softmax = (graph: Graph, x: string, y: string, axis: number) =>
  addNode(graph, "Softmax", [x], y, axis === -1 ? [] : [int("axis", axis)]);
/** `[N, ...] -> [N, product]` (axis 1, the default). */
const flatten = (graph: Graph, x: string, y: string) => addNode(graph, "Flatten", [x], y);
/** `A [N, in] × B [in, out] + C [out]`. */
const gemm = (graph: Graph, input: string[], y: string) => addNode(graph, "Gemm", input, y);
const add = (graph: Graph, a: string, b: string, y: string) => addNode(graph, "Add", [a, b], y);
const mul = (graph: Graph, a: string, b: string, y: string) => addNode(graph, "Mul", [a, b], y);

/** `x` in NCHW: `[N,H,W,C] -> [N,C,H,W]` if it is NHWC. */
function toNchw(graph: Graph, x: Tensor): Tensor {
  if (x.layout !== "NHWC") return x;
  return { name: transpose(graph, x.name, `${x.name}t`, [0, 3, 1, 2]), layout: "NCHW" };
}

/** `x` in NHWC: `[N,C,H,W] -> [N,H,W,C]` if it is NCHW. */
function toNhwc(graph: Graph, x: Tensor): Tensor {
  if (x.layout !== "NCHW") return x;
  return { name: transpose(graph, x.name, `${x.name}t`, [0, 2, 3, 1]), layout: "NHWC" };
}

// ---------------------------------------------------------------------------
// Layers

/**
 * A layer's weights by role (`kernel`, `bias`, `gamma`, `beta`,
 * `moving_mean`, `moving_variance`), read asynchronously.
 * @throws {RangeError} When a weight is not finite.
 */
async function weightsOf(
  layer: Layer,
): Promise<Map<string, { shape: number[]; values: Float32Array }>> {
  const out = new Map<string, { shape: number[]; values: Float32Array }>();
  for (const w of layer.weights) {
    const values = await w.read().data() as Float32Array;
    const bad = values.filter((v) => !Number.isFinite(v)).length;
    if (bad > 0) {
      throw new RangeError(
        `Cannot export model to ONNX: expected finite weights, got ${bad} non-finite values in "${w.originalName}"`,
      );
    }
    out.set(w.originalName.split("/").at(-1)!, { shape: w.shape as number[], values });
  }
  return out;
}

/** The layer's config; `dataFormat`, when present, must be channelsLast. */
function configOf(layer: Layer): Record<string, unknown> {
  const config = layer.getConfig() as Record<string, unknown>;
  if (config.dataFormat !== undefined && config.dataFormat !== "channelsLast") {
    throw new TypeError(
      `Cannot export model to ONNX: expected dataFormat "channelsLast", got "${config.dataFormat}" in layer "${layer.name}"`,
    );
  }
  return config;
}

/** Apply a Conv2D or Dense activation; softmax runs over the channel axis. */
function activate(graph: Graph, x: Tensor, activation: unknown, layer: Layer): Tensor {
  const y = `${x.name}a`;
  switch (activation) {
    case "linear":
      return x;
    case "relu":
      return { name: relu(graph, x.name, y), layout: x.layout };
    case "softmax":
      return { name: softmax(graph, x.name, y, x.layout === "NCHW" ? 1 : -1), layout: x.layout };
  }
  throw new TypeError(
    `Cannot export model to ONNX: expected activation "linear", "relu" or "softmax", got ${
      JSON.stringify(activation)
    } in layer "${layer.name}"`,
  );
}

/**
 * ONNX `pads` (begins, then ends) for a window of `size` (dilated) and
 * `stride` over `input`: none for "valid"; for "same", TensorFlow's rule
 * (output `ceil(input / stride)`, the odd pixel of padding at the end).
 */
function padsFor(padding: unknown, input: number[], size: number[], stride: number[]): number[] {
  if (padding === "valid") return input.map(() => 0).concat(input.map(() => 0));
  const total = input.map((n, i) =>
    Math.max((Math.ceil(n / stride[i]) - 1) * stride[i] + size[i] - n, 0)
  );
  return total.map((t) => Math.floor(t / 2)).concat(total.map((t) => t - Math.floor(t / 2)));
}

const CONVERTERS: Readonly<Record<LayerType, Converter>> = {
  // The graph input itself.
  InputLayer: (_graph, _layer, x) => Promise.resolve(x),
  // Identity at inference.
  Dropout: (_graph, _layer, x) => Promise.resolve(x),

  // y = x * scale + offset, elementwise: any layout.
  Rescaling(graph, layer, x, id) {
    const { scale, offset } = configOf(layer) as { scale: number; offset: number };
    const s = addFloats(graph, `${id}s`, [], Float32Array.of(scale));
    const o = addFloats(graph, `${id}o`, [], Float32Array.of(offset));
    const scaled = mul(graph, x.name, s, `${id}m`);
    return Promise.resolve({ name: add(graph, scaled, o, id), layout: x.layout });
  },

  // [N,H,W,Ci] -> NCHW [N,Co,H',W']; kernel HWIO [kh,kw,Ci,Co] -> OIHW [Co,Ci,kh,kw].
  async Conv2D(graph, layer, x, id) {
    const config = configOf(layer);
    const weights = await weightsOf(layer);
    const kernel = weights.get("kernel")!;
    const [kh, kw, ci, co] = kernel.shape;
    const oihw = new Float32Array(kernel.values.length);
    kernel.values.forEach((v, i) => {
      const o = i % co, c = Math.floor(i / co) % ci, w = Math.floor(i / (co * ci)) % kw;
      const h = Math.floor(i / (co * ci * kw));
      oihw[((o * ci + c) * kh + h) * kw + w] = v;
    });
    const input = [toNchw(graph, x).name, addWeight(graph, `${id}W`, [co, ci, kh, kw], oihw, 0)];
    const bias = weights.get("bias");
    if (bias) input.push(addFloats(graph, `${id}B`, [co], bias.values));
    const strides = config.strides as number[], dilations = config.dilationRate as number[];
    const size = [kh, kw].map((k, i) => (k - 1) * dilations[i] + 1);
    const y = conv(graph, input, id, [
      // kernel_shape: from the weight.
      ...intsUnless("strides", strides, 1),
      ...intsUnless("dilations", dilations, 1),
      ...intsUnless("pads", padsFor(config.padding, [x.shape[1]!, x.shape[2]!], size, strides), 0),
    ]);
    return activate(graph, { name: y, layout: "NCHW" }, config.activation, layer);
  },

  // Inference form: (x - moving_mean) / sqrt(moving_variance + epsilon) * gamma + beta,
  // per channel: NCHW [N,C,H,W] or [N,C].
  async BatchNormalization(graph, layer, x, id) {
    const { axis, epsilon } = configOf(layer) as { axis: number; epsilon: number };
    if (axis !== -1 && axis !== x.shape.length - 1) {
      throw new TypeError(
        `Cannot export model to ONNX: expected batch normalization over the last axis, got axis ${axis} in layer "${layer.name}"`,
      );
    }
    const weights = await weightsOf(layer);
    const mean = weights.get("moving_mean")!.values;
    const param = (role: string, short: string, fill: number) =>
      addFloats(
        graph,
        `${id}${short}`,
        [mean.length],
        weights.get(role)?.values ?? new Float32Array(mean.length).fill(fill),
      );
    const input = [
      toNchw(graph, x).name,
      param("gamma", "g", 1),
      param("beta", "b", 0),
      param("moving_mean", "m", 0),
      param("moving_variance", "v", 1),
    ];
    const layout = x.layout === "flat" ? "flat" : "NCHW";
    return { name: batchNormalization(graph, input, id, epsilon), layout };
  },

  // max(x, 0), or min(max(x, 0), maxValue): any layout.
  ReLU(graph, layer, x, id) {
    const { maxValue } = configOf(layer) as { maxValue?: number | null };
    if (maxValue === undefined || maxValue === null) {
      return Promise.resolve({ name: relu(graph, x.name, id), layout: x.layout });
    }
    const lo = addFloats(graph, `${id}min`, [], Float32Array.of(0));
    const hi = addFloats(graph, `${id}max`, [], Float32Array.of(maxValue));
    return Promise.resolve({ name: clip(graph, [x.name, lo, hi], id), layout: x.layout });
  },

  // NCHW [N,C,H,W] -> [N,C,H',W'].
  MaxPooling2D(graph, layer, x, id) {
    const config = configOf(layer);
    const size = config.poolSize as number[], strides = config.strides as number[];
    const y = maxPool(graph, toNchw(graph, x).name, id, [
      ints("kernel_shape", size),
      ...intsUnless("strides", strides, 1),
      ...intsUnless("pads", padsFor(config.padding, [x.shape[1]!, x.shape[2]!], size, strides), 0),
    ]);
    return Promise.resolve({ name: y, layout: "NCHW" });
  },

  // NHWC [N,H,W,C] -> [N, H*W*C], in TensorFlow.js's (h, w, c) order.
  Flatten(graph, _layer, x, id) {
    if (x.shape.length === 2) return Promise.resolve(x);
    return Promise.resolve({ name: flatten(graph, toNhwc(graph, x).name, id), layout: "flat" });
  },

  // [N, in] x kernel [in, out] + bias [out] -> [N, out], then the activation.
  async Dense(graph, layer, x, id) {
    if (x.shape.length !== 2) {
      throw new TypeError(
        `Cannot export model to ONNX: expected a Dense input of rank 2 (Flatten first), got shape ${
          JSON.stringify(x.shape)
        } in layer "${layer.name}"`,
      );
    }
    const config = configOf(layer);
    const weights = await weightsOf(layer);
    const kernel = weights.get("kernel")!;
    const input = [x.name, addWeight(graph, `${id}W`, kernel.shape, kernel.values, 1)];
    const bias = weights.get("bias");
    if (bias) input.push(addFloats(graph, `${id}B`, [bias.values.length], bias.values));
    return activate(
      graph,
      { name: gemm(graph, input, id), layout: "flat" },
      config.activation,
      layer,
    );
  },
};
