package control

import (
	"bytes"
	"encoding/json"
	"net"
	"reflect"
	"testing"
)

// Request.MarshalJSON writes what encoding/json writes from the field tags,
// for every field set and for every field empty, with strings that need
// escaping. A field added to Request or Spec without MarshalJSON knowing it
// fails here: the test sets every field by reflection.
func TestRequestJSON(t *testing.T) {
	weird := "a\"b\\c\n\r\t\b\f\x00\x01\x1f\x7f<>&\u2028\u2029\xff\xfe\xed\xa0\x80é€😀"
	full := Request{Op: "open", Spec: &Spec{Dir: "/home/u/" + weird, Settings: "s" + weird, Templates: []string{"npm", weird},
		Publish: []int{8080, -1, 0}, Env: map[string]string{"HOME": "/home/u", "XDG_" + weird: weird, "A": ""}},
		ID: "id" + weird, Root: "/r", Context: "ctx" + weird, Init: true, Exe: "1:2:3:4.5"}
	// Every field of full is set: a new field must be set here too.
	for _, v := range []reflect.Value{reflect.ValueOf(full), reflect.ValueOf(*full.Spec)} {
		for i := 0; i < v.NumField(); i++ {
			if v.Field(i).IsZero() {
				t.Fatalf("%s.%s is not set in the test value: add it, and teach MarshalJSON", v.Type().Name(), v.Type().Field(i).Name)
			}
		}
	}
	for _, r := range []Request{full, {}, {Op: "status", Spec: &Spec{}}, {Op: OpInit, Context: "c"}} {
		sameJSON(t, r)
	}
}

// sameJSON checks that r's MarshalJSON writes what encoding/json writes
// from the field tags, byte for byte: [Conn.Send] sends it as it is,
// where json.Encoder would compact it and escape HTML characters.
func sameJSON(t *testing.T, r Request) {
	t.Helper()
	// requestFields is Request without its MarshalJSON method.
	type requestFields Request
	got, err := r.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal(requestFields(r))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("MarshalJSON:\n got %s\nwant %s", got, want)
	}
}

// TestSend: Send writes what json.Encoder writes for the request, in one
// write.
func TestSend(t *testing.T) {
	req := Request{Op: OpOpen, Spec: &Spec{Dir: "/home/u/<p>", Templates: []string{"npm"}, Env: map[string]string{"HOME": "/home/u"}},
		Context: "ctx\u2028", Init: true, Exe: "1:2"}
	var want bytes.Buffer
	if err := json.NewEncoder(&want).Encode(req); err != nil {
		t.Fatal(err)
	}
	client, daemon := net.Pipe()
	defer client.Close()
	defer daemon.Close()
	sent := make(chan error, 1)
	go func() { sent <- (&Conn{c: client}).Send(req) }()
	// A pipe's read takes at most one write.
	got := make([]byte, want.Len()+1)
	n, err := daemon.Read(got)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if string(got[:n]) != want.String() {
		t.Errorf("Send wrote\n%q\nwant\n%q", got[:n], want.String())
	}
}

// FuzzRequestJSON: for any strings, MarshalJSON writes what encoding/json
// writes.
func FuzzRequestJSON(f *testing.F) {
	f.Add("open", "/home/u/p", "HOME", "/home/u", "ctx", "tmpl")
	f.Add("\b\f\x00", "\xed\xa0\x80", "<&>", "\u2028", "\xff", "é")
	f.Fuzz(func(t *testing.T, op, dir, key, value, ctx, tmpl string) {
		sameJSON(t, Request{Op: op, Spec: &Spec{Dir: dir, Settings: value, Templates: []string{tmpl}, Env: map[string]string{key: value}},
			ID: key, Context: ctx, Exe: tmpl, Init: len(op)%2 == 0})
	})
}
