/**
 * The recipe tables of the README: for each variant and seed, train on the
 * real MNIST (one pass of the default recipe unless the variant says
 * otherwise) and print the test accuracy and training seconds.
 * - `--set ablation` (default) adds one feature at a time to a baseline;
 * - `--set tuning` varies the peak learning rate, the share of difficult
 *   examples and label smoothing of `tiny`;
 * - `--set widths` compares the presets `small`, `tiny`, `wide` and `deep`;
 * - `--set depth` gives `tiny` a second convolution in one or two blocks
 *   (`deep` is one of them; use it with `--validation`);
 * - `--set levers` changes one lever at a time from `small` (the recipe
 *   issue's levers; use it with `--validation`), and adds a 1×1 convolution
 *   to `tiny` after each block (against `--set widths --only tiny`);
 * - `--set passes` trains `small` for 30 passes with mild and with strong
 *   augmentation, `small` and `wide` for 60 passes, `deep` and two deeper
 *   architectures for 30 and `deep` for 50, 20 and 40, with strong
 *   augmentation, then changes one recipe lever at a time from `deep`'s 30
 *   passes (use it with `--validation`; `--only` picks rows; the born-again
 *   row first trains its teacher);
 * - `--set distillation` trains the 5,058-parameter `mini` preset alone and
 *   distilled from `tiny` (trained first, seed 42, `--teacher-epochs N`
 *   passes, default 1).
 *
 * `--validation` fits on the first 55,000 training images and scores on the
 * last 5,000 instead of the test set (for choosing; the test set is for the
 * final figures); with `--validation-split first` it scores on the first
 * 5,000 and fits on the rest (a second split, to check a choice). Not a
 * Deno.bench file: run it with `deno task ablation`, one process at a time
 * (training already uses both cores on wasm); `--part K/N` runs every N-th
 * job from job K (K from 0), `--only NAME` the variant named NAME, else the
 * variants whose name contains NAME, ignoring letter case (given more than
 * once, the variants any of them picks, each once, in the set's order;
 * `--list` prints the names of those that would run), `--seeds` the seeds
 * (distinct whole numbers ≥ 0; each set has its own default). A bad flag, or
 * an `--only` that is blank or matches nothing, prints one line and exits
 * with code 2.
 *
 * @module
 */
import { loadData, parseFlags, usage } from "./_usage.ts";
import { seedSummary } from "./_seed_summary.ts";
import { BACKEND_ORDER, type BackendName, selectBackend } from "../lib/backend.ts";
import { evaluate } from "../lib/evaluate.ts";
import * as tf from "@tensorflow/tfjs";
import {
  type Classifier,
  createModel,
  MNIST_MEAN,
  MNIST_STD,
  type ModelPreset,
  wrapLayersModel,
} from "../lib/model.ts";
import { MILD_AUGMENTATION, STRONG_AUGMENTATION, train, type TrainOptions } from "../lib/train.ts";

const ACTION = "run the ablation";
const { values } = parseFlags(
  ACTION,
  "ablation",
  {
    part: { type: "string", default: "0/1" },
    seeds: { type: "string" },
    set: { type: "string", default: "ablation" },
    only: { type: "string", multiple: true },
    list: { type: "boolean", default: false },
    backend: { type: "string", default: "wasm" },
    validation: { type: "boolean", default: false },
    "validation-split": { type: "string", default: "last" },
    "teacher-epochs": { type: "string", default: "1" },
    "data-dir": { type: "string" },
  },
  `Usage: deno task ablation [--set NAME] [--only TEXT] [--list] [--seeds 42,1,...]
       [--validation] [--validation-split last|first] [--part K/N] [--teacher-epochs N]
       [--backend NAME] [--data-dir DIR]

Train the README's recipe tables on the real MNIST (from --data-dir, else where
TINYMNIST_DATA_DIR says, else the cache or a download), one run at a time, and
print each run's test (or, with --validation, validation) accuracy and
seconds as JSON lines, then the mean and min per variant. Sets: ablation
(default), tuning, widths, levers, passes, depth, distillation. --only runs the
variant named TEXT, else those whose name contains TEXT, ignoring letter case
(given more than once, what any of them picks, each once, in the set's order;
--list prints the names of the variants that would run, and runs none);
--seeds are distinct whole numbers ≥ 0 (each set has its own default);
--part K/N runs the jobs K, K + N, K + 2N, ... (K from 0 to N - 1) of the
set, a job being one variant and one seed.`,
);
const partMatch = /^(\d+)\/(\d+)$/.exec(values.part!);
const [part, parts] = partMatch ? [Number(partMatch[1]), Number(partMatch[2])] : [NaN, NaN];
if (!(part < parts)) {
  usage(ACTION, `expected --part to be K/N with 0 ≤ K < N, got "${values.part}"`);
}
/** Every recipe feature off; the default recipe is `train`'s defaults. */
const BASELINE: TrainOptions = { miniEpochs: 1, hardExamples: 0, augment: false };
/**
 * An architecture that is not a preset, for the lever table: the presets'
 * conv → batch norm → ReLU → 2×2 max-pool blocks with these widths, then the
 * head: `"valid"` or `"same"` padding of the last pool and a dense layer,
 * `"none"`, no last pool (the dense layer sees the whole 7×7 map), or
 * `"gap"`, the last block's global average instead of its pool (Lin et al.
 * 2014, "Network in Network", arXiv:1312.4400).
 */
interface Architecture {
  /** Each block's convolution widths (a number: one convolution), then its pool. */
  widths: readonly (number | readonly number[])[];
  head: "valid" | "same" | "none" | "gap";
  /**
   * A 1×1 convolution → batch norm → ReLU with `filters` outputs after block
   * `after` (0-based; after its pool), mixing channels at no spatial cost
   * (Lin et al. 2014).
   */
  pointwise?: { after: number; filters: number };
  /**
   * Dropout before the dense layer: in training each input of the dense layer
   * is zeroed with this probability and the rest scaled by 1/(1 − rate)
   * (Srivastava et al. 2014, "Dropout", JMLR 15). The masks are not seeded,
   * so a run does not repeat exactly.
   */
  dropout?: number;
}

/** A classifier with an {@linkcode Architecture}, initialised as `createModel` does. */
function architectureModel(
  seed: number,
  { widths, head, pointwise, dropout }: Architecture,
): Classifier {
  let n = 0;
  const model = tf.sequential({ name: "custom" });
  model.add(tf.layers.inputLayer({ inputShape: [28, 28, 1] }));
  model.add(tf.layers.rescaling({ scale: 1 / MNIST_STD, offset: -MNIST_MEAN / MNIST_STD }));
  for (const [i, block] of widths.entries()) {
    const last = i === widths.length - 1;
    for (const filters of typeof block === "number" ? [block] : block) {
      model.add(tf.layers.conv2d({
        filters,
        kernelSize: 3,
        padding: "same",
        useBias: false,
        kernelInitializer: tf.initializers.heNormal({ seed: seed * 1000 + n++ }),
      }));
      model.add(tf.layers.batchNormalization({ momentum: 0.9 }));
      model.add(tf.layers.reLU());
    }
    if (last && head === "gap") model.add(tf.layers.globalAveragePooling2d({}));
    else if (!(last && head === "none")) {
      const padding = last && head === "same" ? "same" : "valid";
      model.add(tf.layers.maxPooling2d({ poolSize: 2, padding }));
    }
    if (pointwise?.after === i) {
      model.add(tf.layers.conv2d({
        filters: pointwise.filters,
        kernelSize: 1,
        useBias: false,
        kernelInitializer: tf.initializers.heNormal({ seed: seed * 1000 + n++ }),
      }));
      model.add(tf.layers.batchNormalization({ momentum: 0.9 }));
      model.add(tf.layers.reLU());
    }
  }
  if (head !== "gap") model.add(tf.layers.flatten());
  if (dropout) model.add(tf.layers.dropout({ rate: dropout }));
  model.add(tf.layers.dense({
    units: 10,
    activation: "softmax",
    kernelInitializer: tf.initializers.glorotUniform({ seed: seed * 1000 + n++ }),
  }));
  return wrapLayersModel(model, "custom");
}

/** `deep` as an {@linkcode Architecture}, for the levers that change its layers. */
const DEEP: Architecture = { widths: [16, 32, [24, 32]], head: "valid" };
/**
 * `deep` with a global-average-pooling head (Lin et al. 2014,
 * arXiv:1312.4400): its last convolution widened to 56 to spend the
 * parameters that the 288→10 dense layer frees (24,586 parameters).
 */
const DEEP_GAP: Architecture = { widths: [16, 32, [24, 56]], head: "gap" };

/** A teacher to distil from: a preset trained with `options` from `seed`. */
interface Teacher {
  /** How the teacher's JSON line names it. */
  name: string;
  preset: ModelPreset;
  seed: number;
  options: TrainOptions;
}
/**
 * A variant: recipe options, plus the model and the teacher it is distilled
 * from, if any (`distil: true`: `tiny` with the default recipe, seed 42, for
 * `--teacher-epochs` passes).
 */
type Variant = [
  string,
  TrainOptions & { preset?: ModelPreset; architecture?: Architecture; distil?: true | Teacher },
];
/** The block widths written as in the presets' descriptions: `16→32→(24→32)`. */
const widthsLabel = (widths: Architecture["widths"]) =>
  widths.map((b) => typeof b === "number" ? b : `(${b.join("→")})`).join("→");

/** `epochs` passes with the strong augmentation ranges. */
const strongPasses = (epochs: number): TrainOptions => ({ epochs, augment: STRONG_AUGMENTATION });

/**
 * A preset trained for `epochs` passes with strong augmentation, named
 * "PRESET, N passes, strong augmentation", then `, LEVER` with `options`.
 */
const strongRow = (
  preset: ModelPreset,
  epochs: number,
  [lever, options]: readonly [string, Variant[1]] | readonly [] = [],
): Variant => [
  `${preset}, ${epochs} passes, strong augmentation${lever ? `, ${lever}` : ""}`,
  { preset, ...strongPasses(epochs), ...options },
];

/**
 * tiny's blocks with these widths (valid last pool, dense head), with
 * `options`; its name gives the passes and the strong augmentation, if set.
 */
const depthVariant = (widths: Architecture["widths"], options: TrainOptions = {}): Variant => [
  `depth: conv ${widthsLabel(widths)}${options.epochs ? `, ${options.epochs} passes` : ""}${
    options.augment === STRONG_AUGMENTATION ? ", strong augmentation" : ""
  }`,
  { architecture: { widths, head: "valid" }, ...options },
];

const sets: Record<string, { seeds: string; variants: Variant[] }> = {
  // Each feature added to the baseline, and the default recipe.
  ablation: {
    seeds: "42,1,2",
    variants: [
      ["baseline (one-cycle, no extras)", BASELINE],
      ["+ mini-epochs (3)", { ...BASELINE, miniEpochs: 3 }],
      ["+ difficult examples (15%)", { ...BASELINE, hardExamples: 0.15 }],
      ["+ augmentation, decaying", {
        ...BASELINE,
        augment: MILD_AUGMENTATION,
        augmentSchedule: "decay",
      }],
      ["default recipe", {}],
    ],
  },
  // The README's tuning table (tiny, the default then): peak learning rate, difficult share,
  // label smoothing.
  tuning: {
    seeds: "42,1,2,3",
    variants: ([
      [0.02, 0.1],
      [0.02, 0.15],
      [0.02, 0.1, 0.05],
      [0.03, 0.1],
      [0.03, 0.1, 0.05],
      [0.04, 0.1],
      [0.03, 0.15],
      [0.03, 0.2],
      [0.04, 0.15],
      [0.045, 0.15, 0.1, 128],
      [0.06, 0.15, 0.1, 128],
    ] as const).map(([learningRate, hardExamples, labelSmoothing = 0.1, batchSize = 64]) => [
      `lr ${learningRate}, difficult ${hardExamples}, smoothing ${labelSmoothing}, batch ${batchSize}`,
      { preset: "tiny", learningRate, hardExamples, labelSmoothing, batchSize },
    ]),
  },
  // The default architecture, the previous one and a wider last convolution.
  widths: {
    seeds: "42,1,2,3",
    variants: [
      ["small (conv 16→32→32, last pool padded, 19,258 params)", { preset: "small" }],
      ["tiny (conv 16→32→32, 17,018 params)", { preset: "tiny" }],
      ["wide (conv 16→32→48, 23,098 params)", { preset: "wide" }],
      ["deep (conv 16→32→(24→32), 21,674 params)", { preset: "deep" }],
    ],
  },
  // The recipe issue's levers, each changed alone from `small` with the default recipe (the
  // best architecture found); run with --validation: they were measured on the validation split.
  levers: {
    seeds: "42,1,2,3",
    variants: ([
      ["small, default recipe", {}],
      ["architecture: tiny (last pool 7→3, dense 288→10)", { preset: "tiny" }],
      ["architecture: last conv 40 wide", { architecture: { widths: [16, 32, 40], head: "same" } }],
      ["architecture: middle conv 40 wide", {
        architecture: { widths: [16, 40, 32], head: "same" },
      }],
      ["architecture: first conv 24 wide", {
        architecture: { widths: [24, 32, 32], head: "same" },
      }],
      ["architecture: global-average-pooling head, 16→32→64", {
        architecture: { widths: [16, 32, 64], head: "gap" },
      }],
      ["architecture: no last pool, last conv 24 (dense 1,176→10)", {
        architecture: { widths: [16, 32, 24], head: "none" },
      }],
      ["architecture: no last pool, last conv 20 (dense 980→10)", {
        architecture: { widths: [16, 32, 20], head: "none" },
      }],
      ["batch 32, peak lr 0.02", { batchSize: 32, learningRate: 0.02 }],
      ["batch 48, peak lr 0.025", { batchSize: 48, learningRate: 0.025 }],
      ["peak lr 0.04", { learningRate: 0.04 }],
      ["label smoothing 0.15", { labelSmoothing: 0.15 }],
      ["difficult examples 10%", { hardExamples: 0.1 }],
      ["augmentation stronger (±15°, ±12% shift)", {
        augment: { ...MILD_AUGMENTATION, rotationDegrees: 15, translate: 0.12 },
      }],
      ["augmentation constant (no decay)", { augmentSchedule: "constant" }],
      // From tiny (the default), against `--set widths --only tiny --validation`.
      ...([[0, 16], [1, 32], [2, 32]] as const).map(([after, filters]): Variant => [
        `architecture: tiny + 1×1 convolution to ${filters} after block ${after + 1}`,
        { architecture: { widths: [16, 32, 32], head: "valid", pointwise: { after, filters } } },
      ]),
    ] as Variant[]).map(([name, options]) => [name, { preset: "small", ...options }]),
  },
  // Many passes: the mild and the strong augmentation ranges, then twice the passes for the
  // small and wide presets, then deep, two deeper architectures and 50, 20 and 40 passes of deep,
  // then the recipe's levers from deep's 30 passes (use it with --validation; 4 to 20 minutes a
  // run).
  passes: {
    seeds: "42",
    variants: [
      ["small, 30 passes, mild augmentation", { preset: "small", epochs: 30 }],
      strongRow("small", 30),
      strongRow("small", 60),
      strongRow("wide", 60),
      strongRow("deep", 30),
      depthVariant([[8, 16], [24, 32], 32], strongPasses(30)),
      depthVariant([16, 32, [28, 32]], strongPasses(30)),
      strongRow("deep", 50),
      strongRow("deep", 20),
      strongRow("deep", 40),
      // Recipe levers for many passes, each changed alone from deep's 30-pass row.
      ...([
        ["no difficult examples", { hardExamples: 0 }],
        ["peak lr 0.015", { learningRate: 0.015 }],
        ["peak lr 0.05", { learningRate: 0.05 }],
        ["label smoothing 0", { labelSmoothing: 0 }],
        ["label smoothing 0.2", { labelSmoothing: 0.2 }],
        ["batch 128, peak lr 0.045", { batchSize: 128, learningRate: 0.045 }],
        ["augmentation stronger still (±20°, ±15% shift, elastic on 50%)", {
          augment: {
            ...STRONG_AUGMENTATION,
            rotationDegrees: 20,
            translate: 0.15,
            elasticProbability: 0.5,
          },
        }],
        ["augmentation constant (no decay)", { augmentSchedule: "constant" }],
        ["elastic distortion on 70% of images (strong: 40%)", {
          augment: { ...STRONG_AUGMENTATION, elasticProbability: 0.7 },
        }],
        ["dropout 0.2 before the dense layer", {
          architecture: { ...DEEP, dropout: 0.2 },
        }],
        ["difficult examples 25%", { hardExamples: 0.25 }],
        // The head: a global average of the last block (DEEP_GAP); a 1×1 convolution before the
        // dense layer.
        ["global-average-pooling head, conv 16→32→(24→56) (24,586 params)", {
          architecture: DEEP_GAP,
        }],
        ["1×1 convolution to 32 after the last block (22,762 params)", {
          architecture: { ...DEEP, pointwise: { after: 2, filters: 32 } },
        }],
        // Three of the levers that tied the reference over four seeds, together.
        ["global-average-pooling head (24,586 params), peak lr 0.015, difficult examples 25%", {
          architecture: DEEP_GAP,
          learningRate: 0.015,
          hardExamples: 0.25,
        }],
        ["batch 32, peak lr 0.02", { batchSize: 32, learningRate: 0.02 }],
        ["first conv 24 wide (conv 24→32→(24→32), 24,066 params)", {
          architecture: { widths: [24, 32, [24, 32]], head: "valid" },
        }],
        // Born-again (Furlanello et al. 2018, arXiv:1805.04770): distilled from a teacher of the
        // same recipe, seed 7 so that it starts from other weights than the students' seeds.
        ["born-again: distilled from deep, 30 passes, seed 7 (T 2, α 0.5)", {
          distil: {
            name: "deep, 30 passes, strong augmentation",
            preset: "deep",
            seed: 7,
            options: strongPasses(30),
          },
        }],
      ] as const).map((lever) => strongRow("deep", 30, lever)),
    ],
  },
  // Two convolutions in a block (VGG-style depth: Simonyan & Zisserman 2015, arXiv:1409.1556),
  // from tiny, against `--set widths --only tiny --validation`.
  depth: {
    seeds: "42,1,2,3",
    variants: [
      ["deep (conv 16→32→(24→32), 21,674 params)", { preset: "deep" }],
      depthVariant([16, [24, 24], 32]),
      depthVariant([16, [24, 32], 32]),
      depthVariant([[16, 16], 32, 32]),
      depthVariant([[8, 16], [24, 32], 32]),
      ["deep, batch 32, peak lr 0.02", { preset: "deep", batchSize: 32, learningRate: 0.02 }],
      ["deep, peak lr 0.04", { preset: "deep", learningRate: 0.04 }],
    ],
  },
  // A small student, trained alone and distilled (T 2, α 0.5, the defaults), and the settings
  // measured on the validation split to choose them.
  distillation: {
    seeds: "42,1,2",
    variants: [
      ["mini alone", { preset: "mini" }],
      ["mini distilled from tiny (T 2, α 0.5)", { preset: "mini", distil: true }],
      ...([[1, 0.5], [4, 0.5], [4, 0.7], [8, 0.9]] as const).map(([t, a]): Variant => [
        `mini distilled, T ${t}, α ${a}`,
        { preset: "mini", distil: true, distillTemperature: t, distillWeight: a },
      ]),
    ],
  },
};
const chosen = sets[values.set!];
if (!chosen) {
  usage(ACTION, `expected --set to be one of ${Object.keys(sets).join(", ")}, got "${values.set}"`);
}
const seedList = values.seeds ?? chosen.seeds;
if (!/^\d+(,\d+)*$/.test(seedList)) {
  usage(ACTION, `expected --seeds to be whole numbers separated by commas, got "${seedList}"`);
}
const seeds = seedList.split(",").map(Number);
// Seeds `train` accepts (0 to 2^53 − 1), each once: a repeated seed would count twice in the mean.
if (!seeds.every(Number.isSafeInteger) || new Set(seeds).size < seeds.length) {
  usage(
    ACTION,
    `expected --seeds to be distinct whole numbers up to ${Number.MAX_SAFE_INTEGER}, got "${seedList}"`,
  );
}
const onlys = values.only ?? [];
const blank = onlys.find((text) => text.trim() === "");
if (blank !== undefined) {
  usage(
    ACTION,
    `expected --only to be part of a variant's name, got "${blank}" (it would run the whole set)`,
  );
}
/**
 * The variants an `--only TEXT` picks, ignoring letter case: the one named TEXT
 * alone (even when other names contain it), else those whose name contains it.
 */
function picks(text: string): Variant[] {
  const fold = (name: string) => name.toLowerCase();
  const exact = chosen.variants.filter(([name]) => fold(name) === fold(text));
  return exact.length > 0
    ? exact
    : chosen.variants.filter(([name]) => fold(name).includes(fold(text)));
}
const picksOf = onlys.map(picks);
const unmatched = onlys.filter((_, i) => picksOf[i].length === 0);
if (unmatched.length > 0) {
  usage(
    ACTION,
    `expected --only to match a variant of --set ${values.set} (--list without --only names them), got ${
      unmatched.map((text) => `"${text}"`).join(", ")
    }`,
  );
}
// In the set's order, each once: what any --only picks, or the whole set.
const picked = new Set(picksOf.flat());
const variants = onlys.length === 0
  ? chosen.variants
  : chosen.variants.filter((variant) => picked.has(variant));
const split = values["validation-split"];
if (split !== "last" && split !== "first") {
  usage(ACTION, `expected --validation-split to be last or first, got "${split}"`);
}
const teacherEpochs = values["teacher-epochs"]!;
if (!/^[1-9]\d*$/.test(teacherEpochs) || Number(teacherEpochs) > 10_000) {
  usage(
    ACTION,
    `expected --teacher-epochs to be a whole number from 1 to 10000, got "${teacherEpochs}"`,
  );
}
const backend = values.backend as BackendName;
if (!BACKEND_ORDER.includes(backend)) {
  usage(ACTION, `expected --backend to be one of ${BACKEND_ORDER.join(", ")}, got "${backend}"`);
}
// The jobs are the variants' seeds in order; --part K/N runs jobs K, K + N, …
const isJob = (v: number, s: number) => (v * seeds.length + s) % parts === part;
const inPart = (v: number) => seeds.some((_, s) => isJob(v, s));
if (!variants.some((_, v) => inPart(v))) {
  usage(
    ACTION,
    `expected --part K/N to pick a job, K below the number of jobs (variants × seeds: ${
      variants.length * seeds.length
    }), got "${values.part}"`,
  );
}
if (values.list) {
  for (const [v, [name]] of variants.entries()) if (inPart(v)) console.log(name);
  Deno.exit(0);
}
await selectBackend(backend);
const mnist = await loadData(values["data-dir"]);
// --validation: fit on the first 55,000 training images, score on the last 5,000 (for choices;
// --validation-split first: score on the first 5,000, fit on the rest); otherwise fit on all
// 60,000 and score on the 10,000 test images (for the final figures).
const HELD_OUT = 5_000;
/** Images `from` to `to` of the training set. */
const rows = (from: number, to: number) => ({
  images: mnist.train.images.subarray(from * 784, to * 784),
  labels: mnist.train.labels.subarray(from, to),
  count: to - from,
});
const all = mnist.train.count;
const data = !values.validation
  ? mnist
  : split === "last"
  ? { train: rows(0, all - HELD_OUT), test: rows(all - HELD_OUT, all) }
  : { train: rows(HELD_OUT, all), test: rows(0, HELD_OUT) };
/** Seconds to the millisecond, as printed (so 11.975, not 11.974971268). */
const toMs = (seconds: number) => Number(seconds.toFixed(3));
/** The teachers trained so far, by name and seed: each is trained once, before its first student. */
const teachers = new Map<string, Classifier>();
/** The teacher of `distil: true`: `tiny`, default recipe, seed 42, `--teacher-epochs` passes. */
const TINY_TEACHER: Teacher = {
  name: `tiny, default recipe, ${teacherEpochs} ${teacherEpochs === "1" ? "pass" : "passes"}`,
  preset: "tiny",
  seed: 42,
  options: { epochs: Number(teacherEpochs) },
};
/** The trained teacher a variant's `distil` names. */
async function teacherOf(distil: true | Teacher): Promise<Classifier> {
  const spec = distil === true ? TINY_TEACHER : distil;
  const key = `${spec.name}, seed ${spec.seed}`;
  let teacher = teachers.get(key);
  if (!teacher) {
    teacher = createModel({ seed: spec.seed, preset: spec.preset });
    const { seconds } = await train(teacher, data.train, { ...spec.options, seed: spec.seed });
    const { accuracy } = await evaluate(teacher, data.test);
    console.log(
      JSON.stringify({
        name: `teacher (${spec.name})`,
        seed: spec.seed,
        accuracy,
        seconds: toMs(seconds),
      }),
    );
    teachers.set(key, teacher);
  }
  return teacher;
}
const accuracies = new Map<string, number[]>();
for (const [v, [name, { preset, architecture, distil, ...options }]] of variants.entries()) {
  for (const [s, seed] of seeds.entries()) {
    if (!isJob(v, s)) continue;
    const model = architecture
      ? architectureModel(seed, architecture)
      : createModel({ seed, preset });
    const result = await train(model, data.train, {
      ...options,
      seed,
      ...(distil ? { teacher: await teacherOf(distil) } : {}),
    });
    const { accuracy } = await evaluate(model, data.test);
    model.dispose();
    console.log(
      JSON.stringify({ name, seed, params: model.params, accuracy, seconds: toMs(result.seconds) }),
    );
    accuracies.set(name, [...accuracies.get(name) ?? [], accuracy]);
  }
}
for (const [name, list] of accuracies) console.log(JSON.stringify(seedSummary(name, list)));
for (const teacher of teachers.values()) teacher.dispose();
