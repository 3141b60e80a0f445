/**
 * Augmentation on a WebGPU device: the training images stay in one tensor on
 * the GPU (uploaded once), and each batch is gathered and warped there by
 * one compute shader, so a training step uploads the batch's indices and a
 * small table of per-image parameters ({@linkcode AUGMENT_ROW} numbers an
 * image) instead of the augmented pixels. Used by the one-thread trainer
 * (`thread_step.ts`) on webgpu. Internal.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import {
  webgpu_util,
  type WebGPUBackend,
  type WebGPUProgram,
} from "@tensorflow/tfjs-backend-webgpu";
import {
  AUGMENT_ROW,
  type AugmentOptions,
  drawAugmentation,
  elasticFieldBank,
  elasticSigmaOf,
} from "./augment.ts";
import { BackendError } from "./backend_error.ts";
import { IMAGE_PIXELS, IMAGE_SIZE } from "./images.ts";
import { createRng, type Rng } from "./rng.ts";

/** Precomputed elastic fields on the device: 1,024 fields of 2 × 784 floats, 6.4 MB. */
export const ELASTIC_BANK_SIZE = 1024;
/** Precomputed standard-normal noise images on the device: 256 images, 0.8 MB. */
export const NOISE_BANK_SIZE = 256;

/** Name of the kernel, registered for the webgpu backend. */
const KERNEL = "TinymnistAugment";

/**
 * One thread per output pixel: the source position is the inverse map of the
 * pixel (after the elastic displacement, when the row has one), sampled
 * bilinearly with zeros outside the image, as `augmentBatch` samples; then
 * the row's noise, clamped to [0, 1].
 */
class AugmentProgram implements WebGPUProgram {
  variableNames = ["images", "ids", "params", "fields", "noise"];
  outputShape: number[];
  shaderKey = KERNEL;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [64, 1, 1];
  size = true;

  constructor(count: number) {
    this.outputShape = [count, IMAGE_PIXELS];
    this.dispatchLayout = webgpu_util.flatDispatchLayout(this.outputShape);
    this.dispatch = webgpu_util.computeDispatch(
      this.dispatchLayout,
      this.outputShape,
      this.workgroupSize,
    );
  }

  getUserCode(): string {
    const size = IMAGE_SIZE, pixels = IMAGE_PIXELS, row = AUGMENT_ROW;
    return `
      fn pixel(base : i32, x : i32, y : i32) -> f32 {
        if (x < 0 || y < 0 || x >= ${size} || y >= ${size}) {
          return 0.0;
        }
        return images[base + y * ${size} + x];
      }

      fn main(index : i32) {
        if (index < uniforms.size) {
          let n = index / ${pixels};
          let p = index - n * ${pixels};
          let r = n * ${row};
          var px = f32(p % ${size});
          var py = f32(p / ${size});
          let alpha = params[r + 6];
          if (alpha != 0.0) {
            let f = i32(params[r + 7]) * ${2 * pixels};
            px = px + alpha * fields[f + p];
            py = py + alpha * fields[f + ${pixels} + p];
          }
          let sx = clamp(params[r] * px + params[r + 1] * py + params[r + 4], -1.0, ${size}.0);
          let sy = clamp(params[r + 2] * px + params[r + 3] * py + params[r + 5], -1.0, ${size}.0);
          let x0 = floor(sx);
          let y0 = floor(sy);
          let wx = sx - x0;
          let wy = sy - y0;
          let base = ids[n] * ${pixels};
          let ix = i32(x0);
          let iy = i32(y0);
          let v00 = pixel(base, ix, iy);
          let v01 = pixel(base, ix, iy + 1);
          let top = v00 + (pixel(base, ix + 1, iy) - v00) * wx;
          let bottom = v01 + (pixel(base, ix + 1, iy + 1) - v01) * wx;
          var v = top + (bottom - top) * wy;
          let sigma = params[r + 8];
          if (sigma != 0.0) {
            v = clamp(v + sigma * noise[i32(params[r + 9]) * ${pixels} + p], 0.0, 1.0);
          }
          setOutputAtIndex(index, v);
        }
      }
    `;
  }
}

/** The webgpu kernel: inputs `images`, `ids`, `params`, `fields`, `noise`. */
function augmentKernel(
  { inputs, backend }: { inputs: tf.NamedTensorInfoMap; backend: tf.KernelBackend },
): tf.TensorInfo {
  const program = new AugmentProgram(inputs.ids!.shape[0]);
  return (backend as unknown as WebGPUBackend).runWebGPUProgram(
    program,
    program.variableNames.map((name) => inputs[name]!),
    "float32",
  );
}

/** Register the kernel once (the webgpu backend must be registered, as `backend.ts` does). */
function registerAugmentKernel(): void {
  if (tf.getKernel(KERNEL, "webgpu")) return;
  tf.registerKernel({
    kernelName: KERNEL,
    backendName: "webgpu",
    kernelFunc: augmentKernel as unknown as tf.KernelFunc,
  });
}

/**
 * Batches of training images on a WebGPU device, optionally augmented there.
 *
 * What it draws is {@linkcode drawAugmentation}'s: the probabilities and
 * ranges of `augmentBatch` and the same bilinear resampling by the inverse
 * map (samples outside the image read 0), but each elastic distortion is one
 * of {@linkcode ELASTIC_BANK_SIZE} fields drawn once per run (times ±alpha)
 * and each noise image one of {@linkcode NOISE_BANK_SIZE}, both kept on the
 * device, rather than fresh ones per image. Internal.
 */
export class DeviceAugmenter {
  readonly #images: tf.Tensor2D;
  readonly #rng: Rng;
  readonly #fieldBank: Float32Array | undefined;
  /** `[ELASTIC_BANK_SIZE, 2 * 784]` for `#fieldSigma`, made on first use. */
  #fields: tf.Tensor2D | null = null;
  #fieldSigma = NaN;
  /** `[NOISE_BANK_SIZE, 784]`, made on first use. */
  #noise: tf.Tensor2D | null = null;
  /** One zero, in place of a bank that no row of a batch reads. */
  readonly #none: tf.Tensor1D;

  /**
   * Upload the images.
   *
   * @param images `count * 784` pixels in [0, 1].
   * @param count Images.
   * @param seed Seed of the banks' random numbers.
   * @param fieldBank The elastic fields to use instead of drawn ones (tests),
   * `ELASTIC_BANK_SIZE * 2 * 784` values laid out as {@linkcode elasticFieldBank}'s.
   * @throws {BackendError} When the active backend is not webgpu.
   */
  constructor(images: Float32Array, count: number, seed: number, fieldBank?: Float32Array) {
    if (tf.getBackend() !== "webgpu") {
      throw new BackendError(
        `Cannot augment on the device: expected the webgpu backend, got ${tf.getBackend()}`,
      );
    }
    registerAugmentKernel();
    this.#images = tf.tensor2d(images, [count, IMAGE_PIXELS]);
    this.#rng = createRng(seed);
    this.#fieldBank = fieldBank;
    this.#none = tf.zeros([1]);
  }

  /**
   * The images `ids`, augmented when `augment` is given.
   *
   * @param ids Indices into the images, int32, on the device.
   * @param augment The batch's augmentation, or `null` for the images as they are.
   * @param rng Draws the augmentation (as {@linkcode drawAugmentation}).
   * @returns `[ids.length, 28, 28, 1]`, values in [0, 1]; the caller disposes it.
   * @throws {TypeError | RangeError} For bad augmentation options.
   */
  batch(ids: tf.Tensor1D, augment: AugmentOptions | null, rng: Rng): tf.Tensor4D {
    const count = ids.shape[0];
    const shape: [number, number, number, number] = [count, IMAGE_SIZE, IMAGE_SIZE, 1];
    if (!augment) return tf.tidy(() => tf.gather(this.#images, ids).reshape(shape));
    const rows = drawAugmentation(count, augment, rng, ELASTIC_BANK_SIZE, NOISE_BANK_SIZE);
    return tf.tidy(() => this.warp(ids, rows, elasticSigmaOf(augment)).reshape(shape));
  }

  /**
   * Gather the images `ids` and apply one row of parameters to each (see
   * {@linkcode drawAugmentation}); a bank is made when a row first uses it.
   *
   * @param ids Indices into the images, int32, on the device.
   * @param rows `AUGMENT_ROW` values per index.
   * @param sigma Elastic blur of the bank in pixels, as the options that drew `rows` say.
   * @returns `[count, 784]` in [0, 1].
   */
  warp(ids: tf.Tensor1D, rows: Float32Array, sigma = elasticSigmaOf({})): tf.Tensor2D {
    const count = ids.shape[0];
    let elastic = false, noisy = false;
    for (let i = 0; i < count; i++) {
      if (rows[i * AUGMENT_ROW + 6] !== 0) elastic = true;
      if (rows[i * AUGMENT_ROW + 8] !== 0) noisy = true;
    }
    const fields = elastic ? this.#fieldsFor(sigma) : this.#none;
    const noise = noisy ? this.#noiseBank() : this.#none;
    return tf.tidy(() => {
      const inputs = {
        images: this.#images,
        ids,
        params: tf.tensor2d(rows, [count, AUGMENT_ROW]),
        fields,
        noise,
      };
      return tf.engine().runKernel(KERNEL, inputs) as tf.Tensor2D;
    });
  }

  /** The elastic bank for `sigma`, drawn (or replaced) on first use. */
  #fieldsFor(sigma: number): tf.Tensor2D {
    if (!this.#fields || this.#fieldSigma !== sigma) {
      this.#fields?.dispose();
      const values = this.#fieldBank ?? elasticFieldBank(ELASTIC_BANK_SIZE, sigma, this.#rng);
      // Kept: the first use may be inside a caller's tidy.
      this.#fields = tf.keep(tf.tensor2d(values, [ELASTIC_BANK_SIZE, 2 * IMAGE_PIXELS]));
      this.#fieldSigma = sigma;
    }
    return this.#fields;
  }

  /** The noise bank, drawn on first use. */
  #noiseBank(): tf.Tensor2D {
    if (!this.#noise) {
      const values = new Float32Array(NOISE_BANK_SIZE * IMAGE_PIXELS);
      for (let i = 0; i < values.length; i++) values[i] = this.#rng.normal();
      this.#noise = tf.keep(tf.tensor2d(values, [NOISE_BANK_SIZE, IMAGE_PIXELS]));
    }
    return this.#noise;
  }

  /** Free the images and the banks. */
  dispose(): void {
    tf.dispose([this.#images, this.#none]);
    this.#fields?.dispose();
    this.#noise?.dispose();
  }
}
