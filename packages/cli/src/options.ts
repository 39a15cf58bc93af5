/** Numeric command-line options: a clear E_RANGE error naming the flag instead of a silent NaN. */
import { TersorError } from "@tersor/core";

/** An integer option `--name` of at least `min`, or undefined when not given. */
export function intOpt(v: string | undefined, name: string, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === "" || !Number.isInteger(n) || n < min) throw new TersorError("E_RANGE", `--${name} must be an integer ≥ ${min}, got "${v}"`);
  return n;
}

/** A finite number option `--name`, or undefined when not given. */
export function numOpt(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n)) throw new TersorError("E_RANGE", `--${name} must be a number, got "${v}"`);
  return n;
}
