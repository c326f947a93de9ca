package bench

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/pprof"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// cpuProfile records a CPU profile of this process to path until stop.
type cpuProfile struct {
	path string
	f    *os.File
}

func startCPUProfile(path string) (*cpuProfile, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("creating CPU profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting CPU profile: %w", err)
	}
	return &cpuProfile{path: path, f: f}, nil
}

func (p *cpuProfile) stop() error {
	pprof.StopCPUProfile()
	return p.f.Close()
}

// CPUByLabel sums a CPU profile's samples by the value of one profiler
// label ("" for samples without it). The profile format is pprof's
// gzipped protobuf (profile.proto); only samples, their labels and the
// string table are read.
func CPUByLabel(path, key string) (map[string]time.Duration, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading profile: %w", err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("profile %s: %w", path, err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("profile %s: %w", path, err)
	}
	type sample struct {
		values []int64
		labels [][2]int64 // key, str as string-table indexes
	}
	var (
		samples []sample
		strs    []string
		types   []int64 // sample_type type indexes
	)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, fmt.Errorf("profile %s: bad tag", path)
		}
		b = b[n:]
		if typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return nil, fmt.Errorf("profile %s: bad field %d", path, num)
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return nil, fmt.Errorf("profile %s: bad field %d", path, num)
		}
		b = b[n:]
		switch num {
		case 1: // sample_type
			f := fields(v)
			types = append(types, f[1])
		case 2: // sample
			s, err := parseSample(v)
			if err != nil {
				return nil, fmt.Errorf("profile %s: %w", path, err)
			}
			samples = append(samples, sample{values: s.values, labels: s.labels})
		case 6: // string_table
			strs = append(strs, string(v))
		}
	}
	// The CPU profile's value types are samples/count and cpu/nanoseconds.
	idx := -1
	for i, t := range types {
		if t >= 0 && int(t) < len(strs) && strs[t] == "cpu" {
			idx = i
		}
	}
	if idx < 0 {
		return nil, fmt.Errorf("profile %s has no cpu sample type", path)
	}
	out := map[string]time.Duration{}
	for _, s := range samples {
		if idx >= len(s.values) {
			continue
		}
		val := ""
		for _, l := range s.labels {
			if int(l[0]) < len(strs) && strs[l[0]] == key && int(l[1]) < len(strs) {
				val = strs[l[1]]
			}
		}
		out[val] += time.Duration(s.values[idx])
	}
	return out, nil
}

// fields reads the varint fields of a small message by number.
func fields(b []byte) map[protowire.Number]int64 {
	out := map[protowire.Number]int64{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return out
		}
		b = b[n:]
		if typ == protowire.VarintType {
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return out
			}
			out[num] = int64(v)
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return out
		}
		b = b[n:]
	}
	return out
}

type parsedSample struct {
	values []int64
	labels [][2]int64
}

func parseSample(b []byte) (parsedSample, error) {
	var s parsedSample
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return s, fmt.Errorf("bad sample tag")
		}
		b = b[n:]
		switch {
		case num == 2 && typ == protowire.BytesType: // packed values
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return s, fmt.Errorf("bad sample values")
			}
			b = b[n:]
			for len(v) > 0 {
				x, m := protowire.ConsumeVarint(v)
				if m < 0 {
					return s, fmt.Errorf("bad sample value")
				}
				s.values = append(s.values, int64(x))
				v = v[m:]
			}
		case num == 2 && typ == protowire.VarintType:
			x, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return s, fmt.Errorf("bad sample value")
			}
			s.values = append(s.values, int64(x))
			b = b[n:]
		case num == 3 && typ == protowire.BytesType: // label
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return s, fmt.Errorf("bad sample label")
			}
			b = b[n:]
			f := fields(v)
			s.labels = append(s.labels, [2]int64{f[1], f[2]})
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return s, fmt.Errorf("bad sample field %d", num)
			}
			b = b[n:]
		}
	}
	return s, nil
}

// pprofTop writes "go tool pprof -top" of a profile next to it, when the go
// tool is on PATH; args narrow it (e.g. -tagfocus). It returns the text
// file's path, or "" when the tool is missing.
func pprofTop(profile, binary, suffix string, args ...string) (string, error) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", nil
	}
	out := strings.TrimSuffix(profile, ".pprof") + suffix + ".top.txt"
	cmdArgs := append([]string{"tool", "pprof", "-top", "-nodecount=40"}, args...)
	if binary != "" {
		cmdArgs = append(cmdArgs, binary)
	}
	cmdArgs = append(cmdArgs, profile)
	text, err := exec.Command(goTool, cmdArgs...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go tool pprof -top %s: %w: %s", profile, err, text)
	}
	if err := os.WriteFile(out, text, 0o644); err != nil {
		return "", fmt.Errorf("writing %s: %w", out, err)
	}
	return out, nil
}
