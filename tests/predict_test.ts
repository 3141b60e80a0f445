/**
 * `deno task predict` on real MNIST test digits written as image files in
 * the forms people have (bigger, inverted, RGB, RGBA on an opaque or a
 * transparent background, JPEG, a photo-like page): the digits read from the files must score
 * within 1 point of the same model on the raw test tensors.
 */
import assert from "node:assert/strict";
import { selectBackend } from "../lib/backend.ts";
import { encodeJpeg, encodePng } from "../lib/image_file.ts";
import type { PixelImage } from "../lib/preprocess.ts";
import {
  BLACK,
  BLUE_INK,
  CREAM_PAPER,
  grey,
  inkOnPaper,
  onPhotoPage,
  onTransparent,
  upscale,
} from "./_digit_forms.ts";
import { createRng } from "../lib/rng.ts";
import { runCli } from "./_cli.ts";
import { trainedModel } from "./_trained.ts";

/** The grain of the photo-like page, seeded. */
const grain = createRng(5);
/** Each form: a name, a file extension and how a 28×28 digit becomes that file's pixels. */
const FORMS: [string, "png" | "jpg", (digit: Float32Array) => PixelImage][] = [
  ["56 px, light on black", "png", (d) => grey(upscale(d, 56))],
  ["200 px, light on black", "png", (d) => grey(upscale(d, 200))],
  ["200 px, inverted (dark on white)", "png", (d) => grey(upscale(d, 200), true)],
  [
    "56 px RGB, blue ink on cream paper",
    "png",
    (d) => inkOnPaper(upscale(d, 56), BLUE_INK, CREAM_PAPER),
  ],
  [
    "56 px RGBA, opaque cream background",
    "png",
    (d) => inkOnPaper(upscale(d, 56), BLUE_INK, CREAM_PAPER, 4),
  ],
  ["56 px RGBA, black ink on transparent", "png", (d) => onTransparent(upscale(d, 56), BLACK)],
  [
    "56 px JPEG quality 75, dark on white",
    "jpg",
    (d) => inkOnPaper(upscale(d, 56), BLACK, [255, 255, 255], 4),
  ],
  [
    "400×300 photo-like page: uneven light, grain",
    "png",
    (d) => onPhotoPage(d, () => grain.next()),
  ],
];
const PER_FORM = 72; // 8 forms × 72 = 576 digits

/** Write a form's pixels as a PNG or JPEG file. */
async function writeImage(path: string, kind: "png" | "jpg", image: PixelImage): Promise<void> {
  const data = new Uint8Array(image.data.buffer, image.data.byteOffset, image.data.length);
  const channels = data.length / (image.width * image.height);
  const bytes = kind === "jpg"
    ? encodeJpeg(data, image.width, image.height, 75)
    : await encodePng(data, image.width, image.height, { channels });
  await Deno.writeFile(path, bytes);
}

Deno.test(`predict: ${FORMS.length * PER_FORM} real test digits as image files score within 1 point of the raw tensors`, async () => {
  const { data, model, path } = await trainedModel();
  await selectBackend("wasm");
  const dir = await Deno.makeTempDir({ prefix: "tinymnist-predict-" });
  try {
    const files: string[] = [], labels: number[] = [];
    const count = FORMS.length * PER_FORM;
    for (let i = 0; i < count; i++) {
      const [, kind, render] = FORMS[i % FORMS.length];
      const file = `${dir}/digit${i}.${kind}`;
      await writeImage(file, kind, render(data.test.images.subarray(i * 784, (i + 1) * 784)));
      files.push(file);
      labels.push(data.test.labels[i]);
    }
    const { code, stdout, stderr } = await runCli(["predict", "--model", path, "--json", ...files]);
    assert.equal(code, 0, stderr);
    const { results, backend } = JSON.parse(stdout) as {
      results: { file: string; digit: number }[];
      backend: string;
    };
    assert.deepEqual(results.map((r) => r.file), files);
    assert.equal(backend, "wasm"); // the command's default
    const fromFiles = results.filter((r, i) => r.digit === labels[i]).length / count;
    const raw = await model.classify(data.test.images.subarray(0, count * 784), { count });
    const fromTensors = raw.filter((d, i) => d === labels[i]).length / count;
    assert.ok(
      Math.abs(fromFiles - fromTensors) <= 0.01,
      `from files ${(100 * fromFiles).toFixed(2)}%, from tensors ${
        (100 * fromTensors).toFixed(2)
      }%`,
    );
    // Per form, so that one broken form cannot hide behind the others.
    FORMS.forEach(([name], f) => {
      const mine = results.filter((r, i) => i % FORMS.length === f && r.digit === labels[i]).length;
      assert.ok(mine / PER_FORM >= 0.9, `${name}: ${mine}/${PER_FORM}`);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("predict: a bad file is named, the others are still classified, exit code 1", async () => {
  const { data, path } = await trainedModel();
  await selectBackend("wasm");
  const dir = await Deno.makeTempDir({ prefix: "tinymnist-predict-" });
  try {
    await writeImage(`${dir}/seven.png`, "png", grey(data.test.images.subarray(0, 784), true));
    await Deno.writeTextFile(`${dir}/notes.png`, "not an image");
    await writeImage(`${dir}/blank.png`, "png", grey(new Float32Array(784)));
    const { code, stdout, stderr } = await runCli([
      "predict",
      "--model",
      path,
      "--top",
      "2",
      `${dir}/notes.png`,
      `${dir}/seven.png`,
      `${dir}/blank.png`,
      `${dir}/missing.png`,
    ]);
    assert.equal(code, 1);
    assert.match(
      stdout,
      new RegExp(`^${dir}/seven.png: 7 \\(\\d+\\.\\d\\d%\\)  \\d \\(\\d+\\.\\d\\d%\\)$`),
    );
    assert.deepEqual(stderr.trimEnd().split("\n"), [
      `error: Cannot decode image "${dir}/notes.png": expected a PNG or JPEG file, got bytes 6e 6f 74 20`,
      `error: Cannot preprocess image "${dir}/blank.png": expected a digit, got a blank image (contrast 0.000, need 0.1)`,
      `error: Cannot read image "${dir}/missing.png": expected a file, got none at this path`,
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("predict: --info prints the model card; no model says how to train one", async () => {
  const { path } = await trainedModel();
  const info = await runCli(["predict", "--model", path, "--info"]);
  assert.equal(info.code, 0, info.stderr);
  const lines = info.stdout.split("\n");
  assert.equal(lines[0], `model: ${path}`);
  assert.match(info.stdout, /^preset: tiny \(17,018 parameters, float32 weights\)$/m);
  assert.match(info.stdout, /^test accuracy: \d\d\.\d\d%$/m);
  const cwd = Deno.cwd();
  const empty = await Deno.makeTempDir();
  Deno.chdir(empty);
  try {
    const none = await runCli(["predict", "x.png"]);
    assert.equal(none.code, 1);
    assert.equal(
      none.stderr,
      "error: Cannot predict: expected a model in ./models, got none (train one with `deno task train`, or pass --model PATH)\n",
    );
  } finally {
    Deno.chdir(cwd);
    await Deno.remove(empty, { recursive: true });
  }
  const usage = await runCli(["predict", "--model", path]);
  assert.equal(usage.code, 2);
  assert.equal(
    usage.stderr,
    "error: Cannot predict: expected at least one image file (PNG or JPEG), got none (see --help)\n",
  );
});
