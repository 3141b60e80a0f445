/**
 * A classifier that scores images on both cores: the wasm workers of the
 * data-parallel trainer, each with a replica of the model, each scoring its
 * share of every call. Used by the command line to evaluate a model and
 * compute its robustness report after training. Internal.
 *
 * @module
 */
import { checkImages } from "./images.ts";
import { argmaxRows, type Classifier, layersModelOf } from "./model.ts";
import { GradientWorkers, readFlat } from "./parallel.ts";

/**
 * Start `workers` wasm workers holding `model`'s current weights, and return
 * a classifier that splits each `predict`/`classify` call between them. The
 * answers are those of `model.predict` (same network and weights, inference
 * mode), computed elsewhere.
 *
 * @param model A classifier from `createModel` or `loadModel`.
 * @param workers Number of workers (≥ 1).
 * @returns A classifier; its `dispose` stops the workers (the model is not disposed).
 */
export async function parallelClassifier(
  model: Classifier,
  workers: number,
): Promise<Classifier> {
  const net = layersModelOf(model);
  const pool = await GradientWorkers.start(workers, net, 0);
  const params = readFlat(net.trainableWeights), state = readFlat(net.nonTrainableWeights);
  let closed = false;
  const predict = async (
    images: Float32Array,
    options: { count?: number } = {},
    action = "predict",
  ): Promise<Float32Array> => {
    if (closed) {
      throw new TypeError(`Cannot ${action}: expected live workers, got ones that were stopped`);
    }
    const count = checkImages(images, action, options);
    return await pool.predict(params, state, images, count);
  };
  return {
    preset: model.preset,
    params: model.params,
    card: model.card,
    summary: () => model.summary(),
    predict: (images, options) => predict(images, options),
    classify: async (images, options) => argmaxRows(await predict(images, options, "classify")),
    dispose: () => {
      closed = true;
      pool.close();
    },
  };
}
