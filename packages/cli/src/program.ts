import { Command } from "commander";
import { TersorError } from "@tersor/core";

import { registerBench } from "./commands/bench.js";
import { registerCorpus } from "./commands/corpus.js";
import { registerInspect } from "./commands/inspect.js";
import { registerMeasure } from "./commands/measure.js";
import { registerModel } from "./commands/model.js";
import { registerTrain } from "./commands/train.js";
import { registerQuantize } from "./commands/quantize.js";
import { registerKv } from "./commands/kv.js";
import { registerSelect } from "./commands/select.js";
import { registerMix } from "./commands/mix.js";
import { registerDistill } from "./commands/distill.js";
import { VERSION } from "./version.js";

/** Builds the `tersor` command tree. Each command module registers itself here. */
export function buildProgram(): Command {
  const program = new Command("tersor")
    .description("Compress ML data and models, and measure what was lost.")
    .version(VERSION, "-V, --version", "print the tersor version")
    .option("--threads <n>", "threads for native kernels (default: physical cores)")
    .showHelpAfterError("(run with --help for usage)")
    .configureHelp({ sortSubcommands: true });
  registerBench(program);
  registerCorpus(program);
  registerInspect(program);
  registerMeasure(program);
  registerModel(program);
  registerTrain(program);
  registerQuantize(program);
  registerKv(program);
  registerSelect(program);
  registerMix(program);
  registerDistill(program);
  return program;
}

/** Runs the CLI; maps TersorError to a one-line message and exit code 1, usage errors to 2. */
export async function main(argv: string[] = process.argv): Promise<number> {
  const program = buildProgram();
  program.exitOverride();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    const err = e as { code?: string; exitCode?: number; message?: string };
    if (typeof err.code === "string" && err.code.startsWith("commander.")) {
      return err.code === "commander.helpDisplayed" || err.code === "commander.version" || err.code === "commander.help" ? 0 : (err.exitCode ?? 2);
    }
    if (e instanceof TersorError) {
      process.stderr.write(`tersor: ${e.code}: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}
