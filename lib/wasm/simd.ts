/**
 * WASM SIMD kernels (built from `kernels/*.c`) that run in the WASM
 * backend's own memory: the module imports the backend's memory, so tensors
 * are passed as offsets into it and nothing is copied. Used by the kernels of
 * this folder (and `../batch_norm.ts` to decide on fusing): the element-wise
 * ones when a tensor's channels are a multiple of 4 (else plain JavaScript),
 * the convolutions when their output channels are a multiple of 8 (else
 * XNNPACK), and neither when the module cannot be instantiated. Internal.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs";
import { RELAXED_SIMD_WASM_BASE64, SIMD_WASM_BASE64 } from "./simd_binary.ts";

/**
 * The arguments the direct convolution kernels of `kernels/conv.c` share: the
 * zero-padded input xp [N, Hp, Wp, Ci], a KH × KW filter's geometry, an
 * operand and the output channels Co. Internal.
 */
export type DirectConvArgs = [
  xp: number,
  N: number,
  Hp: number,
  Wp: number,
  Ci: number,
  KH: number,
  KW: number,
  operand: number,
  Co: number,
];

/** The functions of `kernels/*.c`; every pointer is a byte offset into the backend's memory. */
export interface SimdExports {
  bn_forward(
    x: number,
    rows: number,
    C: number,
    gamma: number,
    beta: number,
    epsilon: number,
    scratch: number,
    y: number,
    xhat: number,
    mean: number,
    variance: number,
    invStd: number,
  ): void;
  bn_backward(
    dy: number,
    xhat: number,
    rows: number,
    C: number,
    gamma: number,
    invStd: number,
    scratch: number,
    dx: number,
    dGamma: number,
    dBeta: number,
  ): void;
  max_pool_grad_2x2(
    x: number,
    dy: number,
    dx: number,
    batch: number,
    H: number,
    W: number,
    C: number,
    OH: number,
    OW: number,
  ): void;
  bn_relu_pool_forward(
    x: number,
    N: number,
    H: number,
    W: number,
    C: number,
    ceilMode: number,
    gamma: number,
    beta: number,
    epsilon: number,
    scratch: number,
    pooled: number,
    mean: number,
    variance: number,
    invStd: number,
  ): void;
  bn_relu_pool_backward(
    x: number,
    dPooled: number,
    N: number,
    H: number,
    W: number,
    C: number,
    ceilMode: number,
    gamma: number,
    beta: number,
    mean: number,
    invStd: number,
    scratch: number,
    dx: number,
    dGamma: number,
    dBeta: number,
  ): void;
  pad_nhwc(
    x: number,
    N: number,
    H: number,
    W: number,
    C: number,
    top: number,
    left: number,
    Hp: number,
    Wp: number,
    xp: number,
  ): void;
  /**
   * `conv_forward` of `kernels/conv.c`: the operand is the filter; the
   * output `y`, plus `bias` (0: none), then a ReLU when `relu` is 1.
   */
  conv_forward(...args: [...DirectConvArgs, bias: number, relu: number, y: number]): void;
  /** `conv_filter_grad`: the operand is the output gradient; out, the filter gradient. */
  conv_filter_grad(...args: [...DirectConvArgs, dw: number]): void;
  winograd_conv3x3(
    xp: number,
    N: number,
    Hp: number,
    Wp: number,
    Ci: number,
    w: number,
    Co: number,
    bias: number,
    relu: number,
    y: number,
    OH: number,
    OW: number,
    chunk: number,
    scratch: number,
  ): void;
  winograd_filter_grad3x3(
    xp: number,
    N: number,
    Hp: number,
    Wp: number,
    Ci: number,
    dy: number,
    Co: number,
    dw: number,
    OH: number,
    OW: number,
    chunk: number,
    scratch: number,
  ): void;
  im2col_t(
    xt: number,
    N: number,
    H: number,
    W: number,
    Ci: number,
    KH: number,
    KW: number,
    top: number,
    left: number,
    OH: number,
    OW: number,
    out: number,
  ): void;
}

/** The SIMD module bound to one WASM backend. */
export interface SimdKernels {
  /** The module's functions. */
  exports: SimdExports;
  /** Offset of a scratch area of {@linkcode SCRATCH_BYTES} bytes, 16-byte aligned. */
  scratch: number;
  /** Whether this is the relaxed-SIMD build (fused multiply-add in the convolutions). */
  relaxed: boolean;
  /** Byte offset of a tensor's data in the backend's memory. */
  offset(t: tf.TensorInfo): number;
}

/** Scratch bytes: per-channel values for up to 512 channels (2 doubles and 5 floats each). */
export const SCRATCH_BYTES = 512 * 36;
/** Most channels a kernel may be given (see {@linkcode SCRATCH_BYTES}). */
export const SIMD_MAX_CHANNELS = 512;

interface WasmBackendInternals {
  wasm?: {
    asm?: { memory?: unknown };
    _malloc?: (bytes: number) => number;
  };
  dataIdMap?: { get(dataId: object): { memoryOffset: number } | undefined };
}

let bound = new WeakMap<object, SimdKernels | null>();
/** The compiled modules: relaxed (undefined: not tried yet; null: unsupported) and plain. */
let relaxedModule: WebAssembly.Module | null | undefined;
let plainModule: WebAssembly.Module | null | undefined;
let relaxedAllowed = true;

const decode = (base64: string) => Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));

/** Compile a module, or `null` when this runtime lacks what it uses (SIMD, relaxed SIMD). */
function compile(base64: string): WebAssembly.Module | null {
  try {
    return new WebAssembly.Module(decode(base64));
  } catch {
    return null;
  }
}

/**
 * The module to bind: the relaxed-SIMD build where the runtime validates it
 * (WebAssembly relaxed SIMD, e.g. V8 since 11.4: Deno ≥ 1.35, Chrome ≥ 114),
 * else the plain SIMD build, else `null`.
 */
function kernelsModule(): { module: WebAssembly.Module; relaxed: boolean } | null {
  if (relaxedAllowed) {
    relaxedModule ??= compile(RELAXED_SIMD_WASM_BASE64);
    if (relaxedModule) return { module: relaxedModule, relaxed: true };
  }
  plainModule ??= compile(SIMD_WASM_BASE64);
  return plainModule ? { module: plainModule, relaxed: false } : null;
}

/**
 * Use the relaxed-SIMD build where the runtime supports it (`true`, the
 * default) or always the plain SIMD build (`false`), for backends bound after
 * this call. Internal: the tests run every kernel on both builds.
 *
 * @param allowed Whether the relaxed-SIMD build may be used.
 */
export function allowRelaxedSimd(allowed: boolean): void {
  relaxedAllowed = allowed;
  bound = new WeakMap();
}

/**
 * The SIMD kernels for a WASM backend, or `null` when they cannot run there
 * (no WebAssembly SIMD, a backend whose memory is not reachable, or, when
 * `channels` is given, channels that are not a multiple of 4 or more than
 * {@linkcode SIMD_MAX_CHANNELS}).
 *
 * @param backend The WASM backend a kernel was called with.
 * @param channels The channels (last axis) of the tensors the kernel will see.
 * @returns The bound kernels, or `null`.
 */
export function simdKernels(backend: tf.KernelBackend, channels?: number): SimdKernels | null {
  if (channels !== undefined && (channels % 4 !== 0 || channels > SIMD_MAX_CHANNELS)) return null;
  if (bound.has(backend)) return bound.get(backend)!;
  const internals = backend as unknown as WasmBackendInternals;
  const memory = internals.wasm?.asm?.memory;
  const malloc = internals.wasm?._malloc;
  const dataIdMap = internals.dataIdMap;
  let kernels: SimdKernels | null = null;
  const chosen = malloc && dataIdMap ? kernelsModule() : null;
  if (chosen && memory instanceof WebAssembly.Memory) {
    const instance = new WebAssembly.Instance(chosen.module, { env: { memory } });
    const raw = malloc!(SCRATCH_BYTES + 16);
    kernels = {
      exports: instance.exports as unknown as SimdExports,
      scratch: (raw + 15) & ~15,
      relaxed: chosen.relaxed,
      offset: (t) => dataIdMap!.get(t.dataId)!.memoryOffset,
    };
  }
  bound.set(backend, kernels);
  return kernels;
}
