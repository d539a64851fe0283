/**
 * How an invocation's stdout or stderr is kept when it is longer than the log stores: its head
 * and its tail, since what a program prints first (what it was doing) and last (the traceback,
 * the summary) are what a reader looks for, with one line in between saying how many bytes were
 * dropped there. The line is the gateway's, not the function's; the count is also returned, so
 * the log can store it as a number (`stdout_dropped_bytes`, `stderr_dropped_bytes`). Web APIs
 * only (no Buffer): the console finds the line with the same code.
 */

/** The line put where bytes were dropped; `parseDroppedLine` finds it again. */
export const droppedLine = (droppedBytes: number): string => `[fngw] ${droppedBytes} bytes dropped here\n`;

const DROPPED_LINE = /^\[fngw\] (\d+) bytes dropped here$/;

/** How far back (or forward) a cut may move to land on a line break, so both halves keep whole lines. */
const LINE_SLACK_BYTES = 1024;

export interface CutOutput {
  /** The text as stored: all of it, or the head, the dropped line, and the tail. */
  text: string;
  /** Bytes of the original UTF-8 between the head and the tail that were dropped (0: nothing was). */
  droppedBytes: number;
}

/**
 * Keeps at most `maxBytes` of `text`'s UTF-8 (plus the dropped line): the first half and the last
 * half. Each cut lands on a character boundary (never a U+FFFD made by the cut) and, when a line
 * break lies within LINE_SLACK_BYTES of it, just after that break. Pure; `maxBytes` 0 keeps nothing
 * but the dropped line.
 */
export function cutHeadAndTail(text: string, maxBytes: number): CutOutput {
  // Each UTF-16 unit is at most 3 bytes of UTF-8: short strings need no encoding to be known to fit.
  if (text.length * 3 <= maxBytes) return { text, droppedBytes: 0 };
  const bytes = new TextEncoder().encode(text);
  if (bytes.length <= maxBytes) return { text, droppedBytes: 0 };
  const headLimit = Math.floor(maxBytes / 2);
  const tailLimit = maxBytes - headLimit;
  const headEnd = lineEndBefore(bytes, characterStart(bytes, headLimit, -1));
  const tailStart = lineStartAfter(bytes, characterStart(bytes, bytes.length - tailLimit, 1));
  const decoder = new TextDecoder();
  const head = decoder.decode(bytes.subarray(0, headEnd));
  const tail = decoder.decode(bytes.subarray(tailStart));
  const droppedBytes = tailStart - headEnd;
  const separator = head === "" || head.endsWith("\n") ? "" : "\n";
  return { text: `${head}${separator}${droppedLine(droppedBytes)}${tail}`, droppedBytes };
}

/** Where the gateway's dropped line sits in stored output, so a reader can set it apart: null when nothing was dropped. */
export function findDroppedLine(text: string, droppedBytes: number): { start: number; end: number } | null {
  if (droppedBytes <= 0) return null;
  const line = droppedLine(droppedBytes);
  // The gateway's line is the last one with this count: output that imitates it can only come before it in the head.
  const start = text.lastIndexOf(line);
  return start === -1 ? null : { start, end: start + line.length };
}

/** The count of a dropped line (without its newline), or null when the line is not one. */
export function parseDroppedLine(line: string): number | null {
  const match = DROPPED_LINE.exec(line);
  return match ? Number(match[1]) : null;
}

/** The nearest offset from `at` in `direction` that starts a character (not a UTF-8 continuation byte). */
function characterStart(bytes: Uint8Array, at: number, direction: -1 | 1): number {
  let offset = Math.max(0, Math.min(at, bytes.length));
  while (offset > 0 && offset < bytes.length && (bytes[offset]! & 0xc0) === 0x80) offset += direction;
  return offset;
}

/** Just after the last line break before `end`, if one is near; else `end`. */
function lineEndBefore(bytes: Uint8Array, end: number): number {
  if (end === 0) return 0;
  const newline = bytes.lastIndexOf(0x0a, end - 1);
  return newline !== -1 && end - (newline + 1) <= LINE_SLACK_BYTES ? newline + 1 : end;
}

/** Just after the first line break at or after `start`, if one is near; else `start`. */
function lineStartAfter(bytes: Uint8Array, start: number): number {
  if (start > 0 && bytes[start - 1] === 0x0a) return start;
  const newline = bytes.indexOf(0x0a, start);
  return newline !== -1 && newline + 1 - start <= LINE_SLACK_BYTES && newline + 1 < bytes.length ? newline + 1 : start;
}
