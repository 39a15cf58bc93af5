/**
 * The one error type tersor throws. `code` is stable across releases, so callers can branch on it;
 * `message` says what was wrong and where.
 */
export type TersorErrorCode = "E_SHAPE" | "E_DTYPE" | "E_FORMAT" | "E_IO" | "E_RANGE" | "E_NATIVE";

/** Every code a {@link TersorError} can carry. */
export const TERSOR_ERROR_CODES: readonly TersorErrorCode[] = [
  "E_SHAPE",
  "E_DTYPE",
  "E_FORMAT",
  "E_IO",
  "E_RANGE",
  "E_NATIVE",
];

/**
 * An error raised by tersor, in TypeScript or in the native addon (C++ exceptions are mapped to
 * this class with their code).
 *
 * - `E_SHAPE`: array sizes or shapes that do not fit together.
 * - `E_DTYPE`: an unknown or unsupported element type.
 * - `E_FORMAT`: a malformed or truncated file or record.
 * - `E_IO`: a file-system error.
 * - `E_RANGE`: a value outside its allowed range (including NaN/Inf where finite values are needed).
 * - `E_NATIVE`: a failure inside the native addon (loading it, memory, CUDA).
 */
export class TersorError extends Error {
  override readonly name = "TersorError";
  /** The stable kind of failure. */
  readonly code: TersorErrorCode;

  constructor(code: TersorErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = TERSOR_ERROR_CODES.includes(code) ? code : "E_NATIVE";
  }
}

/** True when `e` is a {@link TersorError}, optionally with the given code. */
export function isTersorError(e: unknown, code?: TersorErrorCode): e is TersorError {
  return e instanceof TersorError && (code === undefined || e.code === code);
}
