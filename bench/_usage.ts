/**
 * Command-line flags of the bench scripts that take them (`ablation.ts`,
 * `gpu.ts`): parsed with `node:util`, and any usage error printed as one
 * line ("error: Cannot <action>: expected …, got …") with exit code 2.
 *
 * @module
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { usageReason } from "../lib/usage_reason.ts";

/** Print a usage error for `action` in one line and exit with code 2. */
export function usage(action: string, message: string): never {
  console.error(`error: Cannot ${action}: ${message} (see --help)`);
  Deno.exit(2);
}

/**
 * Parse `Deno.args` with the given options and `--help`, which prints `help`
 * and exits with code 0; an unknown flag, a missing value or an argument is a
 * usage error for `action` (the task's name is `command`).
 */
export function parseFlags<T extends ParseArgsConfig["options"]>(
  action: string,
  command: string,
  options: T,
  help: string,
) {
  let parsed;
  try {
    parsed = parseArgs({
      args: Deno.args,
      options: { ...options, help: { type: "boolean", default: false } },
    });
  } catch (error) {
    usage(action, usageReason(error as Error, command));
  }
  if ((parsed.values as { help?: boolean }).help) {
    console.log(help);
    Deno.exit(0);
  }
  return parsed;
}
