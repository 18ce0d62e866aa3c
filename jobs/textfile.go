package jobs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/pgward/pgward/internal/atomicfile"
)

// WriteTextfile writes g's metrics to path in node_exporter's textfile
// format, atomically (temp file, fsync, rename). What the file already
// holds is kept, unless g has the same series (node_exporter reads only
// files ending in .prom: the lock beside it, path.lock, is not read): so a cron job's failure
// keeps the last success of the run before, and several commands may
// share one file. g's counters count one run: they are added to the
// file's. A file that does not parse is replaced, and the error
// says so.
func WriteTextfile(path string, g prometheus.Gatherer) error {
	fresh, err := g.Gather()
	if err != nil {
		return err
	}
	// Two cron jobs may write one file at once: each reads, merges and
	// renames under the lock, or one's series would be lost.
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", path+".lock", err)
	}
	defer unix.Flock(int(lock.Fd()), unix.LOCK_UN)
	var warn error
	old := map[string]*dto.MetricFamily{}
	if data, err := os.ReadFile(path); err == nil {
		parser := expfmt.NewTextParser(model.UTF8Validation)
		if old, err = parser.TextToMetricFamilies(bytes.NewReader(data)); err != nil {
			old, warn = map[string]*dto.MetricFamily{}, fmt.Errorf("%s did not parse, replaced: %w", path, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, f := range fresh {
		prev, ok := old[f.GetName()]
		if !ok || prev.GetType() != f.GetType() {
			old[f.GetName()] = f
			continue
		}
		byLabels := map[string]*dto.Metric{}
		for _, m := range prev.Metric {
			byLabels[labelKey(m)] = m
		}
		for _, m := range f.Metric {
			// A counter counts this run: add what the runs before counted.
			if was, ok := byLabels[labelKey(m)]; ok && m.Counter != nil && was.Counter != nil {
				m.Counter.Value = proto.Float64(m.Counter.GetValue() + was.Counter.GetValue())
			}
			byLabels[labelKey(m)] = m
		}
		prev.Metric = prev.Metric[:0]
		for _, k := range slices.Sorted(maps.Keys(byLabels)) {
			prev.Metric = append(prev.Metric, byLabels[k])
		}
		prev.Help = f.Help
	}
	var buf bytes.Buffer
	for _, name := range slices.Sorted(maps.Keys(old)) {
		if _, err := expfmt.MetricFamilyToText(&buf, old[name]); err != nil {
			return err
		}
	}
	if err := atomicfile.Write(path, buf.Bytes(), 0o644); err != nil {
		return err
	}
	return warn
}

func labelKey(m *dto.Metric) string {
	var parts []string
	for _, l := range m.GetLabel() {
		parts = append(parts, l.GetName()+"="+l.GetValue())
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}
