/**
 * Find, download, verify and load MNIST or Fashion-MNIST.
 *
 * The data is looked for in this order:
 * 1. the `dir` option; if given, the files must be there (nothing else is
 *    tried);
 * 2. the directory named by the `TINYMNIST_DATA_DIR` environment variable;
 * 3. the cache directory (`data/<dataset>` by default);
 * 4. a download from public HTTPS mirrors into the cache directory.
 *
 * A directory holds the data if it holds the four standard files, each
 * either gzipped (`train-images-idx3-ubyte.gz`) or not
 * (`train-images-idx3-ubyte`). Every file is checked against a pinned
 * SHA-256 (of the `.gz` file, or of the uncompressed file) before it is used;
 * `verify: false` skips that for files read from a directory (your own IDX
 * files), never for downloads.
 *
 * @module
 */

import { parseIdxImages, parseIdxLabels } from "./idx.ts";
import { IMAGE_SIZE, PIXEL_VALUES } from "./images.ts";

/** The datasets `loadMnist` knows. Both have 28x28 images in 10 classes. */
export type Dataset = "mnist" | "fashion-mnist";

/** One split (train or test) of a dataset, ready for a model. */
export interface MnistSplit {
  /** Pixels scaled to [0, 1] (pixel / 255), row-major `[count, 28, 28, 1]`. */
  images: Float32Array;
  /** Class labels, 0 to 9, one per image. */
  labels: Uint8Array;
  /** Number of images (60000 for train, 10000 for test). */
  count: number;
  /** Shape of `images`: `[count, 28, 28, 1]`. */
  shape: [number, 28, 28, 1];
}

/** A loaded dataset. */
export interface MnistData {
  /** The training split. */
  train: MnistSplit;
  /** The test split. */
  test: MnistSplit;
  /** Which dataset this is. */
  dataset: Dataset;
  /**
   * The directory the files were read from, or `"download"` if any of them
   * was downloaded by this call.
   */
  source: string;
}

/** Progress of {@linkcode loadMnist}, one event per file and phase. */
export interface MnistProgressEvent {
  /** The file name, e.g. `"train-images-idx3-ubyte.gz"`. */
  file: string;
  /**
   * `"read"` before reading it from a directory, `"download"` before
   * fetching it from `url`, `"verify"` before checking its SHA-256.
   */
  phase: "read" | "download" | "verify";
  /** The URL being fetched, for `"download"` events. */
  url?: string;
}

/** Options for {@linkcode loadMnist}. */
export interface LoadMnistOptions {
  /**
   * Which dataset to load.
   *
   * @default {"mnist"}
   */
  dataset?: Dataset;
  /**
   * A directory that holds the four files. When given, it is the only place
   * looked at: missing files are an error, not a reason to download.
   *
   * @default {undefined} the `TINYMNIST_DATA_DIR` environment variable, then
   * the cache directory, then a download
   */
  dir?: string;
  /**
   * Where downloaded files are kept, and looked for before downloading.
   *
   * @default {"data/<dataset>"} relative to the current directory
   */
  cacheDir?: string;
  /**
   * Whether to download the files that are in no directory searched.
   *
   * @default {true}
   */
  download?: boolean;
  /**
   * Check files read from a directory against the pinned SHA-256 of the real
   * dataset. Turn it off only to load your own IDX files; downloads are
   * always checked.
   *
   * @default {true}
   */
  verify?: boolean;
  /**
   * The fetch function used to download (inject a fake one in tests).
   *
   * @default {globalThis.fetch}
   */
  fetch?: (url: string) => Promise<Response>;
  /**
   * Base URLs to download from, tried in order until one serves a file with
   * the pinned SHA-256. A file's URL is the base, a `/` if needed, and the
   * file name.
   *
   * @default {undefined} two public HTTPS mirrors of the chosen dataset
   */
  mirrors?: string[];
  /**
   * Looks up an environment variable; used for `TINYMNIST_DATA_DIR`.
   *
   * @default {undefined} `Deno.env.get`, treating a missing `--allow-env`
   * permission as "not set"
   */
  env?: (name: string) => string | undefined;
  /**
   * Called as each file is read, downloaded and verified.
   *
   * @default {undefined} no progress reports
   */
  onProgress?: (event: MnistProgressEvent) => void;
}

/**
 * Thrown when the dataset cannot be found, downloaded or trusted: files
 * missing, every mirror failing, a SHA-256 mismatch, or images and labels
 * that do not fit together.
 *
 * @example Catch a missing dataset
 * ```ts
 * import { loadMnist, MnistDataError } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * await assert.rejects(loadMnist({ dir: "no/such/dir" }), MnistDataError);
 * ```
 */
export class MnistDataError extends Error {
  /** Always `"MnistDataError"`. */
  override name: string = "MnistDataError";

  /**
   * Create an error.
   *
   * @param message What went wrong, naming files, directories or hashes.
   * @param options Standard error options, e.g. `cause`.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** The environment variable naming a directory that holds the files. */
const ENV_DATA_DIR = "TINYMNIST_DATA_DIR";

/** The four files, without `.gz`, in the order they are loaded. */
const FILES = [
  "train-images-idx3-ubyte",
  "train-labels-idx1-ubyte",
  "t10k-images-idx3-ubyte",
  "t10k-labels-idx1-ubyte",
] as const;
type FileName = typeof FILES[number];

/**
 * Pinned SHA-256 of each file, gzipped (`gz`, as distributed) and
 * uncompressed (`raw`). From the SHA256SUMS and README of the checked copies
 * in `shared/mnist` and `shared/fashion-mnist`; the .gz files are
 * byte-identical to the original distributions (their MD5s are the ones
 * torchvision checks).
 */
const SHA256: Record<Dataset, Record<FileName, { gz: string; raw: string }>> = {
  "mnist": {
    "train-images-idx3-ubyte": {
      gz: "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
      raw: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    },
    "train-labels-idx1-ubyte": {
      gz: "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
      raw: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    },
    "t10k-images-idx3-ubyte": {
      gz: "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
      raw: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    },
    "t10k-labels-idx1-ubyte": {
      gz: "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
      raw: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
  },
  "fashion-mnist": {
    "train-images-idx3-ubyte": {
      gz: "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
      raw: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    },
    "train-labels-idx1-ubyte": {
      gz: "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
      raw: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    },
    "t10k-images-idx3-ubyte": {
      gz: "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
      raw: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    },
    "t10k-labels-idx1-ubyte": {
      gz: "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
      raw: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
  },
};

/** Public HTTPS mirrors of the .gz files, tried in order. */
const MIRRORS: Record<Dataset, readonly string[]> = {
  "mnist": [
    // What torchvision downloads from.
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    // Google's copy, used by the TensorFlow MNIST tutorials.
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
  ],
  "fashion-mnist": [
    // The files in Zalando's repository (their S3 website is HTTP-only).
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    // What keras.datasets.fashion_mnist downloads from.
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
  ],
};

/**
 * Convert uint8 pixels to float32 in [0, 1] (pixel / 255).
 *
 * @param pixels Pixels in 0..255.
 * @returns A new array of the same length.
 *
 * @example Scale three pixels
 * ```ts
 * import { toFloat32Images } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * const x = toFloat32Images(new Uint8Array([0, 255, 51]));
 * assert.deepEqual([...x], [0, 1, Math.fround(0.2)]);
 * ```
 */
export function toFloat32Images(pixels: Uint8Array): Float32Array {
  const out = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) out[i] = PIXEL_VALUES[pixels[i]];
  return out;
}

/**
 * Load MNIST or Fashion-MNIST: find the files (or download them once into a
 * cache), verify their SHA-256, gunzip, parse and scale the images to [0, 1].
 *
 * See the module docs for where the files are looked for. Downloads are
 * verified before they are written, and written atomically, so a failed
 * download leaves nothing behind.
 *
 * @param options Where to look, whether to download, and progress reporting.
 * @returns The train and test splits, the dataset and where it came from.
 * @throws {MnistDataError} If the files are missing (from an explicit `dir`,
 * or everywhere and the download fails or is disabled), a SHA-256 does not
 * match, a file is not gzip, the images are not 28x28, or image and label
 * counts disagree.
 * @throws {IdxFormatError} If a file is not a well-formed IDX file.
 * @throws {RangeError} If `dataset` is not a known dataset.
 *
 * @example Load MNIST from the directory in TINYMNIST_DATA_DIR
 * ```ts
 * import { loadMnist } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * const dir = Deno.env.get("TINYMNIST_DATA_DIR");
 * if (dir !== undefined) {
 *   const { train, test } = await loadMnist({ dir });
 *   assert.deepEqual(train.shape, [60000, 28, 28, 1]);
 *   assert.equal(test.labels[0], 7);
 * }
 * ```
 *
 * @example Missing files are an error that names where it looked
 * ```ts
 * import { loadMnist } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * await assert.rejects(
 *   loadMnist({ env: () => undefined, cacheDir: "no/such/dir", download: false }),
 *   { name: "MnistDataError", message: /"no\/such\/dir" \(cache\)/ },
 * );
 * ```
 */
export async function loadMnist(
  options: LoadMnistOptions = {},
): Promise<MnistData> {
  const dataset = options.dataset ?? "mnist";
  if (!Object.hasOwn(SHA256, dataset)) {
    throw new RangeError(
      `Cannot load dataset: expected "mnist" or "fashion-mnist", got ${JSON.stringify(dataset)}`,
    );
  }
  const ctx: Context = {
    dataset,
    prefix: `Cannot load dataset ${JSON.stringify(dataset)}`,
    verify: options.verify ?? true,
    onProgress: options.onProgress ?? (() => {}),
  };

  if (options.dir !== undefined) {
    const found = await findFiles(options.dir);
    if (found.missing.length > 0) {
      const folder = JSON.stringify(options.dir);
      const stat = await Deno.stat(options.dir).catch(() => null);
      throw new MnistDataError(
        stat?.isDirectory
          ? `${ctx.prefix}: expected ${
            found.missing.map((name) => `${name}.gz`).join(", ")
          } (gzipped or uncompressed) in ${folder}, got none`
          : `${ctx.prefix}: expected a folder at ${folder}, got ${stat ? "a file" : "none"}`,
      );
    }
    return build(ctx, await readAll(ctx, found.files), options.dir);
  }

  const searched: string[] = [];
  const envDir = (options.env ?? readEnv)(ENV_DATA_DIR) || undefined;
  if (envDir !== undefined) {
    const found = await findFiles(envDir);
    if (found.missing.length === 0) {
      return build(ctx, await readAll(ctx, found.files), envDir);
    }
    searched.push(`${JSON.stringify(envDir)} (${ENV_DATA_DIR})`);
  }

  const cacheDir = options.cacheDir ?? `data/${dataset}`;
  const cached = await findFiles(cacheDir);
  if (cached.missing.length === 0) {
    return build(ctx, await readAll(ctx, cached.files), cacheDir);
  }
  searched.push(`${JSON.stringify(cacheDir)} (cache)`);

  const howTo =
    `pass the dir option (--data-dir on the command line) or set ${ENV_DATA_DIR} to a directory holding ${
      FILES.map((name) => `${name}.gz`).join(", ")
    } (or the same files uncompressed)`;
  if (!(options.download ?? true)) {
    throw new MnistDataError(
      `${ctx.prefix}: ${
        cached.missing.map((name) => `${name}.gz`).join(", ")
      } not found and download is disabled; searched ${searched.join(", ")}; ${howTo}`,
    );
  }

  const fetchFn = options.fetch ?? ((url: string) => globalThis.fetch(url));
  const mirrors = options.mirrors ?? MIRRORS[dataset];
  // Fetch and verify every missing file before writing any of them.
  const downloaded = new Map<FileName, Uint8Array>();
  for (const name of cached.missing) {
    const result = await download(ctx, name, fetchFn, mirrors);
    if (typeof result === "string") {
      throw new MnistDataError(
        `${ctx.prefix}: could not download ${name}.gz from any mirror (${result}); searched ${
          searched.join(", ")
        }; ${howTo}`,
      );
    }
    downloaded.set(name, result);
  }
  await writeCache(ctx, cacheDir, downloaded);

  // Files that were already in the cache are read (and verified) as usual.
  const raw = await readAll(ctx, cached.files);
  for (const [name, gz] of downloaded) {
    raw.set(name, {
      bytes: await gunzip(ctx, gz, `${name}.gz`),
      source: joinPath(cacheDir, `${name}.gz`),
    });
  }
  return build(ctx, raw, "download");
}

interface Context {
  dataset: Dataset;
  /** `Cannot load dataset "<dataset>"`, the start of every message. */
  prefix: string;
  verify: boolean;
  onProgress: (event: MnistProgressEvent) => void;
}

/** A file found in a directory. */
interface Found {
  path: string;
  gz: boolean;
}

/** Uncompressed IDX bytes and the path (or URL) they came from. */
interface Raw {
  bytes: Uint8Array;
  source: string;
}

function readEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    // No --allow-env permission: treat the variable as not set.
    return undefined;
  }
}

function joinPath(dir: string, name: string): string {
  return `${dir.replace(/[\\/]+$/, "")}/${name}`;
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch (error) {
    if (
      error instanceof Deno.errors.NotFound ||
      error instanceof Deno.errors.NotADirectory
    ) {
      return false;
    }
    throw error;
  }
}

/** Look for each of the four files in `dir`, preferring the .gz one. */
async function findFiles(
  dir: string,
): Promise<{ files: Map<FileName, Found>; missing: FileName[] }> {
  const files = new Map<FileName, Found>();
  const missing: FileName[] = [];
  for (const name of FILES) {
    const gzPath = joinPath(dir, `${name}.gz`);
    const rawPath = joinPath(dir, name);
    if (await isFile(gzPath)) files.set(name, { path: gzPath, gz: true });
    else if (await isFile(rawPath)) {
      files.set(name, { path: rawPath, gz: false });
    } else missing.push(name);
  }
  return { files, missing };
}

/** SHA-256 of `bytes` as 64 lowercase hex digits. Internal (tests use it too). */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    bytes as Uint8Array<ArrayBuffer>,
  );
  return Array.from(
    new Uint8Array(digest),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

/**
 * Compare a SHA-256 with the pinned one; on a mismatch return the detail
 * ("expected X, got Y"), naming the other dataset if the file is its.
 */
function checkHash(
  ctx: Context,
  name: FileName,
  gz: boolean,
  actual: string,
): string | undefined {
  const expected = SHA256[ctx.dataset][name][gz ? "gz" : "raw"];
  if (actual === expected) return undefined;
  const other = (Object.keys(SHA256) as Dataset[]).find((d) =>
    d !== ctx.dataset && SHA256[d][name][gz ? "gz" : "raw"] === actual
  );
  return `expected ${expected}, got ${actual}${
    other === undefined ? "" : `, which is the ${other} file`
  }`;
}

/** Read the found files, verify them and gunzip the gzipped ones. */
async function readAll(
  ctx: Context,
  files: Map<FileName, Found>,
): Promise<Map<FileName, Raw>> {
  const raw = new Map<FileName, Raw>();
  for (const [name, { path, gz }] of files) {
    const file = gz ? `${name}.gz` : name;
    ctx.onProgress({ file, phase: "read" });
    const bytes = await Deno.readFile(path);
    if (ctx.verify) {
      ctx.onProgress({ file, phase: "verify" });
      const mismatch = checkHash(ctx, name, gz, await sha256Hex(bytes));
      if (mismatch !== undefined) {
        throw new MnistDataError(
          `${ctx.prefix}: SHA-256 mismatch for ${JSON.stringify(path)}: ${mismatch}`,
        );
      }
    }
    raw.set(name, {
      bytes: gz ? await gunzip(ctx, bytes, path) : bytes,
      source: path,
    });
  }
  return raw;
}

async function gunzip(
  ctx: Context,
  bytes: Uint8Array,
  source: string,
): Promise<Uint8Array> {
  try {
    const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream()
      .pipeThrough(new DecompressionStream("gzip"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  } catch (error) {
    throw new MnistDataError(
      `${ctx.prefix}: cannot gunzip ${JSON.stringify(source)}: ${
        error instanceof Error ? error.message : String(error)
      }`,
      { cause: error },
    );
  }
}

/**
 * Fetch `<name>.gz` from each mirror in turn until one serves the pinned
 * SHA-256. Returns the verified bytes, or a description of every failure.
 */
async function download(
  ctx: Context,
  name: FileName,
  fetchFn: (url: string) => Promise<Response>,
  mirrors: readonly string[],
): Promise<Uint8Array | string> {
  const file = `${name}.gz`;
  const failures: string[] = [];
  for (const base of mirrors) {
    const url = `${base.endsWith("/") ? base : `${base}/`}${file}`;
    try {
      ctx.onProgress({ file, phase: "download", url });
      const response = await fetchFn(url);
      if (!response.ok) {
        await response.body?.cancel();
        failures.push(
          `${url}: HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ""}`,
        );
        continue;
      }
      const bytes = new Uint8Array(await response.arrayBuffer());
      ctx.onProgress({ file, phase: "verify", url });
      const mismatch = checkHash(ctx, name, true, await sha256Hex(bytes));
      if (mismatch === undefined) return bytes;
      failures.push(`${url}: SHA-256 mismatch: ${mismatch}`);
    } catch (error) {
      failures.push(
        `${url}: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  }
  return failures.length > 0 ? failures.join("; ") : "no mirrors given";
}

/**
 * Write verified files into the cache, each atomically: a temporary file in
 * the same directory, then a rename. Nothing is left behind on failure.
 */
async function writeCache(
  ctx: Context,
  cacheDir: string,
  files: Map<FileName, Uint8Array>,
): Promise<void> {
  for (const [name, bytes] of files) {
    const path = joinPath(cacheDir, `${name}.gz`);
    const tmp = `${path}.tmp-${crypto.randomUUID().slice(0, 8)}`;
    try {
      await Deno.mkdir(cacheDir, { recursive: true });
      await Deno.writeFile(tmp, bytes);
      await Deno.rename(tmp, path);
    } catch (error) {
      await Deno.remove(tmp).catch(() => {});
      throw new MnistDataError(
        `${ctx.prefix}: cannot write ${JSON.stringify(path)}: ${
          error instanceof Error ? error.message : String(error)
        }`,
        { cause: error },
      );
    }
  }
}

/** Parse the four files, check they fit together and scale the images. */
function build(
  ctx: Context,
  raw: Map<FileName, Raw>,
  source: string,
): MnistData {
  const split = (imagesName: FileName, labelsName: FileName): MnistSplit => {
    const imagesFile = raw.get(imagesName)!;
    const labelsFile = raw.get(labelsName)!;
    const images = parseIdxImages(imagesFile.bytes, imagesFile.source);
    if (images.rows !== IMAGE_SIZE || images.cols !== IMAGE_SIZE) {
      throw new MnistDataError(
        `${ctx.prefix}: expected ${IMAGE_SIZE}x${IMAGE_SIZE} images in ${
          JSON.stringify(imagesFile.source)
        }, got ${images.rows}x${images.cols}`,
      );
    }
    const labels = parseIdxLabels(labelsFile.bytes, labelsFile.source);
    if (labels.length !== images.count) {
      throw new MnistDataError(
        `${ctx.prefix}: expected as many labels as images, got ${images.count} images in ${
          JSON.stringify(imagesFile.source)
        } and ${labels.length} labels in ${JSON.stringify(labelsFile.source)}`,
      );
    }
    return {
      images: toFloat32Images(images.pixels),
      labels,
      count: images.count,
      shape: [images.count, IMAGE_SIZE, IMAGE_SIZE, 1],
    };
  };
  return {
    train: split("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    test: split("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    dataset: ctx.dataset,
    source,
  };
}
