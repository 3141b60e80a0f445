/**
 * The direct SIMD convolutions of `kernels/conv.c` (forward, filter and input
 * gradients), on both builds (relaxed SIMD's fused multiply-add and plain
 * SIMD), against the cpu backend.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../lib/backend.ts";
import { allowRelaxedSimd, simdKernels } from "../lib/wasm/simd.ts";
import { onBoth, relativeError } from "./_parity.ts";

type Shape4 = [number, number, number, number];
/** Input and filter shapes, padding: the default model's layers, then odd sizes and tails. */
const CASES: [Shape4, Shape4, "same" | "valid"][] = [
  [[3, 28, 28, 1], [3, 3, 1, 16], "same"],
  [[3, 14, 14, 16], [3, 3, 16, 32], "same"],
  [[3, 7, 7, 32], [3, 3, 32, 32], "same"],
  [[2, 9, 11, 3], [5, 4, 3, 16], "same"], // 11 columns: a block of 4 with 3 pixels
  [[2, 10, 13, 4], [3, 3, 4, 8], "valid"],
  [[1, 5, 6, 8], [1, 1, 8, 24], "valid"],
  [[2, 6, 5, 5], [3, 2, 5, 8], "same"], // filter rows 30: a last block of 2
];

for (const relaxed of [true, false]) {
  const build = relaxed ? "relaxed SIMD" : "plain SIMD";
  for (const [xShape, wShape, pad] of CASES) {
    const label = `${build}, x${xShape.join("x")} w${wShape.join("x")} ${pad}`;
    const inputs = () =>
      [
        tf.randomNormal(xShape, 0, 1, "float32", 1) as tf.Tensor4D,
        tf.randomNormal(wShape, 0, 1, "float32", 2) as tf.Tensor4D,
      ] as const;
    const loss = (x: tf.Tensor4D, w: tf.Tensor4D) => tf.conv2d(x, w, 1, pad).square().sum();
    const cases: [string, () => tf.Tensor][] = [
      ["Conv2D", () => tf.conv2d(...inputs(), 1, pad)],
      ["Conv2DBackpropFilter", () => {
        const [x, w] = inputs();
        return tf.grad((w) => loss(x, w as tf.Tensor4D))(w);
      }],
      ["Conv2DBackpropInput", () => {
        const [x, w] = inputs();
        return tf.grad((x) => loss(x as tf.Tensor4D, w))(x);
      }],
    ];
    for (const [kernel, f] of cases) {
      Deno.test(`direct wasm ${kernel} matches cpu: ${label}`, async () => {
        allowRelaxedSimd(relaxed);
        try {
          const [cpu, wasm] = await onBoth(f);
          assert.equal(simdKernels(tf.backend())?.relaxed, relaxed);
          const error = relativeError(cpu, wasm);
          assert.ok(error <= 1e-5, `relative error ${error}`);
        } finally {
          allowRelaxedSimd(true);
        }
      });
    }
  }
}

Deno.test("the relaxed-SIMD build is chosen where the runtime supports it (Deno's V8 does)", async () => {
  await selectBackend("wasm");
  assert.equal(simdKernels(tf.backend())?.relaxed, true);
});

Deno.test("the direct convolution tells the two builds apart: their sums round differently", async () => {
  // A fused multiply-add rounds once, a multiply then an add twice: on the
  // same inputs the two builds must agree closely but not bit for bit, which
  // shows each test above ran the build it names.
  await selectBackend("wasm");
  const run = (relaxed: boolean) => {
    allowRelaxedSimd(relaxed);
    try {
      return tf.tidy(() =>
        tf.conv2d(
          tf.randomNormal([4, 14, 14, 16], 0, 1, "float32", 3) as tf.Tensor4D,
          tf.randomNormal([3, 3, 16, 32], 0, 1, "float32", 4) as tf.Tensor4D,
          1,
          "same",
        ).dataSync()
      );
    } finally {
      allowRelaxedSimd(true);
    }
  };
  const fused = run(true), plain = run(false);
  assert.ok(relativeError(fused, plain) <= 1e-5);
  assert.ok(fused.some((v, i) => v !== plain[i]), "the two builds gave identical sums");
});
