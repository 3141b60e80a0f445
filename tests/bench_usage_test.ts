/**
 * The measurement scripts' command lines: each answers --help with exit code
 * 0, and a bad flag or value with one line ending "(see --help)" and exit
 * code 2, before it loads data or trains anything; and one ablation run from
 * start to end.
 */
import assert from "node:assert/strict";

/** Run a bench script as its task does (all permissions: the flags are what is tested). */
async function bench(script: string, args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(`../bench/${script}`, import.meta.url).pathname, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

const SCRIPTS = ["compare.ts", "gpu.ts", "ablation.ts", "step_profile.ts", "pool_step.ts"];

for (const script of SCRIPTS) {
  Deno.test(`bench/${script} answers --help and refuses an unknown flag`, async () => {
    const help = await bench(script, ["--help"]);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /^Usage: /);
    const bad = await bench(script, ["--no-such-flag"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^error: Cannot [^\n]+ \(see --help\)\n$/);
  });
}

Deno.test("bench:compare refuses a preset the reference lacks and an unknown backend at once", async () => {
  for (
    const [args, message] of [
      [
        ["--preset", "wide"],
        'expected --preset to be one of tiny, small, seed (the reference builds those), got "wide"',
      ],
      [
        ["--backends", "wasm,gpu"],
        'expected --backends to list wasm, webgpu, cpu, each with an optional :N, got "gpu"',
      ],
      [
        ["--backends", "cpu:0"],
        'expected --backends to list wasm, webgpu, cpu, each with an optional :N, got "cpu:0"',
      ],
    ]
  ) {
    const { code, stderr } = await bench("compare.ts", args as string[]);
    assert.equal(code, 2);
    assert.equal(stderr, `error: Cannot run the comparison: ${message} (see --help)\n`);
  }
});

Deno.test("ablation lists a set's variants (or those --only picks), and refuses an --only that matches none and a bad --part, --seeds, --validation-split, --teacher-epochs or --backend", async () => {
  const list = await bench("ablation.ts", ["--set", "depth", "--list"]);
  assert.equal(list.code, 0, list.stderr);
  const names = list.stdout.trim().split("\n");
  assert.ok(names.includes("deep (conv 16→32→(24→32), 21,674 params)"), list.stdout);
  assert.ok(names.includes("depth: conv (16→16)→32→32"), list.stdout);
  const passes = await bench("ablation.ts", ["--set", "passes", "--list"]);
  assert.ok(passes.stdout.split("\n").includes("deep, 30 passes, strong augmentation"));
  // A whole name picks its variant alone, though the lever rows' names contain it.
  const only = (text: string) =>
    bench("ablation.ts", ["--set", "passes", "--only", text, "--list"]);
  const whole = await only("deep, 30 passes, strong augmentation");
  assert.equal(whole.stdout, "deep, 30 passes, strong augmentation\n", whole.stderr);
  const part = await only("deep, 30 passes, strong augmentation,");
  const levers = passes.stdout.split("\n").filter((name) =>
    name.startsWith("deep, 30 passes, strong augmentation,")
  );
  assert.ok(levers.length >= 2, passes.stdout);
  assert.deepEqual(part.stdout.trim().split("\n"), levers);
  // In either case; given twice, what each picks, in the set's order.
  const upper = await only("PEAK LR 0.05");
  assert.equal(upper.stdout, "deep, 30 passes, strong augmentation, peak lr 0.05\n", upper.stderr);
  const both = await bench("ablation.ts", [
    ...["--set", "passes", "--only", "label smoothing 0.2", "--only", "peak lr 0.05", "--list"],
  ]);
  assert.equal(
    both.stdout,
    "deep, 30 passes, strong augmentation, peak lr 0.05\n" +
      "deep, 30 passes, strong augmentation, label smoothing 0.2\n",
    both.stderr,
  );
  for (
    const [args, message] of [
      [
        ["--set", "depth", "--only", "no such row"],
        'expected --only to match a variant of --set depth (--list without --only names them), got "no such row"',
      ],
      [
        [
          "--set",
          "passes",
          "--only",
          "no such row",
          "--only",
          "peak lr 0.05",
          "--only",
          "nor this",
        ],
        'expected --only to match a variant of --set passes (--list without --only names them), got "no such row", "nor this"',
      ],
      [
        ["--set", "passes", "--only", "peak lr 0.05", "--only", " ", "--list"],
        'expected --only to be part of a variant\'s name, got " " (it would run the whole set)',
      ],
      // A negative number after a flag without a value is no value of that flag.
      [["--list", "-1"], 'expected an option of ablation, got "-1"'],
      [
        ["--set", "passes", "--only", "", "--list"],
        'expected --only to be part of a variant\'s name, got "" (it would run the whole set)',
      ],
      [["--part", "2/2"], 'expected --part to be K/N with 0 ≤ K < N, got "2/2"'],
      [["--part", "1/0"], 'expected --part to be K/N with 0 ≤ K < N, got "1/0"'],
      [["--part", "one/2"], 'expected --part to be K/N with 0 ≤ K < N, got "one/2"'],
      [
        ["--seeds", "42,x"],
        'expected --seeds to be whole numbers separated by commas, got "42,x"',
      ],
      // A negative number is the flag's value, not an option of its own.
      [["--seeds", "-1"], 'expected --seeds to be whole numbers separated by commas, got "-1"'],
      [
        ["--seeds", "99999999999999999999", "--list"],
        'expected --seeds to be distinct whole numbers up to 9007199254740991, got "99999999999999999999"',
      ],
      [
        ["--seeds", "42,42", "--list"],
        'expected --seeds to be distinct whole numbers up to 9007199254740991, got "42,42"',
      ],
      [
        ["--set", "passes", "--only", "peak lr 0.05", "--seeds", "42", "--part", "1/2", "--list"],
        'expected --part K/N to pick a job, K below the number of jobs (variants × seeds: 1), got "1/2"',
      ],
      // Checked before --list answers (so before any training too).
      [
        ["--validation-split", "middle", "--list"],
        'expected --validation-split to be last or first, got "middle"',
      ],
      [
        ["--set", "distillation", "--teacher-epochs", "0", "--list"],
        'expected --teacher-epochs to be a whole number from 1 to 10000, got "0"',
      ],
      [
        ["--set", "distillation", "--teacher-epochs", "x", "--list"],
        'expected --teacher-epochs to be a whole number from 1 to 10000, got "x"',
      ],
      [
        ["--backend", "gpu", "--list"],
        'expected --backend to be one of webgpu, wasm, cpu, got "gpu"',
      ],
    ]
  ) {
    const { code, stdout, stderr } = await bench("ablation.ts", args as string[]);
    assert.equal(code, 2, stdout + stderr);
    assert.equal(stderr, `error: Cannot run the ablation: ${message} (see --help)\n`);
  }
});

Deno.test("bench:gpu, bench:profile and pool_step refuse counts not written as integers in decimal, out of range, and an unknown preset", async () => {
  for (
    const [script, args, message] of [
      [
        "gpu.ts",
        ["--images", "1e3"],
        'Cannot run the GPU check: expected --images to be an integer from 640 to 60000, got "1e3"',
      ],
      [
        "gpu.ts",
        ["--images", " 640"],
        'Cannot run the GPU check: expected --images to be an integer from 640 to 60000, got " 640"',
      ],
      [
        "pool_step.ts",
        ["--workers", "0"],
        'Cannot time a data-parallel step: expected --workers to be an integer from 1 to 64, got "0"',
      ],
      [
        "pool_step.ts",
        ["--workers", "2", "--batch", "1"],
        'Cannot time a data-parallel step: expected --batch to be an integer from 2 to 65536, got "1"',
      ],
      [
        "pool_step.ts",
        ["--steps", "x"],
        'Cannot time a data-parallel step: expected --steps to be an integer from 1 to 1000000, got "x"',
      ],
      [
        "step_profile.ts",
        ["--batch", "-3"],
        'Cannot profile a training step: expected --batch to be an integer from 1 to 65536, got "-3"',
      ],
      [
        "step_profile.ts",
        ["--top", "0x10"],
        'Cannot profile a training step: expected --top to be an integer from 1 to 1000000, got "0x10"',
      ],
      [
        "step_profile.ts",
        ["--preset", "huge"],
        'Cannot profile a training step: expected --preset to be one of small, tiny, seed, mini, wide, deep, got "huge"',
      ],
      [
        "step_profile.ts",
        ["--preset", "toString"],
        'Cannot profile a training step: expected --preset to be one of small, tiny, seed, mini, wide, deep, got "toString"',
      ],
    ] as const
  ) {
    const { code, stdout, stderr } = await bench(script, [...args]);
    assert.equal(code, 2, `${script}: ${stdout}${stderr}`);
    assert.equal(stderr, `error: ${message} (see --help)\n`);
  }
});

Deno.test("ablation trains the variant --only picks and prints a JSON line per run, seconds to the millisecond, then the variant's mean and min", async () => {
  const run = await bench("ablation.ts", [
    ...["--set", "distillation", "--only", "MINI ALONE", "--seeds", "42", "--validation"],
  ]);
  assert.equal(run.code, 0, run.stderr);
  const lines = run.stdout.split("\n").filter((line) => line.startsWith("{"));
  assert.equal(lines.length, 2, run.stdout);
  const result = JSON.parse(lines[0]);
  assert.deepEqual(Object.keys(result), ["name", "seed", "params", "accuracy", "seconds"]);
  assert.equal(result.name, "mini alone");
  assert.equal(result.seed, 42);
  assert.equal(result.params, 5_058);
  assert.ok(result.accuracy > 0.97 && result.accuracy <= 1, lines[0]);
  assert.ok(result.seconds > 0, lines[0]);
  assert.match(lines[0], /"seconds":\d+(\.\d{1,3})?}$/);
  assert.deepEqual(JSON.parse(lines[1]), {
    name: "mini alone",
    seeds: 1,
    mean: result.accuracy,
    min: result.accuracy,
  });
});

Deno.test("bench scripts given a --data-dir that does not exist answer one line, no stack trace, exit code 1", async () => {
  const dir = await Deno.makeTempDir();
  const missing = `${dir}/no-such-folder`;
  try {
    for (
      const [script, args] of [
        ["ablation.ts", ["--set", "widths", "--only", "tiny", "--seeds", "42"]],
        ["compare.ts", ["--backends", "wasm"]],
        ["gpu.ts", ["--backends", "wasm"]],
      ] as const
    ) {
      const { code, stdout, stderr } = await bench(script, [...args, "--data-dir", missing]);
      assert.equal(code, 1, `${script}: ${stdout}${stderr}`);
      const lines = stderr.trimEnd().split("\n");
      assert.equal(
        lines.at(-1),
        `error: Cannot load dataset "mnist": expected a folder at "${missing}", got none`,
        `${script}: ${stderr}`,
      );
      assert.doesNotMatch(stderr, /^\s+at /m, `${script}: ${stderr}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
