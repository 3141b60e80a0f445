/**
 * Adam on the device for the one-thread trainer (webgpu, cpu, or wasm with
 * `workers: 0`), with every parameter in one flat vector: a handful of
 * kernels and three uploaded numbers a step, whatever the number of weight
 * tensors.
 *
 * `tf.train.adam` updates each weight tensor on its own with about 13
 * kernels and 6 uploaded scalars (its constants are JavaScript numbers), so
 * for the default model's 14 weight tensors a step spends about 180 kernels
 * and 80 uploads on the optimizer; on a GPU each is a dispatch or a transfer.
 * Here the gradients are joined into one vector, the moments live in two
 * flat tensors and the constants are uploaded once: about 30 kernels and 3
 * uploads (the learning rate and the two bias corrections) a step.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";

/**
 * Adam (D. P. Kingma and J. Ba 2015, "Adam: A Method for Stochastic
 * Optimization", arXiv:1412.6980, Algorithm 1) with the constants and bias
 * correction of `tf.train.adam` (β1 0.9, β2 0.999, ε the backend's
 * epsilon, 1e-7 for float32), over a list of variables. Internal.
 */
export class DeviceAdam {
  /** The variables trained, in the order of the flat vector. */
  readonly variables: tf.Variable[];
  readonly #sizes: number[];
  #m: tf.Tensor1D;
  #v: tf.Tensor1D;
  /** β1, 1 − β1, β2, 1 − β2, ε, kept on the device. */
  readonly #constants: tf.Scalar[];
  #beta1Power = 1;
  #beta2Power = 1;
  readonly beta1: number;
  readonly beta2: number;

  /**
   * @param variables The variables to train, in a fixed order.
   * @param beta1 Decay of the first moment.
   * @param beta2 Decay of the second moment.
   */
  constructor(variables: tf.Variable[], beta1 = 0.9, beta2 = 0.999) {
    this.variables = variables;
    this.#sizes = variables.map((v) => v.size);
    const total = this.#sizes.reduce((a, b) => a + b, 0);
    this.#m = tf.zeros([total]);
    this.#v = tf.zeros([total]);
    this.beta1 = beta1;
    this.beta2 = beta2;
    const epsilon = tf.backend().epsilon();
    this.#constants = [beta1, 1 - beta1, beta2, 1 - beta2, epsilon].map((c) => tf.scalar(c));
  }

  /**
   * Apply one update to the variables.
   *
   * @param grads The gradient of each variable, by the variable's name (as
   *   `tf.variableGrads` returns them); not disposed.
   * @param learningRate Step size of this update.
   * @throws {RangeError} If a variable has no gradient.
   */
  step(grads: tf.NamedTensorMap, learningRate: number): void {
    const missing = this.variables.find((v) => !grads[v.name]);
    if (missing) {
      throw new RangeError(
        `Cannot apply Adam: expected a gradient for every variable, got none for "${missing.name}"`,
      );
    }
    this.#beta1Power *= this.beta1;
    this.#beta2Power *= this.beta2;
    const [beta1, oneMinusBeta1, beta2, oneMinusBeta2, epsilon] = this.#constants;
    const [m, v] = tf.tidy(() => {
      const g = tf.concat(this.variables.map((x) => tf.reshape(grads[x.name], [-1])));
      const m = tf.add(tf.mul(this.#m, beta1), tf.mul(g, oneMinusBeta1)) as tf.Tensor1D;
      const v = tf.add(tf.mul(this.#v, beta2), tf.mul(tf.square(g), oneMinusBeta2)) as tf.Tensor1D;
      // The three numbers that change every step: the only uploads.
      const lr = tf.scalar(-learningRate);
      const c1 = tf.scalar(1 / (1 - this.#beta1Power)), c2 = tf.scalar(1 / (1 - this.#beta2Power));
      const update = tf.mul(tf.div(tf.mul(m, c1), tf.add(tf.sqrt(tf.mul(v, c2)), epsilon)), lr);
      const params = tf.concat(this.variables.map((x) => tf.reshape(x, [-1])));
      const pieces = tf.split(tf.add(params, update), this.#sizes);
      this.variables.forEach((x, i) => x.assign(tf.reshape(pieces[i], x.shape)));
      return [m, v];
    });
    this.#m.dispose();
    this.#v.dispose();
    this.#m = m;
    this.#v = v;
  }

  /** Release the moments and constants. */
  dispose(): void {
    tf.dispose([this.#m, this.#v, ...this.#constants]);
  }
}
