/**
 * How the command line (`cli.ts`) and the bench scripts word a usage error:
 * one line, "expected …, got …". Its own module so that a bench script need
 * not load the whole command line to use it. Internal.
 *
 * @module
 */

/**
 * The first line of a usage error, with node:util's parse errors (which run
 * to several lines) rephrased as "expected …, got …" for the `command`'s
 * options. Internal.
 */
export function usageReason(error: Error, command: string): string {
  return error.message.split("\n")[0].replace(/\. To specify .*$/, "")
    .replace(
      /^Option '(--[\w-]+)(?: <value>)?' argument missing$/,
      "expected a value for $1, got none",
    )
    .replace(
      /^Option '(--[\w-]+)' argument is ambiguous\.?$/,
      "expected a value for $1, got none before the next option",
    )
    .replace(/^Unknown option '(.+)'$/, `expected an option of ${command}, got "$1"`)
    .replace(
      /^Option '(--[\w-]+)' does not take an argument$/,
      "expected no value after $1, got one",
    )
    .replace(
      /^Unexpected argument '(.*)'\. This command does not take positional arguments$/,
      `expected only options, got the argument "$1"`,
    );
}
