/**
 * Backend selection: WebGPU, then WASM, then the plain CPU backend, each
 * accepted only after a small numeric self-check.
 *
 * The WASM backend of TensorFlow.js 4.22 has no `Conv2DBackpropFilter`
 * kernel, so it cannot train a convolutional network out of the box.
 * {@linkcode registerWasmTrainingKernels} registers one, built from the WASM
 * `Transpose` and `Conv2D` kernels.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import "@tensorflow/tfjs-backend-webgpu";
import { registerBatchNormKernels } from "./batch_norm.ts";
import { measureTrainingStep } from "./backend_probe.ts";
import { type SimdKernels, simdKernels } from "./simd.ts";

/** A TensorFlow.js backend tinymnist knows how to use. */
export type BackendName = "webgpu" | "wasm" | "cpu";

/** What to ask {@linkcode selectBackend} for: one backend, or the best that works. */
export type BackendPreference = "auto" | BackendName;

/** The order in which `"auto"` tries the backends. */
export const BACKEND_ORDER: readonly BackendName[] = ["webgpu", "wasm", "cpu"];

/** The backend in use after {@linkcode selectBackend}, and why. */
export interface BackendSelection {
  /** The backend now active in TensorFlow.js. */
  name: BackendName;
  /** A human-readable description, e.g. `"webgpu (llvmpipe, fallback adapter)"`. */
  description: string;
  /** Why each better backend was passed over, e.g. `"webgpu: no adapter"`. */
  rejected: string[];
  /** Largest absolute error of the numeric self-check on the chosen backend. */
  selfCheckError: number;
  /**
   * The training-step times that `"auto"` measured, fastest first; empty
   * when only one backend was a candidate or the probe was skipped.
   */
  timings: BackendTiming[];
}

/** One backend's measured training step (see {@linkcode SelectBackendOptions.probe}). */
export interface BackendTiming {
  /** The backend measured. */
  name: BackendName;
  /** Its description, as in {@linkcode BackendSelection.description}. */
  description: string;
  /** Mean milliseconds of one training step at batch 64, in this thread. */
  msPerStep: number;
}

/** The minimal part of `navigator.gpu` that backend selection uses. */
export interface GpuLike {
  /** Same as `GPU.requestAdapter`. */
  requestAdapter(): Promise<GpuAdapterLike | null>;
}

/** The minimal part of a `GPUAdapter` that backend selection reads. */
export interface GpuAdapterLike {
  /** Adapter information; `description` and `isFallbackAdapter` are reported. */
  info?: { description?: string; isFallbackAdapter?: boolean };
}

/** Options for {@linkcode selectBackend}. */
export interface SelectBackendOptions {
  /**
   * The WebGPU entry point to probe; `null` means "no WebGPU at all".
   * Lets tests hide or fake the adapter.
   * @default {globalThis.navigator.gpu}
   */
  gpu?: GpuLike | null;
  /**
   * Whether `"auto"` may pick a software fallback adapter (such as Mesa's
   * llvmpipe). Off by default: on a CPU the WASM backend trains over 10× faster
   * than WebGPU emulated in software. Asking for `"webgpu"` by name always
   * accepts one.
   * @default {false}
   */
  allowFallbackAdapter?: boolean;
  /**
   * Largest absolute error the self-check accepts.
   * @default {1e-3}
   */
  tolerance?: number;
  /**
   * Whether `"auto"` measures before choosing: when WebGPU and WASM both
   * pass their self-checks, it times a training step of a network shaped
   * like the default model on each (one warm-up step, then about 0.25 s of
   * steps) and keeps the faster. `false`: the first that works, in the order
   * webgpu, wasm, cpu. The cpu backend is never timed: it is used only when
   * neither of the others works (it trains about 400× slower than wasm).
   * @default {true}
   */
  probe?: boolean;
}

/** Thrown when a backend that was asked for by name cannot be used. */
export class BackendError extends Error {
  /** Create a backend error with the given message. */
  constructor(message: string) {
    super(message);
    this.name = "BackendError";
  }
}

/** Environment variable that hides WebGPU from `"auto"` selection when set to `1`. */
export const DISABLE_WEBGPU_ENV = "TINYMNIST_DISABLE_WEBGPU";

/**
 * Make `name` the active TensorFlow.js backend, or for `"auto"` the fastest
 * that works. A backend works when it initialises and passes a numeric
 * self-check (a matMul and a conv2d compared with values computed in plain
 * JavaScript). `"auto"` tries webgpu, wasm, cpu in that order; when both
 * webgpu and wasm work it times a training step on each and keeps the
 * faster (see {@linkcode SelectBackendOptions.probe}): on an NVIDIA H200,
 * WebGPU trained the default model 2.3× slower than wasm (README, "On a
 * GPU"). `"auto"` passes over WebGPU when its only adapter is a software
 * fallback (see {@linkcode SelectBackendOptions.allowFallbackAdapter}) or
 * when the environment variable `TINYMNIST_DISABLE_WEBGPU=1` is set.
 * Registers the WASM training kernels as a side effect.
 *
 * @param preference `"auto"` or one backend name.
 * @param options Test hooks and the self-check tolerance.
 * @returns The backend in use and the reason each better one was passed over.
 * @throws {BackendError} When a backend asked for by name cannot be used.
 *
 * @example Use the plain CPU backend
 * ```ts
 * import { selectBackend } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * const selection = await selectBackend("cpu");
 * assert.equal(selection.name, "cpu");
 * assert.ok(selection.selfCheckError < 1e-3);
 * ```
 */
export async function selectBackend(
  preference: BackendPreference,
  options: SelectBackendOptions = {},
): Promise<BackendSelection> {
  if (preference !== "auto" && !BACKEND_ORDER.includes(preference)) {
    throw new TypeError(
      `Cannot select backend: expected one of auto, ${
        BACKEND_ORDER.join(", ")
      }, got "${preference}"`,
    );
  }
  registerWasmTrainingKernels();
  quietCpuBackend();
  const tolerance = options.tolerance ?? 1e-3;
  const candidates = preference === "auto" ? BACKEND_ORDER : [preference];
  const probe = preference === "auto" && options.probe !== false;
  const rejected: string[] = [];
  const working: { name: BackendName; description: string; error: number }[] = [];
  for (const name of candidates) {
    const problem = await tryBackend(name, {
      ...options,
      allowFallbackAdapter: preference === "webgpu" || options.allowFallbackAdapter,
    }, tolerance);
    if (typeof problem === "string") {
      rejected.push(`${name}: ${problem}`);
      continue;
    }
    working.push({ name, ...problem });
    // Without a probe the first that works is taken; with one, webgpu is
    // compared with wasm, and cpu is only a last resort.
    if (!probe || name !== "webgpu") break;
  }
  if (working.length === 0) {
    throw new BackendError(
      `Cannot use backend "${preference}": ${rejected.join("; ")}`,
    );
  }
  const timings: BackendTiming[] = [];
  if (working.length > 1) {
    for (const { name, description } of working) {
      await tf.setBackend(name);
      timings.push({ name, description, msPerStep: await measureTrainingStep() });
    }
    timings.sort((a, b) => a.msPerStep - b.msPerStep);
    for (const slower of timings.slice(1)) {
      rejected.push(
        `${slower.name}: measured slower, ${
          slower.msPerStep.toFixed(1)
        } ms a training step against ${timings[0].name}'s ${timings[0].msPerStep.toFixed(1)} ms`,
      );
    }
  }
  const chosen = working.find((w) => w.name === (timings[0]?.name ?? working[0].name))!;
  await tf.setBackend(chosen.name);
  return {
    name: chosen.name,
    description: chosen.description,
    rejected,
    selfCheckError: chosen.error,
    timings,
  };
}

/** Whether this process may read and set `variable` (checked without prompting). */
function mayUseEnv(variable: string): boolean {
  try {
    return Deno.permissions.querySync({ name: "env", variable }).state === "granted";
  } catch {
    return false;
  }
}

/**
 * Run `f` with `XDG_RUNTIME_DIR` set when it is unset, then unset it again.
 * Mesa's Vulkan drivers ask libwayland for a display when a WebGPU adapter or
 * device is requested, and on a headless machine without `XDG_RUNTIME_DIR`
 * it prints "error: XDG_RUNTIME_DIR is invalid or not set in the
 * environment." twice, which reads as a failure though nothing failed. With
 * the variable pointing at `/dev/null` the display lookup fails quietly.
 * Needs `--allow-env=XDG_RUNTIME_DIR`; without it nothing changes.
 */
async function quietWayland<T>(f: () => Promise<T>): Promise<T> {
  const variable = "XDG_RUNTIME_DIR";
  const set = mayUseEnv(variable) && Deno.env.get(variable) === undefined;
  if (set) Deno.env.set(variable, "/dev/null");
  try {
    return await f();
  } finally {
    if (set) Deno.env.delete(variable);
  }
}

function tryBackend(
  name: BackendName,
  options: SelectBackendOptions,
  tolerance: number,
): Promise<string | { description: string; error: number }> {
  const attempt = () => initialiseAndCheck(name, options, tolerance);
  return name === "webgpu" ? quietWayland(attempt) : attempt();
}

async function initialiseAndCheck(
  name: BackendName,
  options: SelectBackendOptions,
  tolerance: number,
): Promise<string | { description: string; error: number }> {
  let description: string = name;
  if (name === "webgpu") {
    if (readEnv(DISABLE_WEBGPU_ENV) === "1") {
      return `disabled by ${DISABLE_WEBGPU_ENV}=1`;
    }
    const gpu = "gpu" in options
      ? options.gpu
      : (globalThis.navigator as unknown as { gpu?: GpuLike }).gpu;
    if (!gpu) return "navigator.gpu is not available";
    let adapter: GpuAdapterLike | null;
    try {
      adapter = await gpu.requestAdapter();
    } catch (error) {
      return `requesting an adapter failed: ${(error as Error).message}`;
    }
    if (!adapter) return "no adapter";
    const info = adapter.info ?? {};
    const parts = [info.description || "unknown adapter"];
    if (info.isFallbackAdapter) parts.push("fallback adapter");
    description = `webgpu (${parts.join(", ")})`;
    if (info.isFallbackAdapter && !options.allowFallbackAdapter) {
      return `only a software fallback adapter (${
        parts[0]
      }), slower than wasm on a CPU; ask for webgpu by name to use it`;
    }
  }
  let ok: boolean;
  try {
    ok = await tf.setBackend(name);
    await tf.ready();
  } catch (error) {
    return `initialisation failed: ${(error as Error).message}`;
  }
  // setBackend resolves false (it does not throw) when the backend cannot start.
  if (!ok || tf.getBackend() !== name) return "initialisation failed";
  let error: number;
  try {
    error = await selfCheck();
  } catch (e) {
    return `self-check failed: ${(e as Error).message}`;
  }
  if (!(error <= tolerance)) {
    return `self-check failed: max error ${error.toPrecision(3)}`;
  }
  return { description, error };
}

/**
 * The cpu backend prints advice for Node.js users on first use ("install
 * tfjs-node"), which does not apply to Deno; library code stays quiet.
 */
function quietCpuBackend(): void {
  const cpu = tf.findBackend("cpu") as unknown as { firstUse?: boolean } | null;
  if (cpu) cpu.firstUse = false;
}

/**
 * Make sure a backend is active before a model is built: the cpu backend if
 * {@linkcode selectBackend} was never called. Without this, TensorFlow.js
 * would pick its highest-priority backend, WebGPU, which needs an `await`
 * first, and fail. Internal.
 */
export function ensureBackend(): void {
  if ((tf.engine() as unknown as { backendName: string | null }).backendName) return;
  quietCpuBackend();
  void tf.setBackend("cpu"); // the cpu backend initialises synchronously
}

function readEnv(key: string): string | undefined {
  try {
    return Deno.env.get(key);
  } catch {
    return undefined; // No --allow-env: treat as unset.
  }
}

/**
 * Largest absolute error of a matMul and a conv2d on the active backend
 * against plain-JavaScript reference values.
 */
async function selfCheck(): Promise<number> {
  // matMul: [2,3] x [3,2]
  const a = [1, 2, 3, 4, 5, 6], b = [0.5, -1, 2, 0.25, -3, 1.5];
  const expectedMatMul = [
    1 * 0.5 + 2 * 2 + 3 * -3,
    1 * -1 + 2 * 0.25 + 3 * 1.5,
    4 * 0.5 + 5 * 2 + 6 * -3,
    4 * -1 + 5 * 0.25 + 6 * 1.5,
  ];
  // conv2d: 4x4 input, one 3x3 filter, valid padding.
  const x = Array.from({ length: 16 }, (_, i) => (i % 5) - 2);
  const w = [1, 0, -1, 2, 0.5, -2, 1, 0, -1];
  const expectedConv: number[] = [];
  for (let r = 0; r < 2; r++) {
    for (let c = 0; c < 2; c++) {
      let sum = 0;
      for (let i = 0; i < 3; i++) {
        for (let j = 0; j < 3; j++) {
          sum += x[(r + i) * 4 + c + j] * w[i * 3 + j];
        }
      }
      expectedConv.push(sum);
    }
  }
  // Read back asynchronously: WebGPU has no synchronous read-back in Deno.
  const [matMul, conv] = tf.tidy(() => [
    tf.matMul(tf.tensor2d(a, [2, 3]), tf.tensor2d(b, [3, 2])),
    tf.conv2d(tf.tensor4d(x, [1, 4, 4, 1]), tf.tensor4d(w, [3, 3, 1, 1]), 1, "valid"),
  ]);
  let gotMatMul: Float32Array, gotConv: Float32Array;
  try {
    [gotMatMul, gotConv] = await Promise.all([matMul.data(), conv.data()]) as Float32Array[];
  } finally {
    tf.dispose([matMul, conv]);
  }
  let max = 0;
  expectedMatMul.forEach((v, i) => max = Math.max(max, Math.abs(v - gotMatMul[i])));
  expectedConv.forEach((v, i) => max = Math.max(max, Math.abs(v - gotConv[i])));
  return Number.isFinite(max) ? max : Infinity;
}

/** What TensorFlow.js passes a kernel function. Internal. */
export type KernelArgs = {
  inputs: tf.NamedTensorInfoMap;
  backend: tf.KernelBackend;
  attrs?: tf.NamedAttrMap;
};
type KernelFn = (args: KernelArgs) => tf.TensorInfo;

function wasmKernel(name: string): KernelFn {
  const config = tf.getKernel(name, "wasm");
  if (!config) throw new BackendError(`Cannot find the wasm kernel "${name}"`);
  return config.kernelFunc as unknown as KernelFn;
}

type Shape4 = [number, number, number, number];

/** Geometry of the forward convolution whose gradient a kernel computes (dilation 1). */
function convInfo(
  inShape: readonly number[],
  filterShape: readonly number[],
  attrs: Pick<tf.Conv2DBackpropFilterAttrs, "strides" | "pad" | "dimRoundingMode">,
): tf.backend_util.Conv2DInfo {
  return tf.backend_util.computeConv2DInfo(
    inShape as Shape4,
    filterShape as Shape4,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
  );
}

/**
 * Run `f` with a `keep` function that registers intermediate results; all of
 * them are freed afterwards, whether `f` returns or throws.
 */
function withScratch<T>(
  backend: tf.KernelBackend,
  f: (keep: (t: tf.TensorInfo) => tf.TensorInfo) => T,
): T {
  const made: tf.TensorInfo[] = [];
  try {
    return f((t) => (made.push(t), t));
  } finally {
    for (const t of made) backend.disposeData(t.dataId);
  }
}

/**
 * The filter gradient of a 2-D convolution on the WASM backend.
 *
 * dW[kh,kw,ci,co] = Σ_{b,oh,ow} x[b, oh·s + kh − padTop, ow·s + kw − padLeft, ci] · dy[b,oh,ow,co]
 *
 * which is itself a convolution: the input transposed to [ci,H,W,b] convolved
 * with the output gradient transposed to [OH,OW,b,co] as the filter, with
 * stride 1 and dilation s. The result [ci,KH,KW,co] is transposed back.
 */
function conv2DBackpropFilterWasm(args: KernelArgs): tf.TensorInfo {
  const { inputs, backend } = args;
  const attrs = args.attrs as unknown as tf.Conv2DBackpropFilterAttrs;
  const x = inputs.x as tf.TensorInfo, dy = inputs.dy as tf.TensorInfo;
  if (attrs.dataFormat && attrs.dataFormat !== "NHWC") {
    throw new BackendError(
      `Cannot compute Conv2DBackpropFilter on wasm: expected dataFormat NHWC, got ${attrs.dataFormat}`,
    );
  }
  const info = convInfo(x.shape, attrs.filterShape, attrs);
  const transpose = wasmKernel("Transpose"), conv2d = wasmKernel("Conv2D");
  const slice = wasmKernel("Slice");
  const simd = info.strideHeight === 1 && info.strideWidth === 1 ? simdKernels(backend) : null;
  if (simd) return conv2DBackpropFilterIm2col(args, info, simd);
  return withScratch(backend, (keep) => {
    const xT = keep(
      transpose({ inputs: { x }, backend, attrs: { perm: [3, 1, 2, 0] } }),
    );
    const dyT = keep(
      transpose({ inputs: { x: dy }, backend, attrs: { perm: [1, 2, 0, 3] } }),
    );
    const { top, left } = info.padInfo;
    const sh = info.strideHeight, sw = info.strideWidth;
    // Padding at the far edges that makes the result exactly KH x KW; when the
    // forward pass never read the last rows/columns it would be negative, so
    // clamp at 0 and slice the extra rows/columns off below.
    const bottom = Math.max(
      0,
      info.filterHeight + (info.outHeight - 1) * sh - info.inHeight - top,
    );
    const right = Math.max(
      0,
      info.filterWidth + (info.outWidth - 1) * sw - info.inWidth - left,
    );
    let grad = keep(conv2d({
      inputs: { x: xT, filter: dyT },
      backend,
      attrs: {
        strides: [1, 1],
        pad: [[0, 0], [top, bottom], [left, right], [0, 0]],
        dilations: [sh, sw],
        dataFormat: "NHWC",
        dimRoundingMode: undefined,
      } as unknown as tf.NamedAttrMap,
    }));
    const [ci, kh, kw, co] = grad.shape;
    if (kh !== info.filterHeight || kw !== info.filterWidth) {
      grad = keep(slice({
        inputs: { x: grad },
        backend,
        attrs: {
          begin: [0, 0, 0, 0],
          size: [ci, info.filterHeight, info.filterWidth, co],
        },
      }));
    }
    return transpose({
      inputs: { x: grad },
      backend,
      attrs: { perm: [1, 2, 0, 3] },
    });
  });
}

/**
 * The input gradient of a stride-1 2-D convolution on the WASM backend, as a
 * convolution of the output gradient with the filter rotated by 180° and its
 * channel axes swapped (XNNPACK runs it far faster than the reference kernel).
 * Other strides go to the backend's own kernel.
 */
function conv2DBackpropInputWasm(args: KernelArgs): tf.TensorInfo {
  const { inputs, backend } = args;
  const attrs = args.attrs as unknown as tf.Conv2DBackpropInputAttrs;
  const dy = inputs.dy as tf.TensorInfo, filter = inputs.filter as tf.TensorInfo;
  const info = convInfo(attrs.inputShape, filter.shape, attrs);
  if (
    info.strideHeight !== 1 || info.strideWidth !== 1 ||
    (attrs.dataFormat && attrs.dataFormat !== "NHWC")
  ) {
    return originalConv2DBackpropInput!(args);
  }
  return withScratch(backend, (keep) => {
    const flipped = keep(
      wasmKernel("Reverse")({ inputs: { x: filter }, backend, attrs: { dims: [0, 1] } }),
    );
    const rotated = keep(
      wasmKernel("Transpose")({ inputs: { x: flipped }, backend, attrs: { perm: [0, 1, 3, 2] } }),
    );
    const kh = info.filterHeight, kw = info.filterWidth;
    const top = kh - 1 - info.padInfo.top, left = kw - 1 - info.padInfo.left;
    // Far-edge padding that brings the output back to the input's size.
    const bottom = info.inHeight + kh - 1 - info.outHeight - top;
    const right = info.inWidth + kw - 1 - info.outWidth - left;
    if (top < 0 || left < 0 || bottom < 0 || right < 0) return originalConv2DBackpropInput!(args);
    return wasmKernel("Conv2D")({
      inputs: { x: dy, filter: rotated },
      backend,
      attrs: {
        strides: [1, 1],
        pad: [[0, 0], [top, bottom], [left, right], [0, 0]],
        dilations: [1, 1],
        dataFormat: "NHWC",
        dimRoundingMode: undefined,
      } as unknown as tf.NamedAttrMap,
    });
  });
}

/** The parts of the WASM backend that kernels written in JavaScript use. Internal. */
export type WasmHeapBackend = tf.KernelBackend & {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
};

/**
 * Tile on the WASM backend with block copies in JavaScript. The backend's own
 * kernel indexes element by element and was the second largest cost of a
 * batch-norm training step (its gradient tiles the inverse deviation to the
 * full activation shape).
 */
function tileWasm(args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as WasmHeapBackend;
  const x = args.inputs.x as tf.TensorInfo;
  const reps = (args.attrs as unknown as tf.TileAttrs).reps;
  if (x.dtype === "string") return originalTile!(args);
  const outShape = x.shape.map((d, i) => d * reps[i]);
  const out = backend.makeOutput(outShape, x.dtype);
  tileInto(backend.typedArrayFromHeap(x), x.shape, reps, backend.typedArrayFromHeap(out));
  return out;
}

/**
 * Write `src` (of `shape`) repeated `reps[i]` times along each axis into
 * `dst`. Each source row is copied once; every repetition is a block copy
 * (`copyWithin`) of the part already written.
 */
export function tileInto(
  src: ArrayLike<number>,
  shape: readonly number[],
  reps: readonly number[],
  dst: Float32Array | Int32Array | Uint8Array,
): void {
  const rank = shape.length;
  if (rank === 0) {
    dst[0] = src[0];
    return;
  }
  // Elements below one index of each axis, in the output and in the source.
  const outInner = new Array<number>(rank), srcInner = new Array<number>(rank);
  outInner[rank - 1] = srcInner[rank - 1] = 1;
  for (let i = rank - 2; i >= 0; i--) {
    outInner[i] = outInner[i + 1] * shape[i + 1] * reps[i + 1];
    srcInner[i] = srcInner[i + 1] * shape[i + 1];
  }
  const fill = (axis: number, from: number, to: number): void => {
    if (axis === rank - 1) {
      for (let j = 0; j < shape[axis]; j++) dst[to + j] = src[from + j];
    } else {
      for (let i = 0; i < shape[axis]; i++) {
        fill(axis + 1, from + i * srcInner[axis], to + i * outInner[axis]);
      }
    }
    const block = shape[axis] * outInner[axis];
    for (let k = 1; k < reps[axis]; k++) dst.copyWithin(to + k * block, to, to + block);
  };
  fill(0, 0, 0);
}

/**
 * Max-pool gradient on the WASM backend in plain JavaScript over the wasm
 * heap: each output's gradient goes to the first largest input of its window
 * (the cpu backend's rule). Several times faster than the backend's kernel.
 */
function maxPoolGradWasm(args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as WasmHeapBackend;
  const dy = args.inputs.dy as tf.TensorInfo, x = args.inputs.input as tf.TensorInfo;
  const attrs = args.attrs as unknown as tf.MaxPoolGradAttrs;
  const info = tf.backend_util.computePool2DInfo(
    x.shape as [number, number, number, number],
    attrs.filterSize,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
  );
  const out = backend.makeOutput(x.shape, "float32");
  const dx = backend.typedArrayFromHeap(out) as Float32Array;
  const xs = backend.typedArrayFromHeap(x) as Float32Array;
  const dys = backend.typedArrayFromHeap(dy) as Float32Array;
  const { batchSize, inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW } = info;
  const { strideHeight: sh, strideWidth: sw, filterHeight: fh, filterWidth: fw } = info;
  const top = info.padInfo.top, left = info.padInfo.left;
  const inside = 2 * OH <= H && 2 * OW <= W; // every window within the input
  if (fh === 2 && fw === 2 && sh === 2 && sw === 2 && top === 0 && left === 0 && inside) {
    const simd = simdKernels(backend, C);
    if (simd) {
      const at = simd.offset;
      simd.exports.max_pool_grad_2x2(at(x), at(dy), at(out), batchSize, H, W, C, OH, OW);
    } else {
      dx.fill(0);
      maxPoolGrad2x2(xs, dys, dx, batchSize, H, W, C, OH, OW);
    }
    return out;
  }
  dx.fill(0);
  let o = 0;
  for (let b = 0; b < batchSize; b++) {
    const base = b * H * W * C;
    for (let oh = 0; oh < OH; oh++) {
      const r0 = Math.max(0, oh * sh - top), r1 = Math.min(H, oh * sh - top + fh);
      for (let ow = 0; ow < OW; ow++) {
        const c0 = Math.max(0, ow * sw - left), c1 = Math.min(W, ow * sw - left + fw);
        for (let c = 0; c < C; c++, o++) {
          let best = -Infinity, at = -1;
          for (let r = r0; r < r1; r++) {
            for (let col = c0; col < c1; col++) {
              const i = base + (r * W + col) * C + c;
              if (xs[i] > best) {
                best = xs[i];
                at = i;
              }
            }
          }
          if (at >= 0) dx[at] += dys[o];
        }
      }
    }
  }
  return out;
}

/**
 * The filter gradient of a stride-1 convolution as one matrix product:
 * dW[k·Ci + ci, co] = Σ_m P[k·Ci + ci, m] · dy[m, co], where P holds the
 * input patches, transposed (`im2col_t` of the SIMD module, from the input
 * in channel-major order) and m runs over batch × output rows × columns.
 * XNNPACK's matrix product then does the arithmetic; the convolution form
 * above packs the whole output gradient as a filter on every call.
 */
function conv2DBackpropFilterIm2col(
  args: KernelArgs,
  info: tf.backend_util.Conv2DInfo,
  simd: SimdKernels,
): tf.TensorInfo {
  const { backend } = args;
  const x = args.inputs.x as tf.TensorInfo, dy = args.inputs.dy as tf.TensorInfo;
  const { batchSize: N, inHeight: H, inWidth: W, inChannels: Ci, outChannels: Co } = info;
  const { filterHeight: KH, filterWidth: KW, outHeight: OH, outWidth: OW } = info;
  const K = KH * KW * Ci, M = N * OH * OW;
  return withScratch(backend, (keep) => {
    const xT = keep(
      wasmKernel("Transpose")({
        inputs: { x },
        backend,
        attrs: { perm: [3, 0, 1, 2] },
      }),
    );
    const patches = keep((backend as WasmHeapBackend).makeOutput([K, M], "float32"));
    const at = simd.offset;
    simd.exports.im2col_t(
      at(xT),
      N,
      H,
      W,
      Ci,
      KH,
      KW,
      info.padInfo.top,
      info.padInfo.left,
      OH,
      OW,
      at(patches),
    );
    const product = wasmKernel("BatchMatMul")({
      inputs: {
        a: { ...patches, shape: [1, K, M] },
        b: { dataId: dy.dataId, shape: [1, M, Co], dtype: dy.dtype },
      },
      backend,
      attrs: { transposeA: false, transposeB: false },
    });
    return { dataId: product.dataId, shape: [KH, KW, Ci, Co], dtype: "float32" };
  });
}

/**
 * Identity (what `clone` and a custom gradient's saved tensors run) by
 * sharing the input's memory, as the cpu backend and the WASM `Reshape` do.
 * The backend's own kernel copies every value; tensors are immutable, so a
 * shared buffer is safe. Strings go to the backend's kernel.
 */
function identityWasm(args: KernelArgs): tf.TensorInfo | null {
  const x = args.inputs.x as tf.TensorInfo;
  if (x.dtype === "string") return null;
  args.backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

/**
 * The common case of {@linkcode maxPoolGradWasm}: 2×2 windows, stride 2, no
 * padding. Windows do not overlap, so each output gradient goes to the
 * largest of its four inputs (the first one on ties, as the general loop).
 */
function maxPoolGrad2x2(
  xs: Float32Array,
  dys: Float32Array,
  dx: Float32Array,
  batchSize: number,
  H: number,
  W: number,
  C: number,
  OH: number,
  OW: number,
): void {
  const rowStride = W * C;
  let o = 0;
  for (let b = 0; b < batchSize; b++) {
    for (let oh = 0; oh < OH; oh++) {
      let i00 = b * H * rowStride + 2 * oh * rowStride;
      for (let ow = 0; ow < OW; ow++, i00 += 2 * C) {
        for (let c = 0; c < C; c++, o++) {
          const a = i00 + c, bb = a + C, cc = a + rowStride, d = cc + C;
          let at = a, best = xs[a];
          if (xs[bb] > best) best = xs[at = bb];
          if (xs[cc] > best) best = xs[at = cc];
          if (xs[d] > best) at = d;
          dx[at] += dys[o];
        }
      }
    }
  }
}

/**
 * Sum or mean over the leading axes of a float32 tensor (all but the channel
 * axis, as batch-norm and bias gradients reduce), in one pass in plain
 * JavaScript. The backend's kernel transposes the channel axis to the front
 * first. Other reductions go to the backend's own kernel.
 */
function reduceLeadingWasm(kind: "Sum" | "Mean", args: KernelArgs): tf.TensorInfo | null {
  const backend = args.backend as WasmHeapBackend;
  const x = args.inputs.x as tf.TensorInfo;
  const { axis, keepDims } = args.attrs as unknown as tf.SumAttrs;
  const rank = x.shape.length;
  const axes = tf.util.parseAxisParam(axis, x.shape).sort((a, b) => a - b);
  if (x.dtype !== "float32" || rank < 2 || axes.length !== rank - 1) return null;
  if (axes.some((a, i) => a !== i)) return null;
  const channels = x.shape[rank - 1];
  const rows = tf.util.sizeFromShape(x.shape) / channels;
  const sums = new Float64Array(channels);
  const xs = backend.typedArrayFromHeap(x) as Float32Array;
  for (let r = 0, i = 0; r < rows; r++) {
    for (let c = 0; c < channels; c++, i++) sums[c] += xs[i];
  }
  const out = backend.makeOutput(
    keepDims ? x.shape.map((d, i) => (i === rank - 1 ? d : 1)) : [channels],
    "float32",
  );
  const values = backend.typedArrayFromHeap(out) as Float32Array;
  for (let c = 0; c < channels; c++) values[c] = kind === "Mean" ? sums[c] / rows : sums[c];
  return out;
}

let originalConv2DBackpropInput: KernelFn | undefined;
let originalTile: KernelFn | undefined;
let wasmKernelsRegistered = false;

/**
 * Register the kernels the WASM backend needs to train a convolutional
 * network quickly: `Conv2DBackpropFilter` (missing from the backend), a
 * stride-1 `Conv2DBackpropInput` built on XNNPACK's convolution, a
 * block-copy `Tile`, an `Identity` that shares memory instead of copying,
 * `MaxPoolGrad`, `Sum` and `Mean` (over all but the channel axis) in plain
 * JavaScript, and the two batch-norm kernels of `batch_norm.ts`. Each is tested for parity with the cpu backend. Safe to
 * call more than once; {@linkcode selectBackend} calls it for you.
 *
 * @returns `true` if this call registered the kernels, `false` if they were already there.
 *
 * @example Register once
 * ```ts
 * import { registerWasmTrainingKernels } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * registerWasmTrainingKernels();
 * assert.equal(registerWasmTrainingKernels(), false);
 * ```
 */
export function registerWasmTrainingKernels(): boolean {
  if (wasmKernelsRegistered) return false;
  const replace = (name: string, kernelFunc: KernelFn): KernelFn | undefined => {
    const previous = tf.getKernel(name, "wasm");
    if (previous) tf.unregisterKernel(name, "wasm");
    tf.registerKernel({
      kernelName: name,
      backendName: "wasm",
      kernelFunc: kernelFunc as unknown as tf.KernelFunc,
      // Keep the backend's setup (it binds the wasm function the fallback uses).
      setupFunc: previous?.setupFunc,
    });
    return previous?.kernelFunc as unknown as KernelFn | undefined;
  };
  replace("Conv2DBackpropFilter", conv2DBackpropFilterWasm);
  originalConv2DBackpropInput = replace("Conv2DBackpropInput", conv2DBackpropInputWasm);
  originalTile = replace("Tile", tileWasm);
  replace("MaxPoolGrad", maxPoolGradWasm);
  const originalIdentity = replace(
    "Identity",
    (args) => identityWasm(args) ?? originalIdentity!(args),
  );
  registerBatchNormKernels();
  for (const kind of ["Sum", "Mean"] as const) {
    const original = replace(kind, (args) => reduceLeadingWasm(kind, args) ?? original!(args));
  }
  wasmKernelsRegistered = true;
  return true;
}
