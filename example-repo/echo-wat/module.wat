;; echo-wat: answers every request with the raw request bytes it received (head and body), as
;; text/plain: handy to see what a function gets over the edge-v1 ABI (docs/abi.md).
(module
  (import "edge" "request_len" (func $request_len (result i32)))
  (import "edge" "request_read" (func $request_read (param i32 i32) (result i32)))
  (import "edge" "response_write" (func $response_write (param i32 i32) (result i32)))
  (memory (export "memory") 2)

  ;; The response head, at address 0 (41 bytes).
  (data (i32.const 0) "Status: 200\r\nContent-Type: text/plain\r\n\r\n")
  (global $head_len i32 (i32.const 41))
  ;; The request is copied to 1024.. and echoed; the rest of the two pages bound its size.
  (global $buf i32 (i32.const 1024))
  (global $cap i32 (i32.const 130048))

  (func (export "edge_handle") (result i32)
    (local $n i32)
    (local.set $n (call $request_len))
    (if (i32.gt_u (local.get $n) (global.get $cap))
      (then (local.set $n (global.get $cap))))
    (local.set $n (call $request_read (global.get $buf) (local.get $n)))
    (drop (call $response_write (i32.const 0) (global.get $head_len)))
    (drop (call $response_write (global.get $buf) (local.get $n)))
    (i32.const 0)))
