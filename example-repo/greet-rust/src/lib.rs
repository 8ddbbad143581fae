//! greet-rust: a JSON greeting over the edge-v1 ABI, in `no_std` Rust (no allocator, no WASI).
//! `GET /?name=Ada` answers `{"greeting":"Hello, Ada!","language":"rust","path":"/"}`.

#![no_std]

mod edge;

use edge::Response;

/// The part of the request this function reads: the request line and headers.
const REQUEST_MAX: usize = 8 * 1024;

static mut REQUEST: [u8; REQUEST_MAX] = [0; REQUEST_MAX];

#[no_mangle]
pub extern "C" fn edge_handle() -> i32 {
    // SAFETY: an instance serves one request at a time, so nothing else uses the buffer.
    let request = unsafe { edge::read_request(&mut REQUEST) };
    let target = edge::request_target(request);
    let (path, query) = match target.iter().position(|&b| b == b'?') {
        Some(i) => (&target[..i], &target[i + 1..]),
        None => (target, &b""[..]),
    };
    let name = edge::query_param(query, b"name").unwrap_or(b"world");

    let mut res = Response::new(200, b"application/json");
    res.write(b"{\"greeting\":\"Hello, ");
    res.write_json_string_body(name, true);
    res.write(b"!\",\"language\":\"rust\",\"path\":\"");
    res.write_json_string_body(path, false);
    res.write(b"\"}\n");
    res.send()
}
