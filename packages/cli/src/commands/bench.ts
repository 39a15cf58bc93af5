import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

import type { Command } from "commander";
import { TersorError } from "@tersor/core";
import { BUILD_COMMAND, buildDirectory } from "@tersor/native";

/**
 * One benchmark result: our time and a named baseline's, measured in the same process run;
 * `ratio = baseline_s / ours_s` (above 1: we are faster).
 */
export interface BenchRecord {
  suite: string;
  case: string;
  ours_s: number;
  baseline: string;
  baseline_s: number;
  ratio: number;
  [extra: string]: unknown;
}

/** Suites implemented by the native benchmark tool (build/tersor_bench). */
const NATIVE_SUITES = new Set(["linalg", "model", "measures", "train", "quant", "kv", "select", "mix", "distill"]);

/** Runs a native suite in `tersor_bench` and yields its JSON lines. */
export async function runBenchSuite(suite: string, opts: { threads?: number; quick?: boolean } = {}): Promise<BenchRecord[]> {
  if (!NATIVE_SUITES.has(suite)) {
    throw new TersorError("E_RANGE", `unknown benchmark suite "${suite}"; available: ${[...NATIVE_SUITES].join(", ")}`);
  }
  const exe = join(buildDirectory(), "tersor_bench");
  if (!existsSync(exe)) {
    throw new TersorError("E_NATIVE", `the benchmark tool ${exe} is not built; run \`${BUILD_COMMAND}\``);
  }
  const threads = opts.threads ?? 0;
  const args = [suite, "--threads", String(threads)];
  if (opts.quick) args.push("--quick");
  const env = { ...process.env };
  // OpenBLAS and OpenMP read their thread counts at start-up: give both the same count.
  if (threads > 0) {
    env["OPENBLAS_NUM_THREADS"] = String(threads);
    env["OMP_NUM_THREADS"] = String(threads);
  }
  return await new Promise<BenchRecord[]>((resolve, reject) => {
    const child = spawn(exe, args, { env, stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (d: string) => (out += d));
    child.on("error", (e) => reject(new TersorError("E_NATIVE", `running ${exe}: ${e.message}`)));
    child.on("close", (code) => {
      if (code !== 0) return reject(new TersorError("E_NATIVE", `${exe} ${args.join(" ")} exited with ${code}`));
      resolve(
        out
          .split("\n")
          .filter((l) => l.startsWith("{"))
          .map((l) => JSON.parse(l) as BenchRecord),
      );
    });
  });
}

function formatRow(r: BenchRecord): string {
  const pad = (s: string, n: number) => s.padEnd(n);
  return `${pad(r.case, 34)} ours ${r.ours_s.toExponential(3)} s   ${pad(r.baseline, 22)} ${r.baseline_s.toExponential(3)} s   ratio ${r.ratio.toFixed(3)}`;
}

export function registerBench(program: Command): void {
  program
    .command("bench")
    .description("run a benchmark suite: our kernel vs a named baseline, timed in the same run")
    .argument("<suite>", `suite name (${[...NATIVE_SUITES].join(", ")})`)
    .option("--json", "print one JSON object per case")
    .option("--quick", "smaller sizes, for smoke tests")
    .action(async (suite: string, o: { json?: boolean; quick?: boolean }, cmd: Command) => {
      const threadsOpt = cmd.optsWithGlobals<{ threads?: string }>().threads;
      const threads = threadsOpt === undefined ? undefined : Number(threadsOpt);
      if (threads !== undefined && !(Number.isInteger(threads) && threads >= 0)) {
        throw new TersorError("E_RANGE", `--threads must be a non-negative integer, got "${threadsOpt}"`);
      }
      const records = await runBenchSuite(suite, { ...(threads !== undefined ? { threads } : {}), quick: !!o.quick });
      for (const r of records) process.stdout.write((o.json ? JSON.stringify(r) : formatRow(r)) + "\n");
    });
}
