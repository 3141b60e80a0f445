/**
 * Command-line flags of the bench scripts that take them (`ablation.ts`,
 * `compare.ts`, `gpu.ts`, `pool_step.ts`, `step_profile.ts`): parsed with
 * `node:util`, and any usage error printed as one line ("error: Cannot
 * <action>: expected …, got …") with exit code 2; and the data of those that
 * train (`ablation.ts`, `compare.ts`, `gpu.ts`), whose absence is one line
 * with exit code 1.
 *
 * @module
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { loadMnist, type MnistData, MnistDataError } from "../lib/mnist.ts";
import { decimalInteger, joinNegativeValues } from "../lib/flag_values.ts";
import { usageReason } from "../lib/usage_reason.ts";

/** Print a usage error for `action` in one line and exit with code 2. */
export function usage(action: string, message: string): never {
  console.error(`error: Cannot ${action}: ${message} (see --help)`);
  Deno.exit(2);
}

/**
 * Parse `Deno.args` with the given options and `--help`, which prints `help`
 * and exits with code 0; an unknown flag, a missing value or an argument is a
 * usage error for `action` (the task's name is `command`). A negative number
 * after a flag (`--seeds -1`) is that flag's value, for the script to check.
 */
export function parseFlags<T extends ParseArgsConfig["options"]>(
  action: string,
  command: string,
  options: T,
  help: string,
) {
  let parsed;
  try {
    const all = { ...options, help: { type: "boolean" as const, default: false } };
    parsed = parseArgs({ args: joinNegativeValues(Deno.args, all), options: all });
  } catch (error) {
    usage(action, usageReason(error as Error, command));
  }
  if ((parsed.values as { help?: boolean }).help) {
    console.log(help);
    Deno.exit(0);
  }
  return parsed;
}

/**
 * The value of the flag `--name`: an integer written in decimal, from `min`
 * to `max`; anything else (`" 2"`, `"1e3"`, `"0x10"`, `""`) is a usage error
 * for `action`.
 */
export function integerFlag(
  action: string,
  name: string,
  value: string | undefined,
  min: number,
  max: number,
): number {
  const n = value === undefined ? NaN : decimalInteger(value);
  if (!(n >= min && n <= max)) {
    usage(action, `expected --${name} to be an integer from ${min} to ${max}, got "${value}"`);
  }
  return n;
}

/**
 * `loadMnist({ dir })` for a bench script's `--data-dir DIR`: data that
 * cannot be found or read (a `MnistDataError`, e.g. a folder that does not
 * exist) is printed as one line ("error: Cannot load dataset …") and exits
 * with code 1, as `deno task train` does; other errors are thrown.
 */
export async function loadData(dir: string | undefined): Promise<MnistData> {
  try {
    return await loadMnist({ dir });
  } catch (error) {
    if (!(error instanceof MnistDataError)) throw error;
    console.error(`error: ${error.message}`);
    Deno.exit(1);
  }
}
