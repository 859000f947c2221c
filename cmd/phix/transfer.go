package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"phix/devnet"
	"phix/gateway"
)

func init() {
	register(command{name: "transfer", summary: "send, list, receive and cancel transfers through a hospital's edge gateway", run: runTransfer})
}

const transferUsage = `usage:
  phix transfer send --to HOSPITAL --purpose TREAT|HRESCH|... --consent Consent/ID [--deidentify PROFILE] [--no-wait] (FILE... | --fhir 'Patient/ID/$everything')
  phix transfer list
  phix transfer status ID
  phix transfer receive --out DIR [--wait 30s]
  phix transfer cancel ID
every command takes --dev DIR --hospital ID (a running phix dev network) or --gateway URL --token-file FILE

exit status: 0 done; 1 failed; 2 usage; 3 refused by policy (consent, DLP, de-identification);
4 the transfer ended without delivery (withdrawn, cancelled, failed); 5 gateway or coordinator unreachable`

// Exit statuses of phix transfer (docs/gateway.md).
const (
	exitRefused     = 3
	exitNotDone     = 4
	exitUnreachable = 5
)

// gwClient calls a gateway's local API.
type gwClient struct {
	base  string
	token string
	hc    *http.Client
}

func runTransfer(ctx context.Context, args []string) error {
	return transferMain(ctx, args, os.Stdout, os.Stderr)
}

func transferMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return &exitError{code: 2, err: errors.New(transferUsage)}
	}
	sub := args[0]
	fs := flag.NewFlagSet("transfer "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dev := fs.String("dev", "", "data directory of a running phix dev network")
	hospital := fs.String("hospital", "", "with --dev: act as this hospital")
	gwURL := fs.String("gateway", "", "the gateway API URL (without --dev)")
	tokenFile := fs.String("token-file", "", "bearer token file for the gateway API (without --dev)")
	to := fs.String("to", "", "send: receiving hospital")
	purpose := fs.String("purpose", "", "send: purpose of use (TREAT, ETREAT, HRESCH, ...)")
	consentRef := fs.String("consent", "", "send: Consent/ID in the local FHIR server")
	deidentify := fs.String("deidentify", "", "send: de-identification profile (default: the purpose's; none for identified TREAT)")
	fhirQuery := fs.String("fhir", "", "send: FHIR query for the record, e.g. 'Patient/ID/$everything'")
	noWait := fs.Bool("no-wait", false, "send: return once the transfer is registered")
	out := fs.String("out", "", "receive: directory for delivered files")
	wait := fs.Duration("wait", 30*time.Second, "receive: how long to wait for a delivery")
	var pos []string
	rest := args[1:]
	for {
		if err := fs.Parse(rest); err != nil {
			return &exitError{code: 2, err: fmt.Errorf("%v\n%s", err, transferUsage)}
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	c, err := newGWClient(*dev, *hospital, *gwURL, *tokenFile)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	tty := isTerminalWriter(stderr)
	switch sub {
	case "send":
		if *to == "" || *purpose == "" || *consentRef == "" || (*fhirQuery == "" && len(pos) == 0) {
			return &exitError{code: 2, err: errors.New(transferUsage)}
		}
		return c.send(ctx, gateway.SendRequest{To: *to, Purpose: *purpose, Consent: *consentRef, Deidentify: *deidentify, FHIR: *fhirQuery}, pos, !*noWait, tty, stdout, stderr)
	case "list":
		return c.list(ctx, stdout)
	case "status":
		if len(pos) != 1 {
			return &exitError{code: 2, err: errors.New(transferUsage)}
		}
		var st gateway.Status
		if err := c.do(ctx, "GET", "/transfers/"+url.PathEscape(pos[0]), nil, &st); err != nil {
			return err
		}
		printStatus(stdout, st)
		return statusExit(st)
	case "cancel":
		if len(pos) != 1 {
			return &exitError{code: 2, err: errors.New(transferUsage)}
		}
		var st gateway.Status
		if err := c.do(ctx, "POST", "/transfers/"+url.PathEscape(pos[0])+"/cancel", nil, &st); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s cancelled\n", st.ID)
		return nil
	case "receive":
		if *out == "" {
			return &exitError{code: 2, err: errors.New(transferUsage)}
		}
		return c.receive(ctx, *out, *wait, stdout, stderr)
	}
	return &exitError{code: 2, err: errors.New(transferUsage)}
}

func newGWClient(dev, hospital, gwURL, tokenFile string) (*gwClient, error) {
	if dev != "" {
		if hospital == "" {
			return nil, errors.New("--dev needs --hospital")
		}
		b, err := os.ReadFile(filepath.Join(dev, "dev", "endpoints.json"))
		if err != nil {
			return nil, fmt.Errorf("no running dev network in %s (dev/endpoints.json: %w)", dev, err)
		}
		var eps devnet.Endpoints
		if err := json.Unmarshal(b, &eps); err != nil {
			return nil, errors.New("dev/endpoints.json does not parse")
		}
		for _, h := range eps.Hospitals {
			if h.ID == hospital {
				gwURL, tokenFile = h.Gateway, filepath.Join(dev, "dev", h.TokenFile)
			}
		}
		if gwURL == "" {
			return nil, fmt.Errorf("hospital %q has no gateway in %s", hospital, filepath.Join(dev, "dev", "endpoints.json"))
		}
	}
	if gwURL == "" || tokenFile == "" {
		return nil, errors.New("give --dev DIR --hospital ID, or --gateway URL --token-file FILE")
	}
	b, err := os.ReadFile(tokenFile)
	if err != nil {
		return nil, fmt.Errorf("read the token file: %w", err)
	}
	tok := strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
	return &gwClient{base: strings.TrimRight(gwURL, "/"), token: tok, hc: &http.Client{}}, nil
}

// apiError is a problem answer of the gateway API.
type apiError struct {
	Status   int               `json:"status"`
	Code     string            `json:"code"`
	Detail   string            `json:"detail"`
	Findings []gateway.Finding `json:"findings"`
}

func (e *apiError) Error() string { return e.Code + ": " + e.Detail }

func (c *gwClient) do(ctx context.Context, method, path string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return &exitError{code: exitUnreachable, err: errors.New("the gateway is unreachable (is the node or phix dev running?)")}
	}
	defer res.Body.Close()
	if res.StatusCode >= 300 {
		var ae apiError
		_ = json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&ae)
		if ae.Code == "" {
			ae.Code, ae.Detail = fmt.Sprintf("HTTP-%d", res.StatusCode), http.StatusText(res.StatusCode)
		}
		code := 1
		switch {
		case res.StatusCode == 403 || res.StatusCode == 422:
			code = exitRefused
		case res.StatusCode == 502 || res.StatusCode == 503:
			code = exitUnreachable
		}
		return &exitError{code: code, err: &ae}
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(res.Body).Decode(out)
}

func (c *gwClient) send(ctx context.Context, req gateway.SendRequest, files []string, wait, tty bool, stdout, stderr io.Writer) error {
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return &exitError{code: 2, err: fmt.Errorf("cannot read %s", f)}
		}
		fi, _ := fh.Stat()
		p := newXferBar(stderr, tty, "staging "+filepath.Base(f), fi.Size())
		var staged struct {
			File string `json:"file"`
		}
		err = c.do(ctx, "POST", "/files", &xferReader{r: fh, p: p}, &staged)
		fh.Close()
		p.done()
		if err != nil {
			return err
		}
		req.Files = append(req.Files, gateway.SourceFile{Path: staged.File, Name: filepath.Base(f)})
	}
	body, _ := json.Marshal(req)
	var st gateway.Status
	if err := c.do(ctx, "POST", "/transfers", bytes.NewReader(body), &st); err != nil {
		var ee *exitError
		var ae *apiError
		if errors.As(err, &ee) && errors.As(err, &ae) {
			for _, f := range ae.Findings {
				fmt.Fprintf(stderr, "finding: %s in file %d at %s (%s)\n", f.Kind, f.File, orText(f.Location), f.Detector)
			}
		}
		return err
	}
	fmt.Fprintln(stdout, st.ID)
	if !wait {
		return nil
	}
	p := newXferBar(stderr, tty, "uploading", st.Total)
	for {
		if err := c.do(ctx, "GET", "/transfers/"+url.PathEscape(st.ID), nil, &st); err != nil {
			p.done()
			return err
		}
		p.set(st.Sent)
		if st.Status != gateway.JobUploading {
			break
		}
		select {
		case <-ctx.Done():
			p.done()
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	p.done()
	fmt.Fprintf(stderr, "%s %s\n", st.ID, st.Status)
	return statusExit(st)
}

func orText(s string) string {
	if s == "" {
		return "text"
	}
	return s
}

func statusExit(st gateway.Status) error {
	switch st.Status {
	case gateway.JobFailed, gateway.JobCancelled, gateway.JobWithdrawn, gateway.InRetry:
		return &exitError{code: exitNotDone, err: fmt.Errorf("transfer %s %s: %s %s", st.ID, st.Status, st.Code, st.Error)}
	case gateway.JobBlocked:
		return &exitError{code: exitRefused, err: fmt.Errorf("transfer %s blocked: %s %s", st.ID, st.Code, st.Error)}
	}
	return nil
}

func (c *gwClient) list(ctx context.Context, stdout io.Writer) error {
	var out struct {
		Transfers []gateway.Status `json:"transfers"`
	}
	if err := c.do(ctx, "GET", "/transfers", nil, &out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%-34s %-8s %-12s %-8s %-10s %s\n", "ID", "DIR", "PEER", "PURPOSE", "STATUS", "DETAIL")
	for _, s := range out.Transfers {
		detail := s.Code
		if s.Direction == "outbound" && s.Total > 0 {
			detail = fmt.Sprintf("%d/%d bytes %s", s.Sent, s.Total, s.Code)
		}
		if s.Direction == "inbound" && s.Status == gateway.InDelivered {
			detail = fmt.Sprintf("%d resources, %d files", len(s.Resources), len(s.Files))
		}
		fmt.Fprintf(stdout, "%-34s %-8s %-12s %-8s %-10s %s\n", s.ID, s.Direction, s.Peer, s.Purpose, s.Status, strings.TrimSpace(detail))
	}
	return nil
}

func printStatus(w io.Writer, s gateway.Status) {
	fmt.Fprintf(w, "id:        %s\ndirection: %s\npeer:      %s\npurpose:   %s\nstatus:    %s\n", s.ID, s.Direction, s.Peer, s.Purpose, s.Status)
	if s.Stage != "" {
		fmt.Fprintf(w, "stage:     %s\n", s.Stage)
	}
	if s.Total > 0 {
		fmt.Fprintf(w, "progress:  %d/%d bytes\n", s.Sent, s.Total)
	}
	if s.Code != "" {
		fmt.Fprintf(w, "error:     %s %s\n", s.Code, s.Error)
	}
	for _, f := range s.Findings {
		fmt.Fprintf(w, "finding:   %s in file %d at %s\n", f.Kind, f.File, orText(f.Location))
	}
	for _, r := range s.Resources {
		fmt.Fprintf(w, "resource:  %s\n", r)
	}
	for _, f := range s.Files {
		fmt.Fprintf(w, "file:      %s\n", f)
	}
}

// receive asks the gateway to take in what is waiting, then copies the
// files of every delivered transfer not yet in out into out/<id>/.
func (c *gwClient) receive(ctx context.Context, out string, wait time.Duration, stdout, stderr io.Writer) error {
	deadline := time.Now().Add(wait)
	for {
		w := min(time.Until(deadline), 30*time.Second).Round(time.Second)
		if w < 0 {
			w = 0
		}
		var got struct {
			Received []gateway.Status `json:"received"`
		}
		if err := c.do(ctx, "POST", "/inbox?wait="+w.String(), nil, &got); err != nil {
			return err
		}
		var all struct {
			Transfers []gateway.Status `json:"transfers"`
		}
		if err := c.do(ctx, "GET", "/transfers", nil, &all); err != nil {
			return err
		}
		n, failed := 0, 0
		for _, s := range all.Transfers {
			if s.Direction != "inbound" {
				continue
			}
			if s.Status != gateway.InDelivered {
				for _, r := range got.Received {
					if r.ID == s.ID {
						fmt.Fprintf(stderr, "%s from %s: %s %s %s\n", s.ID, s.Peer, s.Status, s.Code, s.Error)
						failed++
					}
				}
				continue
			}
			marker := filepath.Join(out, s.ID, ".received")
			if _, err := os.Stat(marker); err == nil {
				continue
			}
			if err := os.MkdirAll(filepath.Join(out, s.ID), 0o700); err != nil {
				return err
			}
			for _, f := range s.Files {
				name := filepath.Base(f)
				if err := c.download(ctx, s.ID, name, filepath.Join(out, s.ID, name)); err != nil {
					return err
				}
			}
			if err := os.WriteFile(marker, nil, 0o600); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s from %s (%s): %d resources imported into the FHIR server, %d files in %s\n",
				s.ID, s.Peer, s.Purpose, len(s.Resources), len(s.Files), filepath.Join(out, s.ID))
			n++
		}
		if failed > 0 {
			return &exitError{code: exitNotDone, err: fmt.Errorf("%d transfer(s) could not be delivered", failed)}
		}
		if n > 0 || !time.Now().Before(deadline) {
			if n == 0 {
				fmt.Fprintln(stderr, "nothing new received")
			}
			return nil
		}
	}
}

// download writes one delivered file atomically (temp file, rename).
func (c *gwClient) download(ctx context.Context, id, name, dst string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+"/received/"+url.PathEscape(id)+"/files/"+url.PathEscape(name), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	res, err := c.hc.Do(req)
	if err != nil {
		return &exitError{code: exitUnreachable, err: errors.New("the gateway is unreachable")}
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return fmt.Errorf("download %s: status %d", name, res.StatusCode)
	}
	f, err := os.CreateTemp(filepath.Dir(dst), ".part-*")
	if err != nil {
		return err
	}
	_, err = io.Copy(f, res.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	return os.Rename(f.Name(), dst)
}

// progress draws a bar on a terminal and plain lines (every 10%) otherwise.
type xferBar struct {
	w     io.Writer
	tty   bool
	label string
	total int64
	cur   int64
	last  int64 // last decile printed (plain mode)
	drawn time.Time
}

func newXferBar(w io.Writer, tty bool, label string, total int64) *xferBar {
	return &xferBar{w: w, tty: tty, label: label, total: total, last: -1}
}

func (p *xferBar) set(n int64) {
	p.cur = n
	if p.total <= 0 {
		return
	}
	pct := p.cur * 100 / p.total
	if p.tty {
		if time.Since(p.drawn) < 100*time.Millisecond && p.cur < p.total {
			return
		}
		p.drawn = time.Now()
		const width = 30
		fill := int(pct * width / 100)
		fmt.Fprintf(p.w, "\r%-12s [%s%s] %3d%% %s / %s", p.label, strings.Repeat("=", fill), strings.Repeat(" ", width-fill), pct, mib(p.cur), mib(p.total))
		return
	}
	if d := pct / 10; d > p.last {
		p.last = d
		fmt.Fprintf(p.w, "%s %d%% (%s of %s)\n", p.label, pct, mib(p.cur), mib(p.total))
	}
}

func (p *xferBar) done() {
	if p.tty && p.total > 0 {
		fmt.Fprintln(p.w)
	}
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

type xferReader struct {
	r io.Reader
	p *xferBar
	n int64
}

func (r *xferReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	r.n += int64(n)
	r.p.set(r.n)
	return n, err
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminalWriter(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
