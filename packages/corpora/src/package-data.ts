import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname } from "node:path";

import { TersorError } from "@tersor/core";

const require = createRequire(import.meta.url);
const roots = new Map<string, string>();
const versions = new Map<string, string>();

/** The installed directory of a data package (no network: it must be in node_modules). */
export function packageRoot(pkg: string): string {
  let root = roots.get(pkg);
  if (root === undefined) {
    try {
      root = dirname(require.resolve(`${pkg}/package.json`));
    } catch (e) {
      throw new TersorError("E_IO", `the data package ${pkg} is not installed (npm install ${pkg})`, { cause: e });
    }
    roots.set(pkg, root);
  }
  return root;
}

/** The installed version of a data package. */
export function packageVersion(pkg: string): string {
  let v = versions.get(pkg);
  if (v === undefined) {
    const json = JSON.parse(readFileSync(`${packageRoot(pkg)}/package.json`, "utf8")) as { version?: unknown };
    v = typeof json.version === "string" ? json.version : "unknown";
    versions.set(pkg, v);
  }
  return v;
}
