/**
 * A training report: one self-contained `report.html` (inline CSS and SVG,
 * digits as `data:` URIs, no scripts, nothing fetched) that opens from disk,
 * and each figure as its own SVG file. Every chart is a Vega-Lite spec
 * (https://vega.github.io/vega-lite/docs/) compiled to Vega and rendered to
 * SVG by Vega's headless `View` (https://vega.github.io/vega/docs/api/view/#view_toSVG).
 *
 * @module
 */
import { join } from "node:path";
import * as vega from "vega";
import * as vl from "vega-lite";
import type { Evaluation, RobustnessReport } from "./evaluate.ts";
import type { TrainingHistory } from "./history.ts";
import { encodePng } from "./image_file.ts";
import {
  checkLabelled,
  describe,
  IMAGE_PIXELS,
  IMAGE_SIZE,
  type LabelledImages,
  NUM_CLASSES,
} from "./images.ts";

/** The run a report describes, shown in its header. */
export interface ReportHeader {
  /** The dataset trained and evaluated on, e.g. `"mnist"`. */
  dataset: string;
  /** The backend that trained, e.g. `"wasm"`. */
  backend: string;
  /** Trainable parameters of the model. */
  params: number;
  /** Training wall time in seconds (data loading excluded). */
  trainSeconds: number;
  /** Seed of the weights, shuffling and augmentation. */
  seed: number;
  /** The training options, shown as a table in the given order (e.g. `{ epochs: 1, lr: 0.03 }`). */
  options: Readonly<Record<string, string | number | boolean | null>>;
  /**
   * When the run happened.
   * @default {new Date()} the time `writeReport` is called
   */
  date?: Date;
  /**
   * The tinymnist version that trained the model (`VERSION`).
   * @default {undefined} not shown
   */
  version?: string;
}

/**
 * Labelled images with a model's prediction for each: e.g. the test set
 * and `await model.classify(test.images, { count: test.count })`.
 */
export interface Predictions extends LabelledImages {
  /** `count` predicted classes 0–9, one per image. */
  predicted: Uint8Array;
}

/** What {@linkcode writeReport} shows. */
export interface ReportInput {
  /** The run: dataset, backend, parameter count, training time, seed, options. */
  header: ReportHeader;
  /** Per-batch learning rate and read-back loss, from `recordHistory`. At least one batch. */
  history: TrainingHistory;
  /** `evaluate`'s result on the test set: accuracy, per-class accuracy, confusion matrix. */
  evaluation: Omit<Evaluation, "predicted">;
  /**
   * `robustness`'s result on the test set: accuracy under rotation, shift,
   * noise and elastic distortion.
   * @default {undefined} no robustness figure
   */
  robustness?: RobustnessReport;
  /**
   * Images with their predictions (the whole test set or any part of it); the
   * report shows the first misclassified ones among them.
   * @default {undefined} no misclassified figure
   */
  predictions?: Predictions;
}

/** Options for {@linkcode writeReport}. */
export interface ReportOptions {
  /**
   * Most misclassified digits shown, an integer in [1, 1000]. 40 fill four
   * rows of ten: enough to see what kind of mistake the model makes, small
   * enough to take in at a glance (and to keep the file small).
   * @default {40}
   */
  maxMisclassified?: number;
}

/** The paths {@linkcode writeReport} wrote. */
export interface ReportFiles {
  /** `DIR/report.html`, with every figure inline. */
  html: string;
  /** `DIR/NAME.svg` for each figure, in the report's order. */
  figures: string[];
}

const PREFIX = "Cannot write report";

/** One chart of the report: its file name (without `.svg`), heading, caption and spec. */
interface Figure {
  name: string;
  heading: string;
  caption: string;
  spec: vl.TopLevelSpec;
}

/**
 * Write a training report into `dir` (created if missing): `report.html`,
 * which shows the run's header and every figure inline and opens from disk
 * with no network, and each figure as `NAME.svg`: `loss`, `learning-rate`,
 * `per-class-accuracy`, `confusion-matrix`, then `misclassified` (with
 * `predictions`, when some are wrong) and `robustness` (with `robustness`).
 * Each file is written to a temporary name, flushed to disk and renamed, so
 * a reader never sees half a file; the HTML is written last.
 *
 * @param dir The folder to write into; files of the same names are replaced.
 * @param input What the report shows; see {@linkcode ReportInput}.
 * @param options How many misclassified digits to show.
 * @returns The paths of the HTML file and of the SVG figures.
 * @throws {TypeError} When `dir` is not a non-empty string, or a field of
 * `input` is missing or has the wrong type or shape.
 * @throws {RangeError} When a number in `input` is out of range (e.g. an
 * accuracy above 1, a negative count, a non-finite loss) or the confusion
 * matrix does not add up to the evaluation's count.
 * @throws {Deno.errors.PermissionDenied} Without write permission for `dir`.
 *
 * @example Report on a tiny synthetic run
 * ```ts
 * import { writeReport } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * const confusion = Array.from({ length: 10 }, (_, t) =>
 *   Array.from({ length: 10 }, (_, p) => (t === p ? 9 : p === (t + 1) % 10 ? 1 : 0)));
 * const dir = await Deno.makeTempDir();
 * const files = await writeReport(dir, {
 *   header: {
 *     dataset: "mnist",
 *     backend: "cpu",
 *     params: 17018,
 *     trainSeconds: 1.5,
 *     seed: 42,
 *     options: { epochs: 1, batchSize: 64 },
 *   },
 *   history: {
 *     batches: [1, 2, 3].map((step) => ({
 *       step,
 *       images: 64 * step,
 *       learningRate: 0.01 * step,
 *       loss: step === 2 ? null : 2.3 / step,
 *     })),
 *   },
 *   evaluation: { accuracy: 0.9, perClass: new Array(10).fill(0.9), confusion, count: 100 },
 * });
 * assert.deepEqual(files.figures.map((f) => f.slice(dir.length + 1)), [
 *   "loss.svg",
 *   "learning-rate.svg",
 *   "per-class-accuracy.svg",
 *   "confusion-matrix.svg",
 * ]);
 * const html = await Deno.readTextFile(files.html);
 * assert.equal(html.match(/<svg/g)?.length, 4);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeReport(
  dir: string,
  input: ReportInput,
  options: ReportOptions = {},
): Promise<ReportFiles> {
  if (typeof dir !== "string" || dir === "") {
    throw new TypeError(`${PREFIX}: expected dir to be a non-empty string, got ${describe(dir)}`);
  }
  checkObject(input, "input");
  const maxShown = options.maxMisclassified ?? 40;
  number(maxShown, "options.maxMisclassified", 1, 1000, true);
  const header = checkHeader(input.header);
  checkHistory(input.history);
  checkEvaluation(input.evaluation);
  if (input.robustness !== undefined) checkRobustness(input.robustness);
  if (input.predictions !== undefined) checkPredictions(input.predictions);

  const figures = [
    lossFigure(input.history),
    learningRateFigure(input.history),
    perClassFigure(input.evaluation),
    confusionFigure(input.evaluation),
  ];
  let misclassifiedNote = "";
  if (input.predictions) {
    const figure = await misclassifiedFigure(input.predictions, maxShown);
    const images = grouped(input.predictions.count);
    if (figure) figures.push(figure);
    else misclassifiedNote = `No misclassified digits among the ${images} images.`;
  }
  if (input.robustness) figures.push(robustnessFigure(input.robustness, input.evaluation));

  await Deno.mkdir(dir, { recursive: true });
  const rendered: { figure: Figure; svg: string }[] = [];
  const paths: string[] = [];
  for (const figure of figures) {
    const svg = await renderSvg(figure.spec);
    paths.push(await writeAtomic(dir, `${figure.name}.svg`, svg));
    rendered.push({ figure, svg });
  }
  const page = reportHtml(header, input.evaluation, rendered, misclassifiedNote);
  return { html: await writeAtomic(dir, "report.html", page), figures: paths };
}

// ---------------------------------------------------------------------------
// Figures: each a Vega-Lite spec (data, mark, encoding).

const WIDTH = 560;

function lossFigure(history: TrainingHistory): Figure {
  const last = history.batches.at(-1)!.step;
  const values = history.batches.filter((b) => b.loss !== null).map(({ step, loss }) => ({
    step,
    loss,
  }));
  return {
    name: "loss",
    heading: "Training loss",
    caption: `Mean training loss of a batch, at each of the ${values.length} steps where ` +
      "training read it back (it does so every few steps, not every step, to keep the device busy).",
    spec: {
      title: "Training loss per step",
      width: WIDTH,
      height: 220,
      data: { values },
      mark: { type: "line", point: values.length <= 60 },
      encoding: {
        x: stepAxis(last),
        y: { field: "loss", type: "quantitative", title: "mean training loss" },
      },
    },
  };
}

function learningRateFigure(history: TrainingHistory): Figure {
  const last = history.batches.at(-1)!.step;
  return {
    name: "learning-rate",
    heading: "Learning rate",
    caption: "The learning rate of each step, as the schedule set it.",
    spec: {
      title: "Learning rate per step",
      width: WIDTH,
      height: 160,
      data: { values: history.batches.map(({ step, learningRate }) => ({ step, learningRate })) },
      mark: { type: "line" },
      encoding: {
        x: stepAxis(last),
        y: {
          field: "learningRate",
          type: "quantitative",
          title: "learning rate",
          axis: { format: "~g" },
        },
      },
    },
  };
}

const stepAxis = (last: number) => ({
  field: "step",
  type: "quantitative" as const,
  title: "step (batch)",
  scale: { domain: [0, last], nice: false },
});

function perClassFigure(evaluation: Omit<Evaluation, "predicted">): Figure {
  const values = evaluation.perClass.map((accuracy, k) => ({
    class: String(k),
    accuracy: Number.isNaN(accuracy) ? null : accuracy,
    label: Number.isNaN(accuracy) ? "" : percent(accuracy),
  }));
  const overall = percent(evaluation.accuracy);
  const classAxis = {
    field: "class",
    type: "ordinal" as const,
    title: "true class",
    axis: { labelAngle: 0 },
  };
  return {
    name: "per-class-accuracy",
    heading: "Test accuracy per class",
    caption: `Accuracy among the test images of each true class; the dashed line is the ` +
      `overall accuracy, ${overall} of ${grouped(evaluation.count)} images.`,
    spec: {
      title: `Test accuracy per class (overall ${overall} of ${grouped(evaluation.count)} images)`,
      width: WIDTH,
      height: 240,
      data: { values },
      layer: [
        {
          mark: { type: "bar", color: "#4c78a8" },
          encoding: {
            x: classAxis,
            y: {
              field: "accuracy",
              type: "quantitative",
              title: "accuracy",
              scale: { domain: [0, 1] },
              axis: { format: "%" },
            },
          },
        },
        {
          mark: { type: "text", baseline: "bottom", dy: -3, fontSize: 10 },
          encoding: {
            x: classAxis,
            y: { field: "accuracy", type: "quantitative" },
            text: { field: "label" },
          },
        },
        {
          mark: { type: "rule", color: "firebrick", strokeDash: [5, 3] },
          encoding: { y: { datum: evaluation.accuracy, type: "quantitative" } },
        },
      ],
    },
  };
}

function confusionFigure(evaluation: Omit<Evaluation, "predicted">): Figure {
  const values = evaluation.confusion.flatMap((row, t) =>
    row.map((count, p) => ({ true: String(t), predicted: String(p), count }))
  );
  const max = Math.max(...values.map((v) => v.count));
  // The colour scale is symlog (log(1 + count)): the diagonal holds ~1000 per
  // class and the mistakes a handful, which a linear scale would paint white.
  // Counts on cells darker than the middle of that scale are written in white.
  const dark = Math.sqrt(max + 1) - 1;
  return {
    name: "confusion-matrix",
    heading: "Confusion matrix",
    caption: "Test images of each true class (row) by predicted class (column); the colour " +
      "scale is logarithmic so that the few mistakes show.",
    spec: {
      title: "Confusion matrix (test images)",
      width: 360,
      height: 360,
      data: { values },
      encoding: {
        x: {
          field: "predicted",
          type: "ordinal",
          title: "predicted class",
          axis: { labelAngle: 0, orient: "top" },
        },
        y: { field: "true", type: "ordinal", title: "true class" },
      },
      layer: [
        {
          mark: { type: "rect" },
          encoding: {
            color: {
              field: "count",
              type: "quantitative",
              title: "images",
              scale: { type: "symlog", range: ["#f7fbff", "#08306b"] }, // the ends of "blues"
            },
          },
        },
        {
          mark: { type: "text", fontSize: 10 },
          encoding: {
            text: { field: "count", type: "quantitative" },
            color: {
              condition: [
                { test: "datum.count === 0", value: "#b0b0b0" },
                { test: `datum.count > ${dark}`, value: "white" },
              ],
              value: "black",
            },
          },
        },
      ],
    },
  };
}

const CELL = 56; // a 28 px digit drawn at twice its size

async function misclassifiedFigure(data: Predictions, maxShown: number): Promise<Figure | null> {
  const wrong: number[] = [];
  for (let i = 0; i < data.count; i++) if (data.predicted[i] !== data.labels[i]) wrong.push(i);
  if (wrong.length === 0) return null;
  const shown = wrong.slice(0, maxShown);
  const values = [];
  for (const i of shown) {
    const pixels = data.images.subarray(i * IMAGE_PIXELS, (i + 1) * IMAGE_PIXELS);
    const grey = Uint8Array.from(pixels, (v) => Math.round(v * 255)); // white ink on black, as in MNIST
    const png = await encodePng(grey, IMAGE_SIZE, IMAGE_SIZE);
    values.push({
      index: i,
      url: `data:image/png;base64,${base64(png)}`,
      trueLabel: `true ${data.labels[i]}`,
      predictedLabel: `predicted ${data.predicted[i]}`,
    });
  }
  const text = (field: string, y: number, color: string) => ({
    mark: { type: "text" as const, baseline: "top" as const, fontSize: 10, color },
    encoding: { text: { field }, x: { value: CELL / 2 }, y: { value: y } },
  });
  return {
    name: "misclassified",
    heading: "Misclassified test digits",
    caption: `The first ${shown.length} of the ${wrong.length} misclassified digits among the ` +
      `${grouped(data.count)} images, in their order there (#: the index), with the true and ` +
      "the predicted class.",
    spec: {
      title: `Misclassified digits: ${shown.length} of ${wrong.length} shown`,
      data: { values },
      // A wrapped facet labels each cell: with the image's index in the set.
      facet: {
        field: "index",
        type: "ordinal",
        header: {
          title: null,
          labelExpr: "'#' + datum.value",
          labelFontSize: 9,
          labelColor: "gray",
        },
      },
      columns: 10,
      spec: {
        width: CELL,
        height: CELL + 28,
        layer: [
          {
            // aria: false keeps the data URI out of an aria-label (it would double the file).
            mark: { type: "image", width: CELL, height: CELL, smooth: false, aria: false },
            encoding: {
              url: { field: "url", type: "nominal" },
              x: { value: CELL / 2 },
              y: { value: CELL / 2 },
            },
          },
          text("trueLabel", CELL + 2, "black"),
          text("predictedLabel", CELL + 14, "firebrick"),
        ],
      },
      spacing: 8,
      config: { view: { stroke: null } },
    },
  };
}

function robustnessFigure(
  report: RobustnessReport,
  evaluation: Omit<Evaluation, "predicted">,
): Figure {
  const name: Record<Exclude<keyof RobustnessReport, "images">, (key: string) => string> = {
    rotation: (deg) => `rotation ±${deg}°`,
    shift: (px) => `shift ±${px} px`,
    noise: (sigma) => `noise σ ${sigma}`,
    elastic: (alpha) => `elastic α ${alpha}`,
  };
  const values = [{ perturbation: "clean", family: "clean", accuracy: evaluation.accuracy }];
  for (const family of ["rotation", "shift", "noise", "elastic"] as const) {
    for (const [key, accuracy] of Object.entries(report[family])) {
      values.push({ perturbation: name[family](key), family, accuracy });
    }
  }
  const rows = values.map((v) => ({ ...v, label: percent(v.accuracy) }));
  return {
    name: "robustness",
    heading: "Robustness",
    caption:
      `Test accuracy on perturbed copies of ${
        report.images === undefined
          ? "the test images"
          : `${report.images.toLocaleString("en-US")} test images (spread evenly over the set)`
      }: rotations and shifts ` +
      "(mean over both directions), Gaussian pixel noise, and an elastic distortion.",
    spec: {
      title: "Test accuracy under perturbation",
      width: WIDTH - 120,
      height: { step: 22 },
      data: { values: rows },
      encoding: {
        y: { field: "perturbation", type: "nominal", sort: null, title: null },
        x: {
          field: "accuracy",
          type: "quantitative",
          title: "accuracy",
          scale: { domain: [0, 1] },
          axis: { format: "%" },
        },
      },
      layer: [
        {
          mark: { type: "bar" },
          encoding: {
            color: {
              field: "family",
              type: "nominal",
              sort: null,
              legend: null,
            },
          },
        },
        {
          mark: { type: "text", align: "left", dx: 3, fontSize: 10 },
          encoding: { text: { field: "label" } },
        },
      ],
    },
  };
}

/** Compile a Vega-Lite spec to Vega and render it to an SVG document, headless. */
async function renderSvg(spec: vl.TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

// ---------------------------------------------------------------------------
// The HTML page: a small template; every interpolated text is escaped.

function reportHtml(
  header: ReportHeader & { date: Date },
  evaluation: Omit<Evaluation, "predicted">,
  figures: { figure: Figure; svg: string }[],
  note: string,
): string {
  const run: [string, string][] = [
    ["dataset", header.dataset],
    ["backend", header.backend],
    ["parameters", grouped(header.params)],
    ["training time", `${header.trainSeconds.toFixed(1)} s`],
    ["seed", String(header.seed)],
    ["test accuracy", `${percent(evaluation.accuracy)} of ${grouped(evaluation.count)} images`],
    ["date", header.date.toISOString()],
  ];
  if (header.version !== undefined) run.push(["tinymnist", header.version]);
  const rows = (entries: [string, string][]) =>
    entries.map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`)
      .join("\n");
  const options = Object.entries(header.options).map(([k, v]): [string, string] => [k, String(v)]);
  const sections = figures.map(({ figure: { name, heading, caption }, svg }) =>
    `<section id="${name}">
<h2>${escapeHtml(heading)}</h2>
<figure>
${inlineSvg(svg)}
<figcaption>${escapeHtml(caption)} <span class="file">(${name}.svg)</span></figcaption>
</figure>
</section>`
  );
  const title = escapeHtml(`tinymnist report: ${header.dataset}, ${header.date.toISOString()}`);
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<style>
body { font: 15px/1.45 system-ui, sans-serif; color: #222; max-width: 62rem; margin: 2rem auto; padding: 0 1rem; }
h1 { margin-bottom: 0.5rem; }
h2 { margin-top: 2.5rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; }
th, td { text-align: left; padding: 0.15rem 1.5rem 0.15rem 0; vertical-align: top; }
th { font-weight: 600; color: #555; }
td { font-variant-numeric: tabular-nums; }
figure { margin: 1rem 0; }
figcaption, .note { color: #555; max-width: 70ch; }
.file { color: #999; }
svg { max-width: 100%; height: auto; }
</style>
</head>
<body>
<h1>tinymnist training report</h1>
<table class="run">
${rows(run)}
</table>
<h2>Training options</h2>
<table class="options">
${rows(options)}
</table>
${sections.join("\n")}
${note === "" ? "" : `<p class="note">${escapeHtml(note)}</p>\n`}</body>
</html>
`;
}

/**
 * The SVG document as an element of the HTML page. An HTML parser puts
 * `<svg>` in the SVG namespace (and `xlink:href` in XLink's) by itself, so the
 * root's `xmlns` declarations go, leaving no `http` URL in the page.
 */
function inlineSvg(svg: string): string {
  return svg.replace(/^<svg\b[^>]*>/, (tag) => tag.replace(/ xmlns(:\w+)?="[^"]*"/g, ""));
}

function escapeHtml(text: string): string {
  const entities: Record<string, string> = {
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    '"': "&quot;",
    "'": "&#39;",
  };
  return text.replace(/[&<>"']/g, (c) => entities[c]);
}

const percent = (x: number) => `${(100 * x).toFixed(2)}%`;
const grouped = (n: number) => n.toLocaleString("en-US"); // 10,000

function base64(bytes: Uint8Array): string {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

/**
 * Write `dir/name` so that readers see the old file or the whole new one:
 * a hidden temporary file, flushed to disk, then renamed over it.
 */
async function writeAtomic(dir: string, name: string, text: string): Promise<string> {
  const path = join(dir, name);
  const random = crypto.getRandomValues(new Uint32Array(1))[0].toString(16).padStart(8, "0");
  const temp = join(dir, `.${name}.tmp-${random}`);
  try {
    await Deno.writeTextFile(temp, text, { createNew: true });
    using file = await Deno.open(temp, { read: true });
    await file.sync();
    await Deno.rename(temp, path);
    return path;
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    throw error;
  }
}

// ---------------------------------------------------------------------------
// Input checks: "Cannot write report: expected <what> to be <shape>, got <value>".

function checkObject(value: unknown, what: string): void {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TypeError(`${PREFIX}: expected ${what} to be an object, got ${describe(value)}`);
  }
}

/** `value` if it is a finite number (an integer if asked) in [min, max], else throws. */
function number(value: unknown, what: string, min: number, max: number, integer = false): number {
  if (typeof value !== "number") {
    throw new TypeError(`${PREFIX}: expected ${what} to be a number, got ${describe(value)}`);
  }
  if (
    !Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))
  ) {
    const kind = integer ? "an integer" : "a finite number";
    const range = min === -Infinity ? "" : max === Infinity ? ` >= ${min}` : ` in [${min}, ${max}]`;
    throw new RangeError(`${PREFIX}: expected ${what} to be ${kind}${range}, got ${value}`);
  }
  return value;
}

function string(value: unknown, what: string): string {
  if (typeof value !== "string") {
    throw new TypeError(`${PREFIX}: expected ${what} to be a string, got ${describe(value)}`);
  }
  return value;
}

function array(value: unknown, what: string, length?: number): unknown[] {
  if (!Array.isArray(value)) {
    throw new TypeError(`${PREFIX}: expected ${what} to be an array, got ${describe(value)}`);
  }
  if (length !== undefined && value.length !== length) {
    throw new TypeError(
      `${PREFIX}: expected ${what} to have ${length} entries, got ${value.length}`,
    );
  }
  return value;
}

function checkHeader(header: ReportHeader) {
  checkObject(header, "input.header");
  string(header.dataset, "input.header.dataset");
  string(header.backend, "input.header.backend");
  number(header.params, "input.header.params", 0, Infinity, true);
  number(header.trainSeconds, "input.header.trainSeconds", 0, Infinity);
  number(header.seed, "input.header.seed", -Infinity, Infinity);
  checkObject(header.options, "input.header.options");
  for (const [key, value] of Object.entries(header.options)) {
    if (value !== null && !["string", "number", "boolean"].includes(typeof value)) {
      throw new TypeError(
        `${PREFIX}: expected input.header.options.${key} to be a string, number, boolean or null, got ${
          describe(value)
        }`,
      );
    }
  }
  const date = header.date ?? new Date();
  if (!(date instanceof Date) || Number.isNaN(date.getTime())) {
    throw new TypeError(
      `${PREFIX}: expected input.header.date to be a valid Date, got ${
        date instanceof Date ? "an invalid Date" : describe(date)
      }`,
    );
  }
  if (header.version !== undefined) string(header.version, "input.header.version");
  return { ...header, date };
}

function checkHistory(history: TrainingHistory): void {
  checkObject(history, "input.history");
  const batches = array(history.batches, "input.history.batches");
  if (batches.length === 0) {
    throw new TypeError(
      `${PREFIX}: expected input.history.batches to hold at least one batch, got 0`,
    );
  }
  let previous = 0;
  for (const [i, batch] of batches.entries()) {
    const at = `input.history.batches[${i}]`;
    checkObject(batch, at);
    const { step, images, learningRate, loss } = batch as Record<string, unknown>;
    number(step, `${at}.step`, previous + 1, Infinity, true);
    previous = step as number;
    number(images, `${at}.images`, 0, Infinity, true);
    number(learningRate, `${at}.learningRate`, 0, Infinity);
    if (loss !== null) number(loss, `${at}.loss (or null)`, 0, Infinity);
  }
}

function checkEvaluation(evaluation: Omit<Evaluation, "predicted">): void {
  checkObject(evaluation, "input.evaluation");
  const count = number(evaluation.count, "input.evaluation.count", 1, Infinity, true);
  number(evaluation.accuracy, "input.evaluation.accuracy", 0, 1);
  const perClass = array(evaluation.perClass, "input.evaluation.perClass", NUM_CLASSES);
  for (const [k, accuracy] of perClass.entries()) {
    // NaN marks a class with no images (see Evaluation.perClass).
    if (!Number.isNaN(accuracy)) number(accuracy, `input.evaluation.perClass[${k}]`, 0, 1);
  }
  const rows = array(evaluation.confusion, "input.evaluation.confusion", NUM_CLASSES);
  let total = 0;
  for (const [t, row] of rows.entries()) {
    for (const [p, cell] of array(row, `input.evaluation.confusion[${t}]`, NUM_CLASSES).entries()) {
      total += number(cell, `input.evaluation.confusion[${t}][${p}]`, 0, count, true);
    }
  }
  if (total !== count) {
    throw new RangeError(
      `${PREFIX}: expected input.evaluation.confusion to add up to input.evaluation.count = ${count}, got ${total}`,
    );
  }
}

function checkRobustness(report: RobustnessReport): void {
  checkObject(report, "input.robustness");
  for (const family of ["rotation", "shift", "noise", "elastic"] as const) {
    checkObject(report[family], `input.robustness.${family}`);
    for (const [key, accuracy] of Object.entries(report[family])) {
      number(accuracy, `input.robustness.${family}["${key}"]`, 0, 1);
    }
  }
}

function checkPredictions(data: Predictions): void {
  checkObject(data, "input.predictions");
  const count = checkLabelled(data, "write report");
  const { predicted } = data;
  if (!(predicted instanceof Uint8Array)) {
    throw new TypeError(
      `${PREFIX}: expected input.predictions.predicted to be a Uint8Array, got ${
        describe(predicted)
      }`,
    );
  }
  if (predicted.length !== count) {
    throw new RangeError(
      `${PREFIX}: expected ${count} predictions in input.predictions.predicted, got ${predicted.length}`,
    );
  }
  const bad = predicted.findIndex((p) => p >= NUM_CLASSES);
  if (bad >= 0) {
    throw new RangeError(
      `${PREFIX}: expected predicted classes 0 to 9, got ${predicted[bad]} at index ${bad}`,
    );
  }
}
