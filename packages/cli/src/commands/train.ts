/** `tersor train --config train.json`. */
import type { Command } from "commander";

/** Registers the command(s) of this module on the program. */
export function registerTrain(program: Command): void {}
