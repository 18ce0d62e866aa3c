package dump_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/pgward/pgward/dump"
)

const (
	keyA  = "age1su8zaka3er3kafm5wg3mvq8s5dwvyjhdtmf3qneqn5jl52ztaggsyun8m0"
	keyB  = "age10yp9v44n5ww975avzpern7n6a4a0vys9dhpuphvv5vmjxl4g65xqvy9yhd"
	keyC  = "age172294lqtnwmtra8e46wlqzpanh0ser7vez68pcdfe9e67l802uqs7telr7"
	keyOp = "age1lxvuedx72j9fs67l3ls248er69rc73lwg2699plc6p7d26nvvalqvqng3s"
)

func TestKeyMapPicksEachCustomersKey(t *testing.T) {
	m, err := dump.ParseKeyMap([]byte(`
operator: ` + keyOp + `
default: ` + keyC + `
databases:
  "shop_*": ` + keyB + `
  shop_eu: [` + keyA + `]
  "*_eu": ` + keyC + `
`))
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string][]string{
		"shop_eu": {keyA, keyOp}, // exact beats the globs before it
		"shop_us": {keyB, keyOp}, // the first glob that matches
		"crm_eu":  {keyC, keyOp}, // a later glob
		"blog":    {keyC, keyOp}, // the default
		"shop":    {keyC, keyOp}, // "shop_*" needs the underscore
		"x/../y":  {keyC, keyOp}, // odd names are names
		"SHOP_US": {keyC, keyOp}, // names are case-sensitive, as in PostgreSQL
	}
	for db, want := range tests {
		r, err := m.For(db)
		if err != nil {
			t.Errorf("For(%q): %v", db, err)
			continue
		}
		if !slices.Equal(r.Keys, want) {
			t.Errorf("For(%q) = %v, want %v", db, r.Keys, want)
		}
	}
	g, err := m.ForGlobals()
	if err != nil || !slices.Equal(g.Keys, []string{keyOp}) {
		t.Errorf("ForGlobals() = %v, %v; want the operator's key", g.Keys, err)
	}
}

func TestKeyMapWithoutDefaultRefusesUnnamedDatabase(t *testing.T) {
	m, err := dump.ParseKeyMap([]byte("databases:\n  shop: " + keyA + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.For("crm")
	if err == nil || !strings.Contains(err.Error(), `names no key for database "crm" and has no default`) {
		t.Fatalf("For(crm) error = %v", err)
	}
	if _, err := m.ForGlobals(); err == nil || !strings.Contains(err.Error(), "add operator: age1…") {
		t.Fatalf("ForGlobals() error = %v", err)
	}
}

func TestKeyMapRejectsBadInput(t *testing.T) {
	tests := map[string]string{
		"databases:\n  shop: age1nope\n":                         "invalid recipient",
		"databases:\n  shop: AGE-SECRET-KEY-1QQQ\n":              "a secret key was given",
		"databases:\n  shop: []\n":                               `"shop" (line 2) has no recipient`,
		"databases:\n  \"[\": " + keyA + "\n":                    "not a valid glob",
		"customers:\n  shop: " + keyA + "\n":                     `unknown key "customers"`,
		"- " + keyA + "\n":                                       "want a mapping",
		"default: " + keyA + "," + keyB + "\n":                   "as a YAML list, not comma-separated",
		"databases: [" + keyA + "]\n":                            "want a mapping of database name",
		"databases:\n  shop:\n    nested: " + keyA + "\n":        "want an age1… recipient or a list",
		"operator: [" + keyA + ", [" + keyB + "]]\n":             "want an age1… recipient or a list",
		"databases:\n  shop: " + keyA + "\n  : " + keyB + "\n\t": "not valid YAML",
	}
	for in, want := range tests {
		_, err := dump.ParseKeyMap([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseKeyMap(%q) error = %v, want it to contain %q", in, err, want)
		}
	}
}

func TestKeyMapSetsGiveEachPathItsCustomer(t *testing.T) {
	m, err := dump.ParseKeyMap([]byte(`
operator: ` + keyOp + `
sets:
  etc: ` + keyC + `
  home:
    default: ` + keyC + `
    paths:
      /home/alice: ` + keyA + `
      "/home/b o b": [` + keyB + `]
`))
	if err != nil {
		t.Fatal(err)
	}
	routes, err := m.ForSet("home")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, r := range routes {
		got[r.Prefix] = r.Keys
	}
	want := map[string][]string{"": {keyC, keyOp}, "/home/alice": {keyA, keyOp}, "/home/b o b": {keyB, keyOp}}
	for p, keys := range want {
		if !slices.Equal(got[p], keys) {
			t.Errorf("ForSet(home)[%q] = %v, want %v", p, got[p], keys)
		}
	}
	if _, err := m.ForSet("www"); err == nil || !strings.Contains(err.Error(), `file set "www"`) {
		t.Errorf("ForSet of an unmapped set without default: %v", err)
	}
	for _, bad := range []string{"relative/path", "/home/../etc", "/home/alice/", "/", "\"/a\\nb\""} {
		_, err := dump.ParseKeyMap([]byte("sets:\n  home:\n    paths:\n      " + bad + ": " + keyA + "\n"))
		if err == nil {
			t.Errorf("path prefix %q accepted", bad)
		}
	}
}
