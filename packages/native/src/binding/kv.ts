/** Bindings of native/napi/kv.cpp. */
export interface KvBinding {}
