/**
 * Adam on one flat vector of parameters in plain JavaScript, without any
 * tensor kernels: each data-parallel worker applies it to its own copy of the
 * weights, one update per step (and the pipeline's test to its reference).
 *
 * @module
 */

/**
 * Adam with the constants and bias correction of `tf.train.adam`
 * (β1 0.9, β2 0.999, ε 1e-7), over a `Float32Array` of parameters. Internal.
 */
export class FlatAdam {
  #m: Float32Array;
  #v: Float32Array;
  #beta1Power = 1;
  #beta2Power = 1;
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;

  /**
   * @param size Number of parameters.
   * @param beta1 Decay of the first moment.
   * @param beta2 Decay of the second moment.
   * @param epsilon Added to the root of the second moment.
   */
  constructor(size: number, beta1 = 0.9, beta2 = 0.999, epsilon = 1e-7) {
    this.#m = new Float32Array(size);
    this.#v = new Float32Array(size);
    this.beta1 = beta1;
    this.beta2 = beta2;
    this.epsilon = epsilon;
  }

  /**
   * Apply one update in place.
   *
   * @param params The parameters, updated in place.
   * @param grads Gradients of the loss, same length.
   * @param learningRate Step size of this update.
   */
  step(params: Float32Array, grads: Float32Array, learningRate: number): void {
    if (params.length !== this.#m.length || grads.length !== this.#m.length) {
      throw new RangeError(
        `Cannot apply Adam: expected ${this.#m.length} parameters and gradients, got ${params.length} and ${grads.length}`,
      );
    }
    const { beta1, beta2, epsilon } = this;
    this.#beta1Power *= beta1;
    this.#beta2Power *= beta2;
    const c1 = 1 / (1 - this.#beta1Power), c2 = 1 / (1 - this.#beta2Power);
    const m = this.#m, v = this.#v;
    for (let i = 0; i < params.length; i++) {
      const g = grads[i];
      m[i] = beta1 * m[i] + (1 - beta1) * g;
      v[i] = beta2 * v[i] + (1 - beta2) * g * g;
      params[i] -= (learningRate * (m[i] * c1)) / (Math.sqrt(v[i] * c2) + epsilon);
    }
  }
}
