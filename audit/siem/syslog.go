package siem

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// EnterpriseID is the private enterprise number in the structured-data id
// (phix@32473). 32473 is the documentation number of RFC 5612; deployments
// with their own PEN set Syslog.SDID.
const EnterpriseID = 32473

// Syslog delivers entries as RFC 5424 messages over TLS (RFC 5425 framing:
// "MSG-LEN SP SYSLOG-MSG") with a client certificate.
//
// Each batch uses its own connection: write the batch, send close_notify and
// half-close, then wait for the receiver to close its side. A receiver closes
// only after it has read everything we sent (a listener that dies with unread
// data resets the connection instead), so a clean EOF confirms the batch and
// the exporter advances its cursor; anything else makes the batch retry.
type Syslog struct {
	// SinkName names the cursor (default "syslog").
	SinkName string
	// Addr is host:port of the receiver.
	Addr string
	// TLS must carry the client certificate and the receiver's CA.
	TLS *tls.Config
	// Hostname and AppName go into the header (defaults "-" and "phix-audit").
	Hostname, AppName string
	// SDID overrides the structured-data id (default "phix@32473").
	SDID string
	// Timeout bounds one batch (default 30s).
	Timeout time.Duration
}

// Name implements Sink.
func (s *Syslog) Name() string {
	if s.SinkName == "" {
		return "syslog"
	}
	return s.SinkName
}

// Facility and severities (RFC 5424 6.2.1): log audit (13); informational for
// success, warning for failures and security alerts.
const (
	facilityLogAudit = 13
	sevWarning       = 4
	sevInfo          = 6
)

// FormatRFC5424 renders one entry as an RFC 5424 message (without framing).
func FormatRFC5424(e Entry, hostname, appName, sdid string) []byte {
	var ev struct {
		Action  string `json:"action"`
		Outcome string `json:"outcome"`
	}
	_ = json.Unmarshal(e.Body, &ev) // bodies are canonical events; fields are only used for PRI/MSGID
	sev := sevInfo
	if ev.Outcome != "success" || ev.Action == "security-alert" {
		sev = sevWarning
	}
	msgid := headerField(ev.Action, 32)
	b := make([]byte, 0, len(e.Body)+160)
	b = fmt.Appendf(b, "<%d>1 %s %s %s - %s [%s seq=\"%d\"] ",
		facilityLogAudit*8+sev, e.Time.UTC().Format("2006-01-02T15:04:05.000000Z"),
		headerField(hostname, 255), headerField(appName, 48), msgid, sdid, e.Index)
	return append(b, e.Body...)
}

// headerField keeps a header field to printable US-ASCII without spaces.
func headerField(s string, max int) string {
	if s == "" {
		return "-"
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s) && len(out) < max; i++ {
		if c := s[i]; c > 32 && c < 127 {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return "-"
	}
	return string(out)
}

// Deliver implements Sink.
func (s *Syslog) Deliver(ctx context.Context, batch []Entry) error {
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := tls.Dialer{NetDialer: &net.Dialer{}, Config: s.TLS}
	raw, err := d.DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("siem: connect: %w", err)
	}
	conn := raw.(*tls.Conn)
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	host, app, sdid := s.Hostname, s.AppName, s.SDID
	if app == "" {
		app = "phix-audit"
	}
	if sdid == "" {
		sdid = "phix@" + strconv.Itoa(EnterpriseID)
	}
	w := bufio.NewWriterSize(conn, 64<<10)
	for _, e := range batch {
		msg := FormatRFC5424(e, host, app, sdid)
		w.WriteString(strconv.Itoa(len(msg)))
		w.WriteByte(' ')
		w.Write(msg)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("siem: send: %w", err)
	}
	if err := conn.CloseWrite(); err != nil {
		return fmt.Errorf("siem: close write: %w", err)
	}
	// Wait for the receiver to finish reading and close its side.
	_, err = io.Copy(io.Discard, conn)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: %v", ErrNotConfirmed, err)
	}
	return nil
}
