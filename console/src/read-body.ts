/**
 * Reads a response's body as it arrives and hands `onText` all the text so far, at most once an
 * animation frame: a streamed answer (or live output's events) shows as it comes. Resolves with
 * the whole text.
 */
export async function readAsItComes(res: Response, onText: (text: string) => void): Promise<string> {
  if (!res.body) return "";
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  let frame: number | null = null;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
    frame ??= requestAnimationFrame(() => {
      frame = null;
      onText(text);
    });
  }
  if (frame !== null) cancelAnimationFrame(frame);
  return text + decoder.decode();
}
