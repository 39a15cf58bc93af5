import cliProgress from "cli-progress";

/** Where progress goes: a TTY bar, JSON lines on stderr, or nothing. */
export type ProgressMode = "bar" | "json" | "silent";

/** Reports progress of one long task. */
export interface Progress {
  /** Advances by `n` units (default 1). */
  tick(n?: number, info?: Record<string, unknown>): void;
  /** Sets the total when it becomes known. */
  setTotal(total: number): void;
  /** Finishes the task. */
  stop(): void;
}

export interface ProgressOptions {
  /** What is being done, shown before the bar. */
  label: string;
  /** Units of work, if known. */
  total?: number;
  /** Unit name for the JSON lines (e.g. "docs", "bytes"). */
  unit?: string;
  /** Forces a mode; by default a bar on a TTY, silent otherwise (JSON lines when `TERSOR_PROGRESS=json`). */
  mode?: ProgressMode;
  /** Stream for the bar and JSON lines (default stderr). */
  stream?: NodeJS.WriteStream;
}

/** Picks the mode: explicit, then `TERSOR_PROGRESS`, then bar on a TTY (but not under CI), else silent. */
export function defaultProgressMode(stream: NodeJS.WriteStream = process.stderr): ProgressMode {
  const env = process.env["TERSOR_PROGRESS"];
  if (env === "bar" || env === "json" || env === "silent") return env;
  return stream.isTTY && !process.env["CI"] ? "bar" : "silent";
}

/** Starts a progress reporter. JSON lines are throttled to one per second, plus the final one. */
export function progress(opts: ProgressOptions): Progress {
  const stream = opts.stream ?? process.stderr;
  const mode = opts.mode ?? defaultProgressMode(stream);
  let done = 0;
  let total = opts.total ?? 0;
  const started = Date.now();
  if (mode === "silent") {
    return { tick: (n = 1) => void (done += n), setTotal: (t) => void (total = t), stop: () => {} };
  }
  if (mode === "json") {
    let last = 0;
    const emit = (final: boolean, info?: Record<string, unknown>) => {
      const now = Date.now();
      if (!final && now - last < 1000) return;
      last = now;
      stream.write(
        JSON.stringify({ progress: opts.label, done, total: total || null, unit: opts.unit ?? "items", elapsed_s: (now - started) / 1000, final, ...info }) + "\n",
      );
    };
    return {
      tick: (n = 1, info) => {
        done += n;
        emit(false, info);
      },
      setTotal: (t) => void (total = t),
      stop: () => emit(true),
    };
  }
  // The bar shows the throughput in the task's unit and the last tick's numeric details (e.g. the loss).
  const unit = opts.unit ?? "items";
  const bar = new cliProgress.SingleBar(
    { format: `${opts.label} [{bar}] {percentage}% | {value}/{total} | {rate} | ETA {eta_formatted}{details}`, stream, hideCursor: true, clearOnComplete: false },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0, { rate: `0 ${unit}/s`, details: "" });
  return {
    tick: (n = 1, info) => {
      done += n;
      bar.update(done, { rate: formatRate(done, (Date.now() - started) / 1000, unit), details: formatDetails(info) });
    },
    setTotal: (t) => {
      total = t;
      bar.setTotal(t);
    },
    stop: () => bar.stop(),
  };
}

/** Units per second, with a k/M suffix. */
export function formatRate(done: number, seconds: number, unit: string): string {
  const r = seconds > 0 ? done / seconds : 0;
  const v = r >= 1e6 ? `${(r / 1e6).toFixed(2)}M` : r >= 1e3 ? `${(r / 1e3).toFixed(1)}k` : r.toFixed(r >= 10 ? 0 : 1);
  return `${v} ${unit}/s`;
}

/** ` | key value …` for the finite numbers of a tick's info (strings too), nothing when empty. */
export function formatDetails(info?: Record<string, unknown>): string {
  if (!info) return "";
  const parts: string[] = [];
  for (const [k, v] of Object.entries(info)) {
    if (typeof v === "number" && Number.isFinite(v)) parts.push(`${k} ${Number.isInteger(v) ? v : v.toPrecision(4)}`);
    else if (typeof v === "string") parts.push(`${k} ${v}`);
  }
  return parts.length ? ` | ${parts.join(" ")}` : "";
}
