package siem

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"
)

// RELP delivers entries as RFC 5424 messages over RELP (the Reliable Event
// Logging Protocol of librelp and rsyslog's imrelp) inside TLS with mutual
// certificates.
//
// Unlike plain RFC 5425 syslog, RELP acknowledges every message: the receiver
// answers each "syslog" command with "rsp 200 OK" once the message is in its
// queue. The sink remembers the highest index the receiver acknowledged and
// never sends an acknowledged index again, so a receiver that stops in the
// middle of a batch gets only the unacknowledged tail when it comes back:
// every event arrives exactly once (docs/audit.md, "Delivery guarantees").
//
// One session is kept open across batches and reopened after any error. A
// RELP value is not safe for concurrent Deliver calls; the Exporter makes
// them one at a time.
type RELP struct {
	// SinkName names the cursor (default "relp").
	SinkName string
	// Addr is host:port of the receiver (rsyslog imrelp with tls="on").
	Addr string
	// TLS must carry the client certificate and the receiver's CA.
	TLS *tls.Config
	// Hostname and AppName go into the header (defaults "-" and "phix-audit").
	Hostname, AppName string
	// SDID overrides the structured-data id (default "phix@32473").
	SDID string
	// Timeout bounds one batch (default 30s).
	Timeout time.Duration
	// Window bounds the messages in flight without a response. The default,
	// 1, is stop-and-wait: librelp answers each message as soon as it is
	// queued, so a receiver that stops gracefully never leaves a processed
	// message unanswered and nothing is sent twice. A wider window (librelp
	// allows 128) is faster, but a stopping rsyslog can process a run of
	// pipelined messages without answering them; those are then sent again
	// (docs/audit.md measures both).
	Window int

	mu     sync.Mutex
	sess   *relpSession
	acked  int64 // highest index the receiver acknowledged, if anyAck
	anyAck bool
}

// Name implements Sink.
func (s *RELP) Name() string {
	if s.SinkName == "" {
		return "relp"
	}
	return s.SinkName
}

// Close ends the session politely ("close" command), if one is open.
func (s *RELP) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sess == nil {
		return nil
	}
	err := s.sess.close(5 * time.Second)
	s.sess = nil
	return err
}

// Deliver implements Sink. It returns nil only when the receiver acknowledged
// every entry of the batch (now or in an earlier attempt).
func (s *RELP) Deliver(ctx context.Context, batch []Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	// Skip what an earlier attempt already got acknowledged: the exporter
	// retries whole batches, RELP lets us resend only the tail.
	todo := batch
	for s.anyAck && len(todo) > 0 && todo[0].Index <= s.acked {
		todo = todo[1:]
	}
	if len(todo) == 0 {
		return nil
	}
	if s.sess == nil {
		sess, err := s.open(ctx)
		if err != nil {
			return err
		}
		s.sess = sess
	}
	err := s.send(ctx, todo)
	if err != nil {
		s.sess.abort()
		s.sess = nil
	}
	return err
}

func (s *RELP) open(ctx context.Context) (*relpSession, error) {
	d := tls.Dialer{NetDialer: &net.Dialer{}, Config: s.TLS}
	raw, err := d.DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return nil, fmt.Errorf("siem: relp connect: %w", err)
	}
	sess := &relpSession{conn: raw, r: bufio.NewReaderSize(raw, 16<<10), w: bufio.NewWriterSize(raw, 64<<10)}
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
	}
	// The offer lists the commands we use; librelp insists on "syslog".
	offer := "relp_version=0\nrelp_software=phix\ncommands=syslog"
	txnr := sess.next()
	if err := sess.write(txnr, "open", []byte(offer)); err != nil {
		raw.Close()
		return nil, err
	}
	if err := sess.w.Flush(); err != nil {
		raw.Close()
		return nil, fmt.Errorf("siem: relp open: %w", err)
	}
	f, err := readRELPFrame(sess.r)
	if err != nil {
		raw.Close()
		return nil, fmt.Errorf("siem: relp open: %w", err)
	}
	if f.txnr != txnr || f.cmd != "rsp" || !rspOK(f.data) {
		raw.Close()
		return nil, fmt.Errorf("siem: relp open refused: %s", firstLineOf(f.data))
	}
	return sess, nil
}

// send writes the messages with at most Window unanswered, and reads the
// responses as they come; s.acked advances with each 200 in index order.
func (s *RELP) send(ctx context.Context, todo []Entry) error {
	sess := s.sess
	if dl, ok := ctx.Deadline(); ok {
		_ = sess.conn.SetDeadline(dl)
	}
	window := s.Window
	if window <= 0 {
		window = 1
	}
	host, app, sdid := s.Hostname, s.AppName, s.SDID
	if app == "" {
		app = "phix-audit"
	}
	if sdid == "" {
		sdid = "phix@" + strconv.Itoa(EnterpriseID)
	}
	type pending struct {
		txnr  int
		index int64
	}
	inflight := make([]pending, 0, window)
	closing := false
	readOne := func() error {
		f, err := readRELPFrame(sess.r)
		if err != nil {
			if closing {
				return fmt.Errorf("%w: relp: the receiver closed the session", ErrNotConfirmed)
			}
			return fmt.Errorf("%w: relp: %v", ErrNotConfirmed, err)
		}
		if f.cmd == "serverclose" {
			// A hint, not the end: responses to what the receiver already
			// processed may still follow, and each one we miss would be
			// sent again. Keep reading until the connection ends.
			closing = true
			return nil
		}
		if f.cmd != "rsp" || len(inflight) == 0 || f.txnr != inflight[0].txnr {
			return fmt.Errorf("%w: relp: unexpected frame %q (txnr %d)", ErrNotConfirmed, f.cmd, f.txnr)
		}
		if !rspOK(f.data) {
			return fmt.Errorf("%w: relp: receiver refused event %d: %s", ErrNotConfirmed, inflight[0].index, firstLineOf(f.data))
		}
		s.acked, s.anyAck = inflight[0].index, true
		inflight = inflight[1:]
		return nil
	}
	sent := 0
	for _, e := range todo {
		if closing {
			break // send nothing more on a closing session
		}
		for len(inflight) >= window && !closing {
			if err := sess.w.Flush(); err != nil {
				return fmt.Errorf("%w: relp send: %v", ErrNotConfirmed, err)
			}
			if err := readOne(); err != nil {
				return err
			}
		}
		if closing {
			break
		}
		txnr := sess.next()
		if err := sess.write(txnr, "syslog", FormatRFC5424(e, host, app, sdid)); err != nil {
			return err
		}
		inflight = append(inflight, pending{txnr, e.Index})
		sent++
	}
	if err := sess.w.Flush(); err != nil {
		return fmt.Errorf("%w: relp send: %v", ErrNotConfirmed, err)
	}
	for len(inflight) > 0 {
		if err := readOne(); err != nil {
			return err
		}
	}
	if sent < len(todo) {
		return fmt.Errorf("%w: relp: the receiver closed the session after %d of %d events", ErrNotConfirmed, sent, len(todo))
	}
	return nil
}

// relpSession is one RELP connection.
type relpSession struct {
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	txnr int
}

// next returns the next transaction number: 1..999999999, then 1 again.
func (s *relpSession) next() int {
	s.txnr++
	if s.txnr > 999999999 {
		s.txnr = 1
	}
	return s.txnr
}

// write buffers one frame: TXNR SP COMMAND SP DATALEN [SP DATA] LF.
func (s *relpSession) write(txnr int, cmd string, data []byte) error {
	s.w.WriteString(strconv.Itoa(txnr))
	s.w.WriteByte(' ')
	s.w.WriteString(cmd)
	s.w.WriteByte(' ')
	s.w.WriteString(strconv.Itoa(len(data)))
	if len(data) > 0 {
		s.w.WriteByte(' ')
		s.w.Write(data)
	}
	if err := s.w.WriteByte('\n'); err != nil {
		return fmt.Errorf("%w: relp send: %v", ErrNotConfirmed, err)
	}
	return nil
}

func (s *relpSession) close(timeout time.Duration) error {
	_ = s.conn.SetDeadline(time.Now().Add(timeout))
	defer s.conn.Close()
	txnr := s.next()
	if err := s.write(txnr, "close", nil); err != nil {
		return err
	}
	if err := s.w.Flush(); err != nil {
		return err
	}
	for {
		f, err := readRELPFrame(s.r)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if f.cmd == "rsp" && f.txnr == txnr {
			return nil
		}
	}
}

func (s *relpSession) abort() { s.conn.Close() }

// relpFrame is one parsed frame.
type relpFrame struct {
	txnr int
	cmd  string
	data []byte
}

// maxRELPData bounds a frame we accept from a receiver (responses are tiny).
const maxRELPData = 128 << 10

// readRELPFrame parses one frame (RELP: "TXNR SP COMMAND SP DATALEN [SP DATA] LF").
func readRELPFrame(r *bufio.Reader) (relpFrame, error) {
	var f relpFrame
	tok := func(max int) (string, byte, error) {
		b := make([]byte, 0, 16)
		for {
			c, err := r.ReadByte()
			if err != nil {
				return "", 0, err
			}
			if c == ' ' || c == '\n' {
				return string(b), c, nil
			}
			if len(b) >= max {
				return "", 0, errors.New("relp: header field too long")
			}
			b = append(b, c)
		}
	}
	s, sep, err := tok(9)
	if err != nil {
		return f, err
	}
	if sep != ' ' {
		return f, errors.New("relp: malformed frame header")
	}
	if f.txnr, err = strconv.Atoi(s); err != nil || f.txnr < 0 {
		return f, errors.New("relp: bad transaction number")
	}
	if f.cmd, sep, err = tok(32); err != nil {
		return f, err
	}
	if sep != ' ' || f.cmd == "" {
		return f, errors.New("relp: malformed frame header")
	}
	s, sep, err = tok(9)
	if err != nil {
		return f, err
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > maxRELPData {
		return f, errors.New("relp: bad data length")
	}
	switch {
	case n == 0 && sep == '\n':
		return f, nil
	case n == 0 || sep != ' ':
		return f, errors.New("relp: malformed frame header")
	}
	f.data = make([]byte, n+1)
	if _, err := io.ReadFull(r, f.data); err != nil {
		return f, err
	}
	if f.data[n] != '\n' {
		return f, errors.New("relp: missing frame trailer")
	}
	f.data = f.data[:n]
	return f, nil
}

// rspOK reports whether a response's data starts with status 200.
func rspOK(data []byte) bool {
	return len(data) >= 3 && string(data[:3]) == "200" && (len(data) == 3 || data[3] == ' ' || data[3] == '\n')
}

// firstLineOf returns a response's status line, bounded, for error messages.
// Responses carry status text from the receiver, never event content.
func firstLineOf(b []byte) string {
	for i, c := range b {
		if c == '\n' {
			b = b[:i]
			break
		}
	}
	if len(b) > 80 {
		b = b[:80]
	}
	return string(b)
}
