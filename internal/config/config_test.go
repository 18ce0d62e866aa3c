package config

import (
	"strings"
	"testing"
	"time"
)

// schema is a small tree shaped like pgward's.
var schema = &Schema{
	Options: map[string]Kind{"repo": String, "cluster": String, "recipient": List, "no-encryption": Bool, "log-level": String},
	Commands: map[string]*Schema{
		"backup": {
			Options: map[string]Kind{"checkpoint": String, "json": Bool},
			Commands: map[string]*Schema{
				"list":   {Options: map[string]Kind{"json": Bool}},
				"delete": {Options: map[string]Kind{"retention-window": String}},
			},
		},
		"dump": {
			Options:  map[string]Kind{"keep-daily": String},
			Commands: map[string]*Schema{"drill": {Options: map[string]Kind{"sample": String}}},
		},
	},
}

var globals = []string{"repo", "cluster", "recipient", "no-encryption", "log-level"}

func TestValuesMostSpecificWins(t *testing.T) {
	const file = `
repo: s3://all/pg
checkpoint: spread      # an option of a command, at the top: every command that has it
keep-daily: 7
backup:
  checkpoint: fast
  list:
    json: yes
dump:
  drill:
    sample: "50"
clusters:
  shop:
    repo: s3://shop/pg
    backup: {checkpoint: spread}
  blog:
`
	c, err := Parse("pgward.yaml", []byte(file), schema, globals)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cluster string
		path    []string
		key     string
		want    string // "" for absent
	}{
		{"main", nil, "repo", "s3://all/pg"},
		{"shop", nil, "repo", "s3://shop/pg"},
		{"main", []string{"backup"}, "checkpoint", "fast"},
		{"main", []string{"backup", "list"}, "checkpoint", "spread"}, // a section is its own command's: the top applies
		{"main", []string{"backup", "list"}, "json", "true"},
		{"main", []string{"backup"}, "json", ""},
		{"shop", []string{"backup"}, "checkpoint", "spread"},
		{"blog", []string{"backup"}, "checkpoint", "fast"},
		{"main", []string{"dump", "drill"}, "sample", "50"},
		{"main", []string{"dump", "drill"}, "keep-daily", "7"},
		{"main", []string{"dump"}, "sample", ""},
		{"main", []string{"restore"}, "checkpoint", "spread"}, // the caller keeps what its flags know
		{"main", []string{"backup", "delete"}, "checkpoint", "spread"},
	} {
		got, _ := c.Lookup(tc.cluster, tc.path, tc.key, tc.key)
		if got.Text != tc.want {
			t.Errorf("Values(%s, %v)[%s] = %q, want %q", tc.cluster, tc.path, tc.key, got.Text, tc.want)
		}
	}
	// A top-level key is the option's environment name: backup's source is
	// backup-source there, and never the sidecar's source.
	c2, err := Parse("f", []byte("source: host=primary\nbackup-source: host=replica\n"), &Schema{
		Options:  map[string]Kind{"source": String, "backup-source": String},
		Commands: map[string]*Schema{"backup": {Options: map[string]Kind{"source": String}}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := c2.Lookup("main", []string{"backup"}, "source", "backup-source"); v.Text != "host=replica" {
		t.Errorf("backup's source = %q, want host=replica", v.Text)
	}
	if got := strings.Join(c.Clusters(), ","); got != "blog,shop" {
		t.Errorf("Clusters() = %s, want blog,shop", got)
	}
	if v, _ := c.Lookup("shop", []string{"backup"}, "checkpoint", "checkpoint"); !strings.Contains(v.Where, "pgward.yaml line 15 (cluster shop, section backup)") {
		t.Errorf("Where = %q, want the file, the line, the cluster and the section", v.Where)
	}
}

func TestClusterFile(t *testing.T) {
	c, err := Parse("pgward.yaml", []byte("repo: s3://all/pg\nclusters: {shop: {repo: s3://x}}\n"), schema, globals)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddCluster("blog", "conf.d/blog.yaml", []byte("repo: s3://blog\nbackup:\n  checkpoint: fast\n"), schema, globals); err != nil {
		t.Fatal(err)
	}
	repo, _ := c.Lookup("blog", nil, "repo", "repo")
	checkpoint, _ := c.Lookup("blog", []string{"backup"}, "checkpoint", "checkpoint")
	if repo.Text != "s3://blog" || checkpoint.Text != "fast" {
		t.Errorf("blog's values: repo %q, checkpoint %q", repo.Text, checkpoint.Text)
	}
	err = c.AddCluster("shop", "conf.d/shop.yaml", []byte("repo: s3://y\n"), schema, globals)
	if err == nil || !strings.Contains(err.Error(), "cluster \"shop\" is also defined under clusters: in the main file") {
		t.Errorf("a cluster in both places: %v", err)
	}
	err = c.AddCluster("x", "conf.d/x.yaml", []byte("cluster: other\n"), schema, globals)
	if err == nil || !strings.Contains(err.Error(), "cannot name another cluster") {
		t.Errorf("a cluster file naming a cluster: %v", err)
	}
}

func TestParseRefuses(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown key", "rpo: x\n", `pgward.yaml line 1: unknown key "rpo" (did you mean repo?)`},
		{"unknown key in a section", "backup:\n  chekpoint: fast\n", `line 2 (section backup): unknown key "chekpoint" (did you mean checkpoint?): keys are an option of 'pgward backup'`},
		{"an option of another command", "backup:\n  sample: 5\n", `unknown key "sample"`},
		{"a subcommand's option in its parent's section", "backup:\n  json: true\n  list: {}\ndump:\n  sample: 5\n", `(section dump): unknown key "sample" (it is an option of 'pgward dump drill': put it in that section, drill: {sample: …})`},
		{"a global in a section", "backup:\n  repo: s3://x\n", "key repo is a global option: put it at the top"},
		{"a section that is not a map", "backup: fast\n", "backup: want the options of 'pgward backup' as key: value lines, got a single value"},
		{"twice", "repo: a\nrepo: b\n", "key repo: given twice (line 2, first on line 1)"},
		{"twice in a section", "backup:\n  checkpoint: a\n  checkpoint: b\n", "(section backup): key checkpoint: given twice"},
		{"a map for a string", "repo: {a: b}\n", "key repo: want a string, got a map"},
		{"a list for a boolean", "no-encryption: [true]\n", "key no-encryption: want true or false, got a list"},
		{"a bad boolean", "backup: {json: maybe}\n", `key json: want true or false, got "maybe"`},
		{"a comma inside a list item", "recipient: [\"a,b\"]\n", "item 1 holds a comma"},
		{"clusters not a map", "clusters: [a]\n", "clusters: want one section per cluster"},
		{"a cluster twice", "clusters:\n  a: {}\n  a: {}\n", `cluster "a": given twice`},
		{"a cluster naming a cluster", "clusters: {a: {cluster: b}}\n", "cannot name another cluster"},
		{"clusters inside a cluster", "clusters: {a: {clusters: {b: {}}}}\n", `unknown key "clusters"`},
		{"not a mapping", "- repo\n", "want settings as key: value lines"},
		{"a key that is a map", "{a: b}: c\n", "a key must be a name"},
		{"not YAML", "repo: [x\n", "did not find expected"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("pgward.yaml", []byte(tc.yaml), schema, globals)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse(%q) = %v, want an error containing %q", tc.yaml, err, tc.want)
			}
		})
	}
}

func TestParseKeepsValuesAsWritten(t *testing.T) {
	c, err := Parse("f", []byte("cluster: 007\nno-encryption: yes\nrecipient: [a, b]\nlog-level:\nbackup: ~\n"), schema, globals)
	if err != nil {
		t.Fatal(err)
	}
	get := func(k string) string { v, _ := c.Lookup("007", nil, k, k); return v.Text }
	if get("cluster") != "007" || get("no-encryption") != "true" || get("recipient") != "a,b" {
		t.Errorf("values: cluster %q, no-encryption %q, recipient %q", get("cluster"), get("no-encryption"), get("recipient"))
	}
	if _, ok := c.Lookup("007", nil, "log-level", "log-level"); ok {
		t.Error("a null value counts as set")
	}
	if c.Cluster() != "007" {
		t.Errorf("Cluster() = %q", c.Cluster())
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"90s": 90 * time.Second, "15m": 15 * time.Minute, "168h": 168 * time.Hour, "7d": 7 * 24 * time.Hour,
		"1d12h": 36 * time.Hour, "2w": 14 * 24 * time.Hour, "1w2d3h4m": (9*24+3)*time.Hour + 4*time.Minute,
		"0": 0, "0s": 0, " 7d ": 7 * 24 * time.Hour, "1.5h": 90 * time.Minute, "-1d": -24 * time.Hour,
	} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		"": "empty duration", "7": "has no unit", "d": "invalid duration", "7days": "invalid duration",
		"1d-2h": "invalid duration", "7d\n1h": "invalid duration", "99999999999999d": "too long", "1.5d": "invalid duration",
	} {
		if _, err := ParseDuration(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseDuration(%q) = %v, want an error containing %q", in, err, want)
		}
	}
	for d, want := range map[time.Duration]string{7 * 24 * time.Hour: "7d", 36 * time.Hour: "36h0m0s", 0: "0s"} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %s, want %s", d, got, want)
		}
		if back, err := ParseDuration(FormatDuration(d)); err != nil || back != d {
			t.Errorf("ParseDuration(FormatDuration(%v)) = %v, %v", d, back, err)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"1GiB": 1 << 30, "512MiB": 512 << 20, "1.5GiB": 3 << 29, "100M": 100e6, "100MB": 100e6, "10 MB": 10e6,
		"2TiB": 2 << 40, "4096": 4096, "32kB": 32e3, "64KiB": 64 << 10, "1 gib": 1 << 30,
	} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		"": "invalid size", "-1GiB": "invalid size", "0": "not positive", "0.1B": "not positive", "GiB": "invalid size",
		"1GiBx": "invalid size", "10000000EiB": "too large", "1\nGiB": "invalid size", "+5": "invalid size",
	} {
		if _, err := ParseSize(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseSize(%q) = %v, want an error containing %q", in, err, want)
		}
	}
}
