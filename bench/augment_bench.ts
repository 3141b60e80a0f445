/**
 * Augmentation throughput on a batch of 256 synthetic digits.
 *
 * Run: `deno bench bench/augment_bench.ts`. Deno prints the time per
 * iteration; one iteration augments the whole batch, so
 * images/s = 256 / (time per iteration in seconds), e.g. 20 ms/iter is
 * 12,800 img/s. The second group compares training's mild augmentation with
 * a fresh elastic field for each image (`augmentBatch`) and with fields from
 * the run's banks (`augmentFromBanks`, as training augments).
 */
import {
  AugmentBanks,
  augmentBatch,
  augmentFromBanks,
  type AugmentOptions,
} from "../lib/augment.ts";
import { createRng } from "../lib/rng.ts";
import { MILD_AUGMENTATION } from "../lib/train.ts";

const COUNT = 256;

/** Ring-shaped "digits" with random centre, radius and stroke width. */
function syntheticDigits(count: number): Float32Array {
  const rng = createRng(1);
  const images = new Float32Array(count * 784);
  for (let n = 0; n < count; n++) {
    const cx = rng.uniform(11, 16), cy = rng.uniform(11, 16);
    const radius = rng.uniform(4, 8), width = rng.uniform(1, 2.5);
    for (let y = 0; y < 28; y++) {
      for (let x = 0; x < 28; x++) {
        const d = Math.abs(Math.hypot(x - cx, y - cy) - radius);
        images[n * 784 + y * 28 + x] = Math.max(0, Math.min(1, width - d));
      }
    }
  }
  return images;
}

const images = syntheticDigits(COUNT);
const off = {
  affineProbability: 0,
  elasticProbability: 0,
  noiseProbability: 0,
};
const cases: [string, AugmentOptions][] = [
  ["default options", {}],
  ["affine only (p = 1)", { ...off, affineProbability: 1 }],
  ["elastic only (p = 1)", { ...off, elasticProbability: 1 }],
  ["noise only (p = 1)", { ...off, noiseProbability: 1 }],
  [
    "everything (p = 1)",
    { affineProbability: 1, elasticProbability: 1, noiseProbability: 1 },
  ],
];

Deno.bench(
  "copy (baseline)",
  { group: "augmentBatch x256", baseline: true },
  () => {
    images.slice();
  },
);
for (const [name, options] of cases) {
  const rng = createRng(2);
  Deno.bench(name, { group: "augmentBatch x256" }, () => {
    augmentBatch(images, options, rng);
  });
}

const banks = new AugmentBanks(3);
banks.fields(MILD_AUGMENTATION.elasticSigma ?? 4); // drawn once, outside the timing
const mild = { group: "training's mild augmentation x256" };
const freshRng = createRng(2), bankRng = createRng(2);
Deno.bench("a fresh elastic field each (augmentBatch)", { ...mild, baseline: true }, () => {
  augmentBatch(images, MILD_AUGMENTATION, freshRng);
});
Deno.bench("fields from the banks (augmentFromBanks)", mild, () => {
  augmentFromBanks(images, MILD_AUGMENTATION, bankRng, banks);
});
