package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Drop folder: a hospital system (PACS export, a lab's CSV job) hands files
// to the gateway by writing a batch directory into the watched folder:
//
//	DROP/<batch>/send.json   {"to","purpose","consent","deidentify","fhir"} — written LAST
//	DROP/<batch>/<files...>  the files to send
//
// A batch with send.json is sent with all its other regular files; the
// directory then moves to DROP/.done/<batch> or DROP/.failed/<batch> with a
// result.json (transfer id, or error code, message and DLP findings).

// DropResult is the result.json of a processed batch.
type DropResult struct {
	ID       string    `json:"id,omitempty"`
	Status   string    `json:"status"`
	Code     string    `json:"code,omitempty"`
	Error    string    `json:"error,omitempty"`
	Findings []Finding `json:"findings,omitempty"`
}

// ScanDropFolder sends every complete batch in dir once.
func (g *Gateway) ScanDropFolder(ctx context.Context, dir string) ([]DropResult, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	var out []DropResult
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		batch := filepath.Join(dir, e.Name())
		spec, err := os.ReadFile(filepath.Join(batch, "send.json"))
		if err != nil {
			continue // not complete yet
		}
		res := g.sendBatch(ctx, batch, spec)
		dest := ".done"
		if res.Status != JobUploading {
			dest = ".failed"
		}
		if err := os.MkdirAll(filepath.Join(dir, dest), 0o700); err != nil {
			return out, err
		}
		_ = writeJSONAtomic(filepath.Join(batch, "result.json"), res)
		target := filepath.Join(dir, dest, e.Name())
		if _, err := os.Stat(target); err == nil {
			target += "-" + time.Now().UTC().Format("20060102T150405.000")
		}
		if err := os.Rename(batch, target); err != nil {
			return out, err
		}
		out = append(out, res)
	}
	return out, nil
}

func (g *Gateway) sendBatch(ctx context.Context, batch string, spec []byte) DropResult {
	var req SendRequest
	if err := json.Unmarshal(spec, &req); err != nil || len(req.Files) > 0 {
		return DropResult{Status: JobFailed, Code: CodeBadRequest, Error: "send.json is not a send request without files"}
	}
	ents, err := os.ReadDir(batch)
	if err != nil {
		return DropResult{Status: JobFailed, Code: CodeInternal, Error: "the batch cannot be read"}
	}
	for _, e := range ents {
		if e.Type().IsRegular() && e.Name() != "send.json" && e.Name() != "result.json" && !strings.HasPrefix(e.Name(), ".") {
			req.Files = append(req.Files, SourceFile{Path: filepath.Join(batch, e.Name())})
		}
	}
	job, err := g.Send(ctx, req)
	if err != nil {
		var he *httpError
		res := DropResult{Status: JobFailed, Code: CodeInternal, Error: "send failed"}
		if errors.As(err, &he) {
			res.Code, res.Error, res.Findings = he.Code, he.Msg, he.Findings
		}
		if job != nil {
			res.Status = job.Status
		}
		return res
	}
	return DropResult{ID: job.ID, Status: job.Status}
}

// WatchDropFolder scans dir every interval until ctx ends.
func (g *Gateway) WatchDropFolder(ctx context.Context, dir string, every time.Duration) {
	if every <= 0 {
		every = 5 * time.Second
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		g.log.Error("drop folder unusable", "error", err.Error())
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := g.ScanDropFolder(ctx, dir); err != nil && ctx.Err() == nil {
			g.log.Warn("drop folder scan failed", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
