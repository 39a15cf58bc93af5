#!/usr/bin/env node
// Makes a fresh Debian/Ubuntu machine ready to build and test tersor, and does nothing when it
// already is: installs the missing system packages with apt-get (as root, or through sudo), then
// runs `npm ci` when node_modules is missing or older than package-lock.json.
// Uses only Node's standard library: it runs before any npm dependency is installed.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const APT_PACKAGES = ["cmake", "ninja-build", "g++", "libeigen3-dev", "libopenblas-dev", "doctest-dev", "zlib1g-dev"];

function log(msg) {
  process.stderr.write(`[tersor setup] ${msg}\n`);
}

function missingAptPackages() {
  if (!existsSync("/usr/bin/dpkg-query")) return null;
  return APT_PACKAGES.filter((p) => {
    const r = spawnSync("dpkg-query", ["-W", "-f=${Status}", p], { encoding: "utf8" });
    return r.status !== 0 || !r.stdout.includes("install ok installed");
  });
}

function run(cmd, args, opts = {}) {
  log(`$ ${cmd} ${args.join(" ")}`);
  execFileSync(cmd, args, { stdio: "inherit", cwd: root, ...opts });
}

const missing = missingAptPackages();
if (missing === null) {
  log(`not a Debian/Ubuntu system: make sure these are installed: ${APT_PACKAGES.join(", ")}`);
} else if (missing.length > 0) {
  const asRoot = process.getuid?.() === 0;
  const sudo = !asRoot && spawnSync("sudo", ["-n", "true"]).status === 0;
  if (!asRoot && !sudo) {
    log(`missing system packages: ${missing.join(" ")}; install them with: sudo apt-get install -y ${missing.join(" ")}`);
    process.exit(1);
  }
  const pre = asRoot ? [] : ["sudo", "-n"];
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const apt = (args) => (pre.length ? run(pre[0], [...pre.slice(1), "apt-get", ...args], { env }) : run("apt-get", args, { env }));
  try {
    apt(["install", "-y", "--no-install-recommends", ...missing]);
  } catch {
    apt(["update"]);
    apt(["install", "-y", "--no-install-recommends", ...missing]);
  }
}

const modules = join(root, "node_modules");
const lock = join(root, "package-lock.json");
const stamp = join(modules, ".package-lock.json");
if (!existsSync(modules) || !existsSync(stamp) || statSync(stamp).mtimeMs < statSync(lock).mtimeMs) {
  try {
    run("npm", ["ci", "--no-audit", "--no-fund"]);
  } catch {
    // `npm ci` insists that every optional platform package of a dependency (nx's per-OS binaries)
    // is in the lockfile; a registry mirror that serves only some platforms makes that impossible.
    // `npm install` follows the lockfile for everything it can resolve and skips the rest.
    log("npm ci refused the lockfile (optional platform packages missing from the registry?); falling back to npm install");
    run("npm", ["install", "--no-audit", "--no-fund"]);
  }
}
