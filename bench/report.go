package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Figure is one measured number.
type Figure struct {
	Part  string  `json:"part"`
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	// Target says what the value must be, e.g. "≥ 100000"; Met whether it is.
	Target string `json:"target,omitempty"`
	Met    *bool  `json:"met,omitempty"`
	Note   string `json:"note,omitempty"`
}

// Report is everything one run measured.
type Report struct {
	Date    string `json:"date"`
	Command string `json:"command"`
	// Revision is the commit of the code measured, with "+dirty" when the
	// working tree had changes.
	Revision   string     `json:"revision"`
	Machine    Machine    `json:"machine"`
	LoadBefore [3]float64 `json:"load_before"`
	LoadAfter  [3]float64 `json:"load_after"`
	Settings   Settings   `json:"settings"`
	Figures    []Figure   `json:"figures"`
	// Commands are, per part, the Redis commands per event by command.
	Commands map[string][]PerEvent `json:"commands,omitempty"`
	// Profiles are the CPU profiles and their "go tool pprof -top" texts.
	Profiles []string `json:"profiles,omitempty"`
	Notes    []string `json:"notes,omitempty"`
	Errors   []string `json:"errors,omitempty"`
}

// PerEvent is one Redis command's calls and time per event.
type PerEvent struct {
	Command string  `json:"command"`
	Calls   float64 `json:"calls_per_event"`
	Usec    float64 `json:"usec_per_event"`
}

// add records a figure without a target.
func (r *Report) add(part, name string, v float64, unit, note string) {
	r.Figures = append(r.Figures, Figure{Part: part, Name: name, Value: v, Unit: unit, Note: note})
}

// atLeast records a figure that must be at least min.
func (r *Report) atLeast(part, name string, v float64, unit string, min float64, note string) {
	met := v >= min
	r.Figures = append(r.Figures, Figure{Part: part, Name: name, Value: v, Unit: unit,
		Target: "≥ " + format(min, unit), Met: &met, Note: note})
}

// atMost records a figure that must be at most max.
func (r *Report) atMost(part, name string, v float64, unit string, max float64, note string) {
	met := v <= max
	r.Figures = append(r.Figures, Figure{Part: part, Name: name, Value: v, Unit: unit,
		Target: "≤ " + format(max, unit), Met: &met, Note: note})
}

// within records a figure that must lie in [lo, hi].
func (r *Report) within(part, name string, v float64, unit, target string, lo, hi float64, note string) {
	met := v >= lo && v <= hi
	r.Figures = append(r.Figures, Figure{Part: part, Name: name, Value: v, Unit: unit, Target: target, Met: &met, Note: note})
}

// Figure returns the figure of part named name.
func (r *Report) Figure(part, name string) (Figure, bool) {
	for _, f := range r.Figures {
		if f.Part == part && f.Name == name {
			return f, true
		}
	}
	return Figure{}, false
}

// WriteJSON writes the report to path, creating its directory.
func (r *Report) WriteJSON(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// Markdown writes the report as the table BENCHMARKS.md shows.
func (r *Report) Markdown(w io.Writer) {
	m := r.Machine
	fmt.Fprintf(w, "replywatch benchmark, %s\n\n", r.Date)
	fmt.Fprintf(w, "- machine: %d CPUs, %s, %s GiB RAM, Linux %s\n", m.CPUs, m.CPUModel, m.MemoryGiB, m.Kernel)
	fmt.Fprintf(w, "- versions: %s, Redis %s, kafka-go %s, kfake %s, go-redis %s\n", m.Go, m.Redis, m.KafkaGo, m.Kfake, m.GoRedis)
	fmt.Fprintf(w, "- load average before: %.2f %.2f %.2f; after: %.2f %.2f %.2f\n",
		r.LoadBefore[0], r.LoadBefore[1], r.LoadBefore[2], r.LoadAfter[0], r.LoadAfter[1], r.LoadAfter[2])
	fmt.Fprintf(w, "- revision: %s\n", r.Revision)
	fmt.Fprintf(w, "- command: `%s`\n\n", r.Command)
	fmt.Fprintln(w, "| part | figure | value | target | met |")
	fmt.Fprintln(w, "|---|---|---:|---|---|")
	for _, f := range r.Figures {
		met := ""
		if f.Met != nil {
			met = "yes"
			if !*f.Met {
				met = "**no**"
			}
		}
		name := f.Name
		if f.Note != "" {
			name += " (" + f.Note + ")"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", f.Part, name, format(f.Value, f.Unit), f.Target, met)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "\n- %s", n)
	}
	if len(r.Notes) > 0 {
		fmt.Fprintln(w)
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "\nERROR: %s\n", e)
	}
}

// format writes v in its unit, with thousands separators for counts.
func format(v float64, unit string) string {
	switch unit {
	case "events/s", "events", "records", "bytes", "commands", "alerts", "probes":
		return thousands(int64(math.Round(v))) + " " + unit
	case "MiB":
		return strconv.FormatFloat(v, 'f', 1, 64) + " MiB"
	case "ms", "µs":
		return strconv.FormatFloat(v, 'f', 1, 64) + " " + unit
	case "s":
		return strconv.FormatFloat(v, 'f', 2, 64) + " s"
	case "%":
		return strconv.FormatFloat(v, 'f', 1, 64) + " %"
	case "":
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64) + " " + unit
	}
}

func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
