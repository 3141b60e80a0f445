/**
 * WebGPU against the cpu and wasm backends. These run wherever a WebGPU
 * adapter exists; .ci/run installs Mesa's software Vulkan driver so that one
 * always does in CI. Where none exists they are ignored (reported as such).
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { DISABLE_WEBGPU_ENV, selectBackend } from "../lib/backend.ts";
import { loadModel, saveModel } from "../lib/io.ts";
import { createModel, layersModelOf } from "../lib/model.ts";
import { train } from "../lib/train.ts";
import { loadRealMnist } from "./_fixtures.ts";

const adapter = await navigator.gpu?.requestAdapter().catch(() => null);
const ignore = !adapter;
const data = await loadRealMnist();
const sample = data.test.images.subarray(0, 64 * 784);
const sampleLabels = data.test.labels.subarray(0, 64);

/** Relative error ‖a − b‖₂ / ‖a‖₂ (float32 sums in another order differ by ~1e-6 of the norm). */
function relative(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let diff = 0, norm = 1e-30;
  for (let i = 0; i < a.length; i++) {
    diff += (a[i] - b[i]) ** 2;
    norm += a[i] ** 2;
  }
  return Math.sqrt(diff / norm);
}

function concat(arrays: Float32Array[]): Float32Array {
  const out = new Float32Array(arrays.reduce((n, a) => n + a.length, 0));
  let offset = 0;
  for (const a of arrays) {
    out.set(a, offset);
    offset += a.length;
  }
  return out;
}

/** Predictions and the gradient of every weight, on `backend`, from the seed-7 weights. */
async function forwardAndGradients(backend: "cpu" | "webgpu") {
  await selectBackend(backend);
  const model = createModel({ seed: 7 });
  const net = layersModelOf(model);
  const probs = await model.predict(sample);
  const x = tf.tensor4d(sample, [64, 28, 28, 1]);
  const y = tf.oneHot(tf.tensor1d(sampleLabels, "int32"), 10);
  const { grads } = tf.variableGrads(() =>
    tf.losses.softmaxCrossEntropy(y, net.apply(x, { training: true }) as tf.Tensor).asScalar()
  );
  const out: Record<string, Float32Array> = {};
  for (const [name, g] of Object.entries(grads)) out[name] = await g.data() as Float32Array;
  tf.dispose([x, y, ...Object.values(grads)]);
  model.dispose();
  return { probs, grads: out };
}

Deno.test({
  name: "webgpu matches cpu: forward and gradient of the default model (relative L2 ≤ 1e-4)",
  ignore,
  async fn() {
    const cpu = await forwardAndGradients("cpu");
    const gpu = await forwardAndGradients("webgpu");
    const forward = relative(cpu.probs, gpu.probs);
    assert.ok(forward <= 1e-4, `forward ${forward}`);
    const cpuGrads = Object.values(cpu.grads), gpuGrads = Object.values(gpu.grads);
    assert.equal(cpuGrads.length, gpuGrads.length);
    assert.ok(cpuGrads.length >= 8, "every conv, batch-norm and dense weight");
    // The whole gradient vector must agree to 1e-4, each tensor to 1e-3: the
    // first conv's gradient, behind three batch norms, is small and the most
    // sensitive to the order of float32 sums.
    const whole = relative(concat(cpuGrads), concat(gpuGrads));
    assert.ok(whole <= 1e-4, `whole gradient: relative error ${whole}`);
    const each = cpuGrads.map((g, i) => relative(g, gpuGrads[i]));
    for (const [i, error] of each.entries()) {
      assert.ok(error <= 1e-3, `gradient of ${Object.keys(cpu.grads)[i]}: relative error ${error}`);
    }
    console.log(
      `webgpu vs cpu: forward ${forward.toExponential(1)}, whole gradient ${
        whole.toExponential(1)
      }, worst tensor ${Math.max(...each).toExponential(1)}`,
    );
  },
});

Deno.test({
  name: "webgpu trains 200 steps on real MNIST: loss falls, no tensors leak",
  ignore,
  async fn() {
    await selectBackend("webgpu");
    // The seed preset and no augmentation keep this quick on a software adapter.
    const model = createModel({ preset: "seed" });
    const count = 200 * 16;
    const subset = {
      images: data.train.images.subarray(0, count * 784),
      labels: data.train.labels.subarray(0, count),
      count,
    };
    const losses: number[] = [];
    const before = tf.memory().numTensors;
    await train(model, subset, {
      batchSize: 16,
      lossEvery: 1,
      augment: false,
      hardExamples: 0,
      onBatchEnd: (e) => losses.push(e.loss),
    });
    assert.equal(tf.memory().numTensors, before, "tensors after an epoch on webgpu");
    assert.equal(losses.length, 200);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b) / xs.length;
    const first = mean(losses.slice(0, 20)), last = mean(losses.slice(-20));
    assert.ok(last < 0.6 * first, `loss fell from ${first} to ${last}`);
    const predicted = await model.classify(data.test.images.subarray(0, 1000 * 784));
    const right = predicted.filter((p, i) => p === data.test.labels[i]).length;
    assert.ok(right >= 850, `${right}/1000 test images right after 3,200 training images`);
    model.dispose();
  },
});

for (
  const [from, to] of [["webgpu", "wasm"], ["webgpu", "cpu"], ["wasm", "webgpu"], [
    "cpu",
    "webgpu",
  ]] as const
) {
  Deno.test({
    name: `a model saved on ${from} loads on ${to} with predictions equal to 1e-5`,
    ignore,
    async fn() {
      const dir = await Deno.makeTempDir({ prefix: "tinymnist-gpu-" });
      try {
        await selectBackend(from);
        const model = createModel({ seed: 11 });
        const expected = await model.predict(sample);
        const path = await saveModel(model, dir);
        model.dispose();
        await selectBackend(to);
        const loaded = await loadModel(path);
        const got = await loaded.predict(sample);
        loaded.dispose();
        let max = 0;
        for (let i = 0; i < got.length; i++) max = Math.max(max, Math.abs(got[i] - expected[i]));
        assert.ok(max <= 1e-5, `max difference ${max}`);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}

Deno.test({
  name: "webgpu by name uses the adapter and reports it; auto passes over a software one",
  ignore,
  async fn() {
    const byName = await selectBackend("webgpu");
    assert.equal(byName.name, "webgpu");
    assert.equal(tf.getBackend(), "webgpu");
    assert.match(byName.description, /^webgpu \(.+\)$/);
    assert.deepEqual(byName.timings, [], "a backend asked for by name is not timed");
    if (adapter!.info.isFallbackAdapter) {
      const auto = await selectBackend("auto");
      assert.equal(auto.name, "wasm");
      assert.match(auto.rejected[0], /^webgpu: only a software fallback adapter/);
      assert.deepEqual(auto.timings, [], "one candidate: nothing to time");
      const untimed = await selectBackend("auto", { allowFallbackAdapter: true, probe: false });
      assert.equal(untimed.name, "webgpu", "without the probe, the first that works");
      assert.deepEqual(untimed.timings, []);
    }
  },
});

Deno.test({
  name: "auto times webgpu and wasm when both work and keeps the faster, saying why",
  ignore,
  async fn() {
    const selection = await selectBackend("auto", { allowFallbackAdapter: true });
    const { timings } = selection;
    assert.deepEqual(timings.map((t) => t.name).sort(), ["wasm", "webgpu"]);
    assert.ok(timings.every((t) => Number.isFinite(t.msPerStep) && t.msPerStep > 0));
    assert.ok(timings[0].msPerStep <= timings[1].msPerStep, "fastest first");
    assert.equal(selection.name, timings[0].name);
    assert.equal(tf.getBackend(), timings[0].name);
    assert.equal(selection.description, timings[0].description);
    assert.ok(
      selection.rejected.includes(
        `${timings[1].name}: measured slower, ${
          timings[1].msPerStep.toFixed(1)
        } ms a training step against ${timings[0].name}'s ${timings[0].msPerStep.toFixed(1)} ms`,
      ),
      selection.rejected.join("; "),
    );
  },
});

Deno.test({
  name: "requesting an adapter on a headless machine prints no XDG_RUNTIME_DIR noise",
  ignore,
  async fn() {
    const code = `
      import { selectBackend } from "${new URL("../lib/backend.ts", import.meta.url)}";
      await selectBackend("webgpu");
      console.log(Deno.env.get("XDG_RUNTIME_DIR") ?? "unset");
    `;
    const env = Deno.env.toObject();
    delete env.XDG_RUNTIME_DIR;
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        "--cached-only", // nothing to fetch: the test runs what `deno install` put in place
        "--allow-read",
        "--allow-env=XDG_RUNTIME_DIR,TINYMNIST_DISABLE_WEBGPU",
        "--allow-ffi=./node_modules",
        code,
      ],
      env,
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, stderr);
    assert.equal(stderr, "");
    assert.equal(new TextDecoder().decode(out.stdout), "unset\n", "the variable is unset again");
  },
});

Deno.test("auto with WebGPU disabled by the environment falls back to wasm and says why", async () => {
  Deno.env.set(DISABLE_WEBGPU_ENV, "1");
  try {
    const selection = await selectBackend("auto", { allowFallbackAdapter: true });
    assert.equal(selection.name, "wasm");
    assert.deepEqual(selection.rejected, [`webgpu: disabled by ${DISABLE_WEBGPU_ENV}=1`]);
  } finally {
    Deno.env.delete(DISABLE_WEBGPU_ENV);
  }
});
