/**
 * Tests for `preprocessDigit`: real MNIST test digits are rendered into the
 * forms a user's image comes in (bigger, inverted, coloured, with alpha,
 * 16-bit) and must come back close to the original 28×28 digit.
 */
import assert from "node:assert/strict";
import { type PixelImage, preprocessDigit } from "../lib/preprocess.ts";
import {
  BLACK,
  BLUE_INK,
  CREAM_PAPER,
  grey,
  grey16,
  inkOnPaper,
  onTransparent,
  upscale,
  WHITE,
} from "./_digit_forms.ts";
import { loadRealMnist } from "./_fixtures.ts";

const { test } = await loadRealMnist();
/** How many test digits each form is checked on. */
const SAMPLES = 200;
const digits = Array.from(
  { length: SAMPLES },
  (_, n) => test.images.subarray(n * 784, (n + 1) * 784),
);

/** The digit cut down to its ink's bounding box plus `margin` px, as an 8-bit grey image. */
function cropToInk(digit: Float32Array, margin: number): PixelImage {
  const ink = (x: number, y: number) => digit[y * 28 + x] > 0;
  const all = [...Array(28).keys()];
  const rows = all.filter((y) => all.some((x) => ink(x, y)));
  const cols = all.filter((x) => all.some((y) => ink(x, y)));
  const x0 = Math.max(0, cols[0] - margin), y0 = Math.max(0, rows[0] - margin);
  const width = Math.min(28, cols.at(-1)! + 1 + margin) - x0;
  const height = Math.min(28, rows.at(-1)! + 1 + margin) - y0;
  const data = Uint8Array.from(
    { length: width * height },
    (_, p) => Math.round(255 * digit[(y0 + Math.floor(p / width)) * 28 + x0 + (p % width)]),
  );
  return { width, height, data };
}

/** Nearest-neighbour enlargement of a 28×28 digit by a whole factor (each pixel a `k × k` block). */
function enlargeBlocks(digit: Float32Array, k: number): Float32Array {
  const size = 28 * k;
  return Float32Array.from(
    { length: size * size },
    (_, p) => digit[Math.floor(p / size / k) * 28 + Math.floor((p % size) / k)],
  );
}

/** A `width × height` 8-bit grey image, black but for the white rectangle `[x, x + w) × [y, y + h)`. */
function rectangle(
  width: number,
  height: number,
  [x0, y0, w, h]: [number, number, number, number],
): PixelImage {
  const data = new Uint8Array(width * height);
  for (let y = y0; y < y0 + h; y++) data.fill(255, y * width + x0, y * width + x0 + w);
  return { width, height, data };
}

/** A 28×28 field, black but for the white rectangle `[x, x + w) × [y, y + h)`. */
function field([x0, y0, w, h]: [number, number, number, number]): Float32Array {
  const out = new Float32Array(784);
  for (let y = y0; y < y0 + h; y++) out.fill(1, y * 28 + x0, y * 28 + x0 + w);
  return out;
}

/** Mean absolute difference of two 784-pixel images. */
function meanAbsDiff(a: Float32Array, b: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < 784; i++) sum += Math.abs(a[i] - b[i]);
  return sum / 784;
}

/** Centre of mass (Σ v·x / Σ v over pixel indices) of a 28×28 image, as [x, y]. */
function centreOfMass(image: Float32Array): [number, number] {
  let mass = 0, sumX = 0, sumY = 0;
  image.forEach((v, p) => {
    mass += v;
    sumX += v * (p % 28);
    sumY += v * Math.floor(p / 28);
  });
  return [sumX / mass, sumY / mass];
}

/**
 * Bounds on the per-image mean absolute difference to the original digit
 * (levels in [0, 1]), measured on these 200 digits. Shifting a digit by one
 * pixel alone costs it 0.065 on average (0.101 at most, first 1000 test
 * digits), so the looser bound means "no worse than a one-pixel slip".
 */
const BOUND = {
  /** 28 px input: only the stretch to max 1 changes it (254/255 → 1); worst measured 0.0008. */
  exact: 0.002,
  /**
   * Bilinear enlargement blurs the edges, which widens the ink's box by about
   * a pixel, so the digit comes back slightly smaller; worst measured 0.085
   * (200 px) and 0.081 (56 px); mean 0.032 and 0.036.
   */
  worst: 0.1,
  /** Bound on the mean over the 200 digits of a form. */
  mean: 0.045,
};

/** Each form a digit is rendered in, and the bound on its worst mean absolute difference. */
const FORMS: [string, (digit: Float32Array) => PixelImage, number][] = [
  ["28 px grey (the original)", (d) => grey(d), BOUND.exact],
  ["28 px grey, dark on light", (d) => grey(d, true), BOUND.exact],
  ["28 px 16-bit grey", grey16, BOUND.exact],
  ["28 px RGB grey", (d) => inkOnPaper(d, WHITE, BLACK), BOUND.exact],
  ["28 px black ink on a transparent canvas", (d) => onTransparent(d, BLACK), BOUND.exact],
  ["digit cropped to its ink plus 1 px", (d) => cropToInk(d, 1), BOUND.exact],
  [
    "196 px grey, 7×7 blocks (area averaging undoes them)",
    (d) => grey(enlargeBlocks(d, 7)),
    BOUND.exact,
  ],
  ["56 px grey", (d) => grey(upscale(d, 56)), BOUND.worst],
  ["200 px grey", (d) => grey(upscale(d, 200)), BOUND.worst],
  ["200 px grey, dark on light", (d) => grey(upscale(d, 200), true), BOUND.worst],
  ["200 px 16-bit grey", (d) => grey16(upscale(d, 200)), BOUND.worst],
  [
    "200 px blue ink on cream paper, RGB",
    (d) => inkOnPaper(upscale(d, 200), BLUE_INK, CREAM_PAPER),
    BOUND.worst,
  ],
  [
    "200 px blue ink on cream paper, opaque RGBA",
    (d) => inkOnPaper(upscale(d, 200), BLUE_INK, CREAM_PAPER, 4),
    BOUND.worst,
  ],
  [
    "200 px black ink on a transparent canvas",
    (d) => onTransparent(upscale(d, 200), BLACK),
    BOUND.worst,
  ],
  [
    "200 px white ink on a transparent canvas",
    (d) => onTransparent(upscale(d, 200), WHITE),
    BOUND.worst,
  ],
  [
    "200 px blue ink on a transparent canvas",
    (d) => onTransparent(upscale(d, 200), BLUE_INK),
    BOUND.worst,
  ],
  [
    "200 px grey+alpha, black ink on a transparent canvas",
    (d) => onTransparent(upscale(d, 200), BLACK, 2),
    BOUND.worst,
  ],
];

for (const [name, render, bound] of FORMS) {
  Deno.test(`preprocessDigit() brings back real MNIST digits from ${name}`, () => {
    const diffs: number[] = [];
    for (const digit of digits) {
      const out = preprocessDigit(render(digit));
      assert.equal(out.length, 784);
      assert.ok(out.every((v) => v >= 0 && v <= 1), "a value outside [0, 1]");
      diffs.push(meanAbsDiff(out, digit));
      // Rounding the shift leaves at most half a pixel (no box here is clamped).
      const [x, y] = centreOfMass(out);
      assert.ok(
        Math.max(Math.abs(x - 14), Math.abs(y - 14)) <= 0.501,
        `centre of mass (${x}, ${y})`,
      );
    }
    const worst = Math.max(...diffs), mean = diffs.reduce((a, b) => a + b) / diffs.length;
    assert.ok(worst < bound, `worst mean absolute difference ${worst}, want < ${bound}`);
    assert.ok(mean < BOUND.mean, `mean absolute difference ${mean}, want < ${BOUND.mean}`);
  });
}

Deno.test("preprocessDigit() scales a 20×20 or 40×40 square to a 20×20 block at pixel 5", () => {
  // Centre of mass 9.5 in the box; round(14 - 9.5) = 5, so the block covers pixels 5..24.
  const block = field([5, 5, 20, 20]);
  assert.deepEqual(preprocessDigit(rectangle(30, 40, [3, 7, 20, 20])), block);
  assert.deepEqual(preprocessDigit(rectangle(60, 50, [11, 2, 40, 40])), block);
});

Deno.test("preprocessDigit() keeps the aspect ratio of thin strokes and dots", () => {
  // 3×50 → 1×20 (3 × 0.4 = 1.2 rounds to 1); area averaging keeps the level at 1.
  const vertical = preprocessDigit(rectangle(40, 60, [17, 4, 3, 50]));
  assert.deepEqual(vertical.map((v) => Math.round(v * 1e6) / 1e6), field([14, 5, 1, 20]));
  const horizontal = preprocessDigit(rectangle(60, 40, [4, 17, 50, 3]));
  assert.deepEqual(horizontal.map((v) => Math.round(v * 1e6) / 1e6), field([5, 14, 20, 1]));
  // A 1×1 dot is enlarged like any digit: its longer side becomes 20.
  assert.deepEqual(preprocessDigit(rectangle(28, 28, [3, 20, 1, 1])), field([5, 5, 20, 20]));
  // A 2×7 stroke (not a whole-number scale) → 6×20; centre of mass 2.5 → round(11.5) = 12.
  const stroke = preprocessDigit(rectangle(10, 10, [4, 1, 2, 7]));
  assert.deepEqual(stroke.map((v) => Math.round(v * 1e6) / 1e6), field([12, 5, 6, 20]));
});

const BLANK = "Cannot preprocess image: expected a digit, got a blank image";

Deno.test("preprocessDigit() rejects blank images", () => {
  const cases: [string, PixelImage, string][] = [
    [
      "all white",
      { width: 28, height: 28, data: new Uint8Array(784 * 3).fill(255) },
      "contrast 0.000, need 0.1",
    ],
    [
      "uniform grey",
      { width: 5, height: 7, data: new Uint8Array(35).fill(128) },
      "contrast 0.000, need 0.1",
    ],
    ["one pixel", { width: 1, height: 1, data: new Uint8Array([200]) }, "contrast 0.000, need 0.1"],
    [
      "16-bit black",
      { width: 4, height: 4, data: new Uint16Array(16) },
      "contrast 0.000, need 0.1",
    ],
    [
      "transparent",
      { width: 28, height: 28, data: new Uint8ClampedArray(784 * 4) },
      "no pixel is opaque",
    ],
  ];
  for (const [name, image, detail] of cases) {
    assert.throws(() => preprocessDigit(image), {
      name: "RangeError",
      message: `${BLANK} (${detail})`,
    }, name);
  }
  // A faint mark: 20 of 255 levels above the paper is below the 0.1 contrast needed.
  const faint = { width: 28, height: 28, data: new Uint8Array(784).fill(230) };
  faint.data.fill(210, 300, 310);
  assert.throws(() => preprocessDigit(faint), {
    name: "RangeError",
    message: `${BLANK} (contrast 0.078, need 0.1)`,
  });
});

Deno.test("preprocessDigit() rejects data of the wrong type or length", () => {
  const data = grey(digits[0]).data;
  const rgba = inkOnPaper(digits[0], BLACK, WHITE, 4).data;
  const cases: [PixelImage, string][] = [
    [null as unknown as PixelImage, "expected an object with width, height and data, got null"],
    [
      { width: "28", height: 28, data } as unknown as PixelImage,
      "expected width a positive integer, got string",
    ],
    [
      { width: 28, height: 28, data: Float32Array.from(data) } as unknown as PixelImage,
      "expected data to be a Uint8Array, Uint8ClampedArray or Uint16Array, got Float32Array",
    ],
    [
      { width: 28, height: 28, data: [...data] } as unknown as PixelImage,
      "expected data to be a Uint8Array, Uint8ClampedArray or Uint16Array, got Array",
    ],
    [
      { width: 28, height: 28, data: rgba.slice(0, -100), channels: 4 },
      "expected data.length 3136 (28×28×4), got 3036",
    ],
    [
      { width: 28, height: 28, data: rgba.slice(0, -100) },
      "expected data.length 1–4 × 784 (28×28 pixels), got 3036",
    ],
    [
      { width: 28, height: 28, data: new Uint8Array(784 * 5) },
      "expected data.length 1–4 × 784 (28×28 pixels), got 3920",
    ],
    [
      { width: 28, height: 28, data, depth: 16 },
      "expected data to be a Uint16Array for depth 16, got Uint8Array",
    ],
  ];
  for (const [image, message] of cases) {
    assert.throws(() => preprocessDigit(image), {
      name: "TypeError",
      message: `Cannot preprocess image: ${message}`,
    });
  }
});

Deno.test("preprocessDigit() rejects numbers out of range", () => {
  const data = grey(digits[0]).data;
  const wide = Uint16Array.from(data);
  wide[5] = 300;
  const cases: [PixelImage, string][] = [
    [{ width: 0, height: 28, data }, "expected width a positive integer, got 0"],
    [{ width: 28, height: 2.5, data }, "expected height a positive integer, got 2.5"],
    [{ width: 28, height: NaN, data }, "expected height a positive integer, got NaN"],
    [{ width: 28, height: 28, data, channels: 5 }, "expected channels 1–4, got 5"],
    [{ width: 28, height: 28, data, depth: 12 }, "expected depth 8 or 16, got 12"],
    [
      { width: 28, height: 28, data: wide, depth: 8 },
      "expected samples 0–255 for depth 8, got 300 at index 5",
    ],
  ];
  for (const [image, message] of cases) {
    assert.throws(() => preprocessDigit(image), {
      name: "RangeError",
      message: `Cannot preprocess image: ${message}`,
    });
  }
});

Deno.test("preprocessDigit() reads 8-bit samples from a Uint16Array with depth 8", () => {
  const digit = digits[0];
  const eight = preprocessDigit({
    width: 28,
    height: 28,
    data: Uint16Array.from(grey(digit).data),
    depth: 8,
  });
  assert.deepEqual(eight, preprocessDigit(grey(digit)));
});
