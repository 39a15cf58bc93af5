import { describe, expect, it } from "vitest";

import { formatDetails, formatRate, progress } from "../src/progress.js";

describe("progress", () => {
  it("formats the throughput in the task's unit", () => {
    expect(formatRate(2_500_000, 2, "tokens")).toBe("1.25M tokens/s");
    expect(formatRate(4_200, 2, "docs")).toBe("2.1k docs/s");
    expect(formatRate(15, 1, "steps")).toBe("15 steps/s");
    expect(formatRate(3, 2, "steps")).toBe("1.5 steps/s");
    expect(formatRate(10, 0, "steps")).toBe("0.0 steps/s");
  });

  it("shows finite numbers and strings of a tick's info, skips the rest", () => {
    expect(formatDetails({ step: 12, loss: 2.345678, note: "warmup", bad: Number.NaN, obj: { a: 1 } })).toBe(" | step 12 loss 2.346 note warmup");
    expect(formatDetails({})).toBe("");
    expect(formatDetails(undefined)).toBe("");
  });

  it("JSON mode writes throttled lines with the totals and the final line on stop", () => {
    const lines: string[] = [];
    const stream = { write: (s: string) => lines.push(s), isTTY: false } as unknown as NodeJS.WriteStream;
    const p = progress({ label: "train", total: 100, unit: "tokens", mode: "json", stream });
    p.tick(40, { loss: 3 });
    p.tick(60);
    p.stop();
    const last = JSON.parse(lines[lines.length - 1]!);
    expect(last).toMatchObject({ progress: "train", done: 100, total: 100, unit: "tokens", final: true });
  });
});
