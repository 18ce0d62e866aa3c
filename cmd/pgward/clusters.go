package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/pgward/pgward/archive"
	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/probe"
)

// allClusters is the --cluster value that names every cluster.
const allClusters = "all"

// perClusterCommands take --cluster all: they run once per cluster.
var perClusterCommands = []string{"check", "prune", "verify", "backup list", "dump list", "retention show", "keys usage"}

func clustersCommand() *cli.Command {
	return &cli.Command{
		Name:  "clusters",
		Usage: "list the repository's clusters with their newest WAL and base backup",
		Description: `Lists every cluster the repository holds (each one's cluster.json, written by
its first push; this reads the whole listing), and the clusters the
configuration names (clusters: and conf.d), with the freshness probe's
status, newest WAL and newest base backup of each.

--cluster all on check, prune, verify, backup list, dump list and retention
show runs them once per configured cluster (or, when the configuration names
none, per cluster in the repository), and exits with the worst status.`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print a JSON array, one object per cluster"},
		},
		Action: runClusters,
	}
}

// clusterRow is one cluster in 'pgward clusters': the probe's facts.
type clusterRow struct {
	Cluster      string `json:"cluster"`
	Configured   bool   `json:"configured"`
	InRepository bool   `json:"in_repository"`
	probe.Result
}

func runClusters(c *cli.Context) error {
	a, _, err := archiveFor(c, false, true)
	if err != nil {
		return err
	}
	trust, err := settingsFrom(c).policyTrust()
	if err != nil {
		return err
	}
	stored, err := catalog.ListClusters(c.Context, a.Store)
	if err != nil {
		return fmt.Errorf("list clusters: %w", err)
	}
	configured := configuredClusters(c)
	names := append(slices.Clone(stored), configured...)
	sort.Strings(names)
	names = slices.Compact(names)
	now, err := clock()
	if err != nil {
		return err
	}
	rows := []clusterRow{}
	for _, name := range names {
		row := clusterRow{Cluster: name, Configured: slices.Contains(configured, name), InRepository: slices.Contains(stored, name)}
		if row.InRepository {
			ca := archive.Archive{Store: a.Store, Layout: catalog.Layout{Cluster: name}, Opener: a.Opener, Logger: a.Logger}
			window := catalog.DefaultRetentionWindow
			p, _, err := catalog.LoadPolicy(c.Context, a.Store, ca.Layout, trust)
			if err == nil {
				window = p.Window()
			}
			row.Result = probe.Check(c.Context, &ca, now(), probe.DefaultThresholds, window)
			if err != nil {
				row.Result.Reasons = append(row.Result.Reasons, "retention policy: "+err.Error())
			}
		} else {
			row.State = "ABSENT"
			row.Reasons = []string{"configured, but this repository holds nothing of it (it may have a repo: of its own)"}
		}
		if row.Reasons == nil {
			row.Reasons = []string{}
		}
		if row.Gaps == nil {
			row.Gaps = []string{}
		}
		rows = append(rows, row)
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, rows)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLUSTER\tSTATUS\tNEWEST WAL\tWAL AGE\tNEWEST BACKUP\tBACKUP AGE\tCONFIGURED")
	for _, r := range rows {
		walName, walAge, backupID, backupAge, conf := "-", "-", "-", "-", "no"
		if r.WAL != nil {
			walName, walAge = r.WAL.Name, ageText(r.WAL.Age)
		}
		if r.Backup != nil {
			backupID, backupAge = r.Backup.ID, ageText(r.Backup.Age)
		}
		if r.Configured {
			conf = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Cluster, r.State, walName, walAge, backupID, backupAge, conf)
	}
	return tw.Flush()
}

// ageText writes an age in seconds the way a person reads it.
func ageText(seconds float64) string {
	d := time.Duration(seconds * float64(time.Second)).Round(time.Second)
	if d >= 48*time.Hour {
		return fmt.Sprintf("%.1fd", d.Hours()/24)
	}
	return d.String()
}

// configuredClusters are the clusters the configuration names: under
// clusters: in the file and as conf.d/NAME.yaml.
func configuredClusters(c *cli.Context) []string {
	st := stateOf(c.App)
	if st == nil {
		return nil
	}
	var names []string
	for _, name := range st.cfg.Clusters() {
		if catalog.ValidateClusterName(name) == nil && name != allClusters {
			names = append(names, name)
		}
	}
	entries, _ := os.ReadDir(st.confDir)
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".yaml")
		if ok && !e.IsDir() && catalog.ValidateClusterName(name) == nil && name != allClusters {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return slices.Compact(names)
}

// perCluster wraps the action of a command that takes --cluster all: with
// it, the command runs once per cluster, in this process, and the results
// are printed per cluster (JSON: one array of {cluster, exit_status,
// output, errors}); the exit status is the worst.
func perCluster(action cli.ActionFunc) cli.ActionFunc {
	return func(c *cli.Context) error {
		if c.String(flagCluster) != allClusters {
			return action(c)
		}
		names := configuredClusters(c)
		if len(names) == 0 {
			store, _, err := settingsFrom(c).withCluster(catalog.DefaultCluster).openRepo()
			if err != nil {
				return err
			}
			if names, err = catalog.ListClusters(c.Context, store); err != nil {
				return fmt.Errorf("--cluster all: list the repository's clusters: %w", err)
			}
		}
		if len(names) == 0 {
			return fmt.Errorf("--cluster all: the configuration names no cluster and the repository holds none")
		}
		args, _ := c.App.Metadata[argsKey].([]string)
		return fanOut(c, args, names)
	}
}

const argsKey = "pgward.args"

type clusterOutcome struct {
	Cluster    string          `json:"cluster"`
	ExitStatus int             `json:"exit_status"`
	Output     json.RawMessage `json:"output"`
	Errors     []string        `json:"errors"`
}

func fanOut(c *cli.Context, args []string, names []string) error {
	asJSON := c.Bool("json")
	isCheck := c.Command.Name == "check"
	worst := 0
	var outcomes []clusterOutcome
	var lines []string
	for _, name := range names {
		if name == allClusters {
			continue // never again all: that would not end
		}
		var out, errOut bytes.Buffer
		// The last --cluster wins: after every other, and after the
		// environment and the file, which a flag beats.
		code := run(c.Context, append(slices.Clone(args), "--cluster="+name), &out, &errOut)
		worst = max(worst, code)
		errs := splitLines(errOut.String())
		switch {
		case asJSON:
			o := clusterOutcome{Cluster: name, ExitStatus: code, Output: json.RawMessage("null"), Errors: errs}
			if trimmed := bytes.TrimSpace(out.Bytes()); json.Valid(trimmed) && len(trimmed) > 0 {
				o.Output = json.RawMessage(trimmed)
			}
			outcomes = append(outcomes, o)
		case isCheck:
			line := strings.TrimSpace(out.String())
			if line == "" && len(errs) > 0 {
				line = "PGWARD UNKNOWN - " + strings.TrimPrefix(errs[len(errs)-1], "pgward: ")
			}
			lines = append(lines, name+": "+line)
		default:
			fmt.Fprintf(c.App.Writer, "== cluster %s ==\n", name)
			c.App.Writer.Write(out.Bytes())
		}
		if !asJSON {
			for _, e := range errs {
				fmt.Fprintf(c.App.ErrWriter, "cluster %s: %s\n", name, e)
			}
		}
	}
	switch {
	case asJSON:
		if err := printJSON(c.App.Writer, outcomes); err != nil {
			return err
		}
	case isCheck:
		// Nagios reads the first line: the worst status, then each cluster.
		var summary []string
		for i, name := range names {
			state := "UNKNOWN"
			if f := strings.Fields(strings.TrimPrefix(lines[i], name+": ")); len(f) > 1 {
				state = f[1]
			}
			summary = append(summary, name+" "+state)
		}
		state := [...]string{"OK", "WARNING", "CRITICAL", "UNKNOWN"}[min(worst, 3)]
		fmt.Fprintf(c.App.Writer, "PGWARD %s - %d clusters: %s\n", state, len(names), strings.Join(summary, ", "))
		for _, l := range lines {
			fmt.Fprintln(c.App.Writer, l)
		}
	}
	if worst == 0 {
		return nil
	}
	return withStatus(worst, errSilent)
}

func splitLines(s string) []string {
	lines := []string{}
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}
