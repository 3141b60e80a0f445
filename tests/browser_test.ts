/**
 * The draw-a-digit page end to end in real headless Chromium: the server
 * serves the trained model, the page picks a TensorFlow.js backend, and real
 * MNIST test digits are drawn on its canvas with mouse strokes; the page must
 * read at least 18 of 20 right, prepare each drawing exactly as
 * `preprocessDigit` does in Deno, agree with the server's `/predict`, and log
 * no error. A browser that cannot start fails the test (it never skips). The
 * browser is driven from a child process (see tests/_browser.ts).
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { selectBackend } from "../lib/backend.ts";
import { decodeImage, encodePng } from "../lib/image_file.ts";
import { preprocessDigit } from "../lib/preprocess.ts";
import { serve } from "../lib/serve.ts";
import { runBrowser } from "./_browser.ts";
import { trainedModel } from "./_trained.ts";

/** Digits drawn per class. */
const PER_CLASS = 2;
/** Least number drawn right of the 20. */
const MIN_RIGHT = 18;
/**
 * Where the screenshot of the page (a drawn 7 and its bars) goes: the
 * README's docs/serve-page.png when TINYMNIST_SCREENSHOTS=1, else a
 * temporary file (so that a test run leaves the checkout as it was).
 */
const SCREENSHOT = Deno.env.get("TINYMNIST_SCREENSHOTS") === "1"
  ? fileURLToPath(new URL("../docs/serve-page.png", import.meta.url))
  : await Deno.makeTempFile({ prefix: "tinymnist-serve-page-", suffix: ".png" });
const VIEWPORT = { width: 800, height: 600 };

/** Bytes of a base64 string. */
function fromBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

/** The first `perClass` test digits of each class, in class order. */
function digitsPerClass(labels: Uint8Array, perClass: number): number[] {
  const picked: number[] = [];
  for (let digit = 0; digit < 10; digit++) {
    for (let i = 0, n = 0; i < labels.length && n < perClass; i++) {
      if (labels[i] === digit) picked.push(i), n++;
    }
  }
  return picked;
}

Deno.test(`browser: ${10 * PER_CLASS} real test digits drawn with the mouse on the page in headless Chromium`, async () => {
  const { data, path } = await trainedModel();
  await selectBackend("wasm");
  const { images, labels } = data.test;
  const server = await serve({ model: path, port: 0 });
  try {
    const report = await runBrowser({
      url: server.url,
      viewport: VIEWPORT,
      digits: digitsPerClass(labels, PER_CLASS).map((index) => ({
        index,
        label: labels[index],
        pixels: Array.from(images.subarray(index * 784, (index + 1) * 784)),
      })),
      screenshot: { path: SCREENSHOT, label: 7 },
    });
    const context = `problems: ${report.problems.join("; ")}; console: ${
      report.messages.join(" | ")
    }`;
    assert.equal(report.error, undefined, `${report.error}; ${context}`);

    const { backend } = report;
    assert.ok(
      backend === "webgpu" || backend === "webgl" || backend === "cpu",
      `backend ${backend}`,
    );
    assert.equal(report.tfBackend, backend, "the backend line says what tf uses");
    assert.match(
      report.backendLine!,
      new RegExp(`^TensorFlow\\.js backend: ${backend}( \\(passed over .*\\))?$`),
    );
    assert.deepEqual(report.accessible, { canvas: 1, clear: 1 });

    assert.equal(report.drawn.length, 10 * PER_CLASS);
    const wrong = report.drawn.filter((d) => d.shown !== d.label);
    assert.ok(
      report.drawn.length - wrong.length >= MIN_RIGHT,
      `${report.drawn.length - wrong.length} of ${report.drawn.length} drawn digits read right ` +
        `(need ${MIN_RIGHT}): ${wrong.map((d) => `${d.label} read as ${d.shown}`)}`,
    );
    for (const drawn of report.drawn) {
      // The page prepared its canvas exactly as preprocessDigit does in Deno ...
      const expected = preprocessDigit(decodeImage(fromBase64(drawn.canvasPng)));
      assert.deepEqual(drawn.input, Array.from(expected), `test image ${drawn.index}`);
      // ... and the server's model, on another backend, gives what the bars show.
      const answer = await fetch(new URL("/predict", server.url), {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ pixels: drawn.input }),
      });
      const { digit, probabilities } = await answer.json();
      assert.equal(digit, drawn.shown, `test image ${drawn.index}: server and page agree`);
      drawn.percents.forEach((percent, k) =>
        assert.ok(
          Math.abs(percent - 100 * probabilities[k]) <= 0.06,
          `test image ${drawn.index}, bar ${k}: ${percent}% shown, ${
            100 * probabilities[k]
          }% served`,
        )
      );
    }

    // Five real digits as PNG files straight to /predict.
    for (let i = 0; i < 5; i++) {
      const png = await encodePng(
        Uint8Array.from(images.subarray(i * 784, (i + 1) * 784), (v) => Math.round(255 * v)),
        28,
        28,
      );
      const answer = await fetch(new URL("/predict", server.url), {
        method: "POST",
        headers: { "content-type": "image/png" },
        body: png as Uint8Array<ArrayBuffer>,
      });
      assert.equal(answer.status, 200);
      assert.equal((await answer.json()).digit, labels[i], `test image ${i} as PNG`);
    }

    const shot = decodeImage(await Deno.readFile(SCREENSHOT), SCREENSHOT);
    assert.deepEqual([shot.width, shot.height], [VIEWPORT.width, VIEWPORT.height]);
    assert.deepEqual(report.problems, [], context);
  } finally {
    await server.shutdown();
  }
});
