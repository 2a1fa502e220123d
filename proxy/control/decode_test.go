package control

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/fence-dev/fence/proxy"
)

// weird needs every kind of escape, and invalid UTF-8 that encoding/json
// writes as U+FFFD.
const weird = "a\"b\\c/\n\r\t\b\f\x00\x01\x1f\x7f<>&\u2028\u2029\xff\xfe\xed\xa0\x80é€😀\uFFFD"

// fullSession has every field that goes over the wire set.
func fullSession() *SessionInfo {
	return &SessionInfo{ID: "0123456789abcdef", Dir: "/run/user/1000/fence/s/" + weird, Root: "/home/u/" + weird,
		Started: time.Date(2025, 6, 7, 8, 9, 10, 123456789, time.FixedZone("", 2*3600)), Client: 4242, Active: 3,
		Blocked: -7, Hosts: map[string]int{"evil.test": 2, weird: 1, "": 0}, Errors: 1}
}

// fullEvent has every field set.
func fullEvent() proxy.Event {
	return proxy.Event{Time: time.Date(2025, 6, 7, 8, 9, 10, 0, time.UTC), Session: "0123456789abcdef", Project: "/home/u/" + weird,
		Kind: proxy.KindBlocked, Proto: "CONNECT", Target: weird + ":443", Host: weird, Rule: "deny", Detail: "not allowed: " + weird, Fix: "fence allow"}
}

// TestDecodeEveryField: what the daemon writes with every field set is
// read without encoding/json, and read as encoding/json reads it. A field
// added to Response, SessionInfo or proxy.Event without the decoder
// knowing it fails here: the test sets every field by reflection.
func TestDecodeEveryField(t *testing.T) {
	resp := Response{Error: "e" + weird, Session: fullSession(), Init: true, Reason: "r" + weird, InitContext: "c" + weird}
	msg := Message{Event: fullEvent(), Final: fullSession()}
	// Status is left to encoding/json: `fence status` is not in a hurry.
	for _, v := range []reflect.Value{reflect.ValueOf(resp), reflect.ValueOf(*resp.Session), reflect.ValueOf(msg), reflect.ValueOf(msg.Event)} {
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			if f.Tag.Get("json") != "-" && f.Name != "Status" && v.Field(i).IsZero() {
				t.Fatalf("%s.%s is not set in the test value: add it, and teach the decoder (decode.go)", v.Type().Name(), f.Name)
			}
		}
	}
	b, err := json.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	checkDecoded(t, b, decodeResponse, true)
	b, err = json.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	checkDecoded(t, b, decodeMessage, true)
}

// TestDecodeResponse: JSON the daemon does not write, or writes only for
// a status, decodes as encoding/json decodes it; the decoder reads what it
// can and leaves the rest to encoding/json.
func TestDecodeResponse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		fast bool // read without encoding/json
	}{
		{`{}`, true},
		{" \t\r\n{ \"error\" : \"x\" , \"init\" : false }\n", true},
		{`{"init":true,"init":false,"reason":""}`, true},
		{`{"error":"\u00e9\u20AC\ud83d\ude00\uD83D\uDE00"}`, true},
		{`{"error":"lone \ud800 \udc00 \ud800\u0041 \ud800\ud800 \udc00\ud800 end\ud83d"}`, true},
		{`{"error":"\"\\\/\b\f\n\r\t"}`, true},
		{"{\"error\":\"\xff\xed\xa0\x80\xf0\x9f\x98\"}", true},
		{`{"session":{"id":"a","blockedHosts":{"x":1,"z":0}},"session":{"dir":"d","blockedHosts":{"y":-2,"x":3}}}`, true},
		{`{"session":{"blockedHosts":{}}}`, true},
		{`{"session":{"blocked":-0,"activeConnections":9223372036854775807}}`, true},
		{`{"session":{"started":"2025-01-02T03:04:05.5-07:00"}}`, true},
		{`{"session":{}}`, true},
		{`{"status":{"pid":1,"sessions":[]}}`, false},
		{`{"Error":"case folded"}`, false},
		{`{"session":null}`, false},
		{`{"session":{"blockedHosts":null}}`, false},
		{`{"error":null}`, false},
		{`{"init":null}`, false},
		{`null`, false},
		{`{"session":{"blocked":1.0}}`, false},
		{`{"session":{"blocked":1e2}}`, false},
		{`{"session":{"blocked":9223372036854775808}}`, false},
		{`{"session":{"blocked":"1"}}`, false},
		{`{"session":{"blocked":01}}`, false},
		{`{"session":{"blocked":-}}`, false},
		{`{"session":{"started":"\u0032025-01-02T03:04:05Z"}}`, false},
		{`{"session":{"started":"2025-01-02"}}`, false},
		{`{"session":{"started":0}}`, false},
		{`{"init":"true"}`, false},
		{`{"init":tru}`, false},
		{`{"init":truex}`, false},
		{`{"error":"\'"}`, false},
		{`{"error":"\u12"}`, false},
		{`{"error":"\u00g0"}`, false},
		{`{"error":"\u00G0"}`, false},
		{`{"error":"\ud83d\ude0g"}`, false},
		{"{}\v", false},
		{`{"error":"\x"}`, false},
		{"{\"error\":\"tab\there\"}", false},
		{`{"error":"unterminated}`, false},
		{`{"error":"x",}`, false},
		{`{"error":"x"} {}`, false},
		{`{"error" "x"}`, false},
		{`{"error":"x"`, false},
		{`{,}`, false},
		{``, false},
		{`[]`, false},
	} {
		checkDecoded(t, []byte(tc.in), decodeResponse, tc.fast)
	}
}

// TestDecodeMessage: a lease's last line, as the daemon writes it, is read
// without encoding/json.
func TestDecodeMessage(t *testing.T) {
	b, err := json.Marshal(Message{Final: fullSession()})
	if err != nil {
		t.Fatal(err)
	}
	checkDecoded(t, b, decodeMessage, true)
	checkDecoded(t, []byte(`{"event":{"time":null}}`), decodeMessage, false)
	checkDecoded(t, []byte(`{"event":{"kind":"x","Kind":"y"}}`), decodeMessage, false)
}

// checkDecoded checks that unmarshal gives what json.Unmarshal gives for b
// (the value, and whether it fails), and that decode read b itself if
// fast, or left it to encoding/json if not.
func checkDecoded[T any](t *testing.T, b []byte, decode func([]byte, *T) bool, fast bool) {
	t.Helper()
	var want, got, fastGot T
	wantErr := json.Unmarshal(b, &want)
	err := unmarshal(b, &got, decode)
	if (err == nil) != (wantErr == nil) || !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %+v, %v\nwant %+v, %v", b, got, err, want, wantErr)
	}
	if decode(b, &fastGot) != fast {
		t.Errorf("%s: read without encoding/json: %v, want %v", b, !fast, fast)
	}
}

// checkFast checks that what decode reads from b, if it reads it,
// json.Unmarshal reads too, into the same value.
func checkFast[T any](t *testing.T, b []byte, decode func([]byte, *T) bool) {
	var got, want T
	if !decode(b, &got) {
		return
	}
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatalf("%q: decoded %+v, but json.Unmarshal fails: %v", b, got, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\n got %+v\nwant %+v", b, got, want)
	}
}

// seeds are the answers and lines a daemon sends, as it sends them.
func seeds(f *testing.F) {
	s := fullSession()
	for _, v := range []any{
		Response{Session: &SessionInfo{ID: "0123456789abcdef", Dir: "/run/user/1000/fence/s/0123", Root: "/home/u/p", Started: time.Now(), Client: 1234}},
		Response{Session: s, Init: true, InitContext: "unconfined"},
		Response{Session: s, Reason: "no warm init: booting"},
		Response{Error: "open: no spec"},
		Response{Status: &Status{PID: 1, Started: time.Now(), Dir: "/run", Sessions: []SessionInfo{*s}, WarmInit: "ready"}},
		Message{Final: s},
		Message{Event: fullEvent()},
	} {
		b, err := json.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"error":"\ud83d\ude00\ud800\u0041\"\\\/\b\f\n\r\t"}`))
	f.Add([]byte(`{"session":{"blocked":-0,"blockedHosts":{"a":1,"a":2}},"session":{"started":"2025-01-02T03:04:05.5-07:00"}}`))
}

// FuzzAnswerDecode: whatever answer the decoder reads, json.Unmarshal
// reads too, into the same Response; and unmarshal gives what
// json.Unmarshal gives, for anything.
func FuzzAnswerDecode(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		checkFast(t, b, decodeResponse)
		var got, want Response
		err := unmarshal(b, &got, decodeResponse)
		wantErr := json.Unmarshal(b, &want)
		if (err == nil) != (wantErr == nil) || !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\n got %+v, %v\nwant %+v, %v", b, got, err, want, wantErr)
		}
	})
}

// FuzzMessageDecode: whatever line of an event stream the decoder reads,
// json.Unmarshal reads too, into the same Message.
func FuzzMessageDecode(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		checkFast(t, b, decodeMessage)
	})
}

// BenchmarkAnswerDecode compares the decoder with encoding/json on an
// open's answer, warm. (The cold cost, in a fresh process, is what
// matters; see decode.go.)
func BenchmarkAnswerDecode(b *testing.B) {
	line, err := json.Marshal(Response{Session: &SessionInfo{ID: "0123456789abcdef", Dir: "/run/user/1000/fence/s/0123456789abcdef",
		Root: "/home/u/project", Started: time.Now(), Client: 4242}, Init: true, InitContext: "unconfined"})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("decoder", func(b *testing.B) {
		for b.Loop() {
			var r Response
			if !decodeResponse(line, &r) {
				b.Fatal("not decoded")
			}
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			var r Response
			if err := json.Unmarshal(line, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
}
