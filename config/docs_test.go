package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// docs are the documents whose configs must work as shown, relative to
// the repository root. Every ```yaml block in them is a replywatch config
// file (fence other YAML, such as Helm values, as ```text), and every file
// they run with --config must validate too.
var docs = []string{"README.md", "BENCHMARKS.md", "deployments/README.md", "deployments/RUNBOOK.md", "bench/README.md"}

// yamlBlock matches a fenced ```yaml block; configFlag a --config FILE
// argument.
var (
	yamlBlock  = regexp.MustCompile("(?ms)^```ya?ml[ \t]*\n(.*?)^```")
	configFlag = regexp.MustCompile(`--config[ =]([^\s` + "`" + `]+)`)
)

func TestDocConfigsValidate(t *testing.T) {
	blocks, files := 0, 0
	for _, doc := range docs {
		data, err := os.ReadFile(filepath.Join("..", doc))
		if err != nil {
			t.Fatal(err)
		}
		text := string(data)
		for _, m := range yamlBlock.FindAllStringSubmatchIndex(text, -1) {
			blocks++
			line := strings.Count(text[:m[0]], "\n") + 1
			if _, err := Parse([]byte(text[m[2]:m[3]])); err != nil {
				t.Errorf("%s: the config block at line %d does not validate: %v", doc, line, err)
			}
		}
		for _, m := range configFlag.FindAllStringSubmatch(text, -1) {
			path := filepath.Join("..", m[1])
			if _, err := os.Stat(path); err != nil {
				continue // a file the reader writes (replywatch.yml, FILE)
			}
			files++
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Parse(data); err != nil {
				t.Errorf("%s runs --config %s, which does not validate: %v", doc, m[1], err)
			}
		}
	}
	// The README's minimal config and the shipped example files at least:
	// finding none means the extraction broke, not that all is well.
	if blocks == 0 || files < 2 {
		t.Errorf("found %d yaml blocks and %d --config files in %v; want the README's config and config/example.yml, deployments/compose/replywatch.yaml", blocks, files, docs)
	}
}
