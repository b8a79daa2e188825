package config_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/config"
)

// documented returns the variable names in the first cell of the README's
// configuration table rows.
func documented(t *testing.T) map[string]bool {
	t.Helper()
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	section := string(readme)
	start := strings.Index(section, "## Configuration")
	require.GreaterOrEqual(t, start, 0, "the README has a Configuration section")
	section = section[start:]
	section = section[:strings.Index(section[3:], "\n## ")+3]
	names := map[string]bool{}
	cell := regexp.MustCompile("(?m)^\\| ([^|]+) \\|")
	name := regexp.MustCompile("`([A-Z][A-Z0-9_]+)`")
	for _, row := range cell.FindAllStringSubmatch(section, -1) {
		for _, n := range name.FindAllStringSubmatch(row[1], -1) {
			names[n[1]] = true
		}
	}
	return names
}

func TestReadme_ConfigurationTableMatchesTheCode(t *testing.T) {
	t.Parallel()
	doc := documented(t)
	for _, v := range config.Variables {
		require.True(t, doc[v.Name], "README configuration table lacks %s", v.Name)
		delete(doc, v.Name)
	}
	require.Empty(t, doc, "README documents variables the code does not read")
}

func TestEnvExample_ListsEveryVariable(t *testing.T) {
	t.Parallel()
	example, err := os.ReadFile("../.env.example")
	require.NoError(t, err)
	for _, v := range config.Variables {
		require.Regexp(t, "(?m)^#?"+v.Name+"=", string(example), ".env.example lacks %s", v.Name)
	}
}
