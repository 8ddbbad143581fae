/* hello-c: a greeting in C over the edge-v1 ABI. It reads the request line and answers
 * "Hello from C! GET /path (N request bytes)". Built by clang for wasm32-wasi as a reactor:
 * libc's string functions link in, and since nothing here uses stdio, the module imports
 * nothing but the edge functions (stdio would import WASI's fd_write, which the edge-v1 lane
 * does not provide). */
#include <string.h>

#include "edge.h"

static char request[8192];
static char response[1024];
static int response_len;

static void put(const char *s, size_t n) {
  if (n > sizeof response - response_len) n = sizeof response - response_len;
  memcpy(response + response_len, s, n);
  response_len += n;
}

static void puts_(const char *s) { put(s, strlen(s)); }

static void put_int(int v) {
  char digits[12];
  int i = sizeof digits;
  unsigned u = v < 0 ? 0u - (unsigned)v : (unsigned)v;
  do digits[--i] = '0' + u % 10; while ((u /= 10) && i > 1);
  if (v < 0) digits[--i] = '-';
  put(digits + i, sizeof digits - i);
}

__attribute__((export_name("edge_handle"))) int edge_handle(void) {
  int total = edge_request_len();
  int n = edge_request_read(request, sizeof request - 1);
  request[n] = '\0';

  /* The request line: METHOD SP TARGET SP VERSION CRLF; the target without its query. */
  size_t method_len = strcspn(request, " \r\n");
  const char *target = request + method_len + (request[method_len] == ' ');
  size_t target_len = strcspn(target, " ?\r\n");

  response_len = 0;
  puts_("Status: 200\r\nContent-Type: text/plain\r\n\r\nHello from C! ");
  put(request, method_len);
  puts_(" ");
  put(target, target_len);
  puts_(" (");
  put_int(total);
  puts_(" request bytes)\n");
  return edge_response_write(response, response_len) < 0;
}
