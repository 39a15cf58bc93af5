/** `tersor quantize`. */
import type { Command } from "commander";

/** Registers the command(s) of this module on the program. */
export function registerQuantize(program: Command): void {}
