import assert from "node:assert/strict";
import { TASK_PERMISSIONS } from "../lib/cli.ts";
import { createModel, MODEL_PRESETS, type ModelPreset } from "../lib/model.ts";
import { runCli } from "./_cli.ts";

/** Run the CLI in-process; returns its exit code and what it wrote to stderr. */
const run = (args: string[]) => runCli(args);

for (
  const [args, message] of [
    [
      ["--epochs", "0"],
      'error: Cannot train: expected --epochs to be an integer ≥ 1, got "0" (see --help)',
    ],
    [
      ["--batch-size", "ten"],
      'error: Cannot train: expected --batch-size to be an integer ≥ 1, got "ten" (see --help)',
    ],
    [
      ["--backend", "tpu"],
      'error: Cannot train: expected --backend to be one of auto, webgpu, wasm, cpu, got "tpu" (see --help)',
    ],
    [
      ["--dataset", "cifar"],
      'error: Cannot train: expected --dataset to be one of mnist, fashion-mnist, got "cifar" (see --help)',
    ],
    [
      ["--lr=-1"],
      'error: Cannot train: expected --lr to be a number in (0, 1], got "-1" (see --help)',
    ],
    [
      ["--lr", "Infinity"],
      'error: Cannot train: expected --lr to be a number in (0, 1], got "Infinity" (see --help)',
    ],
    [
      ["--lr", "1e999"],
      'error: Cannot train: expected --lr to be a number in (0, 1], got "1e999" (see --help)',
    ],
    [
      ["--lr", "NaN"],
      'error: Cannot train: expected --lr to be a number in (0, 1], got "NaN" (see --help)',
    ],
    [
      ["--workers", "-1"],
      'error: Cannot train: expected --workers to be an integer ≥ 0, got "-1" (see --help)',
    ],
    [
      ["--workers=1.5"],
      'error: Cannot train: expected --workers to be an integer ≥ 0, got "1.5" (see --help)',
    ],
    [
      ["--lr", "-1"],
      'error: Cannot train: expected --lr to be a number in (0, 1], got "-1" (see --help)',
    ],
    [
      ["--lr", "-Infinity"],
      'error: Cannot train: expected --lr to be a number in (0, 1], got "-Infinity" (see --help)',
    ],
    [["--augment"], "error: Cannot train: expected a value for --augment, got none (see --help)"],
    [
      ["--epochs", "--json"],
      "error: Cannot train: expected a value for --epochs, got none before the next option (see --help)",
    ],
    [
      ["--teacher", "/nonexistent/model"],
      'error: Cannot train: expected --teacher to be a saved model folder or its .json file, got "/nonexistent/model", which does not exist (see --help)',
    ],
    [
      ["--teacher", "README.md"],
      'error: Cannot train: expected --teacher to be a saved model folder or its .json file, got "README.md", a file that is not .json (see --help)',
    ],
    [
      ["--teacher", "docs"],
      'error: Cannot train: expected --teacher to be a saved model folder or its .json file, got "docs", a folder without model.json (see --help)',
    ],
    [
      ["--seed", "9007199254740992"],
      'error: Cannot train: expected --seed to be an integer from 0 to 9007199254740991, got "9007199254740992" (see --help)',
    ],
    // Numbers are read as written in decimal: `Number` alone would train with these.
    [
      ["--epochs", " 2"],
      'error: Cannot train: expected --epochs to be an integer ≥ 1, got " 2" (see --help)',
    ],
    [
      ["--seed", ""],
      'error: Cannot train: expected --seed to be an integer ≥ 0, got "" (see --help)',
    ],
    [
      ["--seed", "0x10"],
      'error: Cannot train: expected --seed to be an integer ≥ 0, got "0x10" (see --help)',
    ],
    [
      ["--batch-size", "1e3"],
      'error: Cannot train: expected --batch-size to be an integer ≥ 1, got "1e3" (see --help)',
    ],
    [
      ["--lr", " 0.5"],
      'error: Cannot train: expected --lr to be a number in (0, 1], got " 0.5" (see --help)',
    ],
    [
      ["--hard-examples", ""],
      'error: Cannot train: expected --hard-examples to be a fraction in [0, 0.5], got "" (see --help)',
    ],
    // Decimal forms of --lr pass its check (the next flag's is the error).
    [
      ["--lr", "3e-2", "--mini-epochs", "0"],
      'error: Cannot train: expected --mini-epochs to be an integer ≥ 1, got "0" (see --help)',
    ],
    [
      ["--lr", ".5", "--mini-epochs", "0"],
      'error: Cannot train: expected --mini-epochs to be an integer ≥ 1, got "0" (see --help)',
    ],
    // The limits of `train` itself, checked before any data is loaded.
    [
      ["--workers", "65"],
      'error: Cannot train: expected --workers to be an integer from 0 to 64, got "65" (see --help)',
    ],
    [
      ["--epochs", "10001"],
      'error: Cannot train: expected --epochs to be an integer from 1 to 10000, got "10001" (see --help)',
    ],
    [
      ["--batch-size", "65537"],
      'error: Cannot train: expected --batch-size to be an integer from 1 to 65536, got "65537" (see --help)',
    ],
    [
      ["--mini-epochs", "1001"],
      'error: Cannot train: expected --mini-epochs to be an integer from 1 to 1000, got "1001" (see --help)',
    ],
    [
      ["--json=-1"],
      "error: Cannot train: expected no value after --json, got one (see --help)",
    ],
    [
      ["train", ""],
      'error: Cannot train: expected only options, got the argument "" (see --help)',
    ],
    // After a flag that takes no value, a negative number is an argument of its own.
    [
      ["--json", "-1"],
      'error: Cannot train: expected an option of train, got "-1" (see --help)',
    ],
    [
      ["--augment", "heavy"],
      'error: Cannot train: expected --augment to be one of mild, strong, got "heavy" (see --help)',
    ],
    [
      ["--augment", "strong", "--no-augment"],
      "error: Cannot train: expected --augment or --no-augment, got both (see --help)",
    ],
    [
      ["--robustness-images", "0"],
      'error: Cannot train: expected --robustness-images to be an integer ≥ 1, got "0" (see --help)',
    ],
    [
      ["--bogus"],
      'error: Cannot train: expected an option of train, got "--bogus" (see --help)',
    ],
    [
      ["train", "extra"],
      'error: Cannot train: expected only options, got the argument "extra" (see --help)',
    ],
    [
      ["fly"],
      'error: Cannot run tinymnist: expected a command (train, predict, export, serve or preview), got "fly" (see --help)',
    ],
  ] as const
) {
  Deno.test(`bad usage ${args.join(" ")} → one line and exit code 2`, async () => {
    const { code, stderr } = await run([...args]);
    assert.equal(code, 2);
    assert.equal(stderr.trimEnd().split("\n").length, 1, stderr);
    assert.equal(stderr.trimEnd(), message);
  });
}

Deno.test("train --help names the other commands, and each has its own --help", async () => {
  const help = await run(["--help"]);
  assert.equal(help.code, 0);
  const line = help.stdout.split("\n").find((l) => l.startsWith("Other commands:"));
  assert.ok(line, help.stdout);
  for (const command of ["predict", "export", "serve", "preview"]) {
    assert.match(line, new RegExp(`\\b${command}\\b`));
    const own = await run([command, "--help"]);
    assert.equal(own.code, 0, own.stderr);
    assert.match(own.stdout, new RegExp(`^Usage: deno task ${command} `));
  }
});

Deno.test("train --help describes every preset, with its parameter count, in 80 columns", async () => {
  const { code, stdout } = await run(["--help"]);
  assert.equal(code, 0);
  const section = stdout.slice(stdout.indexOf("\nPresets:\n"), stdout.indexOf("\nOther commands"));
  for (const preset of Object.keys(MODEL_PRESETS) as ModelPreset[]) {
    const model = createModel({ preset });
    const params = model.params.toLocaleString("en-US");
    model.dispose();
    // The preset's name, then its lines (continuations indented 9) up to its count.
    const entry = new RegExp(`\\n  ${preset} +(?:[^\\n]|\\n {9})*?${params} params`);
    assert.match(section, entry, `${preset} (${params}) in\n${section}`);
  }
  for (const line of stdout.split("\n")) assert.ok(line.length <= 80, line);
});

Deno.test("a missing data directory is exit code 1 with the folder named", async () => {
  const { code, stderr } = await run(["--backend", "cpu", "--data-dir", "/nonexistent/mnist"]);
  assert.equal(code, 1);
  assert.match(stderr, /\/nonexistent\/mnist/);
});

/** The `deno run` flags of a task in deno.json. */
async function taskFlags(task: string): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  const words = (config.tasks[task] as string).split(" ");
  return words.slice(2, words.indexOf("lib/cli.ts"));
}

/** Run `deno run FLAGS lib/cli.ts ARGS` in a new process, as `deno task` would. */
async function runProcess(flags: string[], args: string[]) {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...flags, "lib/cli.ts", ...args],
    cwd: new URL("..", import.meta.url).pathname,
    env: { NO_COLOR: "1" },
  }).output();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code, stdout: text(stdout), stderr: text(stderr) };
}

Deno.test("the CLI's idea of the tasks' permissions is deno.json's", async () => {
  assert.deepEqual(await taskFlags("train"), TASK_PERMISSIONS.train);
  assert.deepEqual(await taskFlags("export"), TASK_PERMISSIONS.export);
  assert.deepEqual(await taskFlags("serve"), TASK_PERMISSIONS.serve);
});

Deno.test("--out outside the task's write permission fails before training, with the command to use", async () => {
  const out = await Deno.makeTempDir({ prefix: "tinymnist-elsewhere-" });
  try {
    const args = ["train", "--out", out, "--backend", "cpu"];
    const { code, stdout, stderr } = await runProcess(await taskFlags("train"), args);
    const widened = TASK_PERMISSIONS.train.map((f) =>
      f.startsWith("--allow-write=") ? `${f},${out}` : f
    );
    assert.equal(code, 2, stderr);
    assert.equal(stdout, "", "nothing started: no backend, data or training lines");
    assert.equal(
      stderr,
      `error: Cannot save the model in "${out}": expected write permission for it, got none (deno task train may write under . only); run instead: deno run ${
        widened.join(" ")
      } lib/cli.ts train ${args.slice(1).join(" ")}\n`,
    );
    // The command it prints gets past the check (and here stops at the missing data).
    const retry = await runProcess(widened, [...args, "--data-dir", "/nonexistent/mnist"]);
    assert.equal(retry.code, 1, retry.stderr);
    assert.match(retry.stderr, /^error: Cannot load dataset "mnist".*"\/nonexistent\/mnist"/m);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("--out naming a file fails before training", async () => {
  const file = await Deno.makeTempFile();
  try {
    const { code, stderr } = await run(["--out", file, "--backend", "cpu"]);
    assert.equal(code, 2);
    assert.equal(
      stderr,
      `error: Cannot save the model in "${file}": expected a writable folder, got an error (it is a file)\n`,
    );
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("serve with a model outside ./models fails at once with the command that can read it", async () => {
  const model = await Deno.makeTempDir({ prefix: "tinymnist-elsewhere-" });
  try {
    const config = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
    const words = (config.tasks.serve as string).split(" ");
    const { code, stdout, stderr } = await runProcess(
      words.slice(2, words.indexOf("lib/cli.ts")),
      ["serve", "--model", model],
    );
    assert.equal(code, 2, stderr);
    assert.equal(stdout, "");
    assert.match(
      stderr,
      new RegExp(
        `^error: Cannot serve "${model}": expected read permission for it, got none .* run instead: deno run --allow-net=127\\.0\\.0\\.1 --allow-read=\\./web,.*,${model} .* lib/cli\\.ts serve --model ${model}\\n$`,
      ),
    );
  } finally {
    await Deno.remove(model, { recursive: true });
  }
});

Deno.test("export outside the working folder: one printed command grants every path, nothing written", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tinymnist-elsewhere-" });
  try {
    const args = [
      "export",
      "--quantize",
      "int8",
      "--onnx",
      `${dir}/onnx/m.onnx`,
      "--out",
      `${dir}/q`,
    ];
    const { code, stdout, stderr } = await runProcess(await taskFlags("export"), args);
    assert.equal(code, 2, stderr);
    assert.equal(stdout, "");
    const widened = TASK_PERMISSIONS.export.map((f) =>
      f.startsWith("--allow-write=") ? `${f},${dir}/q,${dir}/onnx` : f
    );
    assert.equal(
      stderr,
      `error: Cannot save the model in "${dir}/q": expected write permission for it, got none (deno task export may write under . only); run instead: deno run ${
        widened.join(" ")
      } lib/cli.ts ${args.join(" ")}\n`,
    );
    assert.deepEqual([...Deno.readDirSync(dir)], [], "a refused run writes nothing");

    // One folder for both: named once in the printed command.
    const same = ["export", "--quantize", "int8", "--onnx", `${dir}/x/m.onnx`, "--out", `${dir}/x`];
    const again = await runProcess(await taskFlags("export"), same);
    assert.equal(again.code, 2, again.stderr);
    assert.match(again.stderr, new RegExp(` --allow-write=\\.,${dir}/x --allow-net`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
