// Package coord is the edge gateway's client for the coordinator's
// transfers API (docs/api/transfers.md): create, status, complete, inbox,
// download with Range, receipts and consent withdrawal, over mutual TLS.
package coord

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"phix/transfer"
)

// Client calls one coordinator. HTTP carries the hospital's mutual-TLS
// client certificate; the identity comes from it alone.
type Client struct {
	Base string // e.g. https://127.0.0.1:8443
	HTTP *http.Client
	// Bulk carries the file bodies (tus uploads, downloads); nil: HTTP.
	// Give it the same certificate over HTTP/1.1 only (HTTP1Transport):
	// a large body costs ≈ 10 % more CPU over HTTP/2 (its framing and
	// flow control), and the server then buffers up to its connection
	// window: 38 MiB against 11.5 MiB of RSS growth for 10 GiB
	// (docs/transfer-e2e.md).
	Bulk *http.Client
}

// BulkHTTP is the client for file bodies: Bulk, or HTTP without one.
func (c *Client) BulkHTTP() *http.Client {
	if c.Bulk != nil {
		return c.Bulk
	}
	return c.HTTP
}

// HTTP1Transport returns a copy of t (its TLS configuration and limits)
// that speaks HTTP/1.1 only, for Client.Bulk.
func HTTP1Transport(t *http.Transport) *http.Transport {
	t = t.Clone()
	t.ForceAttemptHTTP2 = false
	t.Protocols = new(http.Protocols)
	t.Protocols.SetHTTP1(true)
	if t.TLSClientConfig != nil {
		t.TLSClientConfig.NextProtos = []string{"http/1.1"}
	}
	return t
}

// Problem is a problem+json answer of the coordinator (RFC 9457). It holds
// codes and fixed texts only (the coordinator never puts PHI in details).
type Problem struct {
	Status  int      `json:"status"`
	Code    string   `json:"code"`
	Title   string   `json:"title"`
	Detail  string   `json:"detail"`
	Reasons []string `json:"reasons,omitempty"`
}

func (p *Problem) Error() string {
	s := fmt.Sprintf("coordinator: %s %s (%d)", p.Code, p.Title, p.Status)
	if p.Detail != "" {
		s += ": " + p.Detail
	}
	if len(p.Reasons) > 0 {
		s += " [" + strings.Join(p.Reasons, ", ") + "]"
	}
	return s
}

// IsProblem reports whether err is a coordinator Problem with one of codes
// (any code when none are given).
func IsProblem(err error, codes ...string) bool {
	var p *Problem
	if !errors.As(err, &p) {
		return false
	}
	if len(codes) == 0 {
		return true
	}
	for _, c := range codes {
		if p.Code == c {
			return true
		}
	}
	return false
}

// Retryable reports whether err is worth retrying: a network failure, a
// 5xx, a busy upload (423) or a rate limit.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	var p *Problem
	if errors.As(err, &p) {
		return p.Status >= 500 || p.Status == http.StatusLocked || p.Status == http.StatusTooManyRequests
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

func readProblem(res *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	return ParseProblem(res.StatusCode, b)
}

// ParseProblem reads a problem+json body; a body that is not one still
// gives a Problem with code HTTP-<status>.
func ParseProblem(status int, body []byte) *Problem {
	p := &Problem{Status: status}
	if err := json.Unmarshal(body, p); err != nil || p.Code == "" {
		p.Code = "HTTP-" + strconv.Itoa(status)
		p.Title = http.StatusText(status)
	}
	p.Status = status
	return p
}

// Resolve makes a URL the coordinator handed out (capabilities may be
// relative to its base) absolute.
func (c *Client) Resolve(u string) string { return c.url(u) }

func (c *Client) url(path string) string {
	if strings.HasPrefix(path, "https://") || strings.HasPrefix(path, "http://") {
		return path
	}
	return strings.TrimRight(c.Base, "/") + path
}

func (c *Client) doJSON(ctx context.Context, method, path string, body, out any, okStatus ...int) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url(path), rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	ok := res.StatusCode == http.StatusOK
	for _, s := range okStatus {
		ok = ok || res.StatusCode == s
	}
	if !ok {
		return readProblem(res)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, res.Body)
		return nil
	}
	return json.NewDecoder(io.LimitReader(res.Body, 16<<20)).Decode(out)
}

// Create registers a transfer; the answer carries one upload URL per file.
func (c *Client) Create(ctx context.Context, req *transfer.Request) (transfer.TransferView, error) {
	var v transfer.TransferView
	err := c.doJSON(ctx, http.MethodPost, "/v1/transfers", req, &v, http.StatusCreated)
	return v, err
}

// Get returns a transfer; renew asks for fresh upload URLs (sender) and a
// receiver always gets download URLs.
func (c *Client) Get(ctx context.Context, id string, renew bool) (transfer.TransferView, error) {
	var v transfer.TransferView
	p := "/v1/transfers/" + url.PathEscape(id)
	if renew {
		p += "?renew=uploads"
	}
	err := c.doJSON(ctx, http.MethodGet, p, nil, &v)
	return v, err
}

// List lists the hospital's transfers as "sender" or "receiver".
func (c *Client) List(ctx context.Context, role string) ([]transfer.TransferView, error) {
	var out struct {
		Transfers []transfer.TransferView `json:"transfers"`
	}
	err := c.doJSON(ctx, http.MethodGet, "/v1/transfers?role="+url.QueryEscape(role), nil, &out)
	return out.Transfers, err
}

// Complete finalizes an uploaded transfer (idempotent).
func (c *Client) Complete(ctx context.Context, id string) (transfer.TransferView, error) {
	var v transfer.TransferView
	err := c.doJSON(ctx, http.MethodPost, "/v1/transfers/"+url.PathEscape(id)+"/complete", struct{}{}, &v)
	return v, err
}

// Inbox long-polls for ready deliveries (wait ≤ 60 s).
func (c *Client) Inbox(ctx context.Context, wait time.Duration) ([]transfer.TransferView, error) {
	var out struct {
		Deliveries []transfer.TransferView `json:"deliveries"`
	}
	err := c.doJSON(ctx, http.MethodGet, "/v1/inbox?wait="+wait.String(), nil, &out)
	return out.Deliveries, err
}

// Receipt posts the receiver's signed receipt.
func (c *Client) Receipt(ctx context.Context, id string, rr transfer.ReceiptRequest) error {
	return c.doJSON(ctx, http.MethodPost, "/v1/transfers/"+url.PathEscape(id)+"/receipt", rr, nil, http.StatusCreated, http.StatusNoContent)
}

// Withdraw withdraws a consent at the coordinator: transfers bound to it
// stop and their ciphertext is erased.
func (c *Client) Withdraw(ctx context.Context, consentID string) error {
	return c.doJSON(ctx, http.MethodPost, "/v1/consents/"+url.PathEscape(consentID)+"/withdraw", struct{}{}, nil, http.StatusCreated, http.StatusNoContent)
}

// Cancel cancels an upload (tus termination), which cancels the transfer
// and erases its ciphertext.
func (c *Client) Cancel(ctx context.Context, uploadURL string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, c.url(uploadURL), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Tus-Resumable", "1.0.0")
	res, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusNoContent && res.StatusCode != http.StatusOK {
		return readProblem(res)
	}
	return nil
}

// Download streams the ciphertext of one file from offset (Range) into w.
// It returns the bytes written; on a broken connection the caller resumes
// from offset+n.
func (c *Client) Download(ctx context.Context, downloadURL string, offset int64, w io.Writer) (int64, error) {
	body, err := c.OpenDownload(ctx, downloadURL, offset)
	if err != nil {
		return 0, err
	}
	defer body.Close()
	return io.Copy(w, body)
}

// OpenDownload starts the download of one file from offset (Range) and
// returns its body, for a caller that reads it as a stream; a body ending
// early is resumed by opening again at the offset reached. Nothing left
// past offset is an empty body.
func (c *Client) OpenDownload(ctx context.Context, downloadURL string, offset int64) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(downloadURL), nil)
	if err != nil {
		return nil, err
	}
	if offset > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
	}
	res, err := c.BulkHTTP().Do(req)
	if err != nil {
		return nil, err
	}
	switch {
	case res.StatusCode == http.StatusOK && offset == 0, res.StatusCode == http.StatusPartialContent && offset > 0:
		return res.Body, nil
	case res.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		res.Body.Close()
		return http.NoBody, nil
	default:
		defer res.Body.Close()
		if res.StatusCode < 300 {
			return nil, fmt.Errorf("coordinator: download: unexpected status %d for offset %d", res.StatusCode, offset)
		}
		return nil, readProblem(res)
	}
}
