/** Bindings of native/napi/mix.cpp. */
export interface MixBinding {}
