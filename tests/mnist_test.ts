import assert from "node:assert/strict";
import { IdxFormatError } from "../lib/idx.ts";
import {
  loadMnist,
  type MnistData,
  MnistDataError,
  type MnistProgressEvent,
  toFloat32Images,
} from "../lib/mnist.ts";
import { gzip, makeImagesIdx, makeLabelsIdx, sha256Hex } from "./_fixtures.ts";

const FILES = [
  "train-images-idx3-ubyte",
  "train-labels-idx1-ubyte",
  "t10k-images-idx3-ubyte",
  "t10k-labels-idx1-ubyte",
];
const GZ_FILES = FILES.map((name) => `${name}.gz`);
const MIRROR_1 = "https://ossci-datasets.s3.amazonaws.com/mnist/";
const MIRROR_2 = "https://storage.googleapis.com/cvdf-datasets/mnist/";
const HOW_TO =
  "pass the dir option (--data-dir on the command line) or set TINYMNIST_DATA_DIR to a directory holding train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz (or the same files uncompressed)";
const GET_DATA =
  "these tests need the real MNIST files: set TINYMNIST_DATA_DIR to a directory holding " +
  `${GZ_FILES.join(", ")} (in this workspace: TINYMNIST_DATA_DIR=../shared/mnist; ` +
  `elsewhere download them from ${MIRROR_1})`;

/** The directory with the real MNIST .gz files; fails (never skips) if absent. */
function realDir(): string {
  let dir: string | undefined;
  try {
    dir = Deno.env.get("TINYMNIST_DATA_DIR");
  } catch (error) {
    throw new Error(
      `Cannot read TINYMNIST_DATA_DIR (run with --allow-env): ${GET_DATA}`,
      {
        cause: error,
      },
    );
  }
  if (!dir) throw new Error(`TINYMNIST_DATA_DIR is not set: ${GET_DATA}`);
  return dir;
}

/** The real .gz bytes of one file; fails with how to get them if absent. */
async function realGz(name: string): Promise<Uint8Array<ArrayBuffer>> {
  const path = `${realDir()}/${name}`;
  try {
    return await Deno.readFile(path);
  } catch (error) {
    throw new Error(`Cannot read ${path}: ${GET_DATA}`, { cause: error });
  }
}

/** SHA-256 of each .gz file, from the SHA256SUMS next to the real files. */
async function realSums(): Promise<Map<string, string>> {
  const text = await Deno.readTextFile(`${realDir()}/SHA256SUMS`);
  return new Map(
    text.trim().split("\n").map((line) => {
      const [hash, name] = line.trim().split(/\s+/);
      return [name, hash];
    }),
  );
}

let real: Promise<MnistData> | undefined;
/** The real data, loaded once for all tests that only read it. */
async function loadReal(): Promise<MnistData> {
  const dir = realDir();
  for (const name of GZ_FILES) await realGz(name); // clear message if missing
  real ??= loadMnist({ dir });
  return await real;
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "tinymnist_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Sorted names in a directory, or null if it does not exist. */
async function list(dir: string): Promise<string[] | null> {
  try {
    const names: string[] = [];
    for await (const entry of Deno.readDir(dir)) names.push(entry.name);
    return names.sort();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

/** A fake fetch that records the URLs it is asked for. */
function fakeFetch(
  handler: (url: string) => Response | Promise<Response>,
): ((url: string) => Promise<Response>) & { urls: string[] } {
  const urls: string[] = [];
  const fn = async (url: string) => {
    urls.push(url);
    return await handler(url);
  };
  return Object.assign(fn, { urls });
}

const noEnv = () => undefined;

/** Count of each label 0..9. */
function histogram(labels: Uint8Array): number[] {
  const counts = new Array(10).fill(0);
  for (const label of labels) counts[label]++;
  return counts;
}

async function assertRejectsWith(
  promise: Promise<unknown>,
  errorClass: new (...args: never[]) => Error,
  message: string,
): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof errorClass, `wrong error class: ${error}`);
    assert.equal(error.name, errorClass.name);
    assert.equal(error.message, message);
    return true;
  });
}

// ---- Real data -------------------------------------------------------------

Deno.test("real MNIST: counts, shapes and source", async () => {
  const data = await loadReal();
  assert.equal(data.dataset, "mnist");
  assert.equal(data.source, realDir());
  assert.equal(data.train.count, 60000);
  assert.equal(data.test.count, 10000);
  assert.deepEqual(data.train.shape, [60000, 28, 28, 1]);
  assert.deepEqual(data.test.shape, [10000, 28, 28, 1]);
  assert.ok(data.train.images instanceof Float32Array);
  assert.equal(data.train.images.length, 60000 * 28 * 28);
  assert.equal(data.test.images.length, 10000 * 28 * 28);
  assert.equal(data.train.labels.length, 60000);
  assert.equal(data.test.labels.length, 10000);
});

Deno.test("real MNIST: first labels", async () => {
  const { train, test } = await loadReal();
  assert.deepEqual([...train.labels.subarray(0, 10)], [
    5,
    0,
    4,
    1,
    9,
    2,
    1,
    3,
    1,
    4,
  ]);
  assert.deepEqual([...test.labels.subarray(0, 10)], [
    7,
    2,
    1,
    0,
    4,
    1,
    4,
    9,
    5,
    9,
  ]);
});

Deno.test("real MNIST: label counts", async () => {
  const { train, test } = await loadReal();
  assert.deepEqual(
    histogram(train.labels),
    [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
  );
  assert.deepEqual(
    histogram(test.labels),
    [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
  );
});

Deno.test("real MNIST: pixels are scaled to [0, 1]", async () => {
  const { train, test } = await loadReal();
  for (const images of [train.images, test.images]) {
    let min = Infinity, max = -Infinity;
    for (const x of images) {
      if (x < min) min = x;
      if (x > max) max = x;
    }
    assert.equal(min, 0);
    assert.equal(max, 1);
  }
  // The first training image (a 5) has ink in its middle row.
  const row14 = train.images.subarray(14 * 28, 15 * 28);
  assert.ok(row14.some((x) => x > 0.5));
});

Deno.test("loadMnist reads TINYMNIST_DATA_DIR when no dir is given", async () => {
  await withTempDir(async (tmp) => {
    const fetch = fakeFetch(() => {
      throw new Error("no network in tests");
    });
    const data = await loadMnist({ cacheDir: `${tmp}/cache`, fetch });
    assert.equal(data.source, realDir());
    assert.equal(data.test.labels[0], 7);
    assert.deepEqual(fetch.urls, []);
    assert.equal(await list(`${tmp}/cache`), null);
  });
});

// ---- Downloads (fake fetch, temp cache) ------------------------------------

Deno.test("download with a checksum mismatch fails and writes nothing", async () => {
  await withTempDir(async (tmp) => {
    const bad = await gzip(makeImagesIdx(2));
    const badHash = await sha256Hex(bad);
    const fetch = fakeFetch(() => new Response(bad));
    const cacheDir = `${tmp}/cache`;
    const expected = "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609";
    await assertRejectsWith(
      loadMnist({ env: noEnv, cacheDir, fetch }),
      MnistDataError,
      `Cannot load dataset "mnist": could not download train-images-idx3-ubyte.gz from any mirror (` +
        `${MIRROR_1}train-images-idx3-ubyte.gz: SHA-256 mismatch: expected ${expected}, got ${badHash}; ` +
        `${MIRROR_2}train-images-idx3-ubyte.gz: SHA-256 mismatch: expected ${expected}, got ${badHash}); ` +
        `searched "${cacheDir}" (cache); ${HOW_TO}`,
    );
    assert.equal(await list(cacheDir), null);
    assert.deepEqual(await list(tmp), []);
  });
});

Deno.test("a download failing on its last file writes none of the files", async () => {
  await withTempDir(async (tmp) => {
    const fetch = fakeFetch(async (url) => {
      const name = url.slice(url.lastIndexOf("/") + 1);
      if (name === "t10k-labels-idx1-ubyte.gz") {
        return new Response("not found", {
          status: 404,
          statusText: "Not Found",
        });
      }
      return new Response(await realGz(name));
    });
    const cacheDir = `${tmp}/cache`;
    await assertRejectsWith(
      loadMnist({ env: noEnv, cacheDir, fetch }),
      MnistDataError,
      `Cannot load dataset "mnist": could not download t10k-labels-idx1-ubyte.gz from any mirror (` +
        `${MIRROR_1}t10k-labels-idx1-ubyte.gz: HTTP 404 Not Found; ` +
        `${MIRROR_2}t10k-labels-idx1-ubyte.gz: HTTP 404 Not Found); ` +
        `searched "${cacheDir}" (cache); ${HOW_TO}`,
    );
    assert.equal(await list(cacheDir), null);
  });
});

Deno.test("download falls back to the second mirror, then the cache is used", async () => {
  await withTempDir(async (tmp) => {
    const cacheDir = `${tmp}/cache/mnist`;
    // One file is already cached: only the other three are downloaded.
    await Deno.mkdir(cacheDir, { recursive: true });
    await Deno.writeFile(
      `${cacheDir}/t10k-labels-idx1-ubyte.gz`,
      await realGz("t10k-labels-idx1-ubyte.gz"),
    );
    const fetch = fakeFetch(async (url) => {
      if (url.startsWith(MIRROR_1)) throw new TypeError("connection refused");
      return new Response(await realGz(url.slice(MIRROR_2.length)));
    });
    const events: MnistProgressEvent[] = [];
    const data = await loadMnist({
      env: noEnv,
      cacheDir,
      fetch,
      onProgress: (event) => events.push(event),
    });
    assert.equal(data.source, "download");
    assert.equal(data.train.count, 60000);
    assert.equal(data.test.count, 10000);
    assert.deepEqual([...data.test.labels.subarray(0, 3)], [7, 2, 1]);
    assert.deepEqual(
      fetch.urls,
      GZ_FILES.slice(0, 3).flatMap((
        name,
      ) => [MIRROR_1 + name, MIRROR_2 + name]),
    );
    assert.ok(
      events.some((e) =>
        e.phase === "download" &&
        e.url === `${MIRROR_2}train-images-idx3-ubyte.gz`
      ),
    );

    // Exactly the four files, with the pinned hashes, and no temp files.
    assert.deepEqual(await list(cacheDir), [...GZ_FILES].sort());
    const sums = await realSums();
    for (const name of GZ_FILES) {
      assert.equal(
        await sha256Hex(await Deno.readFile(`${cacheDir}/${name}`)),
        sums.get(name),
      );
    }

    // A second load needs no network.
    const offline = fakeFetch(() => {
      throw new TypeError("offline");
    });
    const again = await loadMnist({ env: noEnv, cacheDir, fetch: offline });
    assert.equal(again.source, cacheDir);
    assert.deepEqual(offline.urls, []);
    assert.deepEqual(again.train.labels, data.train.labels);
    assert.deepEqual(
      again.test.images.subarray(0, 784),
      data.test.images.subarray(0, 784),
    );
  });
});

Deno.test("mirrors option: each base is tried, with a slash added if needed", async () => {
  await withTempDir(async (tmp) => {
    const fetch = fakeFetch(() => new Response(null, { status: 500 }));
    const cacheDir = `${tmp}/cache`;
    await assertRejectsWith(
      loadMnist({
        env: noEnv,
        cacheDir,
        fetch,
        mirrors: ["https://a.test/x", "https://b.test/"],
      }),
      MnistDataError,
      `Cannot load dataset "mnist": could not download train-images-idx3-ubyte.gz from any mirror (` +
        "https://a.test/x/train-images-idx3-ubyte.gz: HTTP 500; " +
        "https://b.test/train-images-idx3-ubyte.gz: HTTP 500); " +
        `searched "${cacheDir}" (cache); ${HOW_TO}`,
    );
    assert.equal(await list(cacheDir), null);
  });
});

// ---- Nothing found ---------------------------------------------------------

Deno.test("no data and download disabled names every directory searched", async () => {
  await withTempDir(async (tmp) => {
    const cacheDir = `${tmp}/cache`;
    const envDir = `${tmp}/env`;
    const fetch = fakeFetch(() => new Response(null, { status: 500 }));
    await assertRejectsWith(
      loadMnist({
        env: (name) => name === "TINYMNIST_DATA_DIR" ? envDir : undefined,
        cacheDir,
        download: false,
        fetch,
      }),
      MnistDataError,
      `Cannot load dataset "mnist": ${GZ_FILES.join(", ")} not found and download is disabled; ` +
        `searched "${envDir}" (TINYMNIST_DATA_DIR), "${cacheDir}" (cache); ${HOW_TO}`,
    );
    assert.deepEqual(fetch.urls, []);
    assert.deepEqual(await list(tmp), []);
  });
});

Deno.test("no data and every mirror failing names every directory searched", async () => {
  await withTempDir(async (tmp) => {
    const cacheDir = `${tmp}/cache`;
    const fetch = fakeFetch(() => {
      throw new TypeError("dns error");
    });
    await assertRejectsWith(
      loadMnist({ env: noEnv, cacheDir, fetch }),
      MnistDataError,
      `Cannot load dataset "mnist": could not download train-images-idx3-ubyte.gz from any mirror (` +
        `${MIRROR_1}train-images-idx3-ubyte.gz: dns error; ${MIRROR_2}train-images-idx3-ubyte.gz: dns error); ` +
        `searched "${cacheDir}" (cache); ${HOW_TO}`,
    );
    assert.deepEqual(await list(tmp), []);
  });
});

Deno.test("an explicit dir without the files, or a file instead, is an error, not a download", async () => {
  await withTempDir(async (tmp) => {
    await Deno.writeFile(`${tmp}/train-labels-idx1-ubyte`, makeLabelsIdx([1]));
    const fetch = fakeFetch(() => new Response(null, { status: 500 }));
    await assertRejectsWith(
      loadMnist({ dir: tmp, cacheDir: `${tmp}/cache`, fetch }),
      MnistDataError,
      `Cannot load dataset "mnist": expected ` +
        "train-images-idx3-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz " +
        `(gzipped or uncompressed) in "${tmp}", got none`,
    );
    await assertRejectsWith(
      loadMnist({ dir: `${tmp}/nope`, fetch }),
      MnistDataError,
      `Cannot load dataset "mnist": expected a folder at "${tmp}/nope", got none`,
    );
    // A file where the folder should be is named as one.
    await assertRejectsWith(
      loadMnist({ dir: `${tmp}/train-labels-idx1-ubyte`, fetch }),
      MnistDataError,
      `Cannot load dataset "mnist": expected a folder at "${tmp}/train-labels-idx1-ubyte", got a file`,
    );
    assert.deepEqual(fetch.urls, []);
    assert.deepEqual(await list(tmp), ["train-labels-idx1-ubyte"]);
  });
});

// ---- Bad files in a directory ----------------------------------------------

Deno.test("a .gz file with the wrong content is a hash mismatch", async () => {
  await withTempDir(async (tmp) => {
    const bad = await gzip(makeImagesIdx(3));
    for (const name of GZ_FILES) await Deno.writeFile(`${tmp}/${name}`, bad);
    // Hashed before loadMnist starts: awaiting between its call and assertRejectsWith
    // would leave its rejection unhandled for a moment (an uncaught error in the runner).
    const badHash = await sha256Hex(bad);
    await assertRejectsWith(
      loadMnist({ dir: tmp }),
      MnistDataError,
      `Cannot load dataset "mnist": SHA-256 mismatch for "${tmp}/train-images-idx3-ubyte.gz": ` +
        "expected 440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609, " +
        `got ${badHash}`,
    );
  });
});

Deno.test("an uncompressed file is checked against the uncompressed hash", async () => {
  await withTempDir(async (tmp) => {
    const bad = makeImagesIdx(3);
    for (const name of FILES) await Deno.writeFile(`${tmp}/${name}`, bad);
    const badHash = await sha256Hex(bad); // before loadMnist starts, as above
    await assertRejectsWith(
      loadMnist({ dir: tmp }),
      MnistDataError,
      `Cannot load dataset "mnist": SHA-256 mismatch for "${tmp}/train-images-idx3-ubyte": ` +
        "expected ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db, " +
        `got ${badHash}`,
    );
  });
});

Deno.test("the other dataset's files are named as such", async () => {
  const dir = realDir();
  await assertRejectsWith(
    loadMnist({ dir, dataset: "fashion-mnist" }),
    MnistDataError,
    `Cannot load dataset "fashion-mnist": SHA-256 mismatch for "${dir}/train-images-idx3-ubyte.gz": ` +
      "expected 3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84, " +
      "got 440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609, which is the mnist file",
  );
});

/** Write a small dataset; gzipped files get `.gz`. */
async function writeSmall(
  dir: string,
  files: [Uint8Array, Uint8Array, Uint8Array, Uint8Array],
  gz = false,
): Promise<void> {
  for (let i = 0; i < 4; i++) {
    const bytes = gz ? await gzip(files[i]) : files[i];
    await Deno.writeFile(`${dir}/${FILES[i]}${gz ? ".gz" : ""}`, bytes);
  }
}

Deno.test("verify: false loads your own files, gzipped or not", async () => {
  for (const gz of [false, true]) {
    await withTempDir(async (tmp) => {
      await writeSmall(tmp, [
        makeImagesIdx(3, 28, 28, (i) => i % 256),
        makeLabelsIdx([1, 2, 3]),
        makeImagesIdx(1, 28, 28, () => 51),
        makeLabelsIdx([9]),
      ], gz);
      const data = await loadMnist({ dir: tmp, verify: false });
      assert.equal(data.source, tmp);
      assert.deepEqual(data.train.shape, [3, 28, 28, 1]);
      assert.deepEqual([...data.train.labels], [1, 2, 3]);
      assert.equal(data.train.images[255], 1);
      assert.equal(data.train.images[256], 0);
      assert.equal(data.train.images[1], Math.fround(1 / 255));
      assert.deepEqual(data.test.shape, [1, 28, 28, 1]);
      assert.ok(data.test.images.every((x) => x === Math.fround(0.2)));
    });
  }
});

Deno.test("image and label counts must agree", async () => {
  await withTempDir(async (tmp) => {
    await writeSmall(tmp, [
      makeImagesIdx(3),
      makeLabelsIdx([1, 2]),
      makeImagesIdx(1),
      makeLabelsIdx([1]),
    ]);
    await assertRejectsWith(
      loadMnist({ dir: tmp, verify: false }),
      MnistDataError,
      `Cannot load dataset "mnist": expected as many labels as images, got 3 images in ` +
        `"${tmp}/train-images-idx3-ubyte" and 2 labels in "${tmp}/train-labels-idx1-ubyte"`,
    );
  });
});

Deno.test("images must be 28x28", async () => {
  await withTempDir(async (tmp) => {
    await writeSmall(tmp, [
      makeImagesIdx(2),
      makeLabelsIdx([1, 2]),
      makeImagesIdx(1, 20, 20),
      makeLabelsIdx([1]),
    ]);
    await assertRejectsWith(
      loadMnist({ dir: tmp, verify: false }),
      MnistDataError,
      `Cannot load dataset "mnist": expected 28x28 images in "${tmp}/t10k-images-idx3-ubyte", got 20x20`,
    );
  });
});

Deno.test("a malformed IDX file is an IdxFormatError naming its path", async () => {
  await withTempDir(async (tmp) => {
    await writeSmall(tmp, [
      makeImagesIdx(2),
      makeLabelsIdx([1, 2]).slice(0, -1),
      makeImagesIdx(1),
      makeLabelsIdx([1]),
    ]);
    await assertRejectsWith(
      loadMnist({ dir: tmp, verify: false }),
      IdxFormatError,
      `Cannot parse IDX labels "${tmp}/train-labels-idx1-ubyte": truncated data: ` +
        "expected 10 bytes (8-byte header + 2 data bytes for dims 2), got 9",
    );
  });
});

Deno.test("a .gz file that is not gzip is an MnistDataError", async () => {
  await withTempDir(async (tmp) => {
    for (const name of GZ_FILES) {
      await Deno.writeFile(`${tmp}/${name}`, makeLabelsIdx([1]));
    }
    await assert.rejects(
      loadMnist({ dir: tmp, verify: false }),
      (error: unknown) => {
        assert.ok(error instanceof MnistDataError);
        assert.ok(
          error.message.startsWith(
            `Cannot load dataset "mnist": cannot gunzip "${tmp}/train-images-idx3-ubyte.gz": `,
          ),
          error.message,
        );
        return true;
      },
    );
  });
});

Deno.test("an unknown dataset is a RangeError", async () => {
  await assert.rejects(
    loadMnist({ dataset: "cifar" as "mnist", download: false }),
    new RangeError(
      'Cannot load dataset: expected "mnist" or "fashion-mnist", got "cifar"',
    ),
  );
});

Deno.test("toFloat32Images scales every byte value by 1/255", () => {
  const pixels = new Uint8Array(256).map((_, i) => i);
  const images = toFloat32Images(pixels);
  assert.equal(images.length, 256);
  for (let i = 0; i < 256; i++) assert.equal(images[i], Math.fround(i / 255));
  assert.equal(toFloat32Images(new Uint8Array(0)).length, 0);
});
