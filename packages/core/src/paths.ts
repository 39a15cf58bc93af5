import { stat } from "node:fs/promises";

/** True when something (file, directory, …) exists at `p`; false on any error reaching it. */
export async function pathExists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}
