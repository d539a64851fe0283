import { createEditor, type PrismEditor } from "prism-code-editor";
import "prism-code-editor/prism/languages/javascript";
import "prism-code-editor/prism/languages/python";
import "prism-code-editor/prism/languages/typescript";
import "prism-code-editor/languages/python";
import "prism-code-editor/languages/clike";
import "prism-code-editor/layout.css";
import "prism-code-editor/themes/github-light.css";
import { useEffect, useRef } from "preact/hooks";
import type { Runtime } from "./api";

export const languageOf = (runtime: Runtime) => ({ python: "python", node: "javascript", typescript: "typescript" })[runtime];

interface EditorProps {
  value: string;
  runtime: Runtime;
  onChange?: (code: string) => void;
  readOnly?: boolean;
  label: string;
}

/**
 * A small code editor: prism-code-editor (a native textarea over Prism-highlighted code, so
 * typing, selection and undo are the browser's own) with only the Python, JavaScript and TypeScript grammars.
 */
export function CodeEditor({ value, runtime, onChange, readOnly = false, label }: EditorProps) {
  const container = useRef<HTMLDivElement>(null);
  const editor = useRef<PrismEditor | null>(null);
  const changed = useRef(onChange);
  changed.current = onChange;

  useEffect(() => {
    const el = container.current;
    if (!el) return;
    const created = createEditor(el, {
      language: languageOf(runtime),
      value,
      tabSize: runtime === "python" ? 4 : 2,
      insertSpaces: true,
      lineNumbers: true,
      readOnly,
      onUpdate: (code) => changed.current?.(code),
    });
    created.textarea.setAttribute("aria-label", label);
    created.textarea.name = "code";
    editor.current = created;
    return () => {
      created.remove();
      editor.current = null;
    };
  }, []);

  useEffect(() => {
    const current = editor.current;
    if (!current) return;
    const options: { language: string; readOnly: boolean; tabSize: number; value?: string } = {
      language: languageOf(runtime),
      readOnly,
      tabSize: runtime === "python" ? 4 : 2,
    };
    // Only a change from outside (a template, a reload) is written back: typing already holds it.
    if (current.value !== value) options.value = value;
    current.setOptions(options);
  }, [value, runtime, readOnly]);

  return <div ref={container} class="editor" data-testid="code-editor" />;
}
