import { CodeJar } from "codejar";
import hljs from "highlight.js/lib/core";
import javascript from "highlight.js/lib/languages/javascript";
import python from "highlight.js/lib/languages/python";
import { useEffect, useRef } from "preact/hooks";
import type { Runtime } from "./api";

hljs.registerLanguage("python", python);
hljs.registerLanguage("javascript", javascript);

export const languageOf = (runtime: Runtime) => (runtime === "python" ? "python" : "javascript");

/** Highlighted HTML of `code` (highlight.js escapes the source). */
export function highlight(code: string, runtime: Runtime): string {
  return hljs.highlight(code, { language: languageOf(runtime), ignoreIllegals: true }).value;
}

interface EditorProps {
  value: string;
  runtime: Runtime;
  onChange?: (code: string) => void;
  readOnly?: boolean;
  label: string;
}

/** A small code editor: CodeJar on a contenteditable <pre>, highlighted by highlight.js. */
export function CodeEditor({ value, runtime, onChange, readOnly = false, label }: EditorProps) {
  const element = useRef<HTMLPreElement>(null);
  const jar = useRef<CodeJar | null>(null);
  const changed = useRef(onChange);
  changed.current = onChange;

  useEffect(() => {
    const el = element.current;
    if (!el) return;
    const editor = CodeJar(el, (node) => {
      node.innerHTML = highlight(node.textContent ?? "", runtime);
    }, { tab: runtime === "python" ? "    " : "  ", addClosing: false });
    editor.updateCode(value);
    editor.onUpdate((code) => changed.current?.(code));
    jar.current = editor;
    if (readOnly) el.setAttribute("contenteditable", "false");
    return () => {
      editor.destroy();
      jar.current = null;
    };
  }, [runtime, readOnly]);

  useEffect(() => {
    if (jar.current && jar.current.toString() !== value) jar.current.updateCode(value);
  }, [value]);

  return <pre ref={element} class={`editor hljs language-${languageOf(runtime)}`} aria-label={label} data-testid="code-editor" spellcheck={false} />;
}
