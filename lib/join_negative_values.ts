/**
 * Negative numbers as flag values for node:util's `parseArgs`, shared by the
 * command line (`cli.ts`) and the bench scripts. Internal.
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
