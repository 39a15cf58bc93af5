/** Reports of dedup / select runs: JSON and a self-contained HTML page with inline SVG bar charts. */
import { writeFileAtomic } from "@tersor/core";

export interface Report {
  title: string;
  summary: Record<string, unknown>;
  /** Bar charts: name → label → value. */
  charts: Record<string, Record<string, number>>;
}

function esc(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);
}

/** A horizontal bar chart as inline SVG. */
export function barChartSvg(title: string, data: Record<string, number>): string {
  const entries = Object.entries(data);
  const max = Math.max(1e-12, ...entries.map(([, v]) => Math.abs(v)));
  const h = 22 * entries.length + 30;
  const bars = entries
    .map(([k, v], i) => {
      const w = Math.round((360 * Math.abs(v)) / max);
      const y = 26 + 22 * i;
      return `<text x="0" y="${y + 14}" font-size="12">${esc(k)}</text><rect x="180" y="${y}" width="${w}" height="16" fill="#4878a8"/><text x="${186 + w}" y="${y + 13}" font-size="11">${Number.isInteger(v) ? v : v.toPrecision(4)}</text>`;
    })
    .join("");
  return `<svg xmlns="http://www.w3.org/2000/svg" width="620" height="${h}"><text x="0" y="16" font-size="14" font-weight="bold">${esc(title)}</text>${bars}</svg>`;
}

export function reportHtml(r: Report): string {
  const rows = Object.entries(r.summary)
    .map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(typeof v === "object" ? JSON.stringify(v) : String(v))}</td></tr>`)
    .join("");
  const charts = Object.entries(r.charts)
    .filter(([, d]) => Object.keys(d).length > 0)
    .map(([k, d]) => `<div>${barChartSvg(k, d)}</div>`)
    .join("");
  return `<!doctype html><html><head><meta charset="utf-8"><title>${esc(r.title)}</title><style>body{font-family:sans-serif;margin:2em}td{padding:2px 10px;border-bottom:1px solid #ddd}</style></head><body><h1>${esc(r.title)}</h1><table>${rows}</table>${charts}</body></html>\n`;
}

/** Writes `path` (HTML) and `path` with .json in place of .html (or appended), atomically. */
export async function writeReport(path: string, r: Report): Promise<{ html: string; json: string }> {
  const json = path.endsWith(".html") ? path.slice(0, -5) + ".json" : path + ".json";
  await writeFileAtomic(json, JSON.stringify(r, null, 2) + "\n");
  await writeFileAtomic(path, reportHtml(r));
  return { html: path, json };
}
