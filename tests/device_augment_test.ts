/**
 * Augmentation on a WebGPU device (`DeviceAugmenter`) against `augmentBatch`
 * on the host, and what the one-thread trainer uploads per step on webgpu.
 * These run wherever a WebGPU adapter exists; .ci/run installs Mesa's software
 * Vulkan driver so that one always does in CI. Where none exists they are
 * ignored (reported as such).
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import {
  AUGMENT_ROW,
  AugmentBanks,
  augmentBatch,
  augmentFromBanks,
  type AugmentOptions,
  drawAugmentation,
  ELASTIC_BANK_SIZE,
  NOISE_BANK_SIZE,
  shiftBatch,
} from "../lib/augment.ts";
import { selectBackend } from "../lib/backend.ts";
import { DeviceAugmenter } from "../lib/device_augment.ts";
import { createModel } from "../lib/model.ts";
import { createRng } from "../lib/rng.ts";
import { train } from "../lib/train.ts";
import { loadRealMnist } from "./_fixtures.ts";

const adapter = await navigator.gpu?.requestAdapter().catch(() => null);
const ignore = !adapter;
if (!ignore) await selectBackend("webgpu");
const data = await loadRealMnist();
const COUNT = 256;
const images = data.train.images.subarray(0, COUNT * 784);
const ids = Int32Array.from({ length: 48 }, (_, i) => (i * 37) % COUNT);
/** `ids` on the device (for the whole file). */
const onDevice = ignore ? null! : tf.tensor1d(ids, "int32");

/** The host's pixels of `ids`. */
function gathered(): Float32Array {
  const out = new Float32Array(ids.length * 784);
  ids.forEach((id, i) => out.set(images.subarray(id * 784, (id + 1) * 784), i * 784));
  return out;
}

function maxDifference(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

Deno.test({
  name: "device augmentation: the affine warps equal augmentBatch's for the same seed",
  ignore,
  async fn() {
    // With no elastic distortion and no noise, both draw the same numbers in the same order.
    const options: AugmentOptions = {
      rotationDegrees: 30,
      translate: 0.2,
      shearDegrees: 15,
      elasticProbability: 0,
      noiseProbability: 0,
    };
    const augmenter = DeviceAugmenter.create(images, 1)!;
    try {
      for (const seed of [1, 2, 3]) {
        const device = augmenter.batch(onDevice, options, createRng(seed));
        assert.deepEqual(device.shape, [ids.length, 28, 28, 1]);
        const host = augmentBatch(gathered(), options, createRng(seed));
        assert.notDeepEqual(host, gathered());
        // The host computes sample coordinates in float64, the device in float32.
        assert.ok(maxDifference((await device.data()) as Float32Array, host) < 1e-4);
        device.dispose();
      }
    } finally {
      augmenter.dispose();
    }
  },
});

Deno.test({
  name: "device augmentation: strength 0 and no options give the images as they are",
  ignore,
  async fn() {
    const augmenter = DeviceAugmenter.create(images, 1)!;
    try {
      for (const options of [{ strength: 0 }, null]) {
        const x = augmenter.batch(onDevice, options, createRng(5));
        assert.deepEqual(await x.data(), gathered());
        x.dispose();
      }
    } finally {
      augmenter.dispose();
    }
  },
});

Deno.test({
  name: "device augmentation: an elastic field of constant displacement is a shift",
  ignore,
  async fn() {
    // Every field displaces by (1, 0.5) px; with alpha 2 and the drawn sign s an
    // output pixel reads the source at (x + 2s, y + s): the digit moves by (-2s, -s).
    const bank = new Float32Array(ELASTIC_BANK_SIZE * 2 * 784);
    for (let k = 0; k < ELASTIC_BANK_SIZE; k++) {
      bank.fill(1, 2 * k * 784, (2 * k + 1) * 784);
      bank.fill(0.5, (2 * k + 1) * 784, (2 * k + 2) * 784);
    }
    const options = {
      affineProbability: 0,
      elasticProbability: 1,
      elasticAlpha: 2,
      noiseProbability: 0,
    };
    const rows = drawAugmentation(ids.length, options, createRng(9), ELASTIC_BANK_SIZE, 1);
    const signs = ids.map((_, i) => Math.sign(rows[i * AUGMENT_ROW + 6]));
    assert.ok(signs.includes(1) && signs.includes(-1));
    const augmenter = DeviceAugmenter.create(images, 1, bank)!;
    try {
      const device = augmenter.warp(onDevice, rows);
      const out = (await device.data()) as Float32Array;
      device.dispose();
      const source = gathered();
      for (let i = 0; i < ids.length; i++) {
        const image = source.subarray(i * 784, (i + 1) * 784);
        const shifted = shiftBatch(image, -2 * signs[i], -signs[i]);
        assert.ok(maxDifference(out.subarray(i * 784, (i + 1) * 784), shifted) < 1e-5);
      }
    } finally {
      augmenter.dispose();
    }
  },
});

Deno.test({
  name: "device augmentation: drawn elastic fields and noise have their sizes, in [0, 1]",
  ignore,
  async fn() {
    const augmenter = DeviceAugmenter.create(images, 1)!;
    const GREY = Math.fround(128 / 255);
    const flat = new Float32Array(784).fill(GREY);
    const grey = DeviceAugmenter.create(new Float32Array(COUNT * 784).fill(GREY), 2)!;
    try {
      // Elastic only, alpha 34 (Simard et al.): the digits change, within [0, 1].
      // The bank made during the first call, inside a tidy, stays for the next ones.
      const bending = { affineProbability: 0, elasticProbability: 1, noiseProbability: 0 };
      const before = tf.memory().numTensors;
      tf.tidy(() => {
        augmenter.batch(onDevice, bending, createRng(3));
      });
      assert.equal(tf.memory().numTensors, before + 1);
      const elastic = augmenter.batch(onDevice, bending, createRng(4));
      assert.equal(tf.memory().numTensors, before + 2);
      const bent = (await elastic.data()) as Float32Array;
      elastic.dispose();
      assert.ok(maxDifference(bent, gathered()) > 0.3);
      assert.ok(bent.every((v) => v >= 0 && v <= 1));
      // Noise only on grey images: each noisy image has a standard deviation of about sigma.
      const options = {
        affineProbability: 0,
        elasticProbability: 0,
        noiseProbability: 0.5,
        noiseSigma: 0.1,
      };
      const rows = drawAugmentation(ids.length, options, createRng(6), 1, NOISE_BANK_SIZE);
      const noisy = grey.warp(onDevice, rows);
      const out = (await noisy.data()) as Float32Array;
      noisy.dispose();
      let withNoise = 0;
      for (let i = 0; i < ids.length; i++) {
        const image = out.subarray(i * 784, (i + 1) * 784);
        const sigma = rows[i * AUGMENT_ROW + 8];
        const sd = Math.sqrt(image.reduce((a, v) => a + (v - GREY) ** 2, 0) / 784);
        if (sigma === 0) {
          assert.deepEqual(image, flat);
        } else {
          withNoise++;
          assert.ok(Math.abs(sd - 0.1) < 0.015, `noise sd ${sd}`);
        }
      }
      assert.ok(withNoise > 10 && withNoise < ids.length - 10);
    } finally {
      augmenter.dispose();
      grey.dispose();
    }
  },
});

Deno.test({
  name: "device augmentation: all 60,000 training images fit on the device, read back exactly",
  ignore,
  async fn() {
    // As float32 (188 MB) they would exceed the 128 MiB storage binding that WebGPU guarantees
    // (llvmpipe's limit), and the shader would read zeros; as bytes they take 47 MB.
    const augmenter = DeviceAugmenter.create(data.train.images, 1)!;
    const last = [0, 30_000, 59_999];
    const ids = tf.tensor1d(last, "int32");
    try {
      const x = augmenter.batch(ids, null, createRng(1));
      const out = await x.data();
      x.dispose();
      last.forEach((id, i) =>
        assert.deepEqual(
          out.subarray(i * 784, (i + 1) * 784),
          data.train.images.subarray(id * 784, (id + 1) * 784),
        )
      );
    } finally {
      ids.dispose();
      augmenter.dispose();
    }
  },
});

Deno.test({
  name: "device augmentation: images that are not 8-bit stay on the host",
  ignore,
  fn() {
    const images = new Float32Array(2 * 784).fill(0.5); // 127.5 / 255
    assert.equal(DeviceAugmenter.create(images, 1), null);
  },
});

Deno.test({
  name: "one-thread training uploads indices and parameters per augmented step, not pixels",
  ignore,
  async fn() {
    // Every tensor made from host values (an upload on a GPU) goes through the engine's makeTensor;
    // kernel outputs do not.
    const engine = tf.engine() as unknown as { makeTensor: (...args: unknown[]) => unknown };
    const makeTensor = engine.makeTensor;
    let bytes = 0, counting = false;
    engine.makeTensor = function (this: unknown, ...args: unknown[]) {
      const values = args[0];
      if (counting) bytes += ArrayBuffer.isView(values) ? values.byteLength : 4;
      return makeTensor.apply(this, args);
    };
    const model = createModel({ seed: 3 });
    const n = 8 * 64;
    const subset = {
      count: n,
      images: data.train.images.subarray(0, n * 784),
      labels: data.train.labels.subarray(0, n),
    };
    try {
      const steps = { from: 2, to: 6 };
      await train(model, subset, {
        workers: 0,
        onBatchEnd: ({ batch }) => {
          if (batch === steps.from) counting = true;
          if (batch === steps.to) counting = false;
        },
      });
      // An augmented batch of 64 images is 200,704 bytes; its indices and rows are 2,816.
      const perStep = bytes / (steps.to - steps.from);
      assert.ok(perStep > 0 && perStep < 8192, `${perStep} bytes uploaded per step`);
    } finally {
      engine.makeTensor = makeTensor;
      model.dispose();
    }
  },
});

Deno.test({
  name: "device augmentation equals augmentFromBanks on the host for the same seeds",
  ignore,
  async fn() {
    // Affine warps, elastic fields and noise together, all drawn from the same seeds.
    const options = { elasticProbability: 0.5, noiseProbability: 0.5, noiseSigma: 0.1 };
    const augmenter = DeviceAugmenter.create(images, 11)!;
    try {
      const device = augmenter.batch(onDevice, options, createRng(12));
      const out = (await device.data()) as Float32Array;
      device.dispose();
      const host = augmentFromBanks(gathered(), options, createRng(12), new AugmentBanks(11));
      assert.ok(maxDifference(out, host) < 1e-5, `max difference ${maxDifference(out, host)}`);
      assert.ok(maxDifference(host, gathered()) > 0.3, "the images were augmented");
    } finally {
      augmenter.dispose();
    }
  },
});
