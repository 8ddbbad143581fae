/* The edge-v1 host functions (docs/abi.md), for C functions built by edgeplane's builder. */
#ifndef EDGE_H
#define EDGE_H

#define EDGE_IMPORT(name) __attribute__((import_module("edge"), import_name(name)))

/* Length of the request bytes (HTTP/1.1 head, blank line, body). */
EDGE_IMPORT("request_len") int edge_request_len(void);
/* Copies up to len request bytes to ptr; returns how many were copied. */
EDGE_IMPORT("request_read") int edge_request_read(char *ptr, int len);
/* Appends len bytes to the CGI-style response; -1 once over the response cap. */
EDGE_IMPORT("response_write") int edge_response_write(const char *ptr, int len);
/* Writes a line to the runner's log. */
EDGE_IMPORT("log") void edge_log(const char *ptr, int len);

#endif
