/** `tersor mix swarm | fit | eval`. */
import type { Command } from "commander";

/** Registers the command(s) of this module on the program. */
export function registerMix(program: Command): void {}
