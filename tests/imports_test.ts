/**
 * The library's modules import each other without circles (STYLE.md: "no
 * import circles"), type-only imports included: read from the source, so
 * that a circle fails here before anything runs.
 */
import assert from "node:assert/strict";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const LIB = fileURLToPath(new URL("../lib/", import.meta.url));

/** Every .ts file under `dir`. */
function sources(dir: string): string[] {
  return [...Deno.readDirSync(dir)].flatMap((e) =>
    e.isDirectory ? sources(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : []
  );
}

/** The local modules a file imports or re-exports (static, type-only too). */
function localImports(file: string): string[] {
  const text = Deno.readTextFileSync(file);
  const specifiers = [...text.matchAll(/^\s*(?:import|export)\b[^;]*?from\s+"(\.[^"]+)"/gms)]
    .map((m) => m[1]);
  return specifiers.map((s) => join(dirname(file), s));
}

/** One circle of imports, as paths relative to lib/, or null when there is none. */
function findCircle(graph: Map<string, string[]>): string[] | null {
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (node: string): string[] | null => {
    if (state.get(node) === "done") return null;
    if (state.get(node) === "open") return [...stack.slice(stack.indexOf(node)), node];
    state.set(node, "open");
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      const circle = visit(next);
      if (circle) return circle;
    }
    stack.pop();
    state.set(node, "done");
    return null;
  };
  for (const node of graph.keys()) {
    const circle = visit(node);
    if (circle) return circle.map((f) => relative(LIB, f));
  }
  return null;
}

Deno.test("lib/ has no import circles", () => {
  const graph = new Map(sources(LIB).map((f) => [f, localImports(f)]));
  assert.ok(graph.size > 30, `read ${graph.size} modules`);
  // The reader sees real edges: model.ts imports backend.ts.
  assert.ok(graph.get(join(LIB, "model.ts"))!.includes(join(LIB, "backend.ts")));
  assert.equal(findCircle(graph), null);
});

Deno.test("the circle finder finds a circle", () => {
  const graph = new Map([
    [join(LIB, "a.ts"), [join(LIB, "b.ts")]],
    [join(LIB, "b.ts"), [join(LIB, "c.ts")]],
    [join(LIB, "c.ts"), [join(LIB, "a.ts")]],
  ]);
  assert.deepEqual(findCircle(graph), ["a.ts", "b.ts", "c.ts", "a.ts"]);
});
