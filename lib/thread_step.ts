/**
 * Training steps in this thread, on the active backend (webgpu, or wasm
 * and cpu with no workers): Adam on one flat vector on the device, and the
 * loss left on the device until the caller reads it.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { AugmentBanks, augmentFromBanks, type AugmentOptions } from "./augment.ts";
import { DeviceAdam } from "./device_adam.ts";
import { DeviceAugmenter } from "./device_augment.ts";
import { trainingLogits } from "./forward.ts";
import { gatherImages, IMAGE_PIXELS, IMAGE_SIZE } from "./images.ts";
import { softTargets, trainingLoss } from "./loss.ts";
import type { StepContext, TrainingStep } from "./training_step.ts";

/** Whether every weight of a model is finite; one small read-back. */
async function allWeightsFinite(net: tf.LayersModel): Promise<boolean> {
  // The sum of all weights is finite exactly when every weight is (barring
  // overflow to ±Infinity, which is itself divergence).
  const total = tf.tidy(() => tf.addN(net.weights.map((w) => w.read().sum())));
  const [value] = await total.data();
  total.dispose();
  return Number.isFinite(value);
}

/**
 * The step that trains in this thread. On webgpu the training set is uploaded
 * once (one byte a pixel) and each batch is gathered, and augmented, on the
 * GPU ({@linkcode DeviceAugmenter}): a step uploads the batch's indices and
 * its augmentation parameters, not its pixels; images that are not 8-bit
 * are augmented here and uploaded batch by batch. On wasm and cpu, whose
 * tensors live in this process's memory, each augmented batch is augmented
 * here (`augmentFromBanks`, from the same banks as the device's, faster
 * there) and copied in; without augmentation it
 * is gathered from the training set copied in once. Per-example losses go to
 * the tracker as tensors, read back in batches. Internal.
 *
 * @param context The model, data and loss settings.
 * @param augmented Whether any batch of the run is augmented.
 * @returns The step; its `finish` frees the optimiser and the uploaded data.
 */
export function threadStep(context: StepContext, augmented: boolean): TrainingStep {
  const { net, data, rng, tracker, teacher } = context;
  const optimizer = new DeviceAdam(net.trainableWeights.map((w) => w.read() as tf.Variable));
  const webgpu = tf.getBackend() === "webgpu";
  // One seed for the banks, on the device or here: the same draws either way.
  const bankSeed = rng.int(2 ** 31);
  const device = webgpu ? DeviceAugmenter.create(data.images, bankSeed) : null;
  const banks = new AugmentBanks(bankSeed);
  // On webgpu a float32 copy of the whole training set may not fit one storage binding.
  const allImages = webgpu || augmented
    ? null
    : tf.tensor4d(data.images, [data.count, IMAGE_SIZE, IMAGE_SIZE, 1]);
  const allLabels = tf.tensor1d(data.labels, "int32");
  let pixels = new Float32Array(0); // reused, grown to the largest batch
  /** The batch `ids` on the backend, augmented when `augment` is given. */
  const batchOf = (ids: Int32Array, indices: tf.Tensor1D, augment: AugmentOptions | null) => {
    if (device) return device.batch(indices, augment, rng);
    if (allImages) return tf.gather(allImages, indices);
    if (pixels.length < ids.length * IMAGE_PIXELS) {
      pixels = new Float32Array(ids.length * IMAGE_PIXELS);
    }
    const batch = gatherImages(data.images, ids, pixels);
    return tf.tensor4d(
      augment ? augmentFromBanks(batch, augment, rng, banks) : batch,
      [ids.length, IMAGE_SIZE, IMAGE_SIZE, 1],
    );
  };
  return {
    take(ids, learningRate, augment) {
      const indices = tf.tensor1d(ids, "int32");
      const x = batchOf(ids, indices, augment);
      let perExample: tf.Tensor | undefined;
      // The teacher sees the same (augmented) images, in inference mode, outside the gradient.
      const soft = teacher &&
        tf.tidy(() =>
          softTargets(teacher.net.predict(x) as tf.Tensor, teacher.settings.temperature)
        );
      const { value: loss, grads } = tf.variableGrads(() =>
        tf.tidy(() => {
          const logits = trainingLogits(net, x);
          const each = trainingLoss(
            logits,
            tf.gather(allLabels, indices),
            context.smoothing,
            soft,
            teacher?.settings ?? null,
          );
          if (tracker) perExample = tf.keep(each);
          return each.mean().asScalar();
        }), optimizer.variables);
      optimizer.step(grads, learningRate);
      tf.dispose(grads);
      x.dispose();
      indices.dispose();
      soft?.dispose();
      if (perExample) tracker!.defer(ids, perExample);
      return Promise.resolve(loss);
    },
    weightsFinite: () => allWeightsFinite(net),
    drain: () => Promise.resolve(),
    finish() {
      device?.dispose();
      allImages?.dispose();
      allLabels.dispose();
      optimizer.dispose();
    },
  };
}
