import assert from "node:assert/strict";
import { selectBackend } from "../lib/backend.ts";
import { createRng } from "../lib/rng.ts";
import { loadModel, ModelFileError, modelFolderName, saveModel } from "../lib/io.ts";
import * as tf from "@tensorflow/tfjs";
import { type Classifier, createModel, layersModelOf } from "../lib/model.ts";

await selectBackend("cpu");
const images = new Float32Array(4 * 784).map((_, i) => (i * 104729 % 256) / 255);

async function withTempDir(f: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "tinymnist-io-" });
  try {
    await f(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a saved model loads back with identical predictions", () =>
  withTempDir(async (dir) => {
    for (const preset of ["small", "tiny", "seed"] as const) {
      const model = createModel({ preset, seed: 3 });
      const path = await saveModel(model, dir);
      const loaded = await loadModel(path);
      assert.equal(loaded.preset, preset);
      assert.equal(loaded.params, model.params);
      assert.deepEqual(await loaded.predict(images), await model.predict(images));
      model.dispose();
      loaded.dispose();
    }
  }));

Deno.test("models are saved as mnist_model_YYYYMMDD_HHMMSS, atomically, never overwritten", () =>
  withTempDir(async (dir) => {
    const date = new Date(Date.UTC(2026, 0, 2, 3, 4, 5));
    const model = createModel();
    const first = await saveModel(model, dir, { date });
    const second = await saveModel(model, dir, { date });
    assert.equal(first, `${dir}/mnist_model_20260102_030405`);
    assert.equal(second, `${dir}/mnist_model_20260102_030405_2`);
    const entries = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.deepEqual(entries, ["mnist_model_20260102_030405", "mnist_model_20260102_030405_2"]);
    assert.deepEqual([...Deno.readDirSync(first)].map((e) => e.name).sort(), [
      "model.json",
      "weights.bin",
    ]);
    assert.match(modelFolderName(new Date()), /^mnist_model_\d{8}_\d{6}$/);
    model.dispose();
  }));

Deno.test("corrupt or truncated model files are a ModelFileError, not a crash inside tfjs", () =>
  withTempDir(async (dir) => {
    const model = createModel();
    const path = await saveModel(model, dir);
    model.dispose();
    const weights = await Deno.readFile(`${path}/weights.bin`);
    const json = await Deno.readTextFile(`${path}/model.json`);

    await Deno.writeFile(`${path}/weights.bin`, weights.slice(0, -100));
    await assert.rejects(loadModel(path), {
      name: "ModelFileError",
      message:
        `Cannot load model "${path}": expected weight group 1 ("weights.bin") to have ${weights.length} bytes, got ${
          weights.length - 100
        }`,
    });
    await Deno.writeFile(`${path}/weights.bin`, weights);

    await Deno.writeTextFile(`${path}/model.json`, json.slice(0, 200));
    await assert.rejects(loadModel(path), (error: Error) => {
      assert.ok(error instanceof ModelFileError);
      assert.match(error.message, /^Cannot load model ".*": model\.json is not valid JSON/);
      return true;
    });

    await Deno.writeTextFile(`${path}/model.json`, JSON.stringify({ weightsManifest: [] }));
    await assert.rejects(loadModel(path), {
      name: "ModelFileError",
      message:
        `Cannot load model "${path}": expected model.json to have a modelTopology object, got none`,
    });

    await Deno.writeTextFile(`${path}/model.json`, json);
    await Deno.remove(`${path}/weights.bin`);
    await assert.rejects(loadModel(path), {
      name: "ModelFileError",
      message: `Cannot load model "${path}": expected weights file "${path}/weights.bin", got none`,
    });
    await assert.rejects(loadModel(`${dir}/nothing`), {
      name: "ModelFileError",
      message:
        `Cannot load model "${dir}/nothing": expected the model's JSON file "${dir}/nothing/model.json", got none`,
    });
  }));

/** A saved model's files, parsed. */
async function savedFiles(model: Classifier, dir: string) {
  const path = await saveModel(model, dir);
  const json = JSON.parse(await Deno.readTextFile(`${path}/model.json`));
  const weights = await Deno.readFile(`${path}/weights.bin`);
  return { path, json, weights };
}

Deno.test("the standard layers format loads: converter shard names, several shards, several groups", () =>
  withTempDir(async (dir) => {
    const model = createModel({ seed: 5 });
    const expected = await model.predict(images);
    const { json, weights } = await savedFiles(model, dir);
    const specs = json.weightsManifest[0].weights as { name: string; shape: number[] }[];
    const write = async (name: string, manifest: unknown, files: Record<string, Uint8Array>) => {
      await Deno.mkdir(`${dir}/${name}`);
      await Deno.writeTextFile(
        `${dir}/${name}/model.json`,
        JSON.stringify({ ...json, weightsManifest: manifest }),
      );
      for (const [file, bytes] of Object.entries(files)) {
        await Deno.writeFile(`${dir}/${name}/${file}`, bytes);
      }
      return `${dir}/${name}`;
    };
    // What the TensorFlow.js converter writes for a small model.
    const converter = await write("converter", [{
      paths: ["group1-shard1of1.bin"],
      weights: specs,
    }], { "group1-shard1of1.bin": weights });
    // One group in three shards of uneven size (shards split bytes, not weights).
    const cuts = [0, 1000, 40_001, weights.length];
    const shardNames = ["group1-shard1of3.bin", "group1-shard2of3.bin", "group1-shard3of3.bin"];
    const sharded = await write(
      "sharded",
      [{ paths: shardNames, weights: specs }],
      Object.fromEntries(shardNames.map((n, i) => [n, weights.slice(cuts[i], cuts[i + 1])])),
    );
    // One group per weight, each in its own file.
    let offset = 0;
    const groups = specs.map((spec, i) => {
      const bytes = 4 * spec.shape.reduce((a, b) => a * b, 1);
      const file = weights.slice(offset, offset += bytes);
      return { manifest: { paths: [`group${i + 1}-shard1of1.bin`], weights: [spec] }, file };
    });
    const grouped = await write(
      "grouped",
      groups.map((g) => g.manifest),
      Object.fromEntries(groups.map((g) => [g.manifest.paths[0], g.file])),
    );
    for (const path of [converter, sharded, grouped]) {
      const loaded = await loadModel(path);
      assert.deepEqual(await loaded.predict(images), expected, path);
      loaded.dispose();
    }
    // Plain TensorFlow.js reads the same bytes the same way.
    const plain = await tf.loadLayersModel(tf.io.fromMemory({
      modelTopology: json.modelTopology,
      weightSpecs: specs as tf.io.WeightsManifestEntry[],
      weightData: weights.slice().buffer,
    }));
    const plainOut = plain.predict(tf.tensor4d(images, [4, 28, 28, 1])) as tf.Tensor;
    // tinymnist's predict folds batch norm into the convolutions: equal up to float rounding.
    const theirs = await plainOut.data() as Float32Array;
    assert.ok(theirs.every((p, i) => Math.abs(p - expected[i]) <= 1e-6), "plain TensorFlow.js");
    plain.dispose();
    tf.dispose(plainOut);
    // A missing shard is named.
    await Deno.remove(`${sharded}/group1-shard2of3.bin`);
    await assert.rejects(loadModel(sharded), {
      name: "ModelFileError",
      message:
        `Cannot load model "${sharded}": expected weights file "${sharded}/group1-shard2of3.bin", got none`,
    });
    // A manifest cannot reach outside the folder.
    const outside = await write("outside", [{
      paths: ["../converter/group1-shard1of1.bin"],
      weights: specs,
    }], {});
    await assert.rejects(loadModel(outside), {
      name: "ModelFileError",
      message:
        `Cannot load model "${outside}": expected weightsManifest[0].paths to hold plain file names, got "../converter/group1-shard1of1.bin"`,
    });
    model.dispose();
  }));

Deno.test("a path to a .json file means that file and the folder it is in", () =>
  withTempDir(async (dir) => {
    const model = createModel({ seed: 6 });
    const expected = await model.predict(images);
    const path = await saveModel(model, dir);
    model.dispose();
    const cwd = Deno.cwd();
    Deno.chdir(path);
    try {
      const loaded = await loadModel("model.json"); // not /model.json
      assert.deepEqual(await loaded.predict(images), expected);
      loaded.dispose();
    } finally {
      Deno.chdir(cwd);
    }
    await Deno.rename(`${path}/model.json`, `${path}/digits-model.json`);
    const renamed = await loadModel(`${path}/digits-model.json`); // not the folder …/digits
    assert.deepEqual(await renamed.predict(images), expected);
    renamed.dispose();
    await assert.rejects(loadModel(`${path}/other-model.json`), {
      name: "ModelFileError",
      message:
        `Cannot load model "${path}/other-model.json": expected the model's JSON file "${path}/other-model.json", got none`,
    });
  }));

Deno.test("saved model folders and files get the umask's modes, not a temp folder's 0700", () =>
  withTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/reference`);
    await Deno.writeFile(`${dir}/reference/file`, new Uint8Array(1));
    const folderMode = Deno.statSync(`${dir}/reference`).mode! & 0o777;
    const fileMode = Deno.statSync(`${dir}/reference/file`).mode! & 0o777;
    assert.notEqual(folderMode, 0o700, "this test needs a umask that lets others read");
    const model = createModel();
    const path = await saveModel(model, `${dir}/models`);
    model.dispose();
    assert.equal(Deno.statSync(path).mode! & 0o777, folderMode);
    for (const file of ["model.json", "weights.bin"]) {
      assert.equal(Deno.statSync(`${path}/${file}`).mode! & 0o777, fileMode);
    }
  }));

/** Overwrite every value of the first weight of a model's file, keeping its size. */
async function spoilFirstWeight(path: string, values: number[]) {
  const weights = await Deno.readFile(`${path}/weights.bin`);
  const floats = new Float32Array(weights.buffer);
  values.forEach((v, i) => floats[i] = v);
  await Deno.writeFile(`${path}/weights.bin`, weights);
}

Deno.test("non-finite weights: loadModel names the weight, classify never answers, saveModel refuses", () =>
  withTempDir(async (dir) => {
    const model = createModel();
    const { path, json } = await savedFiles(model, dir);
    const first = json.weightsManifest[0].weights[0].name;
    await spoilFirstWeight(path, [NaN, Infinity, -Infinity]);
    await assert.rejects(loadModel(path), {
      name: "ModelFileError",
      message:
        `Cannot load model "${path}": expected finite weights, got 3 non-finite values in "${first}"`,
    });

    const net = layersModelOf(model);
    const broken = net.getWeights().map((w, i) => i === 0 ? tf.fill(w.shape, NaN) : w.clone());
    net.setWeights(broken);
    tf.dispose(broken);
    await assert.rejects(model.classify(images), {
      name: "RangeError",
      message:
        "Cannot classify: expected finite probabilities, got NaN for image 0 (the model's weights are corrupt or diverged)",
    });
    await assert.rejects(saveModel(model, `${dir}/refused`), {
      name: "RangeError",
      message:
        `Cannot save model: expected finite weights, got 144 non-finite values in "${first}"`,
    });
    assert.equal(await Deno.stat(`${dir}/refused`).catch(() => null), null);
    model.dispose();
  }));

Deno.test({
  name:
    "saving survives SIGKILL at any moment: every model folder present loads, temps are cleaned",
  // Each kill is of a child started for it; the delays are seeded. On a loaded machine fewer
  // saves finish within the delays, so the kills go on past KILLS (up to MAX_KILLS) until as many
  // have finished, and as many were cut half-way, as the checks below ask for.
  fn: () =>
    withTempDir(async (dir) => {
      const KILLS = 220, MAX_KILLS = 1_000, SEED = 9, MAX_DELAY_MS = 20;
      const model = createModel({ seed: 8 });
      const expected = await model.predict(images);
      const source = await saveModel(model, `${dir}/source`);
      const target = `${dir}/models`;
      await Deno.mkdir(target);
      const rng = createRng(SEED);
      const entries = () => [...Deno.readDirSync(target)].map((e) => e.name);
      const leftBehind = new Set<string>(); // temporary folders seen after a kill
      const child = new URL("./_save_child.ts", import.meta.url).pathname;
      const finished = () => entries().filter((n) => n.startsWith("mnist_model_"));
      const enough = () => leftBehind.size > KILLS / 10 && finished().length > KILLS / 4;
      for (let k = 0; k < MAX_KILLS && (k < KILLS || !enough()); k++) {
        const process = new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            `--allow-read`,
            `--allow-write=${target}`,
            child,
            source,
            target,
            String(k),
          ],
          stdout: "piped",
          stderr: "inherit",
        }).spawn();
        const reader = process.stdout.getReader();
        const first = await Promise.race([
          reader.read(),
          new Promise<null>((resolve) => setTimeout(() => resolve(null), 30_000)),
        ]);
        assert.ok(first?.value, `child ${k} did not start within 30 s`);
        await new Promise((resolve) => setTimeout(resolve, rng.next() * MAX_DELAY_MS));
        process.kill("SIGKILL");
        const status = await process.status;
        assert.equal(status.signal, "SIGKILL", `child ${k} ended before it was killed`);
        reader.releaseLock();
        await process.stdout.cancel();
        for (const name of entries()) if (name.startsWith(".")) leftBehind.add(name);
      }
      // The kills must have hit saves half-way, or this test proves nothing.
      assert.ok(leftBehind.size > KILLS / 10, `${leftBehind.size} kills left a temporary folder`);
      const folders = finished();
      // …and some saves must have finished, or there is nothing to load.
      assert.ok(folders.length > KILLS / 4, `expected finished saves, got ${folders.length}`);
      for (const name of folders) {
        const loaded = await loadModel(`${target}/${name}`);
        assert.deepEqual(await loaded.predict(images), expected, name);
        loaded.dispose();
      }
      // The next save removes what the killed ones left.
      await saveModel(model, target);
      assert.deepEqual(entries().filter((n) => n.startsWith(".")), []);
      model.dispose();
    }),
});

Deno.test("file-system faults are one-line ModelFileErrors, never raw Deno errors", () =>
  withTempDir(async (dir) => {
    const model = createModel();
    await assert.rejects(saveModel(model, ""), {
      name: "TypeError",
      message: 'Cannot save model: expected a folder path, got ""',
    });
    await Deno.writeTextFile(`${dir}/afile`, "not a folder");
    await assert.rejects(saveModel(model, `${dir}/afile`), (error: Error) => {
      assert.equal(error.name, "ModelFileError");
      assert.match(
        error.message,
        new RegExp(
          `^Cannot save model in "${dir}/afile": expected a folder it can write, got an error \\(`,
        ),
      );
      return true;
    });
    await assert.rejects(loadModel(`${dir}/afile`), {
      name: "ModelFileError",
      message:
        `Cannot load model "${dir}/afile": expected a model folder or a .json file, got another kind of file`,
    });
    // A corrupt batch-norm variance (negative) would silently cost accuracy.
    const { path, json } = await savedFiles(model, dir);
    const specs = json.weightsManifest[0].weights as { name: string; shape: number[] }[];
    const index = specs.findIndex((s) => s.name.endsWith("moving_variance"));
    const offset = specs.slice(0, index).reduce(
      (n, s) => n + s.shape.reduce((a, b) => a * b, 1),
      0,
    );
    const weights = await Deno.readFile(`${path}/weights.bin`);
    new Float32Array(weights.buffer).set([-5, -1], offset);
    await Deno.writeFile(`${path}/weights.bin`, weights);
    await assert.rejects(loadModel(path), {
      name: "ModelFileError",
      message: `Cannot load model "${path}": expected moving variances ≥ 0, got 2 negative in "${
        specs[index].name
      }"`,
    });
    model.dispose();
  }));

Deno.test("loadModel works before any backend is selected", () =>
  withTempDir(async (dir) => {
    const model = createModel({ seed: 2 });
    const path = await saveModel(model, dir);
    const expected = await model.classify(images);
    model.dispose();
    const script = `
      import { loadModel } from "${new URL("../mod.ts", import.meta.url).href}";
      const model = await loadModel(${JSON.stringify(path)});
      const images = new Float32Array(4 * 784).map((_, i) => (i * 104729 % 256) / 255);
      console.log(JSON.stringify([...await model.classify(images)]));`;
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--config", new URL("../deno.json", import.meta.url).pathname, script],
      env: { TINYMNIST_DISABLE_WEBGPU: "1" },
    }).output();
    assert.equal(code, 0, new TextDecoder().decode(stderr));
    assert.deepEqual(JSON.parse(new TextDecoder().decode(stdout)), [...expected]);
  }));
