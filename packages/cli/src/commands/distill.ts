/** `tersor distill cache | train`. */
import type { Command } from "commander";

/** Registers the command(s) of this module on the program. */
export function registerDistill(program: Command): void {}
