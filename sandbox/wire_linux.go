package sandbox

import (
	"encoding/binary"
	"errors"
)

// The messages between a client and its sandbox init are encoded by hand:
// both ends are always the same binary (a warm init is handed only to a
// client of the daemon's own binary), so the format need not be stable or
// self-describing, and encoding/json cost a fresh process about 0.3 ms of
// CPU to build its reflection tables before the first message, on the
// sandbox's start-up path. Every field of every type is listed once in
// its encode and once in its decode; TestMessageWire sets every field by
// reflection and fails when one is left out.
//
// Integers are varints, a bool one byte (0 or 1), a string or a slice its
// length followed by its elements. A nil slice and an empty one both
// decode as nil.

// errWire is a message that does not decode: cut short, an impossible
// length, a bad bool, or bytes left over.
var errWire = errors.New("malformed message")

type wireWriter struct{ b []byte }

func (w *wireWriter) uint(v uint64) { w.b = binary.AppendUvarint(w.b, v) }
func (w *wireWriter) int(v int64)   { w.b = binary.AppendVarint(w.b, v) }

func (w *wireWriter) bool(v bool) {
	if v {
		w.b = append(w.b, 1)
	} else {
		w.b = append(w.b, 0)
	}
}

func (w *wireWriter) string(s string) {
	w.uint(uint64(len(s)))
	w.b = append(w.b, s...)
}

func (w *wireWriter) strings(ss []string) { writeSlice(w, ss, w.string) }
func (w *wireWriter) ints(vs []int)       { writeSlice(w, vs, func(v int) { w.int(int64(v)) }) }

// writeSlice writes the length of vs and each element with elem.
func writeSlice[T any](w *wireWriter, vs []T, elem func(T)) {
	w.uint(uint64(len(vs)))
	for _, v := range vs {
		elem(v)
	}
}

// wireReader decodes what a wireWriter wrote. The first error sticks:
// every later read returns a zero value, and err says what went wrong.
type wireReader struct {
	b   []byte
	err error
}

func (r *wireReader) fail() {
	r.err, r.b = errWire, nil
}

func (r *wireReader) uint() uint64 { return readVarint(r, binary.Uvarint) }
func (r *wireReader) int() int64   { return readVarint(r, binary.Varint) }

// readVarint reads one varint with decode (binary.Uvarint or Varint).
func readVarint[T uint64 | int64](r *wireReader, decode func([]byte) (T, int)) T {
	if r.err != nil {
		return 0
	}
	v, n := decode(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *wireReader) bool() bool {
	if r.err != nil {
		return false
	}
	if len(r.b) == 0 || r.b[0] > 1 {
		r.fail()
		return false
	}
	v := r.b[0] == 1
	r.b = r.b[1:]
	return v
}

// count reads a length of a slice whose elements take at least one byte
// each: a larger one cannot be right and would only allocate.
func (r *wireReader) count() int {
	n := r.uint()
	if n > uint64(len(r.b)) {
		r.fail()
		return 0
	}
	return int(n)
}

func (r *wireReader) string() string {
	n := r.count()
	if r.err != nil {
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *wireReader) strings() []string { return readSlice(r, r.string) }
func (r *wireReader) ints() []int       { return readSlice(r, func() int { return int(r.int()) }) }

// readSlice reads what writeSlice wrote, each element with elem; nil for
// none.
func readSlice[T any](r *wireReader, elem func() T) []T {
	n := r.count()
	if n == 0 {
		return nil
	}
	vs := make([]T, n)
	for i := range vs {
		vs[i] = elem()
	}
	return vs
}

// encode appends m to w.
func (m *message) encode(w *wireWriter) {
	w.string(m.Kind)
	w.bool(m.Config != nil)
	if m.Config != nil {
		m.Config.encode(w)
	}
	w.strings(m.Debug)
	w.strings(m.Notices)
	w.bool(m.Sync)
	w.string(m.Error)
	w.string(m.Hint)
	w.int(int64(m.Status))
	w.bool(m.Alone)
	w.bool(m.Offline)
	w.string(m.LeftFor)
	w.int(int64(m.KilledBy))
	w.int(int64(m.Port))
	writeSlice(w, m.Stamps, func(st stamp) {
		w.string(st.Name)
		w.int(st.At)
	})
}

func (m *message) decode(r *wireReader) {
	m.Kind = r.string()
	if r.bool() {
		m.Config = &initConfig{}
		m.Config.decode(r)
	}
	m.Debug = r.strings()
	m.Notices = r.strings()
	m.Sync = r.bool()
	m.Error = r.string()
	m.Hint = r.string()
	m.Status = int(r.int())
	m.Alone = r.bool()
	m.Offline = r.bool()
	m.LeftFor = r.string()
	m.KilledBy = int(r.int())
	m.Port = int(r.int())
	m.Stamps = readSlice(r, func() stamp { return stamp{Name: r.string(), At: r.int()} })
}

func (c *initConfig) encode(w *wireWriter) {
	w.strings(c.Args)
	w.string(c.Dir)
	w.strings(c.Env)
	w.bool(c.TTY)
	w.uint(uint64(c.Rows))
	w.uint(uint64(c.Cols))
	w.bool(c.PassStderr)
	w.bool(c.PassStdout)
	w.bool(c.StopToLeave)
	w.string(c.Relay)
	w.ints(c.LocalOutbound)
	w.ints(c.Publish)
	for _, l := range c.Mounts.lists() {
		w.strings(*l)
	}
	writeSlice(w, c.Landlock.Writable, func(rule landlockRule) {
		w.string(rule.Path)
		w.bool(rule.File)
	})
	w.bool(c.Landlock.RestrictBind)
	w.ints(c.Landlock.BindPorts)
	w.bool(c.DenyMPTCP)
	w.strings(c.AllowDegraded)
	w.bool(c.Debug)
	w.int(c.T0)
	w.int(int64(c.Umask))
}

func (c *initConfig) decode(r *wireReader) {
	c.Args = r.strings()
	c.Dir = r.string()
	c.Env = r.strings()
	c.TTY = r.bool()
	c.Rows = r.uint16()
	c.Cols = r.uint16()
	c.PassStderr = r.bool()
	c.PassStdout = r.bool()
	c.StopToLeave = r.bool()
	c.Relay = r.string()
	c.LocalOutbound = r.ints()
	c.Publish = r.ints()
	for _, l := range c.Mounts.lists() {
		*l = r.strings()
	}
	c.Landlock.Writable = readSlice(r, func() landlockRule { return landlockRule{Path: r.string(), File: r.bool()} })
	c.Landlock.RestrictBind = r.bool()
	c.Landlock.BindPorts = r.ints()
	c.DenyMPTCP = r.bool()
	c.AllowDegraded = r.strings()
	c.Debug = r.bool()
	c.T0 = r.int()
	c.Umask = int(r.int())
}

func (r *wireReader) uint16() uint16 {
	v := r.uint()
	if v > 0xffff {
		r.fail()
		return 0
	}
	return uint16(v)
}

// lists are the plan's lists in a fixed order, for the codec.
func (mp *mountPlan) lists() []*[]string {
	return []*[]string{&mp.Expose, &mp.Writable, &mp.Pins, &mp.ReadOnly, &mp.Session, &mp.MaskDirs, &mp.MaskFiles}
}

// marshalMessage encodes m.
func marshalMessage(m *message) []byte {
	w := &wireWriter{b: make([]byte, 0, 512)}
	m.encode(w)
	return w.b
}

// unmarshalMessage decodes what marshalMessage encoded, all of b.
func unmarshalMessage(b []byte) (*message, error) {
	r := &wireReader{b: b}
	m := &message{}
	m.decode(r)
	if r.err == nil && len(r.b) > 0 {
		r.err = errWire
	}
	if r.err != nil {
		return nil, r.err
	}
	return m, nil
}
