/**
 * `serve` over HTTP, without a browser: the page and its files, the model's
 * files, paths that try to leave the page's folder, `POST /predict` with real
 * MNIST test digits as PNG and JPEG files and as JSON pixels, bad and
 * oversized bodies, and a server that keeps answering after each error.
 */
import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { selectBackend } from "../lib/backend.ts";
import { encodeJpeg, encodePng } from "../lib/image_file.ts";
import { loadModel, ModelFileError } from "../lib/io.ts";
import { type ModelServer, serve, ServeError } from "../lib/serve.ts";
import { BLACK, grey, inkOnPaper, upscale, WHITE } from "./_digit_forms.ts";
import { trainedModel } from "./_trained.ts";

const REPO = fileURLToPath(new URL("..", import.meta.url));
/** Digits per class sent as PNG files. */
const PER_CLASS = 4;

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

/** Test image `i` as 28×28 8-bit grey bytes. */
function bytesOf(images: Float32Array, i: number): Uint8Array {
  return Uint8Array.from(images.subarray(i * 784, (i + 1) * 784), (v) => Math.round(255 * v));
}

/** POST a body to /predict; returns the status and the parsed JSON answer. */
async function post(
  server: ModelServer,
  body: BodyInit | Uint8Array,
  type: string,
): Promise<{ status: number; json: Record<string, unknown>; headers: Headers }> {
  const response = await fetch(new URL("/predict", server.url), {
    method: "POST",
    headers: { "content-type": type },
    body: body as BodyInit,
  });
  assert.equal(response.headers.get("content-type"), "application/json");
  return { status: response.status, json: await response.json(), headers: response.headers };
}

/**
 * Send a request line exactly as written (fetch would normalise the path
 * first) and return the status and body.
 */
async function raw(
  server: ModelServer,
  target: string,
  host = `127.0.0.1:${server.port}`,
): Promise<{ status: number; body: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  await conn.write(
    new TextEncoder().encode(
      `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`,
    ),
  );
  const text = new TextDecoder().decode(await new Response(conn.readable).arrayBuffer());
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]);
  return { status, body: text.slice(text.indexOf("\r\n\r\n") + 4) };
}

/** Start a server on the shared trained model; the test body gets it and the data. */
function withServer(
  name: string,
  body: (server: ModelServer, run: Awaited<ReturnType<typeof trainedModel>>) => Promise<void>,
) {
  Deno.test(`serve: ${name}`, async () => {
    const run = await trainedModel();
    await selectBackend("wasm");
    const tensors = tf.memory().numTensors;
    const server = await serve({ model: run.path, port: 0 });
    try {
      await body(server, run);
    } finally {
      await server.shutdown();
    }
    assert.equal(tf.memory().numTensors, tensors, "serve and shutdown leave no tensors");
  });
}

withServer(
  "GET / and the page's files, the model's files and the TensorFlow.js bundles",
  async (server, { path }) => {
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    assert.equal(server.url, `http://127.0.0.1:${server.port}/`);
    const files: [string, RegExp][] = [
      ["/", /^text\/html; charset=utf-8$/],
      ["/index.html", /^text\/html; charset=utf-8$/],
      ["/app.js", /^text\/javascript; charset=utf-8$/],
      ["/preprocess.js", /^text\/javascript; charset=utf-8$/],
      ["/style.css", /^text\/css; charset=utf-8$/],
      ["/favicon.svg", /^image\/svg\+xml$/],
      ["/tfjs/tf.es2017.min.js", /^text\/javascript; charset=utf-8$/],
      ["/tfjs/tf-backend-webgpu.es2017.min.js", /^text\/javascript; charset=utf-8$/],
      ["/model/model.json", /^application\/json$/],
      ["/model/weights.bin", /^application\/octet-stream$/],
    ];
    for (const [file, type] of files) {
      const response = await fetch(new URL(file, server.url));
      const bytes = new Uint8Array(await response.arrayBuffer());
      assert.equal(response.status, 200, file);
      assert.match(response.headers.get("content-type")!, type, file);
      assert.ok(bytes.length > 0, file);
      const csp = response.headers.get("content-security-policy")!;
      assert.match(csp, /default-src 'none'/, file);
      assert.doesNotMatch(csp, /https?:|\*|unsafe/, `${file}: no external origin, no unsafe-*`);
      assert.equal(response.headers.get("x-content-type-options"), "nosniff", file);
      if (file.startsWith("/model/")) {
        assert.deepEqual(
          bytes,
          await Deno.readFile(`${path}/${file.slice(7)}`),
          `${file} unchanged`,
        );
      }
    }
    const page = await (await fetch(server.url)).text();
    assert.match(page, /<canvas\s+id="pad"/);
    assert.doesNotMatch(
      page,
      /(src|href)="(https?:)?\/\//,
      "the page loads nothing from elsewhere",
    );
    assert.equal(
      await (await fetch(new URL("/preprocess.js", server.url))).text(),
      await Deno.readTextFile(`${REPO}web/preprocess.js`),
    );
    const head = await fetch(server.url, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), "");
  },
);

withServer(
  "paths outside the page's folder, hidden files and unknown types are refused",
  async (server) => {
    const secret = await Deno.readTextFile(`${REPO}deno.json`);
    const attempts = [
      "/../deno.json",
      "/../../../../etc/passwd",
      "/%2e%2e/deno.json",
      "/%2E%2E/%2e%2e/deno.json",
      "/%2e%2e%2fdeno.json",
      "/..%2f..%2fdeno.json",
      "/..%5cdeno.json",
      "/model/../../x",
      "/model/../deno.json",
      "/model/%2e%2e%2f%2e%2e%2fdeno.json",
      "/model/..%2fmodel.json",
      "/model/",
      "/model/nothing.bin",
      "/tfjs/../deno.json",
      "/tfjs/tf.min.js",
      "//deno.json",
      "/web/index.html",
      "/lib/serve.ts",
      "/build.sh", // in web/, but not a type the page serves
      "/.gitignore",
      "/%2e/%2e%2e/deno.json",
      "/index.html%00.js",
      "/%zz",
    ];
    for (const target of attempts) {
      const { status, body } = await raw(server, target);
      assert.ok(status === 404 || status === 400, `${target}: got ${status}`);
      assert.ok(!body.includes(secret.slice(0, 40)), `${target} leaked deno.json`);
      assert.match(JSON.parse(body).error, /^Cannot /, target);
    }
    assert.equal((await raw(server, "/%zz")).status, 400);
    assert.equal((await raw(server, "/index.html%00.js")).status, 400);
    // A name that resolves to this server but is not local (DNS rebinding) is refused.
    const rebound = await raw(server, "/", "attacker.example:80");
    assert.equal(rebound.status, 400);
    assert.equal(
      JSON.parse(rebound.body).error,
      'Cannot answer: expected the host 127.0.0.1 or localhost, got "attacker.example:80"',
    );
    assert.equal((await raw(server, "/", `localhost:${server.port}`)).status, 200);
    assert.equal((await raw(server, "/")).status, 200, "still serving");
  },
);

withServer(
  `POST /predict classifies ${10 * PER_CLASS} real test digits sent as PNG`,
  async (server, { data }) => {
    const { images, labels } = data.test;
    let right = 0;
    const wrong: string[] = [];
    for (const i of digitsPerClass(labels, PER_CLASS)) {
      const png = await encodePng(bytesOf(images, i), 28, 28);
      const { status, json } = await post(server, png, "image/png");
      assert.equal(status, 200, JSON.stringify(json));
      const probabilities = json.probabilities as number[];
      assert.equal(probabilities.length, 10);
      assert.ok(probabilities.every((p) => Number.isFinite(p) && p >= 0 && p <= 1));
      assert.ok(Math.abs(probabilities.reduce((a, b) => a + b, 0) - 1) < 1e-4);
      assert.equal(json.digit, probabilities.indexOf(Math.max(...probabilities)));
      if (json.digit === labels[i]) right++;
      else wrong.push(`test image ${i}: ${labels[i]} read as ${json.digit}`);
    }
    assert.ok(right >= 0.95 * 10 * PER_CLASS, `${right}/${10 * PER_CLASS} right: ${wrong}`);
  },
);

withServer(
  "POST /predict reads JPEG and dark-on-white PNG like deno task predict",
  async (server, { data }) => {
    const { images, labels } = data.test;
    for (const i of digitsPerClass(labels, 1)) {
      const digit = images.subarray(i * 784, (i + 1) * 784);
      const paper = inkOnPaper(upscale(digit, 56), BLACK, WHITE, 4);
      const jpeg = encodeJpeg(new Uint8Array(paper.data), 56, 56, 75);
      const inverted = grey(upscale(digit, 200), true);
      const png = await encodePng(new Uint8Array(inverted.data), 200, 200);
      for (
        const [body, type] of [[jpeg, "image/jpeg"], [png, "image/png; charset=binary"]] as const
      ) {
        const { status, json } = await post(server, body, type);
        assert.equal(status, 200, JSON.stringify(json));
        assert.equal(json.digit, labels[i], `${type}, test image ${i}`);
      }
    }
  },
);

withServer(
  "POST /predict with JSON pixels gives the model's own probabilities",
  async (server, { data, path }) => {
    const { images, labels } = data.test;
    const model = await loadModel(path);
    try {
      for (const i of [0, 1, 2, 3, 4]) {
        const pixels = images.slice(i * 784, (i + 1) * 784);
        const { status, json } = await post(
          server,
          JSON.stringify({ pixels: Array.from(pixels) }),
          "application/json",
        );
        assert.equal(status, 200, JSON.stringify(json));
        assert.equal(json.digit, labels[i]);
        const expected = await model.predict(pixels, { count: 1 });
        (json.probabilities as number[]).forEach((p, k) =>
          assert.ok(Math.abs(p - expected[k]) < 1e-6, `class ${k}: ${p} vs ${expected[k]}`)
        );
      }
    } finally {
      model.dispose();
    }
  },
);

withServer(
  "bad requests get a JSON error, and the server keeps serving",
  async (server, { data }) => {
    const good = await encodePng(bytesOf(data.test.images, 0), 28, 28);
    const blank = await encodePng(new Uint8Array(28 * 28).fill(255), 28, 28);
    const pixels = new Array(784).fill(0);
    const cases: [BodyInit | Uint8Array, string, number, string | RegExp][] = [
      [
        good.slice(0, -100),
        "image/png",
        400,
        /^Cannot decode image "request body": expected a valid PNG, got one that does not decode \(/,
      ],
      [
        new Uint8Array([1, 2, 3, 4, 5]),
        "image/png",
        400,
        'Cannot decode image "request body": expected a PNG or JPEG file, got bytes 01 02 03 04',
      ],
      [
        new Uint8Array(0),
        "image/jpeg",
        400,
        'Cannot decode image "request body": expected a PNG or JPEG file, got an empty file',
      ],
      [
        blank,
        "image/png",
        400,
        "Cannot preprocess image: expected a digit, got a blank image (contrast 0.000, need 0.1)",
      ],
      [
        "{",
        "application/json",
        400,
        /^Cannot predict: expected a JSON body \{"pixels": \[784 numbers\]\}, got invalid JSON \(/,
      ],
      [
        "[1, 2]",
        "application/json",
        400,
        'Cannot predict: expected a JSON object {"pixels": [784 numbers]}, got an array',
      ],
      [
        JSON.stringify({ pixel: pixels }),
        "application/json",
        400,
        'Cannot predict: expected a JSON object {"pixels": [784 numbers]}, got Object',
      ],
      [
        JSON.stringify({ pixels: pixels.slice(1) }),
        "application/json",
        400,
        "Cannot predict: expected 784 pixels (28×28), got 783",
      ],
      [
        JSON.stringify({ pixels: [...pixels.slice(1), "0"] }),
        "application/json",
        400,
        'Cannot predict: expected pixels to be numbers, got "0" at index 783',
      ],
      [
        JSON.stringify({ pixels: pixels.map((_, i) => i === 5 ? 255 : 0) }),
        "application/json",
        400,
        /^Cannot predict: .*255/,
      ],
      [
        JSON.stringify({ pixels }), // a blank canvas: no made-up digit
        "application/json",
        400,
        "Cannot predict: expected a digit (light on black, MNIST-style, as preprocessDigit makes), got a blank image",
      ],
      [
        good,
        "text/plain",
        415,
        'Cannot predict: expected Content-Type image/png, image/jpeg or application/json, got "text/plain"',
      ],
    ];
    for (const [body, type, status, message] of cases) {
      const answer = await post(server, body, type);
      assert.equal(answer.status, status, JSON.stringify(answer.json));
      if (typeof message === "string") assert.equal(answer.json.error, message);
      else assert.match(answer.json.error as string, message);
      // Still serving after each error.
      const again = await post(server, good, "image/png");
      assert.equal(again.status, 200);
      assert.equal(again.json.digit, data.test.labels[0]);
    }
    const methods: [string, string, number, string | null][] = [
      ["/predict", "GET", 405, "POST"],
      ["/predict", "PUT", 405, "POST"],
      ["/", "POST", 405, "GET, HEAD"],
      ["/model/model.json", "DELETE", 405, "GET, HEAD"],
      ["/nothing.js", "GET", 404, null],
      ["/predict/", "POST", 405, "GET, HEAD"],
    ];
    for (const [file, method, status, allow] of methods) {
      const response = await fetch(new URL(file, server.url), { method });
      assert.equal(response.status, status, `${method} ${file}`);
      assert.equal(response.headers.get("allow"), allow, `${method} ${file}`);
      assert.equal(response.headers.get("content-type"), "application/json");
      assert.match((await response.json()).error, /^Cannot /);
    }
    const page = await fetch(server.url);
    assert.equal(page.status, 200);
    await page.body?.cancel();
  },
);

withServer(
  "a body over 1 MiB is refused with 413, read no further than needed",
  async (server, { data }) => {
    const good = await encodePng(bytesOf(data.test.images, 0), 28, 28);
    const message = "Cannot predict: expected a body of at most 1048576 bytes, got more";
    // A 2 MiB body with its length declared.
    const declared = await post(server, new Uint8Array(2 * 1024 * 1024), "image/png");
    assert.equal(declared.status, 413);
    assert.equal(declared.json.error, message);
    // Bodies streamed with no declared length (chunked) are counted while read: 2 MiB, and
    // 64 MiB, of which the client gets to send only what the sockets buffer before the
    // server's 413 (a server that read it all would take all 64 MiB).
    for (const total of [2 * 1024 * 1024, 64 * 1024 * 1024]) {
      let sent = 0;
      const chunk = new Uint8Array(64 * 1024);
      const stream = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent >= total) return controller.close();
          sent += chunk.length;
          controller.enqueue(chunk);
        },
      });
      const streamed = await post(server, stream, "image/png");
      assert.equal(streamed.status, 413);
      assert.equal(streamed.json.error, message);
      if (total > 2 * 1024 * 1024) assert.ok(sent < total / 2, `the client sent ${sent} bytes`);
    }
    // A small file that declares a huge image is refused before it is prepared.
    const huge = await encodePng(new Uint8Array(2049 * 2048), 2049, 2048);
    assert.ok(huge.length < 1024 * 1024);
    const bomb = await post(server, huge, "image/png");
    assert.equal(bomb.status, 413);
    assert.equal(
      bomb.json.error,
      "Cannot predict: expected an image of at most 4194304 pixels (2048×2048), got 2049×2048",
    );
    // A body of exactly the limit is read (and is not a PNG).
    const atLimit = await post(server, new Uint8Array(1024 * 1024), "image/png");
    assert.equal(atLimit.status, 400);
    const again = await post(server, good, "image/png");
    assert.equal(again.status, 200);
  },
);

Deno.test("serve: with no model it says how to train one", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tinymnist-serve-" });
  const cwd = Deno.cwd();
  Deno.chdir(dir);
  try {
    await assert.rejects(serve({ port: 0 }), {
      name: "ModelFileError",
      message:
        "Cannot serve: expected a model in ./models, got none; train one with `deno task train`, " +
        "or pass the path of a model",
    });
  } finally {
    Deno.chdir(cwd);
    await Deno.remove(dir, { recursive: true });
  }
  await assert.rejects(serve({ model: `${dir}/mnist_model_x`, port: 0 }), ModelFileError);
});

Deno.test("serve: a missing page or bundle, a taken port or a bad option is a named error", async () => {
  const { path } = await trainedModel();
  await selectBackend("wasm");
  const empty = await Deno.makeTempDir({ prefix: "tinymnist-serve-" });
  const tensors = tf.memory().numTensors;
  try {
    await assert.rejects(serve({ model: path, port: 0, nodeModulesDir: empty }), {
      name: "ServeError",
      message:
        `Cannot serve the page: expected the TensorFlow.js browser bundle tf.es2017.min.js ` +
        `(@tensorflow/tfjs@${tf.version.tfjs}) in ` +
        `${empty}/.deno/@tensorflow+tfjs@${tf.version.tfjs}/node_modules/@tensorflow/tfjs/dist/tf.es2017.min.js` +
        ` or ${empty}/@tensorflow/tfjs/dist/tf.es2017.min.js, got none; run \`deno install\` to fill node_modules`,
    });
    await assert.rejects(serve({ model: path, port: 0, webDir: empty }), (error: Error) => {
      assert.ok(error instanceof ServeError);
      assert.match(
        error.message,
        /^Cannot serve the page: expected ".*" to be a folder with index\.html/,
      );
      return true;
    });
    for (const port of [-1, 1.5, 65536, NaN]) {
      await assert.rejects(serve({ model: path, port }), {
        name: "RangeError",
        message: `Cannot serve: expected port to be an integer in [0, 65535], got ${port}`,
      });
    }
    await assert.rejects(serve({ model: path, maxBodyBytes: 0 }), RangeError);
    const first = await serve({ model: path, port: 0 });
    try {
      await assert.rejects(serve({ model: path, port: first.port }), {
        name: "ServeError",
        message: `Cannot serve on 127.0.0.1:${first.port}: expected a free port, got one in use; ` +
          "pass another port (0 picks a free one)",
      });
      const page = await fetch(first.url);
      assert.equal(page.status, 200);
      await page.body?.cancel();
    } finally {
      await Promise.all([first.shutdown(), first.shutdown()]);
    }
    await first.finished;
  } finally {
    await Deno.remove(empty, { recursive: true });
  }
  assert.equal(tf.memory().numTensors, tensors, "failed starts leave no tensors");
});
