/**
 * Backend selection: WebGPU, WASM or the plain CPU backend, each accepted
 * only after a small numeric self-check, and for `"auto"` the fastest by
 * measurement. The WASM backend's training kernels live in `wasm/`
 * ({@linkcode registerWasmTrainingKernels}, re-exported here).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import "@tensorflow/tfjs-backend-webgpu";
import { measureParallelTrainingStep, measureTrainingStep } from "./backend_probe.ts";
import { BackendError } from "./backend_error.ts";
import { registerWasmTrainingKernels } from "./wasm/mod.ts";

export { BackendError, registerWasmTrainingKernels };

/** A TensorFlow.js backend tinymnist knows how to use. */
export type BackendName = "webgpu" | "wasm" | "cpu";

/** What to ask {@linkcode selectBackend} for: one backend, or the best that works. */
export type BackendPreference = "auto" | BackendName;

/**
 * Data-parallel workers that `train` uses on wasm unless told otherwise (one
 * per core of a 2-core machine; the same everywhere, so that a seed gives the
 * same model on every machine).
 */
export const DEFAULT_WASM_WORKERS = 2;

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
  /**
   * Mean milliseconds of one training step at batch 64, as `train` runs it
   * by default: in this thread, or on wasm split between two workers.
   */
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
   * like the default model on each, as `train` runs it (webgpu in this
   * thread; wasm split between two workers, started for the probe), with one
   * warm-up step and then about 0.25 s of steps, and keeps the faster. `false`: the first that works, in the order
   * webgpu, wasm, cpu. The cpu backend is never timed: it is used only when
   * neither of the others works (it trains about 400× slower than wasm).
   * @default {true}
   */
  probe?: boolean;
}

/** Environment variable that hides WebGPU from `"auto"` selection when set to `1`. */
export const DISABLE_WEBGPU_ENV = "TINYMNIST_DISABLE_WEBGPU";

/**
 * Make `name` the active TensorFlow.js backend, or for `"auto"` the fastest
 * that works. A backend works when it initialises and passes a numeric
 * self-check (a matMul and a conv2d compared with values computed in plain
 * JavaScript). `"auto"` tries webgpu, wasm, cpu in that order; when both
 * webgpu and wasm work it times a training step on each and keeps the
 * faster (see {@linkcode SelectBackendOptions.probe}): for a network this
 * small a GPU is not always faster (README, "On a GPU"). `"auto"` passes
 * over WebGPU when its only adapter is a software fallback (see
 * {@linkcode SelectBackendOptions.allowFallbackAdapter}) or when the
 * environment variable `TINYMNIST_DISABLE_WEBGPU=1` is set.
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
      // Each as `train` runs it by default: wasm split between its workers.
      const msPerStep = name === "wasm"
        ? await measureParallelTrainingStep(DEFAULT_WASM_WORKERS)
        : await measureTrainingStep();
      timings.push({ name, description, msPerStep });
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
