/** `tersor dedup | select`. */
import type { Command } from "commander";

/** Registers the command(s) of this module on the program. */
export function registerSelect(program: Command): void {}
