import assert from "node:assert/strict";
import { selectBackend } from "../lib/backend.ts";
import { loadModel, ModelFileError, modelFolderName, saveModel } from "../lib/io.ts";
import { createModel } from "../lib/model.ts";

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
    for (const preset of ["tiny", "seed"] as const) {
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
        `Cannot load model "${path}": expected weights.bin to have ${weights.length} bytes, got ${
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

    await Deno.remove(`${path}/weights.bin`);
    await assert.rejects(loadModel(path), {
      name: "ModelFileError",
      message:
        `Cannot load model "${path}": expected model.json and weights.bin in the folder, but they are missing`,
    });
  }));
