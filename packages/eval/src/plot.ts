/**
 * Plots for reports: a vega-lite spec is compiled to vega, rendered to SVG by vega's `View` in
 * headless mode (`renderer: "none"`, no canvas or browser), and rasterised to PNG by resvg.
 * Every tersor figure goes through here, so they share one look and one code path.
 */
import { extname } from "node:path";

import { Resvg } from "@resvg/resvg-js";
import { TersorError, writeFileAtomic } from "@tersor/core";
import * as vega from "vega";
import * as vegaLite from "vega-lite";
import type { TopLevelSpec } from "vega-lite";

/** A vega-lite specification (https://vega.github.io/vega-lite/). */
export type VegaLiteSpec = TopLevelSpec;

/** The PNG file signature: every PNG starts with these 8 bytes. */
export const PNG_SIGNATURE: readonly number[] = Object.freeze([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

export interface RenderPngOptions {
  /** Pixels per SVG unit (default 2). */
  scale?: number;
  /** Background colour (default white). */
  background?: string;
}

/** The SVG text of a vega-lite spec. Data must be inline (`data.values`): nothing is fetched. */
export async function renderSvg(spec: VegaLiteSpec): Promise<string> {
  let view: vega.View | undefined;
  try {
    const compiled = vegaLite.compile(spec).spec;
    view = new vega.View(vega.parse(compiled), { renderer: "none" });
    return await view.toSVG();
  } catch (e) {
    throw new TersorError("E_FORMAT", `cannot render the plot: ${(e as Error).message}`, { cause: e });
  } finally {
    view?.finalize();
  }
}

/** A PNG of a vega-lite spec (SVG by vega, rasterised by resvg with the system fonts). */
export async function renderPng(spec: VegaLiteSpec, options: RenderPngOptions = {}): Promise<Uint8Array> {
  const scale = options.scale ?? 2;
  if (!(scale > 0 && scale <= 16)) throw new TersorError("E_RANGE", `scale must be in (0, 16], got ${scale}`);
  const svg = await renderSvg(spec);
  const png = new Resvg(svg, {
    fitTo: { mode: "zoom", value: scale },
    background: options.background ?? "white",
    font: { loadSystemFonts: true, defaultFontFamily: "DejaVu Sans", sansSerifFamily: "DejaVu Sans" },
  })
    .render()
    .asPng();
  return new Uint8Array(png.buffer, png.byteOffset, png.byteLength);
}

/**
 * Writes a plot to `path` atomically, as SVG when it ends in `.svg`, PNG when it ends in `.png`
 * (other extensions → `E_RANGE`). Returns the format and the bytes written.
 */
export async function writePlot(path: string, spec: VegaLiteSpec, options: RenderPngOptions = {}): Promise<{ format: "svg" | "png"; bytes: number }> {
  const ext = extname(path).toLowerCase();
  if (ext === ".svg") {
    const svg = await renderSvg(spec);
    await writeFileAtomic(path, svg);
    return { format: "svg", bytes: Buffer.byteLength(svg) };
  }
  if (ext === ".png") {
    const png = await renderPng(spec, options);
    await writeFileAtomic(path, png);
    return { format: "png", bytes: png.byteLength };
  }
  throw new TersorError("E_RANGE", `plot files must end in .png or .svg, got "${path}"`);
}
