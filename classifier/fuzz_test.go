package classifier

import (
	"bufio"
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/minsheng-project/minsheng/internal/envelope"
)

// FuzzClassifyStream feeds arbitrary input to `classify`: it must never panic or stop, and must
// answer every line with exactly one JSON result.
func FuzzClassifyStream(f *testing.F) {
	for _, s := range []string{
		`{"id":"1","body":"小区噪音扰民"}`,
		`{"id":"2","title":"關於","body":"請問社保卡怎麼補辦"}` + "\n" + `{"id":"3","body":"请问社保卡怎么补办"}`,
		`{"id":"4","body":"x"`,
		"\xff\xfe{\"id\":\"5\"}",
		`{"id":"6","body":"` + "\x00\x01\x02" + `"}`,
		`{"id":"7","body":"a","received_at":"not a time"}`,
		`[1,2,3]`,
		"\n\n\n",
		`{"id":"8","body":"138****5678 3.5万元 人民路128号 http://a.b/c"}`,
	} {
		f.Add([]byte(s))
	}
	e := newTestEngine(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		if err := ClassifyStream(e, bytes.NewReader(in), &out, 4096); err != nil {
			t.Fatalf("stream stopped: %v", err)
		}
		// Count input lines as the stream reads them.
		want := 0
		sc := bufio.NewScanner(bytes.NewReader(in))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			want++
		}
		got := 0
		for _, line := range bytes.Split(out.Bytes(), []byte("\n")) {
			if len(line) == 0 {
				continue
			}
			got++
			var r envelope.Result
			if err := json.Unmarshal(line, &r); err != nil {
				t.Fatalf("result is not JSON: %q", line)
			}
		}
		if got != want {
			t.Fatalf("%d results for %d lines", got, want)
		}
	})
}

// FuzzTriage feeds arbitrary title and body text straight to the engine.
func FuzzTriage(f *testing.F) {
	f.Add("投诉", "楼下烧烤店噪音扰民，严重影响休息")
	f.Add("", "測試")
	f.Add("\xff", "\x00")
	f.Add("a市", "138****5678-3.5.5万元号号号路路")
	e := newTestEngine(f)
	f.Fuzz(func(t *testing.T, title, body string) {
		r := e.Triage(&envelope.Envelope{ID: "f", Title: title, Body: body, ReceivedAt: time.Unix(1_700_000_000, 0)})
		if r.Error == "" && r.Valid && (r.Type == "" || r.Track == "" || r.Area == "") {
			t.Fatalf("valid result without labels: %+v", r)
		}
	})
}
