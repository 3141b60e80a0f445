/**
 * The summary line of a variant in `deno task ablation`: its mean and min
 * accuracy over the seeds run.
 *
 * @module
 */

/** A variant's accuracies over its seeds, each a fraction in [0, 1]. */
export interface SeedSummary {
  /** The variant's name. */
  name: string;
  /** How many seeds ran. */
  seeds: number;
  /** The mean accuracy, rounded to 6 decimals (so 0.9967, not 0.9966999999999999). */
  mean: number;
  /** The lowest accuracy. */
  min: number;
}

/**
 * Summarise a variant's accuracies. The mean is rounded to 6 decimals: the
 * mean of four accuracies on 10,000 images (steps of 1/40,000) is exact
 * there, and float noise from adding them is gone.
 *
 * @param name The variant's name.
 * @param accuracies Its accuracy per seed, each in [0, 1]; at least one.
 * @returns The name, the number of seeds, the mean and the min.
 * @throws {RangeError} For an empty list.
 */
export function seedSummary(name: string, accuracies: readonly number[]): SeedSummary {
  if (accuracies.length === 0) {
    throw new RangeError(`Cannot summarise "${name}": expected at least one accuracy, got none`);
  }
  const mean = accuracies.reduce((a, b) => a + b, 0) / accuracies.length;
  return {
    name,
    seeds: accuracies.length,
    mean: Number(mean.toFixed(6)),
    min: Math.min(...accuracies),
  };
}
