/**
 * Run the command line in this process, capturing what it prints.
 *
 * @module
 */
import { main } from "../lib/cli.ts";

/** What one CLI run gave. */
export interface CliRun {
  /** The exit code `main` returned. */
  code: number;
  /** Lines printed with console.log, joined by newlines. */
  stdout: string;
  /** Everything written to stderr. */
  stderr: string;
}

/**
 * Run `main(args)` with console.log and stderr captured.
 *
 * @param args The arguments after the program name.
 * @returns The exit code and the output.
 */
export async function runCli(args: string[]): Promise<CliRun> {
  const out: string[] = [], errors: string[] = [];
  const log = console.log, write = Deno.stderr.writeSync;
  console.log = (line: string) => out.push(line);
  Deno.stderr.writeSync = (p: Uint8Array) => (errors.push(new TextDecoder().decode(p)), p.length);
  try {
    return { code: await main(args), stdout: out.join("\n"), stderr: errors.join("") };
  } finally {
    console.log = log;
    Deno.stderr.writeSync = write;
  }
}
