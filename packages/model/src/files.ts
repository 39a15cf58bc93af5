/** File helpers shared by the model loader and the tokenizer loader (internal to @tersor/model). */
import { readFile, stat } from "node:fs/promises";

import { TersorError } from "@tersor/core";

/** True when `p` exists and is a regular file. */
export async function isFile(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}

/** Parses a JSON file: E_IO when it cannot be read, E_FORMAT when it is not JSON. */
export async function readJsonFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new TersorError("E_IO", `cannot read ${path}: ${err.code ?? ""} ${err.message}`.trim(), { cause: e });
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new TersorError("E_FORMAT", `${path}: not valid JSON: ${(e as Error).message}`);
  }
}
