/** Bindings of native/napi/select.cpp. */
export interface SelectBinding {}
