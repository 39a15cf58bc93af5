/**
 * A small RFC 822 / MIME decoder, enough to turn the raw messages of the SpamAssassin corpus into
 * plain text: headers split off (unfolded, RFC 2047 encoded words decoded), quoted-printable and
 * base64 transfer encodings undone, multipart messages walked (text/plain parts taken, text/html
 * parts with their tags stripped when there is no text/plain), charsets decoded with TextDecoder
 * and a latin1 (windows-1252) fallback.
 *
 * Raw messages are handled as "binary strings" (one char per byte, latin1), so that byte values
 * survive until the charset of each part is known.
 */

import { TextDecoder } from "node:util";

/** What {@link parseEmail} returns. */
export interface ParsedEmail {
  /** Top-level headers: lower-cased names; repeated headers joined by "\n"; encoded words decoded. */
  headers: Record<string, string>;
  /** The readable body (LF line ends, trimmed). */
  text: string;
  /** Where `text` came from. */
  textSource: "plain" | "html" | "none";
}

interface Entity {
  /** [lower-cased name, raw unfolded value (binary string)] in message order. */
  headers: Array<[string, string]>;
  /** Raw body (binary string), transfer-encoded. */
  body: string;
}

interface ContentType {
  type: string;
  subtype: string;
  params: Record<string, string>;
}

const MAX_DEPTH = 16;

/** Code points of windows-1252 bytes 0x80–0x9f (the five undefined ones map to their C1 controls, as WHATWG does). */
const CP1252_HIGH = [
  0x20ac, 0x81, 0x201a, 0x192, 0x201e, 0x2026, 0x2020, 0x2021, 0x2c6, 0x2030, 0x160, 0x2039, 0x152, 0x8d, 0x17d, 0x8f,
  0x90, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014, 0x2dc, 0x2122, 0x161, 0x203a, 0x153, 0x9d, 0x17e, 0x178,
];

/**
 * windows-1252, which WHATWG (and so TextDecoder) uses for the labels latin1, iso-8859-1 and
 * us-ascii. Done here because some Node versions decode it as plain ISO-8859-1 (0x80 → U+0080).
 */
export function decodeWindows1252(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    const chunk = bytes.subarray(i, i + 8192);
    const codes = new Array<number>(chunk.length);
    for (let j = 0; j < chunk.length; j++) {
      const b = chunk[j]!;
      codes[j] = b >= 0x80 && b <= 0x9f ? CP1252_HIGH[b - 0x80]! : b;
    }
    out += String.fromCharCode(...codes);
  }
  return out;
}

function decoderFor(label: string, fatal: boolean): ((b: Uint8Array) => string) | undefined {
  let d: TextDecoder;
  try {
    d = new TextDecoder(label, { fatal });
  } catch {
    return undefined; // unknown label
  }
  if (d.encoding === "windows-1252") return decodeWindows1252;
  return (b) => d.decode(b);
}

/**
 * Decodes bytes in `charset` with TextDecoder. When the label is missing, unknown, US-ASCII, or the
 * bytes are invalid for it: UTF-8 if the bytes are valid UTF-8, else the label's decoder with
 * replacement characters, else latin1 (windows-1252).
 */
export function decodeCharset(bytes: Uint8Array, charset?: string): string {
  const label = normalizeCharset(charset);
  const usable = label && !ASCII_LABELS.has(label) ? label : undefined;
  if (usable) {
    const strict = decoderFor(usable, true);
    if (strict) {
      try {
        return strict(bytes);
      } catch {
        // invalid for its label: try UTF-8
      }
    }
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    // not UTF-8
  }
  const lenient = usable ? decoderFor(usable, false) : undefined;
  return lenient ? lenient(bytes) : decodeWindows1252(bytes);
}

const ASCII_LABELS = new Set(["us-ascii", "ascii", "default", "default_charset", "x-user-defined", "unknown", "none"]);

function normalizeCharset(charset: string | undefined): string | undefined {
  if (!charset) return undefined;
  let c = charset.trim().toLowerCase().replace(/^["']|["']$/g, "");
  // `charset=3Diso-8859-1`: a header that went through quoted-printable twice.
  if (c.startsWith("3d") && c.length > 2) c = c.slice(2);
  if (c === "iso8859-1" || c === "iso_8859-1") c = "iso-8859-1";
  return c || undefined;
}

function binaryToBytes(s: string): Buffer {
  return Buffer.from(s, "latin1");
}

/** Undoes quoted-printable (soft line breaks, `=XX`); malformed `=` sequences are kept as they are. */
export function decodeQuotedPrintable(s: string): Buffer {
  const out = s
    .replace(/[ \t]+(\r?\n)/g, "$1") // trailing whitespace is not part of the data (RFC 2045 6.7)
    .replace(/=\r?\n/g, "")
    .replace(/=([0-9A-Fa-f]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));
  return binaryToBytes(out);
}

/** Undoes base64, ignoring characters outside the alphabet (line breaks, stray spaces). */
export function decodeBase64(s: string): Buffer {
  return Buffer.from(s.replace(/[^A-Za-z0-9+/=]/g, ""), "base64");
}

/** Decodes the RFC 2047 encoded words (`=?charset?B|Q?...?=`) of a header value. */
export function decodeEncodedWords(value: string): string {
  // White space between two adjacent encoded words is not displayed (RFC 2047 6.2).
  const joined = value.replace(/(=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=)\s+(?==\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=)/g, "$1");
  return joined.replace(/=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=/g, (_m, cs: string, enc: string, data: string) => {
    const charset = cs.split("*")[0]; // RFC 2231 language suffix
    const bytes =
      enc.toUpperCase() === "B"
        ? decodeBase64(data)
        : binaryToBytes(data.replace(/_/g, " ").replace(/=([0-9A-Fa-f]{2})/g, (_n, h: string) => String.fromCharCode(parseInt(h, 16))));
    return decodeCharset(bytes, charset);
  });
}

/** A header value from raw bytes: UTF-8 when valid, else latin1; then encoded words. */
function decodeHeaderValue(raw: string): string {
  // eslint-disable-next-line no-control-regex
  const text = /[^\x00-\x7f]/.test(raw) ? decodeCharset(binaryToBytes(raw)) : raw;
  return decodeEncodedWords(text).trim();
}

const HEADER_LINE = /^[!-9;-~]+[ \t]*:/;

/** Splits a raw entity (binary string) into unfolded headers and body. */
function parseEntity(raw: string, skipEnvelope: boolean): Entity {
  let pos = 0;
  // The mbox separator line "From sender date" that SpamAssassin files start with.
  if (skipEnvelope && raw.startsWith("From ")) {
    const nl = raw.indexOf("\n");
    pos = nl < 0 ? raw.length : nl + 1;
  }
  const headers: Array<[string, string]> = [];
  while (pos < raw.length) {
    const nl = raw.indexOf("\n", pos);
    const end = nl < 0 ? raw.length : nl;
    const line = raw.slice(pos, end).replace(/\r$/, "");
    const next = nl < 0 ? raw.length : nl + 1;
    if (line === "") {
      pos = next;
      break;
    }
    if ((line.startsWith(" ") || line.startsWith("\t")) && headers.length > 0) {
      const last = headers[headers.length - 1]!;
      last[1] += " " + line.trim();
    } else if (HEADER_LINE.test(line)) {
      const colon = line.indexOf(":");
      headers.push([line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()]);
    } else {
      // Not a header line (or no header block at all): the body starts here.
      break;
    }
    pos = next;
  }
  return { headers, body: raw.slice(pos) };
}

function header(e: Entity, name: string): string | undefined {
  for (const [n, v] of e.headers) if (n === name) return v;
  return undefined;
}

/**
 * Parses a Content-Type value (default text/plain when missing or malformed). Parameters are read
 * leniently: quoted or bare values, with or without the `;` separators.
 */
export function parseContentType(value: string | undefined): ContentType {
  const v = value ?? "";
  const m = /^\s*([A-Za-z0-9!#$%&'*+.^_`|~-]+)\s*\/\s*([A-Za-z0-9!#$%&'*+.^_`|~-]+)/.exec(v);
  const params: Record<string, string> = Object.create(null) as Record<string, string>;
  const rest = m ? v.slice(m[0].length) : v;
  const re = /([A-Za-z0-9!#$%&'*+.^_`|~-]+)\s*=\s*("(?:[^"\\]|\\.)*"?|[^;\s]*)/g;
  for (let p = re.exec(rest); p; p = re.exec(rest)) {
    const k = p[1]!.toLowerCase();
    let val = p[2]!;
    if (val.startsWith('"')) val = val.slice(1, val.length > 1 && val.endsWith('"') ? -1 : undefined).replace(/\\(.)/g, "$1");
    if (!(k in params)) params[k] = val;
  }
  if (!m) return { type: "text", subtype: "plain", params };
  return { type: m[1]!.toLowerCase(), subtype: m[2]!.toLowerCase(), params };
}

/** The decoded bytes of an entity's body (transfer encoding undone). */
function bodyBytes(e: Entity): Buffer {
  const cte = (header(e, "content-transfer-encoding") ?? "").trim().toLowerCase();
  if (cte === "base64") return decodeBase64(e.body);
  if (cte === "quoted-printable") return decodeQuotedPrintable(e.body);
  return binaryToBytes(e.body);
}

/** The parts of a multipart body between `--boundary` lines (preamble and epilogue dropped). */
function splitMultipart(body: string, boundary: string): string[] | undefined {
  const delim = "--" + boundary;
  const lines = body.split("\n");
  const parts: string[] = [];
  let cur: string[] | undefined;
  let seen = false;
  for (const rawLine of lines) {
    const line = rawLine.replace(/\r$/, "");
    if (line.startsWith(delim)) {
      const rest = line.slice(delim.length).trimEnd();
      if (rest === "" || rest === "--") {
        if (cur) parts.push(cur.join("\n"));
        seen = true;
        cur = rest === "--" ? undefined : [];
        if (rest === "--") break;
        continue;
      }
    }
    if (cur) cur.push(rawLine);
  }
  if (cur) parts.push(cur.join("\n")); // missing close delimiter
  return seen ? parts : undefined;
}

interface Collected {
  plain: string[];
  html: string[];
}

function collect(e: Entity, out: Collected, depth: number): void {
  const ct = parseContentType(header(e, "content-type"));
  if (depth < MAX_DEPTH && ct.type === "multipart") {
    const boundary = ct.params["boundary"];
    const parts = boundary ? splitMultipart(e.body, boundary) : undefined;
    if (parts) {
      for (const p of parts) collect(parseEntity(p, false), out, depth + 1);
      return;
    }
    // A multipart without (usable) boundaries: read it as text.
    out.plain.push(decodeCharset(bodyBytes(e), ct.params["charset"]));
    return;
  }
  if (depth < MAX_DEPTH && ct.type === "message" && ct.subtype === "rfc822") {
    collect(parseEntity(bodyBytes(e).toString("latin1"), true), out, depth + 1);
    return;
  }
  if (ct.type !== "text") return;
  const disposition = (header(e, "content-disposition") ?? "").trim().toLowerCase();
  if (disposition.startsWith("attachment") && depth > 0) return;
  if (ct.subtype === "plain") out.plain.push(decodeCharset(bodyBytes(e), ct.params["charset"]));
  else if (ct.subtype === "html") out.html.push(decodeCharset(bodyBytes(e), ct.params["charset"]));
}

function tidy(s: string): string {
  return s.replace(/\r\n?/g, "\n").trim();
}

/**
 * Parses a raw RFC 822 message (bytes, or a string that is either already text or a binary
 * string). Returns the decoded top-level headers and the readable text: the text/plain parts
 * joined by blank lines; without any, the text/html parts with their tags stripped. A text/plain
 * body that is in fact an HTML document (common in spam) is stripped as HTML too.
 */
export function parseEmail(raw: Uint8Array | string): ParsedEmail {
  let binary: string;
  if (typeof raw !== "string") binary = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString("latin1");
  else if (/[^\x00-\xff]/.test(raw)) binary = Buffer.from(raw, "utf8").toString("latin1"); // already text
  else binary = raw; // one char per byte
  const top = parseEntity(binary, true);
  const grouped = new Map<string, string[]>();
  for (const [n, v] of top.headers) {
    const list = grouped.get(n);
    const value = decodeHeaderValue(v);
    if (list) list.push(value);
    else grouped.set(n, [value]);
  }
  const headers = Object.fromEntries([...grouped].map(([n, vs]) => [n, vs.join("\n")]));
  const out: Collected = { plain: [], html: [] };
  collect(top, out, 0);
  const plain = out.plain.map(tidy).filter((s) => s !== "");
  if (plain.length > 0) {
    if (plain.length === 1 && /^(<!doctype html|<html[\s>])/i.test(plain[0]!)) {
      const text = stripHtml(plain[0]!);
      return text === "" ? { headers, text, textSource: "none" } : { headers, text, textSource: "html" };
    }
    return { headers, text: plain.join("\n\n"), textSource: "plain" };
  }
  const html = out.html.map((h) => stripHtml(h)).filter((s) => s !== "");
  if (html.length > 0) return { headers, text: html.join("\n\n"), textSource: "html" };
  return { headers, text: "", textSource: "none" };
}

const ENTITIES: Record<string, string> = {
  amp: "&",
  lt: "<",
  gt: ">",
  quot: '"',
  apos: "'",
  nbsp: " ",
  copy: "©",
  reg: "®",
  trade: "™",
  hellip: "…",
  mdash: "—",
  ndash: "–",
  lsquo: "‘",
  rsquo: "’",
  ldquo: "“",
  rdquo: "”",
  bull: "•",
  middot: "·",
  laquo: "«",
  raquo: "»",
  pound: "£",
  euro: "€",
  yen: "¥",
  cent: "¢",
  deg: "°",
  times: "×",
  divide: "÷",
  sect: "§",
  para: "¶",
  iexcl: "¡",
  iquest: "¿",
  eacute: "é",
  egrave: "è",
  ecirc: "ê",
  aacute: "á",
  agrave: "à",
  acirc: "â",
  auml: "ä",
  ouml: "ö",
  uuml: "ü",
  Auml: "Ä",
  Ouml: "Ö",
  Uuml: "Ü",
  szlig: "ß",
  ccedil: "ç",
  ntilde: "ñ",
  oacute: "ó",
  iacute: "í",
  uacute: "ú",
};

function decodeEntities(s: string): string {
  return s.replace(/&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});?/g, (m, body: string) => {
    if (body.startsWith("#")) {
      const cp = body[1] === "x" || body[1] === "X" ? parseInt(body.slice(2), 16) : parseInt(body.slice(1), 10);
      if (cp === 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return "\ufffd";
      // HTML reads &#128;–&#159; as windows-1252 (&#149; is a bullet).
      if (cp >= 0x80 && cp <= 0x9f) return String.fromCodePoint(CP1252_HIGH[cp - 0x80]!);
      return String.fromCodePoint(cp);
    }
    return ENTITIES[body] ?? ENTITIES[body.toLowerCase()] ?? m;
  });
}

const BLOCK = "p|div|tr|li|h[1-6]|table|blockquote|pre|ul|ol|dl|dt|dd|center|form|hr|title|address";

/**
 * HTML to text: drops comments, `<head>`, `<script>` and `<style>`; block elements and `<br>`
 * become line breaks, every other tag goes; entities are decoded; runs of white space collapse.
 */
export function stripHtml(html: string): string {
  let s = html
    .replace(/<!--[\s\S]*?-->/g, " ")
    .replace(/<(script|style|head)\b[^>]*>[\s\S]*?<\/\1\s*>/gi, " ")
    .replace(/\s+/g, " ")
    .replace(/<br\s*\/?>/gi, "\n")
    .replace(new RegExp(`</?(?:${BLOCK})\\b[^>]*>`, "gi"), "\n")
    .replace(/<\/?(?:td|th)\b[^>]*>/gi, " ")
    .replace(/<\/?[A-Za-z!][^>]*>/g, "");
  s = decodeEntities(s).replace(/\u00a0/g, " ");
  return s
    .split("\n")
    .map((l) => l.replace(/[ \t\f\v]+/g, " ").trim())
    .join("\n")
    .replace(/\n{3,}/g, "\n\n")
    .trim();
}
