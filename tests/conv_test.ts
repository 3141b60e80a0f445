/**
 * The direct SIMD convolutions of `kernels/conv.c` (forward, filter and input
 * gradients) and the Winograd convolution of `kernels/winograd.c` (3 × 3
 * forward, input and filter gradients), on both builds (relaxed SIMD's fused
 * multiply-add and plain SIMD), against the cpu backend.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../lib/backend.ts";
import { convolutionRuns } from "../lib/wasm/conv.ts";
import { allowRelaxedSimd, simdKernels } from "../lib/wasm/simd.ts";
import { onBoth, relativeError } from "./_parity.ts";

type Shape4 = [number, number, number, number];
/**
 * Input and filter shapes, padding: the default model's layers, then odd
 * sizes and tails. The input gradient runs on our kernels only when the
 * input channels are a multiple of 8 as well (they are its output's). A
 * 3 × 3 filter with a multiple of 4 channels going in runs on Winograd's.
 */
const CASES: [Shape4, Shape4, "same" | "valid"][] = [
  [[3, 28, 28, 1], [3, 3, 1, 16], "same"],
  [[3, 14, 14, 16], [3, 3, 16, 32], "same"],
  [[3, 7, 7, 32], [3, 3, 32, 32], "same"],
  [[2, 9, 11, 3], [5, 4, 3, 16], "same"], // 11 columns: a block of 4 with 3 pixels
  [[2, 10, 13, 4], [3, 3, 4, 8], "valid"],
  [[1, 5, 6, 8], [1, 1, 8, 24], "valid"],
  [[2, 6, 5, 5], [3, 2, 5, 8], "same"], // filter rows 30: a last block of 2
  [[2, 9, 10, 8], [4, 2, 8, 16], "same"], // even filter: padding 1 before, 2 after
  [[2, 5, 5, 16], [2, 5, 16, 8], "valid"], // 1 output column
  [[2, 9, 6, 8], [3, 3, 8, 16], "valid"], // Winograd: 7 × 4 outputs, a last tile row of 3
  [[1, 9, 9, 4], [3, 3, 4, 8], "same"], // Winograd: 9 tiles, one chunk, a last block of 1
  [[2, 10, 6, 4], [3, 3, 4, 8], "same"], // Winograd: a last tile of 2 rows and 2 columns
  [[3, 22, 21, 8], [3, 3, 8, 8], "same"], // Winograd: 108 tiles, 4 chunks, a last column of 1
  [[1, 7, 7, 32], [3, 3, 32, 32], "same"], // 49 outputs: still Winograd's, unfused (training's)
];

/** Which of our kernels a case's convolution (of `x` with `w`) runs on. */
function pathOf(x: Shape4, w: Shape4): "winograd" | "direct" {
  return w[0] === 3 && w[1] === 3 && x[3] % 4 === 0 ? "winograd" : "direct";
}

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
    // The forward pass; the filter gradient (on the forward pass's kernel); the input
    // gradient, a convolution of dy [.., Co] with the rotated filter [KH, KW, Co, Ci].
    const dyShape: Shape4 = [1, 1, 1, wShape[3]];
    const cases: [string, "winograd" | "direct", () => tf.Tensor][] = [
      ["Conv2D", pathOf(xShape, wShape), () => tf.conv2d(...inputs(), 1, pad)],
      ["Conv2DBackpropFilter", pathOf(xShape, wShape), () => {
        const [x, w] = inputs();
        return tf.grad((w) => loss(x, w as tf.Tensor4D))(w);
      }],
      ["Conv2DBackpropInput", pathOf(dyShape, wShape), () => {
        const [x, w] = inputs();
        return tf.grad((x) => loss(x as tf.Tensor4D, w))(x);
      }],
    ];
    for (const [kernel, path, f] of cases) {
      // The input gradient's own output channels are the input's.
      if (kernel === "Conv2DBackpropInput" && xShape[3] % 8 !== 0) continue;
      Deno.test(`${path} wasm ${kernel} matches cpu: ${label}`, async () => {
        allowRelaxedSimd(relaxed);
        try {
          const before = convolutionRuns()[path];
          const [cpu, wasm] = await onBoth(f);
          assert.ok(convolutionRuns()[path] > before, `the ${path} kernel did not run`);
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

Deno.test("convolutions our kernels cannot take go to XNNPACK and still match cpu", async () => {
  // Output channels not a multiple of 8, stride 2, an empty output.
  const cases: [string, () => tf.Tensor][] = [
    ["6 output channels", () =>
      tf.conv2d(
        tf.randomNormal([2, 8, 8, 8], 0, 1, "float32", 5) as tf.Tensor4D,
        tf.randomNormal([3, 3, 8, 6], 0, 1, "float32", 6) as tf.Tensor4D,
        1,
        "same",
      )],
    ["stride 2", () =>
      tf.conv2d(
        tf.randomNormal([2, 8, 8, 8], 0, 1, "float32", 5) as tf.Tensor4D,
        tf.randomNormal([3, 3, 8, 8], 0, 1, "float32", 6) as tf.Tensor4D,
        2,
        "same",
      )],
  ];
  for (const [label, f] of cases) {
    const before = convolutionRuns();
    const [cpu, wasm] = await onBoth(f);
    assert.deepEqual(convolutionRuns(), before, `${label}: one of our kernels ran`);
    assert.ok(relativeError(cpu, wasm) <= 1e-5, label);
  }
});

/**
 * FusedConv2D's cases: Winograd's (a 3 × 3 filter, 16 input channels, 189
 * outputs), and the direct kernel's.
 */
const FUSED_CASES: ["winograd" | "direct", Shape4, Shape4][] = [
  ["winograd", [3, 7, 9, 16], [3, 3, 16, 24]],
  ["direct", [1, 7, 7, 32], [3, 3, 32, 32]], // the last layer's at batch 1: 49 outputs
  ["direct", [3, 28, 28, 1], [3, 3, 1, 16]], // the first layer's: one input channel
  ["direct", [2, 9, 11, 3], [5, 4, 3, 16]], // 11 columns: a block of 4 with 3 pixels
];

for (const relaxed of [true, false]) {
  for (
    const [activation, withBias] of [["relu", true], ["linear", true], ["relu", false]] as const
  ) {
    for (const [path, xShape, wShape] of FUSED_CASES) {
      const label = `${relaxed ? "relaxed" : "plain"} SIMD, ${activation}, ${
        withBias ? "with" : "no"
      } bias, x${xShape.join("x")} w${wShape.join("x")}`;
      Deno.test(`${path} wasm FusedConv2D (inference's folded layers) matches cpu: ${label}`, async () => {
        allowRelaxedSimd(relaxed);
        try {
          const before = convolutionRuns()[path];
          const [cpu, wasm] = await onBoth(() =>
            tf.fused.conv2d({
              x: tf.randomNormal(xShape, 0, 1, "float32", 7) as tf.Tensor4D,
              filter: tf.randomNormal(wShape, 0, 1, "float32", 8) as tf.Tensor4D,
              strides: 1,
              pad: "same",
              bias: withBias ? tf.randomNormal([wShape[3]], 0, 3, "float32", 9) : undefined,
              activation,
            })
          );
          assert.ok(convolutionRuns()[path] > before, `the ${path} kernel did not run`);
          assert.ok(relativeError(cpu, wasm) <= 1e-5, `relative error ${relativeError(cpu, wasm)}`);
          if (activation === "relu") {
            assert.ok(wasm.some((v) => v === 0) && wasm.every((v) => v >= 0));
          }
        } finally {
          allowRelaxedSimd(true);
        }
      });
    }
  }
}

Deno.test("FusedConv2D keeps a NaN through the ReLU, and leaves other activations to XNNPACK", async () => {
  await selectBackend("wasm");
  const x = tf.randomNormal([1, 4, 4, 8], 0, 1, "float32", 10) as tf.Tensor4D;
  const filter = tf.randomNormal([3, 3, 8, 8], 0, 1, "float32", 11) as tf.Tensor4D;
  // Winograd's kernel (8 input channels) and the direct one (1).
  for (const channels of [8, 1]) {
    const nan = tf.tidy(() =>
      tf.fused.conv2d({
        x: x.slice([0, 0, 0, 0], [1, 4, 4, channels]).mul(NaN) as tf.Tensor4D,
        filter: filter.slice([0, 0, 0, 0], [3, 3, channels, 8]) as tf.Tensor4D,
        pad: "same",
        strides: 1,
        activation: "relu",
      })
        .dataSync()
    );
    assert.ok(nan.every(Number.isNaN), `${channels} input channels`);
  }
  const before = convolutionRuns();
  const [cpu, wasm] = await onBoth(() =>
    tf.fused.conv2d({ x, filter, pad: "same", strides: 1, activation: "elu" })
  );
  assert.deepEqual(convolutionRuns(), before);
  assert.ok(relativeError(cpu, wasm) <= 1e-5);
  tf.dispose([x, filter]);
});
