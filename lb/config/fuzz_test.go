package config_test

import (
	"encoding/json"
	"testing"

	"github.com/lbkit/lbkit/lb/config"
)

// FuzzLoad checks that any input either is refused or loads into a
// document that validates, encodes and loads again to the same encoding.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(tutorial))
	f.Add([]byte(`{"backends":[{"id":"b","forward_port":1,"timeout_queue":"0.000000001s"}]}`))
	f.Add([]byte(`{"frontends":[{"id":"f","inbound_port":80,"backend_id":"b"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := config.Load(data)
		if err != nil {
			return
		}
		out, err := d.Marshal()
		if err != nil {
			t.Fatalf("a loaded document does not encode: %v", err)
		}
		again, err := config.Load(out)
		if err != nil {
			t.Fatalf("an encoded document does not load: %v\n%s", err, out)
		}
		out2, _ := again.Marshal()
		if string(out) != string(out2) {
			t.Fatalf("encoding not stable:\n%s\n%s", out, out2)
		}
	})
}

// FuzzDurations checks both duration encodings round-trip.
func FuzzDurations(f *testing.F) {
	for _, s := range []string{`"5s"`, `"0.5s"`, `"1.000000001s"`, `1500`, `0`, `"s"`, `"-1s"`, `"1e3s"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var d config.Duration
		if json.Unmarshal(data, &d) == nil {
			if d < 0 {
				t.Fatalf("negative duration %v from %s", d, data)
			}
			b, _ := json.Marshal(d)
			var back config.Duration
			if err := json.Unmarshal(b, &back); err != nil || back != d {
				t.Fatalf("%s → %v → %s → %v, %v", data, d, b, back, err)
			}
		}
		var m config.Millis
		if json.Unmarshal(data, &m) == nil {
			if m < 0 {
				t.Fatalf("negative duration %v from %s", m, data)
			}
			b, _ := json.Marshal(m)
			var back config.Millis
			if err := json.Unmarshal(b, &back); err != nil || back != m {
				t.Fatalf("%s → %v → %s → %v, %v", data, m, b, back, err)
			}
		}
	})
}
