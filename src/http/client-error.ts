import type { Server } from "node:http";
import type { Duplex } from "node:stream";
import { errorBody } from "./errors.js";

/** Node's own statuses for requests its parser refuses (the default clientError handler's). */
const STATUS_BY_PARSER_CODE: Record<string, [number, string, string]> = {
  HPE_HEADER_OVERFLOW: [431, "headers_too_large", "the request's headers are too large"],
  HPE_CHUNK_EXTENSIONS_OVERFLOW: [413, "payload_too_large", "the request's chunk extensions are too large"],
  ERR_HTTP_REQUEST_TIMEOUT: [408, "request_timeout", "the request did not arrive in time"],
};

/**
 * Answers what Node's HTTP parser refuses before the app sees it (oversized headers, malformed
 * request lines, timeouts) in the gateway's JSON error shape instead of Node's bare status line,
 * then closes the connection.
 */
export function answerClientErrorsAsJson(server: Server): void {
  server.on("clientError", (err: NodeJS.ErrnoException, socket: Duplex) => {
    // Node's own test: a response whose head went out already cannot be replaced.
    const current = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (!socket.writable || current?.headersSent) {
      // An answer is already under way (or the peer is gone): nothing can be added to it.
      socket.destroy();
      return;
    }
    const [status, code, message] = STATUS_BY_PARSER_CODE[err.code ?? ""] ?? [
      400,
      "invalid_http",
      "the request is not valid HTTP/1.1 (or its method is unknown)",
    ];
    const body = JSON.stringify(errorBody(code, message));
    socket.end(
      `HTTP/1.1 ${status} ${code.replace(/_/g, " ")}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  });
}
