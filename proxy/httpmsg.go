package proxy

// The HTTP/1.1 messages the proxy reads and writes (RFC 9112), kept to
// what a forward proxy needs: heads, and bodies framed by Content-Length,
// by chunks, or by the connection's end. net/http is not used on purpose:
// linked into the fence binary it cost every fence process ≈ 0.35 ms of
// start-up (its package initialisation and crypto/tls's), and the command
// line starts one process per sandboxed command.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"sort"
	"strconv"
	"strings"
)

const (
	// maxHeaderBytes bounds a request's head, request line included.
	maxHeaderBytes = 64 << 10
	// maxResponseHeaderBytes bounds an upstream response's head.
	maxResponseHeaderBytes = 1 << 20
)

var errHeaderTooLarge = errors.New("header too large")

// header holds a message's fields under their canonical names.
type header = textproto.MIMEHeader

// requestHead is a request line and its header fields.
type requestHead struct {
	method, target string
	minor          int // HTTP/1.minor
	h              header
}

// readRequestHead reads a request's head. An error means the connection
// cannot be read any further as HTTP.
func readRequestHead(br *bufio.Reader) (*requestHead, error) {
	budget := maxHeaderBytes
	line, err := readLine(br, &budget)
	if err == nil && line == "" {
		// RFC 9112 §2.2: an empty line before a request line is ignored.
		line, err = readLine(br, &budget)
	}
	if err != nil {
		return nil, err
	}
	method, rest, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || !validToken(method) || target == "" || !validTarget(target) {
		return nil, fmt.Errorf("malformed request line %q", line)
	}
	minor, ok := parseVersion(proto)
	if !ok {
		return nil, fmt.Errorf("unsupported protocol %q", proto)
	}
	h, err := readHeader(br, &budget)
	if err != nil {
		return nil, err
	}
	return &requestHead{method: method, target: target, minor: minor, h: h}, nil
}

// keepAlive reports whether the client asks for its connection to stay
// open after the answer.
func (r *requestHead) keepAlive() bool { return persistent(r.h, r.minor) }

// responseHead is a status line and its header fields.
type responseHead struct {
	code   int
	reason string
	minor  int
	h      header
}

// readResponseHead reads an upstream response's head.
func readResponseHead(br *bufio.Reader) (*responseHead, error) {
	budget := maxResponseHeaderBytes
	line, err := readLine(br, &budget)
	if err != nil {
		return nil, err
	}
	proto, rest, _ := strings.Cut(line, " ")
	code, reason, _ := strings.Cut(rest, " ")
	minor, ok := parseVersion(proto)
	if !ok || len(code) != 3 || !validValue(reason) {
		return nil, fmt.Errorf("malformed status line %q", line)
	}
	n, err := strconv.Atoi(code)
	if err != nil || n < 100 {
		return nil, fmt.Errorf("malformed status line %q", line)
	}
	h, err := readHeader(br, &budget)
	if err != nil {
		return nil, err
	}
	return &responseHead{code: n, reason: reason, minor: minor, h: h}, nil
}

// keepAlive reports whether the upstream lets its connection be reused.
func (r *responseHead) keepAlive() bool { return persistent(r.h, r.minor) }

// persistent reports whether a message of HTTP/1.minor with fields h
// leaves its connection open (RFC 9112 §9.3).
func persistent(h header, minor int) bool {
	if hasToken(h, "Connection", "close") {
		return false
	}
	return minor >= 1 || hasToken(h, "Connection", "keep-alive")
}

// readLine reads one line without its line ending (CRLF, or a bare LF as
// most servers accept), counting its bytes against budget.
func readLine(br *bufio.Reader, budget *int) (string, error) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		*budget -= len(frag)
		if *budget < 0 {
			return "", errHeaderTooLarge
		}
		line = append(line, frag...)
		if err == nil {
			break
		}
		if err != bufio.ErrBufferFull {
			if err == io.EOF && len(line) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return string(line), nil
}

// readHeader reads header fields up to the empty line that ends them.
// Line folding, a space before the colon and control characters are
// refused: a proxy and a server that read such a head differently are
// the stuff of request smuggling.
func readHeader(br *bufio.Reader, budget *int) (header, error) {
	h := header{}
	for {
		line, err := readLine(br, budget)
		if err != nil {
			return nil, err
		}
		if line == "" {
			return h, nil
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || !validToken(name) {
			return nil, fmt.Errorf("malformed header line %q", line)
		}
		value = strings.Trim(value, " \t")
		if !validValue(value) {
			return nil, fmt.Errorf("malformed value of header %q", name)
		}
		k := textproto.CanonicalMIMEHeaderKey(name)
		h[k] = append(h[k], value)
	}
}

func parseVersion(proto string) (minor int, ok bool) {
	switch proto {
	case "HTTP/1.1":
		return 1, true
	case "HTTP/1.0":
		return 0, true
	}
	return 0, false
}

// validToken reports whether s is a token (RFC 9110 §5.6.2).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validValue reports whether s may be a field value or reason phrase: no
// control characters but the tab.
func validValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// validTarget reports whether s may be a request target: visible ASCII.
func validTarget(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// hasToken reports whether a comma-separated field holds token,
// ignoring case.
func hasToken(h header, field, token string) bool {
	for _, v := range h[field] {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// framing is how a message's body is delimited.
type framing int

const (
	noBody     framing = iota
	lengthBody         // Content-Length bytes
	chunkBody          // Transfer-Encoding: chunked
	closeBody          // until the connection ends (responses only)
)

// requestFraming tells how a request's body is delimited (RFC 9112 §6.3).
// With both Transfer-Encoding and Content-Length the chunks decide, and
// the length is dropped. An HTTP/1.0 request has no transfer codings: one
// that names some has faulty framing (RFC 9112 §6.1), and readers
// disagree on where it ends (net/http ignores the field), so it is
// refused.
func requestFraming(req *requestHead) (framing, int64, error) {
	h := req.h
	if te := h["Transfer-Encoding"]; len(te) > 0 {
		if req.minor == 0 {
			return 0, 0, errors.New("Transfer-Encoding in an HTTP/1.0 request")
		}
		if len(te) != 1 || !strings.EqualFold(strings.TrimSpace(te[0]), "chunked") {
			return 0, 0, fmt.Errorf("unsupported transfer coding %q", strings.Join(te, ", "))
		}
		h.Del("Content-Length")
		return chunkBody, 0, nil
	}
	n, ok, err := contentLength(h)
	switch {
	case err != nil:
		return 0, 0, err
	case !ok:
		return noBody, 0, nil
	}
	return lengthBody, n, nil
}

// responseFraming tells how a response to a request of method is
// delimited (RFC 9112 §6.3).
func responseFraming(method string, r *responseHead) (framing, int64, error) {
	if method == "HEAD" || r.code/100 == 1 || r.code == 204 || r.code == 304 {
		return noBody, 0, nil
	}
	if te := r.h["Transfer-Encoding"]; len(te) > 0 {
		if r.minor == 0 {
			// Faulty framing (RFC 9112 §6.1): the body is read until
			// the server closes, as net/http's client does, and the
			// connection is not used again.
			r.h.Del("Content-Length")
			return closeBody, 0, nil
		}
		codings := strings.Split(strings.Join(te, ","), ",")
		if strings.EqualFold(strings.TrimSpace(codings[len(codings)-1]), "chunked") && len(codings) == 1 {
			return chunkBody, 0, nil
		}
		// Another coding than chunked alone: the body ends with the
		// connection, still coded; it cannot be passed on as is.
		return 0, 0, fmt.Errorf("unsupported transfer coding %q", strings.Join(te, ", "))
	}
	n, ok, err := contentLength(r.h)
	switch {
	case err != nil:
		return 0, 0, err
	case !ok:
		return closeBody, 0, nil
	}
	return lengthBody, n, nil
}

// contentLength returns the Content-Length; several fields must agree.
func contentLength(h header) (n int64, ok bool, err error) {
	vs := h["Content-Length"]
	if len(vs) == 0 {
		return 0, false, nil
	}
	for _, v := range vs {
		for _, part := range strings.Split(v, ",") {
			part = strings.TrimSpace(part)
			m, err := strconv.ParseInt(part, 10, 64)
			if err != nil || m < 0 || part[0] == '+' {
				return 0, false, fmt.Errorf("bad Content-Length %q", v)
			}
			if ok && m != n {
				return 0, false, fmt.Errorf("conflicting Content-Length fields %q", strings.Join(vs, ", "))
			}
			n, ok = m, true
		}
	}
	h.Set("Content-Length", strconv.FormatInt(n, 10))
	return n, true, nil
}

// bodyReader returns the reader of a body of the given framing.
func bodyReader(br *bufio.Reader, f framing, n int64) io.Reader {
	switch f {
	case lengthBody:
		return &exactReader{r: br, n: n}
	case chunkBody:
		return &chunkedReader{br: br}
	case closeBody:
		return br
	}
	return eofReader{}
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// exactReader reads n bytes and fails if the stream ends before.
type exactReader struct {
	r io.Reader
	n int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.n {
		p = p[:e.n]
	}
	n, err := e.r.Read(p)
	e.n -= int64(n)
	if err == io.EOF && e.n > 0 {
		err = io.ErrUnexpectedEOF
	}
	if e.n == 0 && err == nil {
		err = io.EOF
	}
	return n, err
}

// chunkedReader decodes a chunked body (RFC 9112 §7.1); the trailer
// fields are in trailer once it returned io.EOF.
type chunkedReader struct {
	br       *bufio.Reader
	left     int64 // bytes of the current chunk not read yet
	needCRLF bool  // the current chunk's data is read, its CRLF not yet
	trailer  header
	err      error
}

func (c *chunkedReader) Read(p []byte) (int, error) {
	for c.err == nil && c.left == 0 {
		c.err = c.nextChunk()
	}
	if c.err != nil {
		return 0, c.err
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.br.Read(p)
	c.left -= int64(n)
	if c.left == 0 {
		c.needCRLF = true
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		c.err = err
	}
	return n, err
}

// nextChunk reads the end of the chunk before and the next chunk's size
// line; after the last chunk, the trailer.
func (c *chunkedReader) nextChunk() error {
	budget := maxHeaderBytes
	if c.needCRLF {
		line, err := readLine(c.br, &budget)
		if err != nil {
			return noEOF(err)
		}
		if line != "" {
			return errors.New("malformed chunked encoding: data after a chunk")
		}
		c.needCRLF = false
		budget = maxHeaderBytes
	}
	line, err := readLine(c.br, &budget)
	if err != nil {
		return noEOF(err)
	}
	size, ext, _ := strings.Cut(line, ";")
	size = strings.TrimRight(size, " \t")
	if size == "" || len(size) > 15 || !validValue(ext) {
		return fmt.Errorf("malformed chunk size line %q", line)
	}
	n, err := strconv.ParseInt(size, 16, 64)
	if err != nil || strings.ContainsAny(size, "+-xX") {
		return fmt.Errorf("malformed chunk size line %q", line)
	}
	if n > 0 {
		c.left = n
		return nil
	}
	c.trailer, err = readHeader(c.br, &budget)
	if err != nil {
		return noEOF(err)
	}
	return io.EOF
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// chunkedWriter encodes a chunked body: one chunk per Write, sent at once
// (a stream of events reaches the client as it comes).
type chunkedWriter struct{ w io.Writer }

func (c chunkedWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	bufs := net.Buffers{[]byte(strconv.FormatInt(int64(len(p)), 16) + "\r\n"), p, []byte("\r\n")}
	if _, err := bufs.WriteTo(c.w); err != nil {
		return 0, err
	}
	return len(p), nil
}

// close ends the body with the last chunk and the trailer fields.
func (c chunkedWriter) close(trailer header) error {
	var b strings.Builder
	b.WriteString("0\r\n")
	writeFields(&b, trailer)
	b.WriteString("\r\n")
	_, err := io.WriteString(c.w, b.String())
	return err
}

// writeHead writes a start line and the fields, in a stable order.
func writeHead(w io.Writer, start string, h header) error {
	var b strings.Builder
	b.WriteString(start)
	b.WriteString("\r\n")
	writeFields(&b, h)
	b.WriteString("\r\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func writeFields(b *strings.Builder, h header) {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range h[k] {
			b.WriteString(k)
			b.WriteString(": ")
			b.WriteString(v)
			b.WriteString("\r\n")
		}
	}
}

// hopHeaders are removed from forwarded messages (RFC 9110 §7.6.1), with
// Upgrade: fence does not carry protocol upgrades on the plain-HTTP path
// (use CONNECT), so an upgraded connection can never outlive the request
// it was decided for. Framing fields are not copied either: each side's
// framing is written for it.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Http2-Settings",
}

// removeHopHeaders removes the hop-by-hop fields: those the Connection
// field names and hopHeaders.
func removeHopHeaders(h header) {
	for _, c := range h["Connection"] {
		for _, f := range strings.Split(c, ",") {
			if f = strings.TrimSpace(f); f != "" {
				h.Del(f)
			}
		}
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
}

// statusText is the reason phrase of the codes the proxy answers with.
func statusText(code int) string {
	switch code {
	case 100:
		return "Continue"
	case 200:
		return "OK"
	case 400:
		return "Bad Request"
	case 403:
		return "Forbidden"
	case 408:
		return "Request Timeout"
	case 431:
		return "Request Header Fields Too Large"
	case 501:
		return "Not Implemented"
	case 502:
		return "Bad Gateway"
	case 505:
		return "HTTP Version Not Supported"
	}
	return ""
}
