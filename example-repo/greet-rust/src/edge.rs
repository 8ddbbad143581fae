//! A tiny edge-v1 helper for `no_std` Rust: the host imports (docs/abi.md), request parsing and
//! a response buffer. Copy it next to your lib.rs.

#[link(wasm_import_module = "edge")]
extern "C" {
    fn request_len() -> i32;
    fn request_read(ptr: *mut u8, len: i32) -> i32;
    fn response_write(ptr: *const u8, len: i32) -> i32;
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

/// Reads the request (head first) into buf, up to its size; returns the bytes read.
pub fn read_request(buf: &mut [u8]) -> &[u8] {
    let want = unsafe { request_len() }.max(0) as usize;
    let n = unsafe { request_read(buf.as_mut_ptr(), want.min(buf.len()) as i32) }.max(0) as usize;
    &buf[..n.min(buf.len())]
}

/// The request target of the request line: `GET /path?q HTTP/1.1` → `/path?q`.
pub fn request_target(request: &[u8]) -> &[u8] {
    let line_end = request.iter().position(|&b| b == b'\r' || b == b'\n').unwrap_or(request.len());
    let mut parts = request[..line_end].split(|&b| b == b' ');
    parts.next();
    parts.next().unwrap_or(b"/")
}

/// The raw (still percent-encoded) value of `key` in a query string.
pub fn query_param<'a>(query: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    query.split(|&b| b == b'&').find_map(|pair| {
        let eq = pair.iter().position(|&b| b == b'=')?;
        if &pair[..eq] == key {
            Some(&pair[eq + 1..])
        } else {
            None
        }
    })
}

const RESPONSE_MAX: usize = 4 * 1024;
static mut RESPONSE: [u8; RESPONSE_MAX] = [0; RESPONSE_MAX];

/// A response built in a fixed buffer; what does not fit is cut off.
pub struct Response {
    len: usize,
}

impl Response {
    pub fn new(status: u16, content_type: &[u8]) -> Response {
        let mut r = Response { len: 0 };
        r.write(b"Status: ");
        let digits = [b'0' + (status / 100 % 10) as u8, b'0' + (status / 10 % 10) as u8, b'0' + (status % 10) as u8];
        r.write(&digits);
        r.write(b"\r\nContent-Type: ");
        r.write(content_type);
        r.write(b"\r\nCache-Control: no-store\r\n\r\n");
        r
    }

    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.push(b);
        }
    }

    fn push(&mut self, b: u8) {
        if self.len < RESPONSE_MAX {
            // SAFETY: one request at a time per instance.
            unsafe { RESPONSE[self.len] = b };
            self.len += 1;
        }
    }

    /// Writes bytes inside a JSON string: percent-decoded first when `decode` (`+` is a space),
    /// with `"`, `\` and control characters escaped.
    pub fn write_json_string_body(&mut self, raw: &[u8], decode: bool) {
        let hex = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        };
        let mut i = 0;
        while i < raw.len() {
            let mut b = raw[i];
            if decode && b == b'+' {
                b = b' ';
            } else if decode && b == b'%' && i + 2 < raw.len() {
                if let (Some(h), Some(l)) = (hex(raw[i + 1]), hex(raw[i + 2])) {
                    b = h * 16 + l;
                    i += 2;
                }
            }
            match b {
                b'"' => self.write(b"\\\""),
                b'\\' => self.write(b"\\\\"),
                0..=0x1f => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    self.write(b"\\u00");
                    self.push(HEX[(b >> 4) as usize]);
                    self.push(HEX[(b & 15) as usize]);
                }
                _ => self.push(b),
            }
            i += 1;
        }
    }

    /// Hands the response to the host; 0 tells it the request succeeded.
    pub fn send(self) -> i32 {
        // SAFETY: RESPONSE[..len] was written above.
        let n = unsafe { response_write(RESPONSE.as_ptr(), self.len as i32) };
        if n < 0 {
            1
        } else {
            0
        }
    }
}
