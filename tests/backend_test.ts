import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { BackendError, selectBackend } from "../lib/backend.ts";
import { tileInto } from "../lib/wasm/tile.ts";
import { onBoth, relativeError } from "./_parity.ts";

type Shape4 = [number, number, number, number];
const CONV_CASES: [Shape4, Shape4][] = [
  [[3, 9, 9, 2], [3, 3, 2, 4]],
  [[4, 28, 28, 1], [3, 3, 1, 8]],
  [[2, 10, 11, 3], [5, 4, 3, 2]],
];

for (const [xShape, wShape] of CONV_CASES) {
  for (const stride of [1, 2]) {
    for (const pad of ["same", "valid"] as const) {
      const label = `x${xShape.join("x")} w${wShape.join("x")} stride ${stride} ${pad}`;
      const loss = (x: tf.Tensor4D, w: tf.Tensor4D) => tf.conv2d(x, w, stride, pad).square().sum();
      const inputs = () =>
        [
          tf.randomNormal(xShape, 0, 1, "float32", 1) as tf.Tensor4D,
          tf.randomNormal(wShape, 0, 1, "float32", 2) as tf.Tensor4D,
        ] as const;

      Deno.test(`wasm Conv2DBackpropFilter matches cpu: ${label}`, async () => {
        const [a, b] = await onBoth(() => {
          const [x, w] = inputs();
          return tf.grad((w) => loss(x, w as tf.Tensor4D))(w);
        });
        assert.ok(relativeError(a, b) <= 1e-4, `relative error ${relativeError(a, b)}`);
      });

      Deno.test(`wasm Conv2DBackpropInput matches cpu: ${label}`, async () => {
        const [a, b] = await onBoth(() => {
          const [x, w] = inputs();
          return tf.grad((x) => loss(x as tf.Tensor4D, w))(x);
        });
        assert.ok(relativeError(a, b) <= 1e-4, `relative error ${relativeError(a, b)}`);
      });
    }
  }
}

for (
  const [shape, k, s, pad] of [[[2, 8, 8, 3], 2, 2, "valid"], [[2, 8, 8, 4], 2, 2, "valid"], [
    [2, 7, 7, 3],
    2,
    2,
    "valid",
  ], [
    [2, 7, 7, 3],
    2,
    2,
    "same",
  ], [
    [1, 9, 9, 2],
    3,
    2,
    "same",
  ], [[2, 6, 6, 1], 3, 1, "valid"]] as const
) {
  Deno.test(`wasm MaxPoolGrad matches cpu: x${shape.join("x")} pool ${k} stride ${s} ${pad}`, async () => {
    const [a, b] = await onBoth(() =>
      tf.grad((x) => tf.maxPool(x as tf.Tensor4D, k, s, pad).square().sum())(
        tf.randomNormal([...shape], 0, 1, "float32", 3) as tf.Tensor4D,
      )
    );
    assert.ok(relativeError(a, b) <= 1e-6, `relative error ${relativeError(a, b)}`);
  });
}

Deno.test("wasm Tile matches cpu exactly", async () => {
  for (
    const [shape, reps] of [[[1, 1, 1, 5], [2, 3, 4, 1]], [[2, 3], [3, 2]], [[3], [4]], [[
      2,
      2,
      2,
      2,
    ], [2, 1, 3, 2]]]
  ) {
    const size = shape.reduce((a, b) => a * b, 1);
    const [a, b] = await onBoth(() => tf.tile(tf.range(0, size).reshape(shape), reps));
    assert.deepEqual(b, a, `tile ${shape} by ${reps}`);
  }
});

Deno.test("tileInto repeats along every axis", () => {
  const out = new Float32Array(12);
  tileInto([1, 2], [1, 2], [3, 2], out);
  assert.deepEqual([...out], [1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2]);
});

Deno.test("selectBackend uses a backend asked for by name and self-checks it", async () => {
  for (const name of ["cpu", "wasm"] as const) {
    const selection = await selectBackend(name);
    assert.equal(selection.name, name);
    assert.equal(tf.getBackend(), name);
    assert.ok(selection.selfCheckError < 1e-3);
    assert.deepEqual(selection.rejected, []);
  }
});

Deno.test("auto selection without any WebGPU falls back to wasm and says why", async () => {
  const selection = await selectBackend("auto", { gpu: null });
  assert.equal(selection.name, "wasm");
  assert.deepEqual(selection.rejected, ["webgpu: navigator.gpu is not available"]);
});

Deno.test("auto selection with no adapter falls back to wasm and says why", async () => {
  const selection = await selectBackend("auto", {
    gpu: { requestAdapter: () => Promise.resolve(null) },
  });
  assert.equal(selection.name, "wasm");
  assert.deepEqual(selection.rejected, ["webgpu: no adapter"]);
});

Deno.test("webgpu asked for by name without an adapter is a BackendError", async () => {
  await assert.rejects(
    selectBackend("webgpu", { gpu: { requestAdapter: () => Promise.resolve(null) } }),
    { name: "BackendError", message: 'Cannot use backend "webgpu": webgpu: no adapter' },
  );
  assert.ok(BackendError);
});

Deno.test("an unknown backend name is a TypeError", async () => {
  await assert.rejects(
    // @ts-expect-error: testing a bad value from untyped callers
    selectBackend("tpu"),
    {
      name: "TypeError",
      message: 'Cannot select backend: expected one of auto, webgpu, wasm, cpu, got "tpu"',
    },
  );
});

Deno.test("wasm Sum and Mean match cpu, over the leading axes (fast path) and others", async () => {
  for (const kind of ["sum", "mean"] as const) {
    for (
      const [axes, keepDims] of [
        [[0, 1, 2], false],
        [[0, 1, 2], true],
        [[2, 0, 1], false],
        [[1, 2], false],
        [[3], true],
        [[0], false],
      ] as const
    ) {
      const [a, b] = await onBoth(() =>
        tf[kind](tf.randomNormal([4, 5, 6, 3], 0, 1, "float32", 5), [...axes], keepDims)
      );
      assert.ok(relativeError(a, b) <= 1e-5, `${kind} over ${axes}: ${relativeError(a, b)}`);
    }
  }
});
