/**
 * One seeded pseudo-random number generator for everything random in
 * tinymnist: shuffling, augmentation, dropout seeds and weight init.
 *
 * @module
 */

/** A seeded source of random numbers. */
export interface Rng {
  /** The next float, uniform in [0, 1). */
  next(): number;
  /** The next integer, uniform in [0, n). */
  int(n: number): number;
  /** The next float from the standard normal distribution N(0, 1). */
  normal(): number;
  /** The next float, uniform in [lo, hi). */
  uniform(lo: number, hi: number): number;
}

/**
 * Create a seeded RNG (sfc32, seeded through splitmix32). The same seed always
 * gives the same sequence.
 *
 * @param seed Any integer; it is reduced to 32 bits.
 * @returns A new, independent generator.
 *
 * @example Same seed, same numbers
 * ```ts
 * import { createRng } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * const a = createRng(42);
 * const b = createRng(42);
 * assert.equal(a.next(), b.next());
 * assert.ok(a.int(10) < 10);
 * ```
 */
export function createRng(seed: number): Rng {
  let s = seed >>> 0;
  const split = (): number => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  // The state lives in a typed array: 32-bit words above 2^30 kept in the
  // closure would be boxed as heap numbers, one allocation per call.
  const state = new Uint32Array([split(), split(), split(), split()]);
  const next = (): number => {
    const a = state[0], b = state[1], c = state[2], d = state[3];
    const t = (((a + b) >>> 0) + d) >>> 0;
    state[3] = d + 1;
    state[0] = b ^ (b >>> 9);
    state[1] = c + (c << 3);
    state[2] = ((c << 21) | (c >>> 11)) + t;
    return t / 4294967296;
  };
  for (let i = 0; i < 12; i++) next();
  let spare: number | undefined;
  return {
    next,
    int: (n) => Math.floor(next() * n),
    uniform: (lo, hi) => lo + (hi - lo) * next(),
    normal: () => {
      if (spare !== undefined) {
        const v = spare;
        spare = undefined;
        return v;
      }
      // Box-Muller; 1 - next() keeps log() away from 0.
      const r = Math.sqrt(-2 * Math.log(1 - next()));
      const theta = 2 * Math.PI * next();
      spare = r * Math.sin(theta);
      return r * Math.cos(theta);
    },
  };
}

/**
 * Shuffle an array in place (Fisher-Yates) with the given RNG.
 *
 * @param array The array to shuffle; it is modified.
 * @param rng The generator to draw from.
 * @returns The same array, shuffled.
 *
 * @example Shuffle indices reproducibly
 * ```ts
 * import { createRng, shuffle } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * const x = shuffle([0, 1, 2, 3, 4], createRng(1));
 * assert.deepEqual([...x].sort(), [0, 1, 2, 3, 4]);
 * ```
 */
export function shuffle<T extends { length: number; [i: number]: unknown }>(
  array: T,
  rng: Rng,
): T {
  for (let i = array.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = array[i];
    array[i] = array[j];
    array[j] = t;
  }
  return array;
}
