import assert from "node:assert/strict";
import {
  addNoise,
  affineBatch,
  AUGMENT_ROW,
  AugmentBanks,
  augmentBatch,
  augmentFromBanks,
  type AugmentOptions,
  drawAugmentation,
  ELASTIC_BANK_SIZE,
  elasticBatch,
  NOISE_BANK_SIZE,
  rotateBatch,
  shiftBatch,
} from "../lib/augment.ts";
import { createRng, type Rng } from "../lib/rng.ts";

const S = 28;
const P = S * S;

/** A batch of uniform random images: asymmetric, every pixel distinct. */
function randomBatch(count: number, seed: number): Float32Array {
  const rng = createRng(seed);
  const out = new Float32Array(count * P);
  for (let i = 0; i < out.length; i++) out[i] = rng.next();
  return out;
}

/** A digit-like "7": a thick bar and a thick diagonal with soft edges. */
function seven(): Float32Array {
  const img = new Float32Array(P);
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      const bar = y >= 6 && y <= 9 && x >= 7 && x <= 20;
      // distance to the segment (20, 8) -> (11, 22)
      const t = Math.max(0, Math.min(1, ((x - 20) * -9 + (y - 8) * 14) / 277));
      const d = Math.hypot(x - (20 - 9 * t), y - (8 + 14 * t));
      const diag = Math.max(0, Math.min(1, 2.5 - d));
      img[y * S + x] = Math.max(bar ? 1 : 0, diag);
    }
  }
  return img;
}

function batchOf(image: Float32Array, count: number): Float32Array {
  const out = new Float32Array(count * P);
  for (let n = 0; n < count; n++) out.set(image, n * P);
  return out;
}

const sum = (a: Float32Array): number => a.reduce((s, v) => s + v, 0);
const inRange = (a: Float32Array): boolean => a.every((v) => v >= 0 && v <= 1);
const maxAbsDiff = (a: Float32Array, b: Float32Array): number => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

// --- affine, rotate, shift -------------------------------------------------

Deno.test("affineBatch() with identity params returns an identical copy", () => {
  const images = randomBatch(3, 1);
  for (
    const params of [{}, { rotation: 0, dx: 0, dy: 0, scale: 1, shear: 0 }, [
      {},
      {},
      {},
    ]]
  ) {
    const out = affineBatch(images, params);
    assert.notEqual(out, images);
    assert.deepEqual(out, images);
  }
  assert.deepEqual(rotateBatch(images, 0), images);
  assert.deepEqual(rotateBatch(images, 360), images);
  assert.deepEqual(shiftBatch(images, 0, 0), images);
});

Deno.test("rotateBatch() by 90 degrees turns counter-clockwise exactly", () => {
  const images = randomBatch(2, 2);
  const out = rotateBatch(images, 90);
  for (let n = 0; n < 2; n++) {
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        // np.rot90: out[y][x] = in[x][27 - y]
        const expected = images[n * P + x * S + (S - 1 - y)];
        assert.ok(Math.abs(out[n * P + y * S + x] - expected) <= 1e-5);
      }
    }
  }
  // Four quarter turns (or one of -90 and one of 270) agree.
  assert.deepEqual(rotateBatch(images, -90), rotateBatch(images, 270));
  let r = images;
  for (let i = 0; i < 4; i++) r = rotateBatch(r, 90);
  assert.ok(maxAbsDiff(r, images) <= 1e-5);
  // The same through affineBatch.
  assert.ok(maxAbsDiff(affineBatch(images, { rotation: 90 }), out) <= 1e-5);
});

Deno.test("rotateBatch() keeps a centred round blob nearly unchanged", () => {
  const blob = new Float32Array(P);
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      blob[y * S + x] = Math.exp(-((x - 13.5) ** 2 + (y - 13.5) ** 2) / 18);
    }
  }
  assert.ok(maxAbsDiff(rotateBatch(blob, 37), blob) < 0.03);
});

Deno.test("shiftBatch() by whole pixels moves pixels exactly", () => {
  const images = randomBatch(2, 3);
  for (const [dx, dy] of [[3, -2], [-5, 4], [0, 27], [28, 0]]) {
    const out = shiftBatch(images, dx, dy);
    for (let n = 0; n < 2; n++) {
      for (let y = 0; y < S; y++) {
        for (let x = 0; x < S; x++) {
          const sx = x - dx, sy = y - dy;
          const inside = sx >= 0 && sx < S && sy >= 0 && sy < S;
          const expected = inside ? images[n * P + sy * S + sx] : 0;
          assert.equal(out[n * P + y * S + x], expected, `dx ${dx} dy ${dy}`);
        }
      }
    }
  }
});

Deno.test("shiftBatch() by half a pixel averages neighbours", () => {
  const image = new Float32Array(P);
  image[10 * S + 10] = 1;
  const out = shiftBatch(image, 0.5, 0);
  assert.equal(out[10 * S + 10], 0.5);
  assert.equal(out[10 * S + 11], 0.5);
  assert.equal(sum(out), 1);
});

Deno.test("affineBatch() composes rotation then translation", () => {
  const image = new Float32Array(P);
  image[14 * S + 27] = 1; // right edge
  const out = affineBatch(image, { rotation: 90, dx: 2 });
  assert.equal(out[0 * S + 16], 1); // rotated to the top, then 2 right
  assert.equal(sum(out), 1);
});

Deno.test("affineBatch() shears horizontally about the centre", () => {
  const image = new Float32Array(P);
  image[20 * S + 14] = 1; // 6.5 rows below the centre
  const out = affineBatch(image, { shear: 45 });
  // x' = x + tan(45°) (y - 13.5) = 20.5: split between columns 20 and 21
  assert.ok(Math.abs(out[20 * S + 20] - 0.5) < 1e-6);
  assert.ok(Math.abs(out[20 * S + 21] - 0.5) < 1e-6);
});

Deno.test("affineBatch() scales about the centre", () => {
  const image = new Float32Array(P);
  image[13 * S + 13] = 1;
  image[14 * S + 14] = 1;
  // Half size: output (x, y) samples 2(x - 13.5) + 13.5.
  const out = affineBatch(image, { scale: 0.5 });
  // Output pixel (13, 13) reads source (12.5, 12.5): a quarter of (13, 13).
  assert.equal(out[13 * S + 13], 0.25);
  assert.equal(out[14 * S + 14], 0.25);
});

Deno.test("affineBatch() applies per-image params", () => {
  const images = randomBatch(2, 4);
  const out = affineBatch(images, [{}, { rotation: 90 }]);
  assert.deepEqual(out.subarray(0, P), images.subarray(0, P));
  assert.deepEqual(
    out.subarray(P),
    rotateBatch(images.slice(P), 90),
  );
});

Deno.test("affineBatch(), rotateBatch() and shiftBatch() reject bad input", () => {
  const images = randomBatch(2, 5);
  assert.throws(() => affineBatch(images.slice(0, -100), {}), {
    name: "TypeError",
    message:
      "Cannot apply affine transform: expected a multiple of 784 pixels (n × 28 × 28), got 1468",
  });
  assert.throws(
    () => affineBatch([0, 1] as unknown as Float32Array, {}),
    {
      name: "TypeError",
      message: "Cannot apply affine transform: expected images as a Float32Array, got Array",
    },
  );
  assert.throws(() => affineBatch(images, [{}]), {
    name: "TypeError",
    message:
      "Cannot apply affine transform: expected params to have one entry per image (2), got 1",
  });
  assert.throws(() => affineBatch(images, [{}, { scale: 0 }]), {
    name: "RangeError",
    message:
      "Cannot apply affine transform: expected params[1].scale to be a finite number > 0, got 0",
  });
  assert.throws(() => affineBatch(images, { shear: 90 }), {
    name: "RangeError",
    message: "Cannot apply affine transform: expected params.shear in (-90, 90), got 90",
  });
  assert.throws(
    () => affineBatch(images, { dx: "1" as unknown as number }),
    {
      name: "TypeError",
      message: "Cannot apply affine transform: expected params.dx to be a number, got string",
    },
  );
  assert.throws(() => rotateBatch(images, NaN), {
    name: "RangeError",
    message: "Cannot rotate images: expected degrees to be a finite number, got NaN",
  });
  assert.throws(() => shiftBatch(images, 1, Infinity), {
    name: "RangeError",
    message: "Cannot shift images: expected dy to be a finite number, got Infinity",
  });
});

// --- noise -----------------------------------------------------------------

Deno.test("addNoise() clamps to [0, 1] and has the requested spread", () => {
  const flat = new Float32Array(20 * P).fill(0.5);
  const out = addNoise(flat, 0.1, createRng(1));
  assert.ok(inRange(out));
  const mean = sum(out) / out.length;
  const sd = Math.sqrt(
    out.reduce((s, v) => s + (v - mean) ** 2, 0) / out.length,
  );
  assert.ok(Math.abs(mean - 0.5) < 0.005, `mean ${mean}`);
  assert.ok(Math.abs(sd - 0.1) < 0.005, `sd ${sd}`);
  const strong = addNoise(randomBatch(2, 2), 2, createRng(2));
  assert.ok(inRange(strong));
  assert.ok(strong.some((v) => v === 0) && strong.some((v) => v === 1));
});

Deno.test("addNoise() with sigma 0 returns an identical copy", () => {
  const images = randomBatch(2, 6);
  const out = addNoise(images, 0, createRng(1));
  assert.notEqual(out, images);
  assert.deepEqual(out, images);
});

Deno.test("addNoise() rejects bad input", () => {
  const images = randomBatch(1, 7);
  assert.throws(() => addNoise(images, -0.1, createRng(1)), {
    name: "RangeError",
    message: "Cannot add noise: expected sigma to be a finite number >= 0, got -0.1",
  });
  assert.throws(() => addNoise(images, 0.1, undefined as unknown as Rng), {
    name: "TypeError",
    message: "Cannot add noise: expected rng to be an Rng (from createRng), got undefined",
  });
});

// --- elastic ---------------------------------------------------------------

Deno.test("elasticBatch() with alpha 0 returns an identical copy", () => {
  const images = randomBatch(2, 8);
  const out = elasticBatch(images, 0, 4, createRng(1));
  assert.notEqual(out, images);
  assert.deepEqual(out, images);
});

Deno.test("elasticBatch() distorts, stays in range and keeps the ink", () => {
  const digit = seven();
  const count = 64;
  const images = batchOf(digit, count);
  const out = elasticBatch(images, 34, 4, createRng(9));
  assert.ok(inRange(out));
  let ratioSum = 0, changeSum = 0;
  for (let n = 0; n < count; n++) {
    const one = out.subarray(n * P, (n + 1) * P);
    const change = maxAbsDiff(one, digit);
    assert.ok(change > 0.1, `image ${n} barely changed: ${change}`);
    // Local stretching moves ink around, but no image gains or loses most.
    const ratio = sum(one) / sum(digit);
    assert.ok(ratio > 0.5 && ratio < 2, `image ${n} ink ratio ${ratio}`);
    ratioSum += ratio;
    changeSum += sum(one.map((v, i) => Math.abs(v - digit[i]))) / sum(digit);
  }
  // On average the ink is preserved.
  const meanRatio = ratioSum / count;
  assert.ok(Math.abs(meanRatio - 1) < 0.1, `mean ink ratio ${meanRatio}`);
  // A distortion, not a scramble: most of the ink stays where it was.
  const meanChange = changeSum / count;
  assert.ok(meanChange > 0.05 && meanChange < 0.8, `change ${meanChange}`);
  // Each image gets its own field.
  assert.notDeepEqual(out.subarray(0, P), out.subarray(P, 2 * P));
});

Deno.test("elasticBatch() displaces by alpha times the Gaussian-blurred uniform field", () => {
  // Bilinear sampling reproduces a linear ramp exactly, so warping the ramp
  // x / 27 reveals the x displacement: out * 27 - x = dx(x, y).
  const ramp = new Float32Array(P);
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) ramp[y * S + x] = x / 27;
  }
  const alpha = 34, sigma = 4, seed = 11;
  const out = elasticBatch(ramp, alpha, sigma, createRng(seed));
  // The same seed gives the same fields, so a vertical ramp reveals dy.
  const rampY = rotateBatch(ramp, -90); // value y / 27
  const outY = elasticBatch(rampY, alpha, sigma, createRng(seed));
  // Reference: the same draws (each 32-bit draw split into a 16-bit uniform
  // for x and one for y), a naive 2-D convolution with the normalised,
  // truncated (radius 3 sigma) Gaussian and zero padding.
  const rng = createRng(seed);
  const ux: number[] = [], uy: number[] = [];
  for (let i = 0; i < P; i++) {
    const bits = rng.next() * 2 ** 32;
    ux.push((Math.floor(bits / 65536) + 0.5) / 32768 - 1);
    uy.push(((bits % 65536) + 0.5) / 32768 - 1);
  }
  const r = Math.ceil(3 * sigma);
  const g = Array.from(
    { length: 2 * r + 1 },
    (_, i) => Math.exp(-((i - r) ** 2) / (2 * sigma * sigma)),
  );
  const gSum = g.reduce((a, b) => a + b, 0);
  const blur = (u: number[], x: number, y: number) => {
    let v = 0;
    for (let j = -r; j <= r; j++) {
      for (let i = -r; i <= r; i++) {
        const xx = x + i, yy = y + j;
        if (xx < 0 || xx >= S || yy < 0 || yy >= S) continue;
        v += g[i + r] * g[j + r] * u[yy * S + xx];
      }
    }
    return (alpha * v) / (gSum * gSum);
  };
  let checked = 0;
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      const dx = blur(ux, x, y), dy = blur(uy, x, y);
      const sx = x + dx, sy = y + dy;
      if (sx < 0 || sx > 26 || sy < 0 || sy > 26) continue; // border
      const got = out[y * S + x] * 27 - x;
      assert.ok(Math.abs(got - dx) < 1e-4, `(${x}, ${y}): ${got} vs ${dx}`);
      const gotY = outY[y * S + x] * 27 - y;
      assert.ok(Math.abs(gotY - dy) < 1e-4, `(${x}, ${y}): ${gotY} vs ${dy}`);
      checked++;
    }
  }
  assert.ok(checked > 500, `checked ${checked}`);
});

Deno.test("elasticBatch() is smooth: a small alpha moves pixels a little", () => {
  const digit = seven();
  const out = elasticBatch(digit, 1, 4, createRng(3));
  assert.ok(maxAbsDiff(out, digit) < 0.2);
});

Deno.test("elasticBatch() is reproducible per seed", () => {
  const images = batchOf(seven(), 2);
  const a = elasticBatch(images, 34, 4, createRng(5));
  assert.deepEqual(elasticBatch(images, 34, 4, createRng(5)), a);
  assert.notDeepEqual(elasticBatch(images, 34, 4, createRng(6)), a);
});

Deno.test("elasticBatch() rejects bad input", () => {
  const images = seven();
  assert.throws(() => elasticBatch(images, -1, 4, createRng(1)), {
    name: "RangeError",
    message: "Cannot apply elastic distortion: expected alpha to be a finite number >= 0, got -1",
  });
  assert.throws(() => elasticBatch(images, 34, -4, createRng(1)), {
    name: "RangeError",
    message: "Cannot apply elastic distortion: expected sigma to be a finite number >= 0, got -4",
  });
});

// --- augmentBatch ----------------------------------------------------------

Deno.test("augmentBatch() is reproducible per seed and stays in range", () => {
  const images = batchOf(seven(), 32);
  const a = augmentBatch(images, {}, createRng(1));
  assert.equal(a.length, images.length);
  assert.ok(inRange(a));
  assert.deepEqual(augmentBatch(images, {}, createRng(1)), a);
  assert.notDeepEqual(augmentBatch(images, {}, createRng(2)), a);
  // Images are augmented independently.
  assert.notDeepEqual(a.subarray(0, P), a.subarray(P, 2 * P));
});

Deno.test("augmentBatch() with identity options returns an identical copy", () => {
  const images = randomBatch(8, 10);
  const identities: AugmentOptions[] = [
    { strength: 0 },
    { strength: 0, affineProbability: 1, elasticProbability: 1 },
    { affineProbability: 0, elasticProbability: 0, noiseProbability: 0 },
    {
      affineProbability: 1,
      elasticProbability: 1,
      noiseProbability: 1,
      rotationDegrees: 0,
      translate: 0,
      scale: [1, 1],
      shearDegrees: 0,
      elasticAlpha: 0,
      noiseSigma: 0,
    },
  ];
  for (const options of identities) {
    const out = augmentBatch(images, options, createRng(1));
    assert.notEqual(out, images);
    assert.deepEqual(out, images, JSON.stringify(options));
  }
});

Deno.test("augmentBatch() applies each transform with its probability", () => {
  const images = batchOf(seven(), 200);
  const only = { affineProbability: 0, elasticProbability: 0 };
  const out = augmentBatch(
    images,
    { ...only, noiseProbability: 0.25 },
    createRng(4),
  );
  let changed = 0;
  for (let n = 0; n < 200; n++) {
    if (maxAbsDiff(out.subarray(n * P, (n + 1) * P), images.subarray(0, P))) {
      changed++;
    }
  }
  assert.ok(changed > 30 && changed < 70, `changed ${changed} of 200`);
});

Deno.test("augmentBatch() strength scales the distortion", () => {
  const images = batchOf(seven(), 64);
  const change = (strength: number) => {
    const out = augmentBatch(
      images,
      { strength, affineProbability: 1, elasticProbability: 1 },
      createRng(8),
    );
    return sum(out.map((v, i) => Math.abs(v - images[i])));
  };
  const weak = change(0.2), strong = change(1);
  assert.ok(weak > 0 && weak < strong, `weak ${weak} strong ${strong}`);
});

Deno.test("no function modifies its input", () => {
  const images = batchOf(seven(), 4);
  const copy = images.slice();
  augmentBatch(images, {
    affineProbability: 1,
    elasticProbability: 1,
    noiseProbability: 1,
  }, createRng(1));
  affineBatch(images, { rotation: 10, scale: 1.1 });
  rotateBatch(images, 30);
  shiftBatch(images, 1.5, -2);
  addNoise(images, 0.3, createRng(1));
  elasticBatch(images, 34, 4, createRng(1));
  assert.deepEqual(images, copy);
});

Deno.test("augmentBatch() rejects bad input with exact messages", () => {
  const images = batchOf(seven(), 2);
  const rng = createRng(1);
  const cases: [unknown, string, string][] = [
    [
      { affineProbability: 1.5 },
      "RangeError",
      "Cannot augment images: expected options.affineProbability in [0, 1], got 1.5",
    ],
    [
      { noiseProbability: -0.1 },
      "RangeError",
      "Cannot augment images: expected options.noiseProbability in [0, 1], got -0.1",
    ],
    [
      { strength: 2 },
      "RangeError",
      "Cannot augment images: expected options.strength in [0, 1], got 2",
    ],
    [
      { noiseSigma: -0.1 },
      "RangeError",
      "Cannot augment images: expected options.noiseSigma to be a finite number >= 0, got -0.1",
    ],
    [
      { elasticSigma: -4 },
      "RangeError",
      "Cannot augment images: expected options.elasticSigma to be a finite number >= 0, got -4",
    ],
    [
      { elasticAlpha: Infinity },
      "RangeError",
      "Cannot augment images: expected options.elasticAlpha to be a finite number >= 0, got Infinity",
    ],
    [
      { rotationDegrees: 200 },
      "RangeError",
      "Cannot augment images: expected options.rotationDegrees in [0, 180], got 200",
    ],
    [
      { translate: 1.5 },
      "RangeError",
      "Cannot augment images: expected options.translate in [0, 1], got 1.5",
    ],
    [
      { shearDegrees: 90 },
      "RangeError",
      "Cannot augment images: expected options.shearDegrees in [0, 90), got 90",
    ],
    [
      { scale: [1.2, 0.8] },
      "RangeError",
      "Cannot augment images: expected options.scale to satisfy 0 < min <= max < Infinity, got [1.2, 0.8]",
    ],
    [
      { scale: 1.2 },
      "TypeError",
      "Cannot augment images: expected options.scale to be a [min, max] pair of numbers, got 1.2",
    ],
    [
      { rotationDegrees: "30" },
      "TypeError",
      "Cannot augment images: expected options.rotationDegrees to be a number, got string",
    ],
    [
      null,
      "TypeError",
      "Cannot augment images: expected options to be an object, got null",
    ],
  ];
  for (const [options, name, message] of cases) {
    assert.throws(
      () => augmentBatch(images, options as AugmentOptions, rng),
      { name, message },
    );
  }
  assert.throws(() => augmentBatch(images.slice(0, -100), {}, rng), {
    name: "TypeError",
    message: "Cannot augment images: expected a multiple of 784 pixels (n × 28 × 28), got 1468",
  });
  assert.throws(
    () => augmentBatch(new Float64Array(P) as unknown as Float32Array, {}, rng),
    {
      name: "TypeError",
      message: "Cannot augment images: expected images as a Float32Array, got Float64Array",
    },
  );
  assert.throws(
    () => augmentBatch(images, {}, undefined as unknown as Rng),
    {
      name: "TypeError",
      message: "Cannot augment images: expected rng to be an Rng (from createRng), got undefined",
    },
  );
});

Deno.test("augmentBatch() accepts an empty batch", () => {
  assert.deepEqual(
    augmentBatch(new Float32Array(0), {}, createRng(1)),
    new Float32Array(0),
  );
});

// --- augmentation from banks (training's host path) ------------------------

Deno.test("augmentFromBanks() is reproducible per seed, stays in range and copies identities", () => {
  const images = batchOf(seven(), 32);
  const banks = new AugmentBanks(5);
  const a = augmentFromBanks(images, { noiseProbability: 0.5 }, createRng(1), banks);
  assert.ok(inRange(a));
  assert.deepEqual(augmentFromBanks(images, { noiseProbability: 0.5 }, createRng(1), banks), a);
  assert.deepEqual(
    augmentFromBanks(images, { noiseProbability: 0.5 }, createRng(1), new AugmentBanks(5)),
    a,
    "the same seed gives the same banks",
  );
  assert.notDeepEqual(augmentFromBanks(images, {}, createRng(2), banks), a);
  const random = randomBatch(8, 10);
  const copy = augmentFromBanks(random, { strength: 0 }, createRng(1), banks);
  assert.notEqual(copy, random);
  assert.deepEqual(copy, random);
  assert.throws(() => augmentFromBanks(random, { strength: 2 }, createRng(1), banks), RangeError);
  assert.throws(() => augmentFromBanks(new Float32Array(5), {}, createRng(1), banks), TypeError);
});

Deno.test("augmentFromBanks(): a bank of constant displacement shifts each image by ±alpha times it", () => {
  // Every field displaces by (1, 0.5) px; with alpha 2 and the drawn sign s an output
  // pixel reads the source at (x + 2s, y + s): the image moves by (-2s, -s).
  const bank = new Float32Array(ELASTIC_BANK_SIZE * 2 * P);
  for (let k = 0; k < ELASTIC_BANK_SIZE; k++) {
    bank.fill(1, 2 * k * P, (2 * k + 1) * P);
    bank.fill(0.5, (2 * k + 1) * P, (2 * k + 2) * P);
  }
  const options = {
    affineProbability: 0,
    elasticProbability: 1,
    elasticAlpha: 2,
    noiseProbability: 0,
  };
  const images = randomBatch(16, 3);
  const out = augmentFromBanks(images, options, createRng(9), new AugmentBanks(1, bank));
  const rows = drawAugmentation(16, options, createRng(9), ELASTIC_BANK_SIZE, NOISE_BANK_SIZE);
  const signs = Array.from({ length: 16 }, (_, i) => Math.sign(rows[i * AUGMENT_ROW + 6]));
  assert.ok(signs.includes(1) && signs.includes(-1));
  for (let i = 0; i < 16; i++) {
    const shifted = shiftBatch(images.subarray(i * P, (i + 1) * P), -2 * signs[i], -signs[i]);
    assert.ok(maxAbsDiff(out.subarray(i * P, (i + 1) * P), shifted) < 1e-6, `image ${i}`);
  }
});

Deno.test("augmentFromBanks(): noise from the bank has sigma's size, clamped to [0, 1]", () => {
  const GREY = Math.fround(0.5);
  const images = new Float32Array(64 * P).fill(GREY);
  const options = {
    affineProbability: 0,
    elasticProbability: 0,
    noiseProbability: 1,
    noiseSigma: 0.1,
  };
  const out = augmentFromBanks(images, options, createRng(4), new AugmentBanks(2));
  for (let i = 0; i < 64; i++) {
    const image = out.subarray(i * P, (i + 1) * P);
    const sd = Math.sqrt(image.reduce((a, v) => a + (v - GREY) ** 2, 0) / P);
    assert.ok(sd > 0.08 && sd < 0.12, `image ${i}: ${sd}`);
  }
  assert.ok(inRange(out));
});
