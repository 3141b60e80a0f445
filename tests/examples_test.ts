/**
 * The README's "Use your model" snippets are the files in docs/examples/,
 * verbatim; here they run against the shared trained model, on a real test
 * digit, as a user would run them (`deno run` in a new process).
 */
import assert from "node:assert/strict";
import { encodePng } from "../lib/image_file.ts";
import { loadModel } from "../lib/io.ts";
import { exportOnnx } from "../lib/onnx.ts";
import { selectBackend } from "../lib/backend.ts";
import { trainedModel } from "./_trained.ts";

const root = new URL("..", import.meta.url).pathname;
const readme = await Deno.readTextFile(`${root}README.md`);

/** Run an example script with the given flags and arguments; returns stdout. */
async function runExample(file: string, flags: string[], args: string[]): Promise<string> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--config",
      `${root}deno.json`,
      ...flags,
      `${root}docs/examples/${file}`,
      ...args,
    ],
    env: { NO_COLOR: "1", TINYMNIST_DISABLE_WEBGPU: "1" },
  }).output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  return new TextDecoder().decode(stdout);
}

for (const file of ["plain_tfjs.ts", "onnxruntime.ts"]) {
  Deno.test(`README shows docs/examples/${file} verbatim`, async () => {
    const text = await Deno.readTextFile(`${root}docs/examples/${file}`);
    assert.ok(readme.includes("```ts\n" + text + "```"), `README lacks docs/examples/${file}`);
  });
}

Deno.test("the README's Library snippet type-checks against mod.ts", async () => {
  const start = readme.indexOf("```ts\n", readme.indexOf("## Library")) + "```ts\n".length;
  const code = readme.slice(start, readme.indexOf("```", start));
  assert.match(code, /from "@tinymnist\/tinymnist"/);
  const dir = await Deno.makeTempDir({ prefix: "tinymnist-readme-" });
  try {
    await Deno.writeTextFile(`${dir}/library.ts`, code);
    const { code: status, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["check", "--config", `${root}deno.json`, `${dir}/library.ts`],
      env: { NO_COLOR: "1" },
    }).output();
    assert.equal(status, 0, new TextDecoder().decode(stderr));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the examples classify a real test digit like tinymnist does", async () => {
  const { data, path } = await trainedModel();
  await selectBackend("wasm");
  const model = await loadModel(path);
  const dir = await Deno.makeTempDir({ prefix: "tinymnist-examples-" });
  try {
    const digit = data.test.images.subarray(0, 784); // a 7
    const png = `${dir}/digit.png`;
    await Deno.writeFile(
      png,
      await encodePng(Uint8Array.from(digit, (v) => Math.round(255 * v)), 28, 28),
    );
    const expected = (await model.classify(Float32Array.from(
      digit,
      (v) => Math.round(255 * v) / 255,
    )))[0];
    const plain = await runExample("plain_tfjs.ts", ["--allow-read"], [path, png]);
    assert.match(plain, new RegExp(`^digit ${expected}, probabilities `));
    const onnx = `${dir}/model.onnx`;
    await Deno.writeFile(onnx, await exportOnnx(model));
    const ort = await runExample("onnxruntime.ts", ["--allow-read", "--allow-ffi"], [onnx, png]);
    assert.match(ort, new RegExp(`^digit ${expected}, probabilities `));
  } finally {
    model.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});
