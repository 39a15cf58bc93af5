/** Bindings of native/napi/quant_methods.cpp. */
export interface QuantMethodsBinding {}
