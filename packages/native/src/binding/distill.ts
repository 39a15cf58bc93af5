/** Bindings of native/napi/distill.cpp. */
export interface DistillBinding {}
