/** Housekeeping, dtype conversions and the seeded RNG (native/napi/addon.cpp, native/napi/core.cpp). */
export interface CoreBinding {
  /** Registers the error class native code throws. Called once by the loader. */
  setErrorClass(ctor: new (code: string, message: string) => Error): void;
  /** Sets the thread count of native parallel loops; 0 restores the default (physical cores). Returns the count in force. */
  setNumThreads(n: number): number;
  numThreads(): number;
  buildInfo(): BuildInfo;
  /** Converts f32 values to IEEE binary16 bits, round to nearest even. `src` and `dst` have equal length. */
  f32ToF16(src: Float32Array, dst: Uint16Array): void;
  f16ToF32(src: Uint16Array, dst: Float32Array): void;
  /** Converts f32 values to bfloat16 bits, round to nearest even, NaN kept. */
  f32ToBf16(src: Float32Array, dst: Uint16Array): void;
  bf16ToF32(src: Uint16Array, dst: Float32Array): void;
  /** Fills `out` with the seeded stream's u32 draws (seed given as high and low 32-bit halves). */
  rngFillU32(seedHi: number, seedLo: number, out: Uint32Array): void;
  /** Fills `out` with the seeded stream's standard-normal draws. */
  rngFillNormal(seedHi: number, seedLo: number, out: Float64Array): void;
}

/** What the loaded binary was built with and what it found on this machine. */
export interface BuildInfo {
  napiVersion: number;
  physicalCores: number;
  /** True when CUDA kernels were compiled in. */
  cuda: boolean;
  /** True when a usable CUDA device was found at run time. */
  cudaDevice: boolean;
  /** Why CUDA cannot be used, when it cannot. */
  cudaProblem: string;
  openmp: number;
  compiler: string;
  cpu: { avx2: boolean; fma: boolean; f16c: boolean; avx512f: boolean };
}
