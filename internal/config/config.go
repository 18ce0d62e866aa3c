// Package config parses pgward's YAML configuration into option values by
// scope: global options at the top, a command's options in a section named
// after it (nested for subcommands: dump: {drill: {...}}), and a cluster's
// settings under clusters: NAME or in a file of their own (conf.d/NAME.yaml),
// like pgBackRest's stanzas. It reads bytes, never files or the
// environment: cmd does that, and decides precedence against flags.
package config

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/xrash/smetrics"
	"go.yaml.in/yaml/v3"
)

// Kind is the form an option's value takes.
type Kind int

const (
	String Kind = iota // any scalar, kept as written ("007" stays 007)
	Bool               // true or false (YAML 1.1 yes/no too, or quoted)
	List               // a string or a list of strings, joined with commas
)

// Schema describes what a scope may hold: its own options and its
// subcommands, whose sections nest inside it.
type Schema struct {
	Options  map[string]Kind
	Commands map[string]*Schema
}

// kind returns the kind of option key in s or any command below it, and
// whether it is one at all.
func (s *Schema) kind(key string) (Kind, bool) {
	if k, ok := s.Options[key]; ok {
		return k, true
	}
	for _, name := range slices.Sorted(maps.Keys(s.Commands)) {
		if k, ok := s.Commands[name].kind(key); ok {
			return k, true
		}
	}
	return 0, false
}

// names lists every option and command name s knows, for suggestions.
func (s *Schema) names(into map[string]bool) {
	for k := range s.Options {
		into[k] = true
	}
	for name, sub := range s.Commands {
		into[name] = true
		sub.names(into)
	}
}

// Value is one option's value and where it was written, for errors.
type Value struct {
	Text  string
	Where string // "pgward.yaml line 4 (section backup)"
}

type scope struct {
	options  map[string]Value
	sections map[string]*scope
}

// Config is a parsed configuration.
type Config struct {
	root     *scope
	clusters map[string]*scope
	cluster  string // the top level's cluster: key, if any
}

// ClustersKey holds the per-cluster settings in the main file.
const ClustersKey = "clusters"

// Parse reads a configuration file's contents. file names it in errors.
// global lists the options that may appear only at the top of the file or
// of a cluster (the repository, keys, logging), because they are read
// before the command is known.
func Parse(file string, data []byte, s *Schema, global []string) (*Config, error) {
	c := &Config{root: &scope{}, clusters: map[string]*scope{}}
	root, err := document(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if root == nil {
		return c, nil
	}
	p := parser{file: file, schema: s, global: global}
	var clusters *yaml.Node
	if c.root, clusters, err = p.scope(root, s, nil, true); err != nil {
		return nil, err
	}
	if v, ok := c.root.options["cluster"]; ok {
		c.cluster = v.Text
	}
	if clusters == nil {
		return c, nil
	}
	if clusters.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s line %d: %s: want one section per cluster (clusters: {shop: {...}}), got %s", file, clusters.Line, ClustersKey, nodeKind(clusters))
	}
	for i := 0; i+1 < len(clusters.Content); i += 2 {
		k, v := clusters.Content[i], resolveAlias(clusters.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("%s line %d: a cluster's name must be a name, got %s", file, k.Line, nodeKind(k))
		}
		if _, dup := c.clusters[k.Value]; dup {
			return nil, fmt.Errorf("%s line %d: cluster %s: given twice", file, k.Line, shortQuote(k.Value))
		}
		if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
			c.clusters[k.Value] = &scope{}
			continue
		}
		if v.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("%s line %d: cluster %s: want its settings as key: value lines, got %s", file, k.Line, shortQuote(k.Value), nodeKind(v))
		}
		cp := p
		cp.where = "cluster " + k.Value
		sc, _, err := cp.scope(v, s, nil, false)
		if err != nil {
			return nil, err
		}
		c.clusters[k.Value] = sc
	}
	return c, nil
}

// AddCluster adds a cluster's own file (conf.d/NAME.yaml): the settings of
// one cluster, shaped as the top of the main file without clusters:. A
// cluster the main file also defines is refused, so no one has to guess
// which wins.
func (c *Config) AddCluster(name, file string, data []byte, s *Schema, global []string) error {
	if _, ok := c.clusters[name]; ok {
		return fmt.Errorf("%s: cluster %s is also defined under %s: in the main file; keep one", file, shortQuote(name), ClustersKey)
	}
	root, err := document(data)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	sc := &scope{}
	if root != nil {
		p := parser{file: file, schema: s, global: global}
		if sc, _, err = p.scope(root, s, nil, false); err != nil {
			return err
		}
	}
	c.clusters[name] = sc
	return nil
}

// Cluster returns the cluster the file's top level names (cluster: KEY).
func (c *Config) Cluster() string { return c.cluster }

// Clusters lists the clusters the configuration defines, sorted.
func (c *Config) Clusters() []string { return slices.Sorted(maps.Keys(c.clusters)) }

// HasCluster reports whether the configuration defines cluster name.
func (c *Config) HasCluster(name string) bool { _, ok := c.clusters[name]; return ok }

// Lookup returns the value that applies to an option of the command at
// path (nil for a global option) in cluster. In a command's section the
// option is named by its flag (sectionKey); at the top of the file or of a
// cluster by its environment variable without PGWARD_ (topKey), so that
// backup's --source, PGWARD_BACKUP_SOURCE, is backup-source: at the top
// and never the sidecar's source:. A section holds its own command's
// options only: dump: {database: …} is which databases dump makes, never
// which one dump restore restores (that is dump: {restore: {database: …}}).
// The most specific place wins: the cluster's section of the command, the
// cluster's top, the file's section, the file's top.
func (c *Config) Lookup(cluster string, path []string, sectionKey, topKey string) (Value, bool) {
	for _, sc := range []*scope{c.clusters[cluster], c.root} {
		if sc == nil {
			continue
		}
		section := sc
		for _, name := range path {
			if section = section.sections[name]; section == nil {
				break
			}
		}
		if section != nil && section != sc {
			if v, ok := section.options[sectionKey]; ok {
				return v, true
			}
		}
		if v, ok := sc.options[topKey]; ok {
			return v, true
		}
	}
	return Value{}, false
}

type parser struct {
	file   string
	schema *Schema // the whole tree, for suggestions
	global []string
	where  string // "cluster shop", for errors
}

// scope reads one mapping: options of s (or of commands below it) and
// sections of s's commands. top says it is the file's top level, where
// clusters: may appear; it is returned, unread.
func (p parser) scope(n *yaml.Node, s *Schema, path []string, top bool) (*scope, *yaml.Node, error) {
	if n.Kind != yaml.MappingNode {
		return nil, nil, fmt.Errorf("%s: want settings as key: value lines (e.g. repo: s3://bucket/pg), got %s", p.file, nodeKind(n))
	}
	sc := &scope{options: map[string]Value{}, sections: map[string]*scope{}}
	var clusters *yaml.Node
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolveAlias(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			return nil, nil, fmt.Errorf("%s line %d: a key must be a name, got %s", p.file, k.Line, nodeKind(k))
		}
		key := k.Value
		at := p.at(k.Line, path)
		if line, dup := seen[key]; dup {
			return nil, nil, fmt.Errorf("%s: key %s: given twice (line %d, first on line %d)", at, key, k.Line, line)
		}
		seen[key] = k.Line
		switch sub, isCommand := s.Commands[key]; {
		case key == ClustersKey && top:
			clusters = v
		case isCommand:
			if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
				continue
			}
			if v.Kind != yaml.MappingNode {
				return nil, nil, fmt.Errorf("%s: %s: want the options of 'pgward %s' as key: value lines, got %s", at, key, strings.Join(append(slices.Clone(path), key), " "), nodeKind(v))
			}
			child, _, err := p.scope(v, sub, append(slices.Clone(path), key), false)
			if err != nil {
				return nil, nil, err
			}
			sc.sections[key] = child
		default:
			if slices.Contains(p.global, key) && len(path) > 0 {
				return nil, nil, fmt.Errorf("%s: key %s is a global option: put it at the top of the file (or of the cluster's settings), not in a command's section", at, key)
			}
			// At the top, any command's option (for every command that
			// has it); in a section, only its own command's.
			kind, ok := s.Options[key]
			if len(path) == 0 {
				kind, ok = s.kind(key)
			}
			if !ok {
				return nil, nil, p.unknown(at, key, path, s)
			}
			if key == "cluster" && (p.where != "" || !top) {
				return nil, nil, fmt.Errorf("%s: key cluster: a cluster's settings cannot name another cluster", at)
			}
			if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
				continue // written but empty: as if absent
			}
			text, err := scalar(v, kind)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: key %s: %w", at, key, err)
			}
			sc.options[key] = Value{Text: text, Where: at}
		}
	}
	return sc, clusters, nil
}

// at names a place in the file for errors.
func (p parser) at(line int, path []string) string {
	var parts []string
	if p.where != "" {
		parts = append(parts, p.where)
	}
	if len(path) > 0 {
		parts = append(parts, "section "+strings.Join(path, "."))
	}
	s := fmt.Sprintf("%s line %d", p.file, line)
	if len(parts) > 0 {
		s += " (" + strings.Join(parts, ", ") + ")"
	}
	return s
}

func (p parser) unknown(at, key string, path []string, s *Schema) error {
	names := map[string]bool{}
	p.schema.names(names)
	names[ClustersKey] = true
	hint := ""
	if best := Suggest(key, slices.Sorted(maps.Keys(names))); best != "" {
		hint = fmt.Sprintf(" (did you mean %s?)", best)
	}
	what := "an option of pgward or of any of its commands, a command's section, or " + ClustersKey
	if len(path) > 0 {
		what = "an option of 'pgward " + strings.Join(path, " ") + "', or a subcommand's section"
		for _, name := range slices.Sorted(maps.Keys(s.Commands)) {
			if _, ok := s.Commands[name].kind(key); ok {
				hint = fmt.Sprintf(" (it is an option of 'pgward %s %s': put it in that section, %s: {%s: …})", strings.Join(path, " "), name, name, key)
				break
			}
		}
	}
	return fmt.Errorf("%s: unknown key %s%s: keys are %s (see pgward --help and pgward COMMAND --help)", at, strconv.Quote(key), hint, what)
}

// Suggest returns the name in names closest to a mistyped one, or "" when
// none is close enough to be what was meant.
func Suggest(typed string, names []string) string {
	best, score := "", 0.0
	for _, name := range names {
		if s := smetrics.JaroWinkler(typed, name, 0.7, 4); s > score {
			best, score = name, s
		}
	}
	if score < 0.85 {
		return ""
	}
	return best
}

// document returns the YAML document's top node, or nil for an empty
// file, one holding only comments, or a bare null.
func document(data []byte) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	root := resolveAlias(doc.Content[0])
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil, nil
	}
	return root, nil
}

// scalar reads one value as its option takes it. Errors never show a
// value but a boolean's: a string may be a password.
func scalar(v *yaml.Node, kind Kind) (string, error) {
	switch kind {
	case Bool:
		var b bool
		if v.Kind != yaml.ScalarNode {
			return "", fmt.Errorf("want true or false, got %s", nodeKind(v))
		}
		if v.Decode(&b) == nil {
			return strconv.FormatBool(b), nil
		}
		// A quoted "true", as the environment variable would take it.
		if b, err := strconv.ParseBool(v.Value); err == nil {
			return strconv.FormatBool(b), nil
		}
		return "", fmt.Errorf("want true or false, got %s", shortQuote(v.Value))
	case List:
		if v.Kind == yaml.SequenceNode {
			parts := make([]string, len(v.Content))
			for i, item := range v.Content {
				item = resolveAlias(item)
				if item.Kind != yaml.ScalarNode || item.Tag == "!!null" {
					return "", fmt.Errorf("item %d: want a string, got %s", i+1, nodeKind(item))
				}
				if strings.Contains(item.Value, ",") {
					return "", fmt.Errorf("item %d holds a comma, which separates items: give one value per item", i+1)
				}
				parts[i] = item.Value
			}
			return strings.Join(parts, ","), nil
		}
		if v.Kind != yaml.ScalarNode {
			return "", fmt.Errorf("want a string or a list of strings, got %s", nodeKind(v))
		}
		return v.Value, nil
	}
	if v.Kind != yaml.ScalarNode {
		return "", fmt.Errorf("want a string, got %s", nodeKind(v))
	}
	return v.Value, nil
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a map"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing (null)"
		}
		return "a single value"
	}
	return "something else"
}

// shortQuote quotes a value that is no secret, cut to a readable length.
func shortQuote(s string) string {
	if len(s) > 40 {
		return strconv.Quote(s[:40]) + "…"
	}
	return strconv.Quote(s)
}
