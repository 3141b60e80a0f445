import assert from "node:assert/strict";
import { selectBackend } from "../lib/backend.ts";
import { evaluate, robustness } from "../lib/evaluate.ts";
import { recordHistory, type TrainingHistory } from "../lib/history.ts";
import { decodeImage } from "../lib/image_file.ts";
import { createModel } from "../lib/model.ts";
import { type Predictions, type ReportInput, writeReport } from "../lib/report.ts";
import { type BatchEvent, train } from "../lib/train.ts";
import { loadRealMnist } from "./_fixtures.ts";

const FIGURES = [
  "loss",
  "learning-rate",
  "per-class-accuracy",
  "confusion-matrix",
  "misclassified",
  "robustness",
];
const percent = (x: number) => `${(100 * x).toFixed(2)}%`;

/** A synthetic run: `steps` batches of 64, the loss read every `lossEvery` steps and at the end. */
function syntheticHistory(steps: number, lossEvery: number): TrainingHistory {
  return {
    batches: Array.from({ length: steps }, (_, i) => {
      const step = i + 1;
      const read = step % lossEvery === 0 || step === steps;
      return {
        step,
        images: 64 * step,
        learningRate: 0.03 * Math.min(step / 5, 1) * (1 - i / steps),
        loss: read ? 0.5 + 2 * Math.exp(-step / 10) : null,
      };
    }),
  };
}

/** A synthetic evaluation of 100 images: class k right 10 − (k % 3) times, else taken for k + 1. */
function syntheticEvaluation(): ReportInput["evaluation"] {
  const confusion = Array.from(
    { length: 10 },
    (_, t) =>
      Array.from(
        { length: 10 },
        (_, p) => (p === t ? 10 - (t % 3) : p === (t + 1) % 10 ? t % 3 : 0),
      ),
  );
  const perClass = confusion.map((row, t) => row[t] / 10);
  const accuracy = perClass.reduce((a, b) => a + b) / 10;
  return { accuracy, perClass, confusion, count: 100 };
}

const HEADER: ReportInput["header"] = {
  dataset: "mnist",
  backend: "wasm",
  params: 5058,
  trainSeconds: 1.25,
  seed: 42,
  options: { epochs: 1, batchSize: 64, note: "<script>alert('x')</script> & more" },
  date: new Date("2025-01-02T03:04:05Z"),
  version: "9.9.9",
};

/** Texts of the text marks of an SVG, in document order. */
function markTexts(svg: string): string[] {
  return [...svg.matchAll(/<text[^>]*aria-roledescription="text mark"[^>]*>([^<]*)<\/text>/g)]
    .map((m) => m[1]);
}

/** The chart titles and facet labels (Vega's title marks) of an SVG, in document order. */
function titles(svg: string): string[] {
  return [...svg.matchAll(/role-title-text"[^>]*>\s*<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);
}

/**
 * Check that `svg` is one well-formed `<svg>` element: the root carries the SVG
 * namespace and a size, tags nest and close, and `&` only starts entities.
 */
function assertWellFormedSvg(svg: string, name: string): void {
  assert.match(
    svg,
    /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"[^>]* width="\d+" height="\d+" viewBox="0 0 \d+ \d+">/,
    name,
  );
  assert.ok(svg.endsWith("</svg>"), name);
  assert.doesNotMatch(svg, /&(?!(amp|lt|gt|quot|apos|#\d+|#x[0-9a-f]+);)/i, name);
  const open: string[] = [];
  for (
    const [tag, close, tagName, selfClosing] of svg.matchAll(/<(\/?)([A-Za-z][\w:-]*)[^>]*?(\/?)>/g)
  ) {
    if (close) assert.equal(open.pop(), tagName, `${name}: ${tag} closes another element`);
    else if (!selfClosing) open.push(tagName);
  }
  assert.deepEqual(open, [], `${name}: unclosed elements`);
}

/** A small model trained briefly on real MNIST, its history, and its results on 300 test images. */
async function realRun() {
  await selectBackend("wasm");
  const { train: trainSet, test } = await loadRealMnist();
  const count = 1024, testCount = 300;
  const model = createModel({ preset: "mini" });
  const recorder = recordHistory();
  try {
    await train(model, {
      images: trainSet.images.subarray(0, count * 784),
      labels: trainSet.labels.subarray(0, count),
      count,
    }, {
      batchSize: 64,
      lossEvery: 4,
      hardExamples: 0,
      workers: 0,
      onBatchEnd: recorder.onBatchEnd,
    });
    const testSet = {
      images: test.images.slice(0, testCount * 784),
      labels: test.labels.slice(0, testCount),
      count: testCount,
    };
    const predictions: Predictions = {
      ...testSet,
      predicted: await model.classify(testSet.images, { count: testCount }),
    };
    return {
      history: recorder.history,
      evaluation: await evaluate(model, testSet),
      robustness: await robustness(model, testSet),
      predictions,
    };
  } finally {
    model.dispose();
  }
}

Deno.test("recordHistory() records every batch and a loss only when it was read back", () => {
  const { history, onBatchEnd } = recordHistory();
  const losses = [NaN, NaN, 2, 2, 1.5, 1.5, 1.5];
  losses.forEach((loss, batch) =>
    onBatchEnd(
      {
        epoch: 0,
        batch,
        batchesPerEpoch: 7,
        images: 10 * (batch + 1),
        totalImages: 70,
        learningRate: 0.001 * (batch + 1),
        loss,
        seconds: batch,
      } satisfies BatchEvent,
    )
  );
  assert.deepEqual(history.batches.map((b) => b.loss), [null, null, 2, null, 1.5, null, null]);
  assert.deepEqual(history.batches.map((b) => b.step), [1, 2, 3, 4, 5, 6, 7]);
  assert.deepEqual(history.batches[3], { step: 4, images: 40, learningRate: 0.004, loss: null });
  assert.doesNotThrow(() => JSON.stringify(history));
});

Deno.test("writeReport() on a real run: files, self-contained HTML, every figure", async (t) => {
  const run = await realRun();
  const dir = `${await Deno.makeTempDir()}/report`; // missing: writeReport creates it
  try {
    const files = await writeReport(dir, { header: HEADER, ...run });
    const svgs = Object.fromEntries(
      await Promise.all(FIGURES.map(async (f) => [f, await Deno.readTextFile(`${dir}/${f}.svg`)])),
    ) as Record<string, string>;
    const html = await Deno.readTextFile(`${dir}/report.html`);

    await t.step("recordHistory() followed the training run", () => {
      // 1024 images in batches of 64, the loss read every 4 steps and at the end of the pass.
      const { batches } = run.history;
      assert.deepEqual(batches.map((b) => b.step), Array.from({ length: 16 }, (_, i) => i + 1));
      assert.deepEqual(batches.map((b) => b.images), batches.map((b) => 64 * b.step));
      const read = batches.filter((b) => b.loss !== null);
      assert.deepEqual(read.map((b) => b.step), [4, 8, 12, 16]);
      assert.ok(read.every((b) => b.loss! > 0 && b.loss! < 5));
    });

    await t.step("the files are report.html and one SVG per figure, nothing else", async () => {
      assert.deepEqual(files, {
        html: `${dir}/report.html`,
        figures: FIGURES.map((f) => `${dir}/${f}.svg`),
      });
      const names = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
      assert.deepEqual(names, ["report.html", ...FIGURES.map((f) => `${f}.svg`)].sort());
    });

    await t.step("every SVG is well formed", () => {
      for (const [name, svg] of Object.entries(svgs)) assertWellFormedSvg(svg, name);
      // The check itself notices a cut file or a lost closing tag.
      assert.throws(() => assertWellFormedSvg(svgs.loss.slice(0, -100), "cut"));
      assert.throws(() => assertWellFormedSvg(svgs.loss.replace("</g>", ""), "unclosed"));
    });

    await t.step("report.html inlines every figure and fetches nothing", () => {
      assert.ok(html.startsWith("<!DOCTYPE html>"));
      for (const [name, svg] of Object.entries(svgs)) {
        // Inline, the root drops its xmlns declarations (HTML parsers supply the namespaces).
        const inline = svg.replace(
          /^<svg [^>]*>/,
          (tag) => tag.replace(/ xmlns(:\w+)?="[^"]*"/g, ""),
        );
        assert.ok(html.includes(inline), `${name}.svg is inline`);
      }
      assert.equal(html.match(/<svg\b/g)?.length, FIGURES.length);
      assert.doesNotMatch(html, /https?:/);
      assert.doesNotMatch(html, /<script|<link|<iframe|<object|<embed|@import|\ssrc=/i);
      const hrefs = [...html.matchAll(/href="([^"]*)"/g)].map((m) => m[1]);
      assert.ok(hrefs.length > 0 && hrefs.every((h) => h.startsWith("data:image/png;base64,")));
    });

    await t.step("the header shows the run, with text escaped", () => {
      for (
        const cell of [
          "<td>mnist</td>",
          "<td>wasm</td>",
          "<td>5,058</td>",
          "<td>1.3 s</td>",
          "<td>42</td>",
          "<td>2025-01-02T03:04:05.000Z</td>",
          "<td>9.9.9</td>",
          `<td>${percent(run.evaluation.accuracy)} of 300 images</td>`,
          "<th>batchSize</th><td>64</td>",
          "<td>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more</td>",
        ]
      ) assert.ok(html.includes(cell), cell);
    });

    await t.step("loss and learning rate: one line each, a point per loss read", () => {
      assert.deepEqual(titles(svgs.loss), ["Training loss per step"]);
      assert.equal(svgs.loss.match(/aria-roledescription="line mark"/g)?.length, 1);
      assert.equal(svgs.loss.match(/aria-roledescription="point"/g)?.length, 4);
      assert.match(svgs.loss, />mean training loss</);
      assert.match(svgs.loss, />step \(batch\)</);
      assert.deepEqual(titles(svgs["learning-rate"]), ["Learning rate per step"]);
      assert.equal(svgs["learning-rate"].match(/aria-roledescription="line mark"/g)?.length, 1);
    });

    await t.step(
      "per-class accuracy: ten bars labelled with their accuracy, the overall rule",
      () => {
        const { evaluation } = run;
        const svg = svgs["per-class-accuracy"];
        assert.deepEqual(titles(svg), [
          `Test accuracy per class (overall ${percent(evaluation.accuracy)} of 300 images)`,
        ]);
        assert.equal(svg.match(/aria-roledescription="bar"/g)?.length, 10);
        assert.deepEqual(markTexts(svg), evaluation.perClass.map(percent));
        for (let k = 0; k < 10; k++) assert.match(svg, new RegExp(`>${k}</text>`));
        assert.match(svg, /rule mark container/);
      },
    );

    await t.step("confusion matrix: a cell and its count for each (true, predicted) pair", () => {
      const svg = svgs["confusion-matrix"];
      assert.deepEqual(titles(svg), ["Confusion matrix (test images)"]);
      assert.equal(svg.match(/aria-roledescription="rect mark"/g)?.length, 100);
      assert.deepEqual(markTexts(svg), run.evaluation.confusion.flat().map(String));
      const cells = [
        ...svg.matchAll(/aria-label="predicted class: (\d); true class: (\d); images: (\d+)"/g),
      ];
      assert.deepEqual(
        cells.map(([, p, t, count]) => [Number(t), Number(p), Number(count)]),
        run.evaluation.confusion.flatMap((row, t) => row.map((count, p) => [t, p, count])),
      );
      assert.match(svg, />predicted class</);
      assert.match(svg, />true class</);
    });

    await t.step("misclassified: the first 40 wrong digits, with true and predicted labels", () => {
      const { images, labels, predicted } = run.predictions;
      const wrong = [...labels.keys()].filter((i) => predicted[i] !== labels[i]);
      assert.ok(wrong.length > 40, `a briefly trained model errs often; got ${wrong.length} wrong`);
      const svg = svgs.misclassified;
      assert.deepEqual(titles(svg), [
        ...wrong.slice(0, 40).map((i) => `#${i}`), // each cell's index in the set
        `Misclassified digits: 40 of ${wrong.length} shown`,
      ]);
      assert.deepEqual(
        markTexts(svg),
        wrong.slice(0, 40).flatMap((i) => [`true ${labels[i]}`, `predicted ${predicted[i]}`]),
      );
      const urls = [...svg.matchAll(/<image [^>]*xlink:href="data:image\/png;base64,([^"]+)"/g)];
      assert.equal(urls.length, 40);
      const first = decodeImage(Uint8Array.from(atob(urls[0][1]), (c) => c.charCodeAt(0)));
      assert.deepEqual([first.width, first.height, first.channels], [28, 28, 1]);
      const pixels = images.subarray(wrong[0] * 784, (wrong[0] + 1) * 784);
      assert.deepEqual([...first.data], Array.from(pixels, (v) => Math.round(v * 255)));
    });

    await t.step("robustness: a bar per perturbation, clean first", () => {
      const svg = svgs.robustness;
      assert.deepEqual(titles(svg), ["Test accuracy under perturbation"]);
      const r = run.robustness;
      const rows: [string, number][] = [
        ["clean", run.evaluation.accuracy],
        ["rotation ±15°", r.rotation["15"]],
        ["rotation ±30°", r.rotation["30"]],
        ["shift ±2 px", r.shift["2"]],
        ["shift ±4 px", r.shift["4"]],
        ["noise σ 0.1", r.noise["0.1"]],
        ["noise σ 0.2", r.noise["0.2"]],
        ["noise σ 0.3", r.noise["0.3"]],
        ["elastic α 34", r.elastic["34"]],
      ];
      assert.equal(svg.match(/aria-roledescription="bar"/g)?.length, rows.length);
      const axisLabels = [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);
      assert.deepEqual(
        axisLabels.filter((l) => rows.some(([name]) => name === l)),
        rows.map((r) => r[0]),
      );
      assert.deepEqual(markTexts(svg), rows.map(([, accuracy]) => percent(accuracy)));
    });

    await t.step("a second report into the same folder replaces the first", async () => {
      await writeReport(dir, { header: HEADER, ...run }, { maxMisclassified: 3 });
      const svg = await Deno.readTextFile(`${dir}/misclassified.svg`);
      assert.equal(svg.match(/<image /g)?.length, 3);
      const names = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name);
      assert.equal(names.length, FIGURES.length + 1);
    });
  } finally {
    await Deno.remove(dir.slice(0, dir.lastIndexOf("/")), { recursive: true });
  }
});

Deno.test("writeReport() without robustness or predictions draws the four other figures", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const history = syntheticHistory(100, 10);
    const files = await writeReport(dir, {
      header: HEADER,
      history,
      evaluation: syntheticEvaluation(),
    });
    assert.deepEqual(files.figures, FIGURES.slice(0, 4).map((f) => `${dir}/${f}.svg`));
    const loss = await Deno.readTextFile(`${dir}/loss.svg`);
    assert.equal(loss.match(/aria-roledescription="point"/g)?.length, 10);
    const html = await Deno.readTextFile(files.html);
    assert.equal(html.match(/<svg\b/g)?.length, 4);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeReport() with no misclassified digits notes it instead of a figure", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const labels = new Uint8Array([3, 1, 4]);
    const predictions = { images: new Float32Array(3 * 784), labels, count: 3, predicted: labels };
    const files = await writeReport(dir, {
      header: HEADER,
      history: syntheticHistory(3, 2),
      evaluation: syntheticEvaluation(),
      predictions,
    });
    assert.equal(files.figures.length, 4);
    const html = await Deno.readTextFile(files.html);
    assert.match(html, /No misclassified digits among the 3 images\./);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeReport() refuses bad input with named errors and writes nothing", async () => {
  const dir = `${await Deno.makeTempDir()}/report`;
  const good: ReportInput = {
    header: HEADER,
    history: syntheticHistory(10, 5),
    evaluation: syntheticEvaluation(),
  };
  const images = new Float32Array(2 * 784);
  const labels = new Uint8Array([1, 2]);
  const cases: [string, unknown, ReportInput | undefined, object, typeof Error, string][] = [
    ["empty dir", "", good, {}, TypeError, "expected dir to be a non-empty string, got string"],
    ["no input", dir, undefined, {}, TypeError, "expected input to be an object, got undefined"],
    [
      "accuracy above 1",
      dir,
      { ...good, evaluation: { ...good.evaluation, accuracy: 1.5 } },
      {},
      RangeError,
      "expected input.evaluation.accuracy to be a finite number in [0, 1], got 1.5",
    ],
    [
      "confusion not adding up",
      dir,
      { ...good, evaluation: { ...good.evaluation, count: 101 } },
      {},
      RangeError,
      "expected input.evaluation.confusion to add up to input.evaluation.count = 101, got 100",
    ],
    [
      "confusion missing a row",
      dir,
      {
        ...good,
        evaluation: { ...good.evaluation, confusion: good.evaluation.confusion.slice(0, -1) },
      },
      {},
      TypeError,
      "expected input.evaluation.confusion to have 10 entries, got 9",
    ],
    [
      "empty history",
      dir,
      { ...good, history: { batches: [] } },
      {},
      TypeError,
      "expected input.history.batches to hold at least one batch, got 0",
    ],
    [
      "NaN loss",
      dir,
      { ...good, history: { batches: [{ step: 1, images: 64, learningRate: 0.01, loss: NaN }] } },
      {},
      RangeError,
      "expected input.history.batches[0].loss (or null) to be a finite number >= 0, got NaN",
    ],
    [
      "steps out of order",
      dir,
      { ...good, history: { batches: [good.history.batches[1], good.history.batches[0]] } },
      {},
      RangeError,
      "expected input.history.batches[1].step to be an integer >= 3, got 1",
    ],
    [
      "an option that is an object",
      dir,
      { ...good, header: { ...HEADER, options: { teacher: {} as string } } },
      {},
      TypeError,
      "expected input.header.options.teacher to be a string, number, boolean or null, got Object",
    ],
    [
      "predictions cut short",
      dir,
      {
        ...good,
        predictions: { images, labels, count: 2, predicted: new Uint8Array([1, 2]).slice(0, -1) },
      },
      {},
      RangeError,
      "expected 2 predictions in input.predictions.predicted, got 1",
    ],
    [
      "unscaled pixels",
      dir,
      {
        ...good,
        predictions: { images: images.map(() => 255), labels, count: 2, predicted: labels },
      },
      {},
      RangeError,
      "expected pixels in [0, 1], got a largest value of 255 (the first out of range at index 0); scale 0–255 pixels by 1/255",
    ],
    [
      "predicted class 10",
      dir,
      { ...good, predictions: { images, labels, count: 2, predicted: new Uint8Array([1, 10]) } },
      {},
      RangeError,
      "expected predicted classes 0 to 9, got 10 at index 1",
    ],
    [
      "no digits to show",
      dir,
      good,
      { maxMisclassified: 0 },
      RangeError,
      "expected options.maxMisclassified to be an integer in [1, 1000], got 0",
    ],
  ];
  try {
    for (const [what, target, input, options, errorClass, detail] of cases) {
      await assert.rejects(
        () => writeReport(target as string, input as ReportInput, options),
        (error: Error) => {
          assert.ok(error instanceof errorClass, `${what}: ${error}`);
          assert.equal(error.message, `Cannot write report: ${detail}`, what);
          return true;
        },
      );
    }
    await assert.rejects(() => Deno.stat(dir), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir.slice(0, dir.lastIndexOf("/")), { recursive: true });
  }
});
