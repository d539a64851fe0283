package lockdown

import (
	"encoding/json"
	"strings"
	"testing"
)

// A refused lock-down must end the process with status 125 after exactly one
// lockdown_failed line naming the step. These run before anything privileged.
func TestRefusals(t *testing.T) {
	cases := map[string]string{
		"dirfd":         "open files: fd ",
		"filefd":        "open files: fd ",
		"uid0":          "validate: uid and gid must be > 0",
		"gid0":          "validate: uid and gid must be > 0",
		"missing-jail":  "validate: jail: stat ",
		"relative-jail": `validate: jail "tmp" is not an absolute path`,
		"file-jail":     "validate: jail ",
		"bad-flags":     "validate: unknown flags 0x2",
	}
	for mode, prefix := range cases {
		t.Run(mode, func(t *testing.T) {
			c := startChild(t, mode, false)
			if code := c.state.ExitCode(); code != exitLockdownFailed {
				t.Fatalf("exit %d (%s), want %d; stderr: %s", code, c.state, exitLockdownFailed, c.stderr)
			}
			if strings.Contains(c.stdout, "survived") {
				t.Fatal("the child ran on after a failed lock-down")
			}
			if strings.Count(c.report, "\n") != 1 || !strings.HasSuffix(c.report, "\n") {
				t.Fatalf("report %q is not one line", c.report)
			}
			var line map[string]string
			if err := json.Unmarshal([]byte(c.report), &line); err != nil {
				t.Fatalf("report %q: %v", c.report, err)
			}
			if line["kind"] != "lockdown_failed" || !strings.HasPrefix(line["message"], prefix) || len(line) != 2 {
				t.Fatalf("report %q, want kind lockdown_failed and a message starting %q", c.report, prefix)
			}
			t.Logf("%s: %s", mode, line["message"])
		})
	}
}

func TestFailureLineIsEscapedJSON(t *testing.T) {
	line, err := json.Marshal(failure{Kind: "lockdown_failed", Message: "validate: jail \"a\\b\"\n"})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"kind":"lockdown_failed","message":"validate: jail \"a\\b\"\n"}`
	if string(line) != want {
		t.Fatalf("%s, want %s", line, want)
	}
}
