/**
 * Augmentation on a WebGPU device: the training images stay on the GPU
 * (uploaded once, as one byte a pixel), and each batch is gathered and warped
 * there by one compute shader, so a training step uploads the batch's indices
 * and a small table of per-image parameters ({@linkcode AUGMENT_ROW} numbers
 * an image) instead of its pixels. Used by the one-thread trainer
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
  AugmentBanks,
  type AugmentOptions,
  drawAugmentation,
  ELASTIC_BANK_SIZE,
  elasticSigmaOf,
  NOISE_BANK_SIZE,
} from "./augment.ts";
import { BackendError } from "./backend_error.ts";
import { IMAGE_PIXELS, IMAGE_SIZE, PIXEL_VALUES } from "./images.ts";
import type { Rng } from "./rng.ts";

/**
 * The bytes `k` of pixels that are all `k / 255` in float32, four to an
 * int32 (little-endian, so pixel `i` is byte `i % 4` of word `i >> 2`), or
 * `null` when some pixel is not.
 */
function packBytes(pixels: Float32Array): Int32Array | null {
  const bytes = new Uint8Array(Math.ceil(pixels.length / 4) * 4);
  for (let i = 0; i < pixels.length; i++) {
    const k = Math.round(pixels[i] * 255);
    if (!(k >= 0 && k <= 255 && PIXEL_VALUES[k] === pixels[i])) return null;
    bytes[i] = k;
  }
  return new Int32Array(bytes.buffer);
}

/** Rows that leave `count` images as they are (the identity map, no distortion, no noise). */
function identityRows(count: number): Float32Array {
  const rows = new Float32Array(count * AUGMENT_ROW);
  for (let i = 0; i < count; i++) rows.set([1, 0, 0, 1], i * AUGMENT_ROW);
  return rows;
}

/** Name of the kernel, registered for the webgpu backend. */
const KERNEL = "TinymnistAugment";

/**
 * One thread per output pixel: the source position is the inverse map of the
 * pixel (after the elastic displacement, when the row has one), sampled
 * bilinearly with zeros outside the image, as `augmentBatch` samples; then
 * the row's noise, clamped to [0, 1].
 */
class AugmentProgram implements WebGPUProgram {
  variableNames = ["images", "values", "ids", "params", "fields", "noise"];
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
        let i = base + y * ${size} + x;
        return values[(images[i >> 2u] >> (u32(i & 3) * 8u)) & 255];
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

/** The webgpu kernel: inputs `images` (bytes), `values`, `ids`, `params`, `fields`, `noise`. */
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
  /** The pixels' bytes, four to an int32. */
  readonly #images: tf.Tensor1D;
  /** {@linkcode PIXEL_VALUES}. */
  readonly #values: tf.Tensor1D;
  /** The banks' values on the host. */
  readonly #banks: AugmentBanks;
  /** `[ELASTIC_BANK_SIZE, 2 * 784]`: the host's fields, uploaded on first use. */
  #fields: tf.Tensor2D | null = null;
  #fieldValues: Float32Array | null = null;
  /** `[NOISE_BANK_SIZE, 784]`, made on first use. */
  #noise: tf.Tensor2D | null = null;
  /** One zero, in place of a bank that no row of a batch reads. */
  readonly #none: tf.Tensor1D;

  private constructor(bytes: Int32Array, seed: number, fieldBank?: Float32Array) {
    registerAugmentKernel();
    this.#images = tf.tensor1d(bytes, "int32");
    this.#values = tf.tensor1d(PIXEL_VALUES);
    this.#banks = new AugmentBanks(seed, fieldBank);
    this.#none = tf.zeros([1]);
  }

  /**
   * Upload the images, one byte a pixel, when they are 8-bit pixels scaled to
   * [0, 1] (each `k / 255` in float32, as `loadMnist` makes them) and their
   * bytes fit in one storage binding of the device; else `null` (the caller
   * uploads each batch instead). A float32 copy of MNIST's 60,000 training
   * images (188 MB) would not fit the 128 MiB that WebGPU guarantees.
   *
   * @param images `count * 784` pixels in [0, 1].
   * @param seed Seed of the banks' random numbers.
   * @param fieldBank The elastic fields to use instead of drawn ones (tests),
   * `ELASTIC_BANK_SIZE * 2 * 784` values laid out as {@linkcode elasticFieldBank}'s.
   * @returns The augmenter, or `null`.
   * @throws {BackendError} When the active backend is not webgpu.
   */
  static create(
    images: Float32Array,
    seed: number,
    fieldBank?: Float32Array,
  ): DeviceAugmenter | null {
    if (tf.getBackend() !== "webgpu") {
      throw new BackendError(
        `Cannot augment on the device: expected the webgpu backend, got ${tf.getBackend()}`,
      );
    }
    const limit = (tf.backend() as unknown as WebGPUBackend).device.limits
      .maxStorageBufferBindingSize;
    if (images.length > limit) return null;
    const bytes = packBytes(images);
    return bytes && new DeviceAugmenter(bytes, seed, fieldBank);
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
    const rows = augment
      ? drawAugmentation(count, augment, rng, ELASTIC_BANK_SIZE, NOISE_BANK_SIZE)
      : identityRows(count);
    const sigma = augment ? elasticSigmaOf(augment) : undefined;
    return tf.tidy(() => this.warp(ids, rows, sigma).reshape(shape));
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
        values: this.#values,
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
    const values = this.#banks.fields(sigma);
    if (!this.#fields || this.#fieldValues !== values) {
      this.#fields?.dispose();
      // Kept: the first use may be inside a caller's tidy.
      this.#fields = tf.keep(tf.tensor2d(values, [ELASTIC_BANK_SIZE, 2 * IMAGE_PIXELS]));
      this.#fieldValues = values;
    }
    return this.#fields;
  }

  /** The noise bank, drawn on first use. */
  #noiseBank(): tf.Tensor2D {
    if (!this.#noise) {
      const values = this.#banks.noise();
      this.#noise = tf.keep(tf.tensor2d(values, [NOISE_BANK_SIZE, IMAGE_PIXELS]));
    }
    return this.#noise;
  }

  /** Free the images and the banks. */
  dispose(): void {
    tf.dispose([this.#images, this.#values, this.#none]);
    this.#fields?.dispose();
    this.#noise?.dispose();
  }
}
