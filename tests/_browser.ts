/**
 * The browser side of the end-to-end page test: headless Chromium (Debian's
 * /usr/bin/chromium; playwright-core never downloads a browser here) opens the
 * page, waits for its backend, draws MNIST digits on the canvas with real
 * mouse strokes, and reports what the page showed.
 *
 * It runs in its own process, started by {@linkcode runBrowser}: importing
 * playwright-core reads `os.homedir()`, `os.release()` and probes
 * `/proc/sys/fs/binfmt_misc/WSLInterop` (is-wsl), and Deno allows a `/proc`
 * path only with `--allow-all`; the test process keeps its narrower
 * permissions (starting a subprocess is what its `--allow-run` is for).
 *
 *     deno run --allow-all tests/_browser.ts JOB.json REPORT.json
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import type { Browser, Page } from "playwright-core";

/** The browser the test drives: Debian's package (`apt-get install chromium`). */
export const CHROMIUM = "/usr/bin/chromium";

/**
 * Chromium's flags: no sandbox (the tests run as root), nothing fetched in
 * the background (the network is closed), WebGPU enabled so that the page
 * can pick it.
 */
export const CHROMIUM_ARGS: readonly string[] = [
  "--no-sandbox",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
  "--enable-unsafe-webgpu",
];

/** What to draw, and where. */
export interface BrowserJob {
  /** The page's address. */
  url: string;
  /** The browser window's size, CSS px. */
  viewport: { width: number; height: number };
  /** The digits to draw, one after the other (Clear between them). */
  digits: { index: number; label: number; pixels: number[] }[];
  /** Save a screenshot to `path` once the first digit with `label` is drawn. */
  screenshot?: { path: string; label: number };
  /**
   * Only open `url` (a file:// report) and measure its SVG figures: no
   * drawing, and any request beyond file: and data: URLs is a problem.
   */
  inspect?: boolean;
}

/** One `<svg>` of an inspected page: its size (CSS px) and how many marks it draws. */
export interface Figure {
  width: number;
  height: number;
  marks: number;
}

/** What the page showed for one drawn digit. */
export interface DrawnDigit {
  /** The test image's index and label. */
  index: number;
  label: number;
  /** The digit the page shows, or null if none. */
  shown: number | null;
  /** The canvas as the page read it, a PNG (base64; lossless, so its exact RGBA). */
  canvasPng: string;
  /** What the page's preprocess.js made of the canvas: 784 values. */
  input: number[];
  /** The ten percentages on the bars. */
  percents: number[];
}

/** What the browser saw. */
export interface BrowserReport {
  /** Why the run stopped early (Chromium did not start, the page did not get ready, ...). */
  error?: string;
  /** The backend the page says it uses (`data-backend` of its backend line). */
  backend?: string;
  /** What `tf.getBackend()` says in the page. */
  tfBackend?: string;
  /** The backend line's text. */
  backendLine?: string;
  /** Elements found by role and accessible name: the canvas and the Clear button. */
  accessible?: { canvas: number; clear: number };
  /** One entry per digit drawn. */
  drawn: DrawnDigit[];
  /** Console errors, page errors, failed requests and HTTP errors. */
  problems: string[];
  /** Every console message, `type: text`. */
  messages: string[];
  /** The SVG figures of an inspected page. */
  figures?: Figure[];
}

/**
 * Run the browser side in a child `deno run --allow-all` process and return
 * its report.
 *
 * @param job What to draw, and where.
 * @returns The report (with `error` set if it stopped early).
 * @throws {Error} If the child process ends without a report.
 */
export async function runBrowser(job: BrowserJob): Promise<BrowserReport> {
  const dir = await Deno.makeTempDir({ prefix: "tinymnist-browser-" });
  try {
    await Deno.writeTextFile(`${dir}/job.json`, JSON.stringify(job));
    const { code, stderr } = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-all",
        "--config",
        fileURLToPath(new URL("../deno.json", import.meta.url)),
        fileURLToPath(import.meta.url),
        `${dir}/job.json`,
        `${dir}/report.json`,
      ],
      stdout: "inherit",
      stderr: "piped",
      signal: AbortSignal.timeout(600_000),
    }).output();
    const report = await Deno.readTextFile(`${dir}/report.json`).catch(() => null);
    if (report === null) {
      throw new Error(
        `Cannot run the browser: tests/_browser.ts exited with code ${code} and no report: ${
          new TextDecoder().decode(stderr)
        }`,
      );
    }
    return JSON.parse(report);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** One mouse stroke, from one point to another, in the digit's 28×28 pixel units. */
export interface Stroke {
  from: [number, number];
  to: [number, number];
}

/** Level from which a pixel counts as ink for the strokes. */
const INK = 0.5;

/**
 * Strokes that trace a 28×28 digit the way a pen scanning it would: along
 * each row, one stroke over each run of ink pixels (from the centre of its
 * first pixel to the centre of its last).
 *
 * @param digit 784 values in [0, 1], light on black.
 * @returns The strokes, row by row.
 */
export function rowStrokes(digit: ArrayLike<number>): Stroke[] {
  const strokes: Stroke[] = [];
  for (let y = 0; y < 28; y++) {
    let start = -1;
    for (let x = 0; x <= 28; x++) {
      const ink = x < 28 && digit[y * 28 + x] >= INK;
      if (ink && start < 0) start = x;
      if (!ink && start >= 0) {
        strokes.push({ from: [start + 0.5, y + 0.5], to: [x - 0.5, y + 0.5] });
        start = -1;
      }
    }
  }
  return strokes;
}

/**
 * Draw strokes on the page's canvas `#pad` with the mouse (button down,
 * moves, button up: real pointer events), the 28×28 digit scaled to the
 * canvas.
 *
 * @param page The page.
 * @param strokes Strokes in 28×28 units.
 * @returns The canvas's drawing version after the last stroke.
 */
async function drawStrokes(page: Page, strokes: Stroke[]): Promise<number> {
  const area = await page.evaluate(`(() => {
    const pad = document.getElementById("pad");
    const r = pad.getBoundingClientRect();
    return { x: r.left + pad.clientLeft, y: r.top + pad.clientTop, size: pad.clientWidth };
  })()`) as { x: number; y: number; size: number };
  const scale = area.size / 28;
  const at = ([x, y]: [number, number]): [number, number] => [
    area.x + x * scale,
    area.y + y * scale,
  ];
  for (const { from, to } of strokes) {
    const [x0, y0] = at(from);
    const [x1, y1] = at(to);
    await page.mouse.move(x0, y0);
    await page.mouse.down();
    // A move every 4 digit pixels: the page draws straight segments between them.
    const steps = Math.max(1, Math.ceil(Math.hypot(x1 - x0, y1 - y0) / (4 * scale)));
    await page.mouse.move(x1, y1, { steps });
    await page.mouse.up();
  }
  return Number(await page.getAttribute("#pad", "data-version"));
}

/** What the page holds for its current drawing: the canvas, its model input, the bars. */
const READ_PAGE = `(async () => {
  const { preprocessDigit } = await import("/preprocess.js");
  const pad = document.getElementById("pad");
  const image = pad.getContext("2d").getImageData(0, 0, pad.width, pad.height);
  return {
    canvasPng: pad.toDataURL("image/png").replace(/^data:image\\/png;base64,/, ""),
    input: Array.from(preprocessDigit(image)),
    percents: Array.from(document.querySelectorAll("#bars .percent"), (e) => parseFloat(e.textContent)),
  };
})()`;

/** Open the page, draw the job's digits, and fill `report`. */
async function drive(job: BrowserJob, report: BrowserReport): Promise<void> {
  const { chromium } = await import("playwright-core");
  let browser: Browser;
  try {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [...CHROMIUM_ARGS],
      headless: true,
      timeout: 60_000,
    });
  } catch (error) {
    throw new Error(
      `Cannot start Chromium (${CHROMIUM}): ${(error as Error).message}; install it with ` +
        "`apt-get install chromium` (the test never downloads a browser)",
    );
  }
  try {
    const page = await browser.newPage({ viewport: job.viewport });
    page.on("console", (message) => {
      report.messages.push(`${message.type()}: ${message.text()}`);
      if (message.type() === "error") report.problems.push(`console error: ${message.text()}`);
    });
    page.on("pageerror", (error) => report.problems.push(`page error: ${error.message}`));
    page.on("requestfailed", (request) => {
      report.problems.push(`request failed: ${request.url()} (${request.failure()?.errorText})`);
    });
    page.on("response", (response) => {
      if (response.status() >= 400) {
        report.problems.push(`HTTP ${response.status()} for ${response.url()}`);
      }
    });
    if (job.inspect) {
      page.on("request", (request) => {
        if (!/^(file|data):/.test(request.url())) report.problems.push(`request ${request.url()}`);
      });
      await page.goto(job.url);
      report.figures = await page.$$eval("svg", (svgs) =>
        svgs.map((svg) => {
          const box = svg.getBoundingClientRect();
          const marks = svg.querySelectorAll("path, rect, image, text, line").length;
          return { width: box.width, height: box.height, marks };
        }));
      return;
    }
    const response = await page.goto(job.url);
    if (response?.status() !== 200) throw new Error(`GET ${job.url}: ${response?.status()}`);
    try {
      await page.waitForSelector("body[data-ready=true]", { timeout: 180_000 });
    } catch {
      throw new Error(
        `The page did not get ready: "${await page.textContent("#backend")}", ` +
          `"${await page.textContent("#error")}"`,
      );
    }
    report.backend = (await page.getAttribute("#backend", "data-backend")) ?? undefined;
    report.tfBackend = await page.evaluate("tf.getBackend()") as string;
    report.backendLine = (await page.textContent("#backend")) ?? undefined;
    const clear = page.getByRole("button", { name: "Clear" });
    report.accessible = {
      canvas: await page.getByRole("img", { name: /^Drawing area/ }).count(),
      clear: await clear.count(),
    };
    let screenshot = job.screenshot;
    for (const { index, label, pixels } of job.digits) {
      const version = await drawStrokes(page, rowStrokes(pixels));
      await page.waitForSelector(`#prediction[data-version="${version}"]`, { timeout: 60_000 });
      const shown = await page.getAttribute("#prediction", "data-digit");
      const reading = await page.evaluate(READ_PAGE) as Omit<
        DrawnDigit,
        "index" | "label" | "shown"
      >;
      report.drawn.push({ index, label, shown: shown === null ? null : Number(shown), ...reading });
      if (screenshot && label === screenshot.label) {
        await page.screenshot({ path: screenshot.path });
        screenshot = undefined;
      }
      await clear.click();
      await page.waitForFunction(
        `document.getElementById("prediction").dataset.digit === undefined`,
      );
    }
  } finally {
    await browser.close();
  }
}

if (import.meta.main) {
  const [jobFile, reportFile] = Deno.args;
  const job: BrowserJob = JSON.parse(await Deno.readTextFile(jobFile));
  const report: BrowserReport = { drawn: [], problems: [], messages: [] };
  try {
    await drive(job, report);
  } catch (error) {
    report.error = (error as Error).message;
  }
  await Deno.writeTextFile(reportFile, JSON.stringify(report));
}
