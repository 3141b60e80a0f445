/**
 * How the command line (`cli.ts`) and the bench scripts read flag values:
 * a negative number after a flag is its value, and numbers count only as
 * written in decimal. Internal.
 *
 * @module
 */
import type { ParseArgsConfig } from "node:util";

/**
 * The arguments with each `--name VALUE` whose value is a negative number
 * written as `--name=VALUE`, where `--name` takes a value: node:util's
 * parser would otherwise read `-1` as an option and call the argument
 * ambiguous, where the user means the number (which the command then checks
 * like any other value). After a flag that takes no value (`--list -1`),
 * `-1` stays an argument of its own, for the parser to refuse. Internal.
 *
 * @param args Command-line arguments, e.g. `["--seed", "-1"]`.
 * @param options The parser's options: only those of type `"string"` take a value.
 * @returns The same arguments, e.g. `["--seed=-1"]`; others unchanged.
 */
export function joinNegativeValues(
  args: readonly string[],
  options: ParseArgsConfig["options"] = {},
): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const next = args[i + 1];
    const name = /^--([\w-]+)$/.exec(args[i])?.[1];
    if (
      name !== undefined && options[name]?.type === "string" && next !== undefined &&
      /^-(\d|\.\d|Infinity$)/.test(next)
    ) {
      out.push(`${args[i]}=${next}`);
      i++;
    } else {
      out.push(args[i]);
    }
  }
  return out;
}

/**
 * A number written in decimal (`0.03`, `.5`, `5.`, `-1`, `3e-2`), else NaN:
 * `Number` alone would also read `""` and `" "` as 0, `" 2"` as 2 and `0x10`
 * as 16. Internal.
 *
 * @param text A flag's value.
 * @returns Its number, or NaN.
 */
export function decimal(text: string): number {
  return /^-?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(text) ? Number(text) : NaN;
}

/**
 * An integer written in decimal digits (`42`, `-1`), else NaN (`" 2"`,
 * `"1e3"`, `"0x10"`, `"2.0"`, `""`). Internal.
 *
 * @param text A flag's value.
 * @returns Its integer, or NaN.
 */
export function decimalInteger(text: string): number {
  return /^-?\d+$/.test(text) ? Number(text) : NaN;
}
