/**
 * Negative numbers as flag values for node:util's `parseArgs`, shared by the
 * command line (`cli.ts`) and the bench scripts. Internal.
 *
 * @module
 */

/**
 * The arguments with each `--name VALUE` whose value is a negative number
 * written as `--name=VALUE`: node:util's parser would otherwise read `-1`
 * as an option and call the argument ambiguous, where the user means the
 * number (which the command then checks like any other value). Internal.
 *
 * @param args Command-line arguments, e.g. `["--seed", "-1"]`.
 * @returns The same arguments, e.g. `["--seed=-1"]`; others unchanged.
 */
export function joinNegativeValues(args: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const next = args[i + 1];
    if (
      /^--[\w-]+$/.test(args[i]) && next !== undefined &&
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
