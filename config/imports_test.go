package config

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// config sits at the bottom of the import graph: the standard library, the
// TOML parser, the topic rules and the AWS region rules (leaf packages) only,
// never another package of this module (not sigv4: the signer is the
// provider's business, config only checks names).
func TestImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no sources: %v", err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if strings.Contains(strings.Split(p, "/")[0], ".") && !strings.HasPrefix(p, "github.com/pelletier/go-toml/v2") &&
				p != "github.com/edge-agent/edge-agent/topic" && p != "github.com/edge-agent/edge-agent/awsregion" {
				t.Errorf("%s imports %s", f, p)
			}
		}
	}
}
