package sandbox

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// fill sets every field reachable from v (a pointer) to a value that is
// not its zero value and differs from field to field: a field the codec
// forgets then comes back different.
func fill(v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		fill(v.Elem(), n)
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			fill(v.Field(i), n)
		}
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := 0; i < 2; i++ {
			fill(s.Index(i), n)
		}
		v.Set(s)
	case reflect.String:
		v.SetString("s" + strconv.Itoa(*n) + "\x00é")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(-*n * 1000003))
	case reflect.Uint16:
		v.SetUint(uint64(60000 + *n))
	default:
		panic("fill: a field of kind " + v.Kind().String() + ": teach the codec and this test")
	}
}

// TestMessageWire round-trips a message with every field set, and one
// with none.
func TestMessageWire(t *testing.T) {
	var full message
	n := 0
	fill(reflect.ValueOf(&full), &n)
	for _, m := range []*message{&full, {}, {Kind: "exit", Status: 137, Alone: true}} {
		got, err := unmarshalMessage(marshalMessage(m))
		if err != nil {
			t.Fatalf("%+v: %v", m, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, m)
		}
	}
	// Cut short anywhere, or with a byte too many, it does not decode.
	b := marshalMessage(&full)
	for i := 0; i < len(b); i++ {
		if _, err := unmarshalMessage(b[:i]); err == nil {
			t.Fatalf("decoded %d of %d bytes", i, len(b))
		}
	}
	if _, err := unmarshalMessage(append(b, 0)); err == nil {
		t.Fatal("decoded a trailing byte")
	}
}

// FuzzMessageWire: any bytes decode or fail without panicking, and what
// decodes encodes back to the same bytes.
func FuzzMessageWire(f *testing.F) {
	var full message
	n := 0
	fill(reflect.ValueOf(&full), &n)
	f.Add(marshalMessage(&full))
	f.Add(marshalMessage(&message{Kind: "ready", Debug: []string{"a"}}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := unmarshalMessage(b)
		if err != nil {
			return
		}
		again, err := unmarshalMessage(marshalMessage(m))
		if err != nil || !reflect.DeepEqual(again, m) {
			t.Fatalf("re-encoded message differs: %v\n%+v\n%+v", err, again, m)
		}
	})
}

// A configuration without a command is refused before anything is built
// (any other error would come from the boot, run here in the test).
func TestSetupRefusesNoCommand(t *testing.T) {
	_, err := setup(&initConfig{}, bootState{done: true})
	if err == nil || !strings.Contains(err.Error(), "names no command") {
		t.Fatalf("setup of a configuration without a command: %v", err)
	}
}
