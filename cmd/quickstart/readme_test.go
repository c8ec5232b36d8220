package main

import (
	"bytes"
	"errors"
	"os"
	"testing"
)

// quickstartBlock returns the body of the first ```go block in the
// README's "## Quickstart" section.
func quickstartBlock(readme []byte) ([]byte, error) {
	_, section, ok := bytes.Cut(readme, []byte("\n## Quickstart\n"))
	if !ok {
		return nil, errors.New("README.md has no ## Quickstart section")
	}
	if end := bytes.Index(section, []byte("\n## ")); end >= 0 {
		section = section[:end+1]
	}
	_, block, ok := bytes.Cut(section, []byte("\n```go\n"))
	if !ok {
		return nil, errors.New("README.md's Quickstart has no ```go block")
	}
	block, _, ok = bytes.Cut(block, []byte("\n```\n"))
	if !ok {
		return nil, errors.New("README.md's Quickstart block does not end")
	}
	return append(block, '\n'), nil
}

// TestReadmeQuickstartIsThisProgram checks that the README's Quickstart
// is main.go, byte for byte, so that what readers copy is what go test
// compiles and vets.
func TestReadmeQuickstartIsThisProgram(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	block, err := quickstartBlock(readme)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(block, src) {
		t.Fatalf("README.md's Quickstart differs from cmd/quickstart/main.go; copy main.go into the README's block.\nREADME:\n%s\nmain.go:\n%s", block, src)
	}
}

func TestQuickstartBlockIsFound(t *testing.T) {
	for _, tc := range []struct {
		name, readme, want string
		ok                 bool
	}{
		{"the block", "# x\n## Quickstart\n\ntext\n\n```go\npackage main\n```\n\n```go\nnot this\n```\n", "package main\n", true},
		{"another section's block", "```go\nearlier\n```\n## Quickstart\n\n```go\nthis\n```\n", "this\n", true},
		{"no section", "# x\n```go\npackage main\n```\n", "", false},
		{"no block in the section", "## Quickstart\n\ntext\n\n## Next\n\n```go\nlater\n```\n", "", false},
		{"an open block", "## Quickstart\n```go\npackage main\n", "", false},
	} {
		got, err := quickstartBlock([]byte(tc.readme))
		if (err == nil) != tc.ok || string(got) != tc.want {
			t.Errorf("%s: got %q, %v; want %q, ok %v", tc.name, got, err, tc.want, tc.ok)
		}
	}
}
