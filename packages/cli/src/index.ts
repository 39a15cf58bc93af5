/**
 * `tersor`: the command-line front end. Programs can embed it through {@link main} or {@link buildProgram}.
 * @packageDocumentation
 */
export { buildProgram, main } from "./program.js";
export { runBenchSuite, type BenchRecord } from "./commands/bench.js";
export { VERSION } from "./version.js";
