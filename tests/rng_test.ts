/**
 * `createRng` against a plain reference of its generator: sfc32 (Chris
 * Doty-Humphrey's Small Fast Counter, PractRand) seeded by four outputs of
 * splitmix32 (a Weyl sequence through MurmurHash3's 32-bit finaliser), its
 * first 12 outputs skipped.
 * The reference does its arithmetic on BigInts modulo 2³², so a change in how
 * `createRng` keeps its state (it is tuned for speed) cannot change a seed's
 * numbers, and every model trained from a seed stays the same.
 */
import assert from "node:assert/strict";
import { createRng } from "../lib/rng.ts";

const M = 2n ** 32n;
const u32 = (x: bigint) => ((x % M) + M) % M;
const mul = (a: bigint, b: bigint) => u32(a * b);
const shr = (a: bigint, k: bigint) => a >> k;
const shl = (a: bigint, k: bigint) => u32(a << k);

/** The first `count` outputs of the generator for `seed`, as numbers in [0, 1). */
function reference(seed: number, count: number): number[] {
  let s = u32(BigInt(seed));
  const split = () => {
    s = u32(s + 0x9e3779b9n);
    let z = s;
    z = mul(z ^ shr(z, 16n), 0x85ebca6bn);
    z = mul(z ^ shr(z, 13n), 0xc2b2ae35n);
    return z ^ shr(z, 16n);
  };
  let a = split(), b = split(), c = split(), d = split();
  const next = () => {
    const t = u32(a + b + d);
    d = u32(d + 1n);
    a = b ^ shr(b, 9n);
    b = u32(c + shl(c, 3n));
    c = u32((shl(c, 21n) | shr(c, 11n)) + t);
    return Number(t) / 2 ** 32;
  };
  for (let i = 0; i < 12; i++) next();
  return Array.from({ length: count }, next);
}

Deno.test("createRng gives sfc32's numbers for a seed, as the reference computes them", () => {
  for (const seed of [0, 1, 42, 2 ** 31 + 5, 2 ** 32 - 1]) {
    const rng = createRng(seed);
    const ours = Array.from({ length: 2000 }, () => rng.next());
    assert.deepEqual(ours, reference(seed, 2000), `seed ${seed}`);
  }
});
