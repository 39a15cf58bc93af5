/** `tersor kv plan | eval`. */
import type { Command } from "commander";

/** Registers the command(s) of this module on the program. */
export function registerKv(program: Command): void {}
