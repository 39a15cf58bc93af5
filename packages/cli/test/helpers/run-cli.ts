// Runs the built `tersor` command (packages/cli/dist/bin.js) in a child process, as a user would.
import { execFile } from "node:child_process";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The built CLI entry point. */
export const BIN = resolve(fileURLToPath(new URL(".", import.meta.url)), "../../dist/bin.js");

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `tersor <args>`; never rejects: a failing command resolves with its exit code and output.
 * `threads` adds `--threads N`; `silent` sets TERSOR_PROGRESS=silent.
 */
export function runCli(args: readonly string[], opts: { threads?: number; silent?: boolean } = {}): Promise<CliResult> {
  const argv = [BIN, ...(opts.threads ? ["--threads", String(opts.threads)] : []), ...args];
  const env = opts.silent ? { ...process.env, TERSOR_PROGRESS: "silent" } : process.env;
  return new Promise((res) => {
    execFile(process.execPath, argv, { maxBuffer: 64 << 20, env }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: number }).code ?? 1) : 0;
      res({ code: typeof code === "number" ? code : 1, stdout, stderr });
    });
  });
}
