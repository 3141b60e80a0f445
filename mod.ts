/**
 * tinymnist.
 * @module
 */
export { createRng, type Rng, shuffle } from "./lib/rng.ts";
