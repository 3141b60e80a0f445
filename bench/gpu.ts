/**
 * The one-command GPU check, `deno task bench:gpu`: on any machine with a
 * WebGPU adapter, train the default model for one pass on webgpu and print
 * seconds, training images/s, test accuracy (all 10,000 test images),
 * operations and GPU dispatches per step, and read-backs and uploads per
 * step and per pass; then the same on wasm for comparison.
 *
 * Counts come from wrapping, for the run, the engine's `runKernel` (one
 * TensorFlow.js operation, forward or backward), the webgpu backend's
 * `runWebGPUProgram` (one compute-shader dispatch) and the backend's
 * `read`/`readSync` (device → host) and `write` with values (host → device;
 * without values it only allocates an output). Per-step
 * figures are measured between steps 10 and 30 of a probe run in this thread
 * (`workers: 0`), so that setup does not count; the timed pass uses the
 * backend's default (2 workers on wasm, whose counts happen in the workers
 * and are not seen here).
 *
 * On a machine without a GPU, Mesa's software adapter (llvmpipe) works, about
 * 40× slower than wasm: use a small `--images` count, e.g. 2000.
 *
 * Usage: `deno task bench:gpu [--images N] [--backends webgpu,wasm] [--data-dir DIR] [--json]`
 * (`--help` says more). With fewer than 60,000 images the accuracy is not that of a full pass.
 * Never part of `deno task test`; speed is never asserted.
 */
import * as tf from "@tensorflow/tfjs";
import { BACKEND_ORDER, type BackendName, selectBackend } from "../lib/backend.ts";
import { integerFlag, loadData, parseFlags, usage } from "./_usage.ts";
import { evaluate } from "../lib/evaluate.ts";
import { createModel } from "../lib/model.ts";
import { train } from "../lib/train.ts";

const ACTION = "run the GPU check";
const { values } = parseFlags(
  ACTION,
  "bench:gpu",
  {
    images: { type: "string", default: "60000" },
    backends: { type: "string", default: "webgpu,wasm" },
    "data-dir": { type: "string" },
    json: { type: "boolean", default: false },
  },
  `Usage: deno task bench:gpu [--images N] [--backends LIST] [--data-dir DIR] [--json]

For each backend (default webgpu,wasm): count what a training step costs (a
short run in this thread), train one pass on the first N training images
(default 60000, at least 640), and score the 10,000 test images. Progress
goes to stderr; the table (or one JSON object with --json) to stdout.`,
);
const images = integerFlag(ACTION, "images", values.images, 640, 60_000);
/** Progress on stderr: the runs take a while and print their results at the end. */
const note = (line: string) => console.error(line);
const backends = values.backends!.split(",") as BackendName[];
const unknown = backends.find((name) => !BACKEND_ORDER.includes(name));
if (unknown !== undefined) {
  usage(ACTION, `expected --backends to list ${BACKEND_ORDER.join(", ")}, got "${unknown}"`);
}
const data = await loadData(values["data-dir"]);
const subset = {
  count: images,
  images: data.train.images.subarray(0, images * 784),
  labels: data.train.labels.subarray(0, images),
};

/** Calls counted while a run is wrapped. */
interface Counts {
  ops: number;
  dispatches: number;
  reads: number;
  readBytes: number;
  uploads: number;
  uploadBytes: number;
  /** Uploads of one value (a scalar such as a learning rate or a constant). */
  scalarUploads: number;
}

const zero = (): Counts => ({
  ops: 0,
  dispatches: 0,
  reads: 0,
  readBytes: 0,
  uploads: 0,
  uploadBytes: 0,
  scalarUploads: 0,
});

/** Wrap the engine and the active backend so that `counts` grows; returns the unwrapping. */
function countCalls(counts: Counts): () => void {
  const engine = tf.engine() as unknown as Record<string, (...args: unknown[]) => unknown>;
  const backend = tf.backend() as unknown as Record<string, (...args: unknown[]) => unknown>;
  const saved: [Record<string, unknown>, string, unknown][] = [];
  const wrap = (
    target: Record<string, (...args: unknown[]) => unknown>,
    name: string,
    count: (args: unknown[]) => void,
  ) => {
    const original = target[name];
    if (typeof original !== "function") return;
    saved.push([target, name, Object.hasOwn(target, name) ? original : undefined]);
    target[name] = function (this: unknown, ...args: unknown[]) {
      count(args);
      return original.apply(this, args);
    };
  };
  const bytesOf = (dataId: unknown) => {
    const info = (tf.engine() as unknown as {
      state: { tensorInfo: WeakMap<object, { bytes: number }> };
    }).state.tensorInfo.get(dataId as object);
    return info?.bytes ?? 0;
  };
  wrap(engine, "runKernel", () => counts.ops++);
  wrap(backend, "runWebGPUProgram", () => counts.dispatches++);
  wrap(backend, "read", ([id]) => (counts.reads++, counts.readBytes += bytesOf(id)));
  wrap(backend, "readSync", ([id]) => (counts.reads++, counts.readBytes += bytesOf(id)));
  wrap(backend, "write", ([values]) => {
    // write(null, …) allocates an output on the device: nothing is transferred.
    if (values == null) return;
    const bytes = ArrayBuffer.isView(values)
      ? values.byteLength
      : 4 * ((values as unknown[]).length ?? 0);
    counts.uploads++;
    counts.uploadBytes += bytes;
    if (bytes <= 4) counts.scalarUploads++;
  });
  return () => {
    for (const [target, name, original] of saved) {
      if (original === undefined) delete target[name];
      else target[name] = original;
    }
  };
}

/** Per-step counts between steps `from` and `to` of a short run in this thread. */
async function perStep(from = 10, to = 30): Promise<Counts> {
  const model = createModel({ seed: 42 });
  const counts = zero();
  let start: Counts | undefined, end: Counts | undefined;
  const unwrap = countCalls(counts);
  try {
    const n = (to + 2) * 64;
    const probe = {
      count: n,
      images: data.train.images.subarray(0, n * 784),
      labels: data.train.labels.subarray(0, n),
    };
    await train(model, probe, {
      workers: 0,
      onBatchEnd: ({ batch }) => {
        if (batch === from) start = { ...counts };
        if (batch === to) end = { ...counts };
      },
    });
  } finally {
    unwrap();
    model.dispose();
  }
  const steps = to - from;
  const per = zero();
  for (const key of Object.keys(per) as (keyof Counts)[]) {
    per[key] = (end![key] - start![key]) / steps;
  }
  return per;
}

interface Row {
  backend: string;
  description: string;
  images: number;
  seconds: number;
  imagesPerSecond: number;
  testAccuracy: number;
  workers: number;
  perStep: Counts;
  /** Counts over the timed pass, in this thread (empty when the pass ran in workers). */
  perPass: Counts;
}

const rows: Row[] = [];
for (const name of backends) {
  const selection = await selectBackend(name);
  note(`${name}: counting what a training step costs (32 steps in this thread)…`);
  const step = await perStep();
  const model = createModel({ seed: 42 });
  const pass = zero();
  note(`${name}: training one pass on ${images} images…`);
  const unwrap = countCalls(pass);
  const result = await train(model, subset, { epochs: 1 }).finally(unwrap);
  note(`${name}: scoring the ${data.test.count} test images…`);
  const { accuracy } = await evaluate(model, data.test);
  model.dispose();
  rows.push({
    backend: name,
    description: selection.description,
    images: result.images,
    seconds: result.seconds,
    imagesPerSecond: result.imagesPerSecond,
    testAccuracy: accuracy,
    workers: result.workers,
    perStep: step,
    perPass: pass,
  });
  if (!values.json) {
    console.log(
      `${name}: ${selection.description}, ${result.images} images in ${
        result.seconds.toFixed(1)
      } s (${Math.round(result.imagesPerSecond)} img/s, ${result.workers} workers), test accuracy ${
        (100 * accuracy).toFixed(2)
      }%`,
    );
  }
}

if (values.json) {
  console.log(JSON.stringify({ images, rows }));
} else {
  const f = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(1));
  const kb = (x: number) => (x / 1024).toFixed(1);
  console.log(
    "\n| backend | s | img/s | test acc | ops/step | GPU dispatches/step | read-backs/step | uploads/step (scalars, KiB) | read-backs/pass |",
  );
  console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const r of rows) {
    console.log(
      `| ${r.description} | ${r.seconds.toFixed(1)} | ${Math.round(r.imagesPerSecond)} | ${
        (100 * r.testAccuracy).toFixed(2)
      }% | ${f(r.perStep.ops)} | ${r.backend === "webgpu" ? f(r.perStep.dispatches) : "–"} | ${
        f(r.perStep.reads)
      } | ${f(r.perStep.uploads)} (${f(r.perStep.scalarUploads)}, ${kb(r.perStep.uploadBytes)}) | ${
        r.workers === 0 ? r.perPass.reads : "in workers"
      } |`,
    );
  }
  console.log(
    `\n${images} training images, one pass, batch 64; per-step counts between steps 10 and 30 in this thread.`,
  );
}
