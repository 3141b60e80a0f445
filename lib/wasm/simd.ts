/**
 * WASM SIMD kernels (built from `kernels/simd.c`) that run in the WASM
 * backend's own memory: the module imports the backend's memory, so tensors
 * are passed as offsets into it and nothing is copied. Used by the kernels of
 * this folder (and `../batch_norm.ts` to decide on fusing) when a tensor's channels are a multiple of
 * 4; they fall back to plain JavaScript otherwise or when the module cannot be
 * instantiated. Internal.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs";
import { SIMD_WASM_BASE64 } from "./simd_binary.ts";

/** The functions of `kernels/simd.c`; every pointer is a byte offset into the backend's memory. */
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

const bound = new WeakMap<object, SimdKernels | null>();
let compiled: WebAssembly.Module | null | undefined;

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
  if (memory instanceof WebAssembly.Memory && malloc && dataIdMap) {
    try {
      compiled ??= new WebAssembly.Module(
        Uint8Array.from(atob(SIMD_WASM_BASE64), (c) => c.charCodeAt(0)),
      );
      const instance = new WebAssembly.Instance(compiled, { env: { memory } });
      const raw = malloc(SCRATCH_BYTES + 16);
      kernels = {
        exports: instance.exports as unknown as SimdExports,
        scratch: (raw + 15) & ~15,
        offset: (t) => dataIdMap.get(t.dataId)!.memoryOffset,
      };
    } catch {
      compiled = null; // no SIMD support: the JavaScript kernels are used
    }
  }
  bound.set(backend, kernels);
  return kernels;
}
