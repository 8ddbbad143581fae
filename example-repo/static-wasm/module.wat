;; The source of module.wasm, the prebuilt module of this function (language: wasm). The
;; builder takes module.wasm as it is — only validating it and capping its memory — so this
;; file is documentation; rebuild module.wasm from it with any WAT assembler (wat2wasm).
(module
  (import "edge" "response_write" (func $response_write (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "Status: 200\r\nContent-Type: text/plain\r\n\r\nHello from a prebuilt module!\n")
  (func (export "edge_handle") (result i32)
    (drop (call $response_write (i32.const 0) (i32.const 71)))
    (i32.const 0)))
