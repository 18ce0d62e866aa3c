package dump

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"filippo.io/age"
	"go.yaml.in/yaml/v3"

	"github.com/pgward/pgward/seal"
)

// KeyMap says whom each database's dumps are encrypted to: every customer
// has their own key, so one customer's identity opens only their dumps.
//
//	operator: age1…          # optional: added to every dump
//	default: age1…           # optional: databases no entry names
//	databases:
//	  shop: age1…
//	  "crm_*": [age1…, age1…]   # a glob (path.Match); first match wins
//	sets:                    # file backups (pgward files)
//	  www: age1…             # the whole set
//	  home:
//	    default: age1…       # optional: what no path names (else default)
//	    paths:
//	      /home/alice: age1…  # a path prefix within the set
//
// An exact name beats every glob; among globs the first in the file wins.
type KeyMap struct {
	entries  []keyMapEntry
	def      []string
	operator []string
	sets     map[string]setEntry
}

type setEntry struct {
	def   []string
	paths []pathEntry
}

type pathEntry struct {
	prefix     string
	recipients []string
}

type keyMapEntry struct {
	pattern    string
	recipients []string
}

// Recipients are the public keys one object is sealed to.
type Recipients struct {
	Keys []string // age1… strings, as recorded in dump.json
	list []age.Recipient
}

// Sealer returns the sealer for these recipients.
func (r Recipients) Sealer() *seal.Sealer {
	return seal.NewSealer(r.list, seal.LevelFastest, 0)
}

// LoadKeyMap reads a recipients map file.
func LoadKeyMap(file string) (*KeyMap, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("recipients map: %w", err)
	}
	m, err := ParseKeyMap(data)
	if err != nil {
		return nil, fmt.Errorf("recipients map %s: %w", file, err)
	}
	return m, nil
}

// ParseKeyMap reads a recipients map.
func ParseKeyMap(data []byte) (*KeyMap, error) {
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("want a mapping with keys operator, default and databases")
	}
	m := &KeyMap{}
	top := doc.Content[0].Content
	for i := 0; i+1 < len(top); i += 2 {
		key, val := top[i].Value, top[i+1]
		switch key {
		case "operator", "default":
			keys, err := recipientList(val)
			if err != nil {
				return nil, fmt.Errorf("%s (line %d): %w", key, val.Line, err)
			}
			if key == "operator" {
				m.operator = keys
			} else {
				m.def = keys
			}
		case "databases":
			if val.Kind != yaml.MappingNode {
				return nil, fmt.Errorf("databases (line %d): want a mapping of database name or glob to recipients", val.Line)
			}
			for j := 0; j+1 < len(val.Content); j += 2 {
				pattern := val.Content[j].Value
				if _, err := path.Match(pattern, ""); err != nil {
					return nil, fmt.Errorf("databases: %q (line %d) is not a valid glob", pattern, val.Content[j].Line)
				}
				keys, err := recipientList(val.Content[j+1])
				if err != nil {
					return nil, fmt.Errorf("databases: %q (line %d): %w", pattern, val.Content[j].Line, err)
				}
				if len(keys) == 0 {
					return nil, fmt.Errorf("databases: %q (line %d) has no recipient", pattern, val.Content[j].Line)
				}
				m.entries = append(m.entries, keyMapEntry{pattern: pattern, recipients: keys})
			}
		case "sets":
			sets, err := parseSets(val)
			if err != nil {
				return nil, err
			}
			m.sets = sets
		default:
			return nil, fmt.Errorf("unknown key %q (line %d): want operator, default, databases or sets", key, top[i].Line)
		}
	}
	return m, nil
}

// parseSets reads the sets section: a set's recipients, or its default
// and path prefixes.
func parseSets(val *yaml.Node) (map[string]setEntry, error) {
	if val.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("sets (line %d): want a mapping of set name to recipients", val.Line)
	}
	sets := map[string]setEntry{}
	for j := 0; j+1 < len(val.Content); j += 2 {
		name, v := val.Content[j].Value, val.Content[j+1]
		if _, dup := sets[name]; dup {
			return nil, fmt.Errorf("sets: %q (line %d) appears twice", name, val.Content[j].Line)
		}
		var e setEntry
		if v.Kind != yaml.MappingNode {
			keys, err := recipientList(v)
			if err != nil {
				return nil, fmt.Errorf("sets: %q (line %d): %w", name, v.Line, err)
			}
			e.def = keys
			sets[name] = e
			continue
		}
		for k := 0; k+1 < len(v.Content); k += 2 {
			sub, sv := v.Content[k].Value, v.Content[k+1]
			switch sub {
			case "default":
				keys, err := recipientList(sv)
				if err != nil {
					return nil, fmt.Errorf("sets: %q default (line %d): %w", name, sv.Line, err)
				}
				e.def = keys
			case "paths":
				if sv.Kind != yaml.MappingNode {
					return nil, fmt.Errorf("sets: %q paths (line %d): want a mapping of path prefix to recipients", name, sv.Line)
				}
				for q := 0; q+1 < len(sv.Content); q += 2 {
					prefix := sv.Content[q].Value
					line := sv.Content[q].Line
					if !path.IsAbs(prefix) || path.Clean(prefix) != prefix || prefix == "/" || strings.ContainsAny(prefix, "\x00\n") {
						return nil, fmt.Errorf("sets: %q path %q (line %d): want an absolute, clean path below / (no trailing slash, no ..)", name, prefix, line)
					}
					for _, p := range e.paths {
						if p.prefix == prefix {
							return nil, fmt.Errorf("sets: %q path %q (line %d) appears twice", name, prefix, line)
						}
					}
					keys, err := recipientList(sv.Content[q+1])
					if err != nil {
						return nil, fmt.Errorf("sets: %q path %q (line %d): %w", name, prefix, line, err)
					}
					if len(keys) == 0 {
						return nil, fmt.Errorf("sets: %q path %q (line %d) has no recipient", name, prefix, line)
					}
					e.paths = append(e.paths, pathEntry{prefix: prefix, recipients: keys})
				}
			default:
				return nil, fmt.Errorf("sets: %q: unknown key %q (line %d): want default or paths", name, sub, v.Content[k].Line)
			}
		}
		sets[name] = e
	}
	return sets, nil
}

// PathRecipients are the recipients of the part of a file set below
// Prefix ("" for the rest of the set).
type PathRecipients struct {
	Prefix string
	Recipients
}

// ForSet returns whom a file set is sealed to: the set's recipients (its
// entry's default, else the map's default) for the part of it no path
// prefix names, and each prefix's recipients, each with the operator's.
func (m *KeyMap) ForSet(set string) ([]PathRecipients, error) {
	e, ok := m.sets[set]
	keys := e.def
	if len(keys) == 0 {
		keys = m.def
	}
	if len(keys) == 0 {
		if !ok {
			return nil, fmt.Errorf("the recipients map names no key for file set %q and has no default: add it under sets (or a default) so its files can be encrypted", set)
		}
		return nil, fmt.Errorf("file set %q has no default recipient and the map has none: add sets: %s: default: age1… for what its paths do not cover", set, set)
	}
	rest, err := recipients(append(append([]string(nil), keys...), m.operator...))
	if err != nil {
		return nil, err
	}
	out := []PathRecipients{{Prefix: "", Recipients: rest}}
	for _, p := range e.paths {
		r, err := recipients(append(append([]string(nil), p.recipients...), m.operator...))
		if err != nil {
			return nil, err
		}
		out = append(out, PathRecipients{Prefix: p.prefix, Recipients: r})
	}
	return out, nil
}

// recipientList reads one recipient or a list of them, and checks each.
func recipientList(n *yaml.Node) ([]string, error) {
	var keys []string
	switch n.Kind {
	case yaml.ScalarNode:
		keys = []string{n.Value}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return nil, errors.New("want an age1… recipient or a list of them")
			}
			keys = append(keys, c.Value)
		}
	default:
		return nil, errors.New("want an age1… recipient or a list of them")
	}
	for _, k := range keys {
		if _, err := seal.ParseRecipients(k); err != nil {
			return nil, err
		}
		if strings.Contains(k, ",") {
			return nil, errors.New("write several recipients as a YAML list, not comma-separated")
		}
	}
	return keys, nil
}

// For returns the recipients of database's dumps: its entry's (or the
// default's), plus the operator's.
func (m *KeyMap) For(database string) (Recipients, error) {
	keys := m.def
	found := false
	for _, e := range m.entries {
		if e.pattern == database {
			keys, found = e.recipients, true
			break
		}
	}
	if !found {
		for _, e := range m.entries {
			if ok, _ := path.Match(e.pattern, database); ok {
				keys, found = e.recipients, true
				break
			}
		}
	}
	if !found && len(keys) == 0 {
		return Recipients{}, fmt.Errorf("the recipients map names no key for database %q and has no default: add an entry for it (or a default) so its dump can be encrypted", database)
	}
	return recipients(append(append([]string(nil), keys...), m.operator...))
}

// ForGlobals returns the recipients of the globals dump (every customer's
// roles): the operator's, else the default.
func (m *KeyMap) ForGlobals() (Recipients, error) {
	keys := m.operator
	if len(keys) == 0 {
		keys = m.def
	}
	if len(keys) == 0 {
		return Recipients{}, errors.New("the recipients map has neither an operator nor a default entry, so the globals dump (every customer's roles) has no key: add operator: age1…")
	}
	return recipients(keys)
}

// SingleRecipients are the recipients for every dump when no map is given
// (the global --recipient); none means unencrypted, which the caller must
// have allowed.
func SingleRecipients(list string) (Recipients, error) {
	var keys []string
	for _, k := range strings.Split(list, ",") {
		if k = strings.TrimSpace(k); k != "" {
			keys = append(keys, k)
		}
	}
	return recipients(keys)
}

func recipients(keys []string) (Recipients, error) {
	r := Recipients{}
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[k] {
			continue
		}
		seen[k] = true
		list, err := seal.ParseRecipients(k)
		if err != nil {
			return Recipients{}, err
		}
		r.Keys = append(r.Keys, k)
		r.list = append(r.list, list...)
	}
	return r, nil
}
