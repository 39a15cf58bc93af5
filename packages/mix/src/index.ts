/**
 * `@tersor/mix`: training-free, RegMix regression (native GBDT), mixing laws, online mixers and proxy swarms.
 * @packageDocumentation
 */
export {};
