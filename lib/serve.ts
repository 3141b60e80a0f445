/**
 * The draw-a-digit server: an HTTP server on 127.0.0.1 that serves the page
 * in `web/` (draw a digit, see the ten class probabilities live, computed in
 * the browser by TensorFlow.js), the model's files for the page to load, the
 * TensorFlow.js browser bundles, and `POST /predict` for PNG, JPEG or JSON
 * pixels, computed on the server.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { dirname, join, posix, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { decodeImage } from "./image_file.ts";
import { describe, IMAGE_PIXELS, NUM_CLASSES } from "./images.ts";
import { loadModel, ModelFileError, newestModel } from "./io.ts";
import type { Classifier } from "./model.ts";
import { preprocessDigit } from "./preprocess.ts";

/**
 * Thrown when the server cannot start: the page's folder or a TensorFlow.js
 * browser bundle is missing, or the port is taken.
 */
export class ServeError extends Error {
  /** Always `"ServeError"`. */
  override name: string = "ServeError";
  /**
   * Create an error.
   * @param message What is missing or taken, and what to do about it.
   * @param options Standard error options, e.g. `cause`.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** Options for {@linkcode serve}. */
export interface ServeOptions {
  /**
   * The model to serve: its folder, or the path of its JSON file.
   * @default {the newest model in ./models (see newestModel)}
   */
  model?: string;
  /**
   * The TCP port on 127.0.0.1; 0 picks a free one (read it from
   * {@linkcode ModelServer.port}).
   * @default {8000}
   */
  port?: number;
  /**
   * The largest request body accepted, in bytes; a larger one is refused with
   * 413 as soon as the bytes read pass it, whatever `Content-Length` says.
   * A 280×280 drawing is a few KiB as PNG; 1 MiB leaves room for photos.
   * @default {1048576}
   */
  maxBodyBytes?: number;
  /**
   * The folder of the page's static files.
   * @default {the web/ folder of this repository}
   */
  webDir?: string;
  /**
   * The `node_modules` folder to take the TensorFlow.js browser bundles
   * from (`deno install` fills it: deno.json has `"nodeModulesDir": "auto"`).
   * @default {"./node_modules"}
   */
  nodeModulesDir?: string;
}

/** A running server, as {@linkcode serve} returns it. */
export interface ModelServer {
  /** The page's address, `http://127.0.0.1:PORT/`. */
  readonly url: string;
  /** The port it listens on (the free one picked when asked for 0). */
  readonly port: number;
  /** The path of the model it serves (a folder, or a JSON file's path). */
  readonly model: string;
  /** Settles when the server has stopped. */
  readonly finished: Promise<void>;
  /**
   * Stop accepting connections, finish the requests in flight, then free the
   * model. Calling it again waits for the same shutdown.
   * @returns When the server has stopped.
   */
  shutdown(): Promise<void>;
}

/** The only address the server listens on: this machine, never the network. */
const HOSTNAME = "127.0.0.1";
/** The host names a request may carry (so a DNS-rebinding page cannot use the server). */
const LOCAL_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]"]);
/** Default port, as `Deno.serve`'s. */
const DEFAULT_PORT = 8000;
/** Default body limit: 1 MiB. */
const DEFAULT_MAX_BODY = 1024 * 1024;
/**
 * The largest image `/predict` prepares: 2048×2048 pixels. A compressed file
 * under the body limit can declare far more (a PNG of one colour shrinks
 * ~1000×), and preparing it takes ~32 bytes a pixel.
 */
export const MAX_PREDICT_PIXELS = 2048 * 2048;

/** No external origin, no inline script or style, no framing. */
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** Headers on every response. */
const COMMON_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cross-origin-resource-policy": "same-origin",
  "cache-control": "no-cache",
};

/** Content types of the static files served; a file of another type is not served. */
const CONTENT_TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
};

/**
 * The TensorFlow.js browser bundles: URL path, package, file in its `dist/`.
 * The ES2017 builds, because the ES5 `tf.min.js` evaluates strings
 * (`Function("return this")` in its core-js polyfills), which the
 * Content-Security-Policy forbids.
 */
const BUNDLES = [
  { url: "/tfjs/tf.es2017.min.js", pkg: "tfjs", file: "tf.es2017.min.js" },
  {
    url: "/tfjs/tf-backend-webgpu.es2017.min.js",
    pkg: "tfjs-backend-webgpu",
    file: "tf-backend-webgpu.es2017.min.js",
  },
] as const;

/** An error answered with a status code and `{"error": message}`. */
class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly headers?: HeadersInit) {
    super(message);
  }
}

/**
 * Start the draw-a-digit server on 127.0.0.1. It serves:
 *
 * - `GET /`: the page (`web/index.html`) and its static files, resolved under
 *   the page's folder (a path that lands outside it, a hidden file or a file
 *   of an unknown type is a 404);
 * - `GET /model/model.json` and the weight files its manifest names, read
 *   once at start, unchanged (nothing else under `/model/`);
 * - `GET /tfjs/tf.es2017.min.js` and `/tfjs/tf-backend-webgpu.es2017.min.js`:
 *   the TensorFlow.js browser bundles of the version in the import map, found
 *   in `node_modules` and read once at start;
 * - `POST /predict` with a PNG or JPEG body (`Content-Type: image/png` or
 *   `image/jpeg`), prepared as `deno task predict` does (`decodeImage`, then
 *   `preprocessDigit`), or JSON `{"pixels": [784 numbers in [0, 1]]}` (an
 *   image already in MNIST form): `200 {"digit": d, "probabilities": [10
 *   numbers]}`.
 *
 * Errors are JSON `{"error": "..."}`: 400 for a body that cannot be read as
 * a digit (with the named error's message), 413 for a body over
 * `maxBodyBytes` (counted while reading) or an image over
 * {@linkcode MAX_PREDICT_PIXELS}, 415 for another content type, 404 for an
 * unknown path, 405 for a wrong method; the server keeps serving.
 * Every response carries a strict Content-Security-Policy (`'self'` only).
 * The server prints nothing: print {@linkcode ModelServer.url} yourself.
 * The model runs on the active TensorFlow.js backend: call `selectBackend`
 * first (without it, the cpu backend).
 *
 * @param options The model, port, body limit and folders.
 * @returns The running server: its URL and port, and `shutdown()`.
 * @throws {ModelFileError} When no model is given and `./models` holds none
 * (train one with `deno task train`), or the model cannot be loaded.
 * @throws {ServeError} When the page's folder or a TensorFlow.js browser
 * bundle is missing (run `deno install`), or the port is taken.
 * @throws {RangeError} When `port` is not an integer in [0, 65535] or
 * `maxBodyBytes` not a positive integer.
 *
 * @example Serve an untrained model on a free port and fetch the page
 * ```ts
 * import { createModel, saveModel, selectBackend, serve } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * await selectBackend("cpu");
 * const dir = await Deno.makeTempDir();
 * const model = createModel();
 * const path = await saveModel(model, dir);
 * model.dispose();
 *
 * const server = await serve({ model: path, port: 0 });
 * try {
 *   const page = await fetch(server.url);
 *   assert.equal(page.status, 200);
 *   assert.match(page.headers.get("content-type")!, /^text\/html/);
 *   assert.match(await page.text(), /<canvas/);
 *   const predicted = await fetch(new URL("/predict", server.url), {
 *     method: "POST",
 *     headers: { "content-type": "application/json" },
 *     body: JSON.stringify({ pixels: new Array(784).fill(0).fill(1, 300, 320) }), // a bar
 *   });
 *   const { probabilities } = await predicted.json();
 *   assert.equal(probabilities.length, 10);
 * } finally {
 *   await server.shutdown();
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function serve(options: ServeOptions = {}): Promise<ModelServer> {
  const port = options.port ?? DEFAULT_PORT;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`Cannot serve: expected port to be an integer in [0, 65535], got ${port}`);
  }
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY;
  if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes < 1) {
    throw new RangeError(
      `Cannot serve: expected maxBodyBytes to be a positive integer, got ${maxBodyBytes}`,
    );
  }
  const modelPath = options.model ?? await newestModel("./models");
  if (modelPath === undefined) {
    throw new ModelFileError(
      "Cannot serve: expected a model in ./models, got none; train one with `deno task train`, " +
        "or pass the path of a model",
    );
  }
  const webRoot = await pageFolder(options.webDir);
  const bundles = await readBundles(options.nodeModulesDir ?? "./node_modules");
  const modelFiles = await readModelFiles(modelPath);
  const model = await loadModel(modelPath);

  const handler = async (request: Request): Promise<Response> => {
    try {
      return await route(request);
    } catch (error) {
      if (error instanceof HttpError) {
        return jsonResponse(error.status, { error: error.message }, error.headers);
      }
      return jsonResponse(500, { error: `Cannot answer: ${(error as Error)?.message ?? error}` });
    }
  };

  const route = async (request: Request): Promise<Response> => {
    const url = new URL(request.url);
    checkHost(request);
    const { pathname } = url;
    if (pathname === "/predict") {
      if (request.method !== "POST") {
        throw new HttpError(405, `Cannot ${request.method} /predict: expected POST`, {
          allow: "POST",
        });
      }
      return jsonResponse(200, await predict(request, model, maxBodyBytes));
    }
    if (request.method !== "GET" && request.method !== "HEAD") {
      await request.body?.cancel();
      throw new HttpError(405, `Cannot ${request.method} ${pathname}: expected GET or HEAD`, {
        allow: "GET, HEAD",
      });
    }
    const head = request.method === "HEAD";
    const bundle = bundles.get(pathname);
    if (bundle) return fileResponse(bundle, CONTENT_TYPES[".js"], head);
    if (pathname.startsWith("/model/")) {
      const name = decodePath(pathname.slice("/model/".length));
      const file = modelFiles.get(name);
      if (!file) throw new HttpError(404, `Cannot find ${pathname}: not a file of the model`);
      const type = name === "model.json" ? "application/json" : "application/octet-stream";
      return fileResponse(file, type, head);
    }
    const { bytes, type } = await staticFile(webRoot, pathname);
    return fileResponse(bytes, type, head);
  };

  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({ hostname: HOSTNAME, port, onListen: () => {} }, handler);
  } catch (error) {
    model.dispose();
    if (error instanceof Deno.errors.AddrInUse) {
      throw new ServeError(
        `Cannot serve on ${HOSTNAME}:${port}: expected a free port, got one in use; ` +
          "pass another port (0 picks a free one)",
        { cause: error },
      );
    }
    throw error;
  }
  const actualPort = server.addr.port;
  let stopping: Promise<void> | undefined;
  const finished = server.finished.then(() => model.dispose());
  return {
    url: `http://${HOSTNAME}:${actualPort}/`,
    port: actualPort,
    model: modelPath,
    finished,
    shutdown: () => {
      stopping ??= server.shutdown().then(() => finished);
      return stopping;
    },
  };
}

/** The page's folder, resolved to its real path, with its index.html checked. */
async function pageFolder(webDir: string | undefined): Promise<string> {
  let dir = webDir;
  if (dir === undefined) {
    const here = new URL("../web/", import.meta.url);
    if (here.protocol !== "file:") {
      throw new ServeError(
        `Cannot serve the page: expected the web/ folder on disk, got ${here.href}; ` +
          "pass webDir (a copy of the repository's web/ folder)",
      );
    }
    dir = fileURLToPath(here);
  }
  try {
    const root = await Deno.realPath(dir);
    if (!(await Deno.stat(join(root, "index.html"))).isFile) throw new Deno.errors.NotFound();
    return root;
  } catch (error) {
    if (error instanceof Deno.errors.PermissionDenied) throw error;
    throw new ServeError(
      `Cannot serve the page: expected ${JSON.stringify(dir)} to be a folder with index.html, ` +
        `got ${(error as Error).message || "no index.html"}`,
      { cause: error },
    );
  }
}

/** Read the TensorFlow.js browser bundles of the imported version from `node_modules`. */
async function readBundles(nodeModules: string): Promise<Map<string, Uint8Array>> {
  const version = tf.version.tfjs;
  const out = new Map<string, Uint8Array>();
  for (const { url, pkg, file } of BUNDLES) {
    const candidates = [
      `${nodeModules}/.deno/@tensorflow+${pkg}@${version}/node_modules/@tensorflow/${pkg}/dist/${file}`,
      `${nodeModules}/@tensorflow/${pkg}/dist/${file}`,
    ];
    let bytes: Uint8Array | undefined;
    for (const path of candidates) {
      try {
        bytes = await Deno.readFile(path);
        break;
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
    }
    if (!bytes) {
      throw new ServeError(
        `Cannot serve the page: expected the TensorFlow.js browser bundle ${file} ` +
          `(@tensorflow/${pkg}@${version}) in ${candidates.join(" or ")}, got none; ` +
          "run `deno install` to fill node_modules",
      );
    }
    out.set(url, bytes);
  }
  return out;
}

/**
 * The files the page loads the model from: its JSON file as `model.json` and
 * each weight file its manifest names (plain names in its folder), read now.
 */
async function readModelFiles(path: string): Promise<Map<string, Uint8Array>> {
  const isJson = path.endsWith(".json") &&
    !(await Deno.stat(path).then((info) => info.isDirectory, () => false));
  const jsonPath = isJson ? path : join(path, "model.json");
  const fail = (detail: string) => new ModelFileError(`Cannot serve model "${path}": ${detail}`);
  const read = async (file: string) => {
    try {
      return await Deno.readFile(file);
    } catch (error) {
      if (error instanceof Deno.errors.PermissionDenied) throw error;
      throw fail(`cannot read "${file}" (${(error as Error).message})`);
    }
  };
  const json = await read(jsonPath);
  let manifest: unknown;
  try {
    manifest = JSON.parse(new TextDecoder().decode(json)).weightsManifest;
  } catch (error) {
    throw fail(`model.json is not valid JSON (${(error as Error).message})`);
  }
  const files = new Map([["model.json", json]]);
  for (const group of Array.isArray(manifest) ? manifest : []) {
    for (const name of Array.isArray(group?.paths) ? group.paths : []) {
      if (typeof name !== "string" || !/^[^/\\]+$/.test(name) || name === "." || name === "..") {
        throw fail(`expected the manifest to hold plain file names, got ${JSON.stringify(name)}`);
      }
      if (name !== "model.json") files.set(name, await read(join(dirname(jsonPath), name)));
    }
  }
  return files;
}

/** Refuse a request addressed to another host name (DNS rebinding). */
function checkHost(request: Request): void {
  const host = request.headers.get("host");
  const name = host?.replace(/:\d+$/, "").toLowerCase();
  if (name === undefined || !LOCAL_HOSTS.has(name)) {
    throw new HttpError(
      400,
      `Cannot answer: expected the host 127.0.0.1 or localhost, got ${JSON.stringify(host)}`,
    );
  }
}

/** Percent-decode a URL path; a malformed escape or a NUL byte is a 400. */
function decodePath(path: string): string {
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    throw new HttpError(400, `Cannot decode the path ${JSON.stringify(path)}: malformed escape`);
  }
  if (decoded.includes("\0")) {
    throw new HttpError(400, `Cannot decode the path ${JSON.stringify(path)}: it holds a NUL byte`);
  }
  return decoded;
}

/**
 * A file of the page: the request path is decoded, normalised as a URL path
 * and joined to the root; anything that lands outside the root (also through
 * a link), a hidden file or a file of an unknown type is a 404.
 */
async function staticFile(
  root: string,
  pathname: string,
): Promise<{ bytes: Uint8Array; type: string }> {
  const notFound = () => new HttpError(404, `Cannot find ${pathname}`);
  const decoded = decodePath(pathname);
  if (decoded.includes("\\")) throw notFound();
  let relative = posix.normalize(`/${decoded}`);
  if (relative.endsWith("/")) relative += "index.html";
  const segments = relative.split("/").filter((s) => s !== "");
  if (segments.some((s) => s.startsWith("."))) throw notFound();
  const type = CONTENT_TYPES[posix.extname(relative).toLowerCase()];
  if (type === undefined) throw notFound();
  const path = resolve(root, ...segments);
  if (!path.startsWith(root + "/")) throw notFound();
  try {
    const real = await Deno.realPath(path);
    if (!real.startsWith(root + "/") || !(await Deno.stat(real)).isFile) throw notFound();
    return { bytes: await Deno.readFile(real), type };
  } catch (error) {
    if (error instanceof HttpError) throw error;
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
      throw notFound();
    }
    throw error;
  }
}

/** Read a request body, refusing it (413) as soon as it passes `limit` bytes. */
async function readBody(request: Request, limit: number): Promise<Uint8Array> {
  const tooLarge = () =>
    new HttpError(413, `Cannot predict: expected a body of at most ${limit} bytes, got more`);
  const declared = Number(request.headers.get("content-length"));
  if (Number.isFinite(declared) && declared > limit) {
    await request.body?.cancel();
    throw tooLarge();
  }
  if (!request.body) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      throw tooLarge();
    }
    chunks.push(value);
  }
  const body = new Uint8Array(size);
  chunks.reduce((offset, chunk) => (body.set(chunk, offset), offset + chunk.byteLength), 0);
  return body;
}

/** The model input of a JSON body `{"pixels": [784 numbers]}`. */
function pixelsFromJson(text: string): Float32Array {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new SyntaxError(
      `Cannot predict: expected a JSON body {"pixels": [784 numbers]}, got invalid JSON (${
        (error as Error).message
      })`,
    );
  }
  const pixels = (value as { pixels?: unknown } | null)?.pixels;
  if (typeof value !== "object" || value === null || !Array.isArray(pixels)) {
    throw new TypeError(
      `Cannot predict: expected a JSON object {"pixels": [784 numbers]}, got ${
        Array.isArray(value) ? "an array" : describe(pixels ?? value)
      }`,
    );
  }
  if (pixels.length !== IMAGE_PIXELS) {
    throw new TypeError(
      `Cannot predict: expected ${IMAGE_PIXELS} pixels (28×28), got ${pixels.length}`,
    );
  }
  const bad = pixels.findIndex((p) => typeof p !== "number");
  if (bad >= 0) {
    throw new TypeError(
      `Cannot predict: expected pixels to be numbers, got ${
        JSON.stringify(pixels[bad])
      } at index ${bad}`,
    );
  }
  const input = Float32Array.from(pixels as number[]);
  // A blank canvas would otherwise get a made-up digit (a PNG body is refused the same way).
  if (input.every((p) => p < 0.1)) {
    throw new RangeError(
      "Cannot predict: expected a digit (light on black, MNIST-style, as preprocessDigit makes), got a blank image",
    );
  }
  return input;
}

/** Answer `POST /predict`: the digit and the ten probabilities. */
async function predict(
  request: Request,
  model: Classifier,
  limit: number,
): Promise<{ digit: number; probabilities: number[] }> {
  const type = (request.headers.get("content-type") ?? "").split(";")[0].trim().toLowerCase();
  if (type !== "image/png" && type !== "image/jpeg" && type !== "application/json") {
    await request.body?.cancel();
    throw new HttpError(
      415,
      `Cannot predict: expected Content-Type image/png, image/jpeg or application/json, got ${
        JSON.stringify(type || null)
      }`,
    );
  }
  const body = await readBody(request, limit);
  let input: Float32Array;
  try {
    if (type === "application/json") input = pixelsFromJson(new TextDecoder().decode(body));
    else {
      const image = decodeImage(body, "request body");
      if (image.width * image.height > MAX_PREDICT_PIXELS) {
        throw new HttpError(
          413,
          `Cannot predict: expected an image of at most ${MAX_PREDICT_PIXELS} pixels ` +
            `(2048×2048), got ${image.width}×${image.height}`,
        );
      }
      input = preprocessDigit(image);
    }
    const probabilities = Array.from(await model.predict(input, { count: 1 }));
    if (!probabilities.every(Number.isFinite) || probabilities.length !== NUM_CLASSES) {
      throw new Error("the model gave non-finite probabilities (corrupt weights?)");
    }
    const digit = probabilities.indexOf(Math.max(...probabilities));
    return { digit, probabilities };
  } catch (error) {
    // Our named errors for a body that is not a digit: TypeError, RangeError,
    // SyntaxError (ImageFormatError, invalid JSON).
    if (
      error instanceof TypeError || error instanceof RangeError || error instanceof SyntaxError
    ) {
      throw new HttpError(400, error.message);
    }
    throw error;
  }
}

/** A JSON response with the common headers. */
function jsonResponse(status: number, body: unknown, extra?: HeadersInit): Response {
  const headers = new Headers({ ...COMMON_HEADERS, "content-type": "application/json" });
  new Headers(extra).forEach((value, key) => headers.set(key, value));
  return new Response(JSON.stringify(body), { status, headers });
}

/** A file response (no body for HEAD) with the common headers. */
function fileResponse(bytes: Uint8Array, type: string, head: boolean): Response {
  const headers = new Headers({
    ...COMMON_HEADERS,
    "content-type": type,
    "content-length": String(bytes.byteLength),
  });
  return new Response(head ? null : bytes as Uint8Array<ArrayBuffer>, { headers });
}
