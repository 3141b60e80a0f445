import assert from "node:assert/strict";
import { main } from "../lib/cli.ts";

/** Run the CLI in-process; returns its exit code and what it wrote to stderr. */
async function run(args: string[]): Promise<{ code: number; stderr: string }> {
  const chunks: string[] = [];
  const original = Deno.stderr.writeSync;
  Deno.stderr.writeSync = (p: Uint8Array) => (chunks.push(new TextDecoder().decode(p)), p.length);
  try {
    return { code: await main(args), stderr: chunks.join("") };
  } finally {
    Deno.stderr.writeSync = original;
  }
}

for (
  const [args, message] of [
    [["--epochs", "0"], 'error: --epochs expects an integer ≥ 1, got "0" (see --help)'],
    [["--batch-size", "ten"], 'error: --batch-size expects an integer ≥ 1, got "ten" (see --help)'],
    [
      ["--backend", "tpu"],
      'error: --backend expects one of auto, webgpu, wasm, cpu, got "tpu" (see --help)',
    ],
    [
      ["--dataset", "cifar"],
      'error: --dataset expects one of mnist, fashion-mnist, got "cifar" (see --help)',
    ],
    [["--lr=-1"], 'error: --lr expects a positive number, got "-1" (see --help)'],
    [["--workers", "-1"], "error: Option '--workers' argument is ambiguous. (see --help)"],
    [["--workers=1.5"], 'error: --workers expects an integer ≥ 0, got "1.5" (see --help)'],
    [["--lr", "-1"], "error: Option '--lr' argument is ambiguous. (see --help)"],
    [
      ["--bogus"],
      "error: Unknown option '--bogus' (see --help)",
    ],
    [["fly"], 'error: unknown command "fly": expected train or preview (see --help)'],
  ] as const
) {
  Deno.test(`bad usage ${args.join(" ")} → one line and exit code 2`, async () => {
    const { code, stderr } = await run([...args]);
    assert.equal(code, 2);
    assert.equal(stderr.trimEnd().split("\n").length, 1, stderr);
    assert.equal(stderr.trimEnd(), message);
  });
}

Deno.test("a missing data directory is exit code 1 with the folder named", async () => {
  const { code, stderr } = await run(["--backend", "cpu", "--data-dir", "/nonexistent/mnist"]);
  assert.equal(code, 1);
  assert.match(stderr, /\/nonexistent\/mnist/);
});
