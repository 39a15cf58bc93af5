import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import type { Binding } from "./binding/index.js";
import { TersorError } from "./errors.js";

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));

/** The command that builds the addon from a source checkout. */
export const BUILD_COMMAND = "npm run build:native";

/** Where the loader looks, in order. */
export function candidatePaths(): { kind: "env" | "local" | "package"; path: string }[] {
  const out: { kind: "env" | "local" | "package"; path: string }[] = [];
  const env = process.env["TERSOR_NATIVE_PATH"];
  if (env) out.push({ kind: "env", path: resolve(env) });
  // packages/native/{dist,src}/ -> repository root build directory (cmake-js --out build).
  out.push({ kind: "local", path: resolve(here, "..", "..", "..", "build", "Release", "tersor.node") });
  out.push({ kind: "package", path: `@tersor/native-${process.platform}-${process.arch}` });
  return out;
}

/**
 * Reads the CPU flags on Linux before loading: the addon is compiled for x86-64-v3 and would die
 * with SIGILL on an older CPU instead of throwing. Returns a message when the CPU falls short.
 */
export function cpuProblem(): string | undefined {
  if (process.arch !== "x64") return `tersor's native addon is built for x86-64 only, not ${process.arch}`;
  if (process.platform !== "linux" || !existsSync("/proc/cpuinfo")) return undefined;
  const text = readFileSync("/proc/cpuinfo", "utf8");
  const line = text.split("\n").find((l) => l.startsWith("flags"));
  if (!line) return undefined;
  const flags = new Set(line.slice(line.indexOf(":") + 1).trim().split(/\s+/));
  const missing = ["avx2", "fma", "f16c"].filter((f) => !flags.has(f));
  return missing.length === 0
    ? undefined
    : `this CPU lacks ${missing.join(", ").toUpperCase()}; tersor's native addon needs x86-64-v3 (AVX2, FMA, F16C)`;
}

let cached: Binding | undefined;

/**
 * Loads `tersor.node` once: `$TERSOR_NATIVE_PATH`, then the local build (`build/Release/tersor.node`),
 * then the per-platform package `@tersor/native-<platform>-<arch>`. Throws `E_NATIVE` with the
 * build command when none loads.
 */
export function loadBinding(): Binding {
  if (cached) return cached;
  const problem = cpuProblem();
  if (problem) throw new TersorError("E_NATIVE", problem);
  const failures: string[] = [];
  for (const c of candidatePaths()) {
    if (c.kind !== "package" && !existsSync(c.path)) {
      failures.push(`${c.kind}: ${c.path} (not built)`);
      continue;
    }
    try {
      const b = require(c.path) as Binding;
      b.setErrorClass(TersorError as unknown as new (code: string, message: string) => Error);
      cached = b;
      return b;
    } catch (e) {
      const msg = e instanceof Error ? e.message.split("\n")[0] : String(e);
      failures.push(`${c.kind}: ${c.path} (${msg})`);
    }
  }
  throw new TersorError(
    "E_NATIVE",
    `tersor's native addon could not be loaded. Build it from the repository root with \`${BUILD_COMMAND}\` ` +
      `(needs cmake >= 3.20, a C++20 compiler, Eigen 3.4 and OpenMP; \`npm run setup\` installs them on Debian/Ubuntu), ` +
      `or install @tersor/native-${process.platform}-${process.arch}. Tried:\n  ${failures.join("\n  ")}`,
  );
}

/** The repository root of a source checkout (where `build/` lives), for tools that need the build dir. */
export function buildDirectory(): string {
  return join(here, "..", "..", "..", "build");
}
