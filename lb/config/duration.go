package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Millis is a duration that travels in JSON as a whole number of
// milliseconds, the encoding of the API's timeout_server, timeout_connect,
// timeout_tunnel, timeout_client, check_delay and check_timeout. Decoding
// accepts only a JSON integer (no string, no fraction, no negative value).
type Millis time.Duration

// MarshalJSON encodes d in whole milliseconds.
func (d Millis) MarshalJSON() ([]byte, error) {
	return strconv.AppendInt(nil, int64(time.Duration(d)/time.Millisecond), 10), nil
}

// UnmarshalJSON decodes a non-negative JSON integer of milliseconds.
func (d *Millis) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/int64(time.Millisecond) {
		return fmt.Errorf("want a whole number of milliseconds, got %s", b)
	}
	*d = Millis(time.Duration(n) * time.Millisecond)
	return nil
}

// D returns d as a time.Duration.
func (d Millis) D() time.Duration { return time.Duration(d) }

// Duration is a duration that travels in JSON as a string of seconds with a
// "s" suffix ("5.000000000s", "0.5s"), the protobuf-style encoding the API
// uses for timeout_queue and transient_check_delay. Decoding accepts a
// non-negative decimal number of seconds with at most nine fractional digits.
type Duration time.Duration

// MarshalJSON encodes d as seconds with nine fractional digits.
func (d Duration) MarshalJSON() ([]byte, error) {
	v := time.Duration(d)
	return fmt.Appendf(nil, `"%d.%09ds"`, v/time.Second, v%time.Second), nil
}

// UnmarshalJSON decodes a string such as "5s", "0.5s" or "1.250000000s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a string of seconds such as \"5s\", got %s", b)
	}
	v, err := parseSeconds(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func parseSeconds(s string) (time.Duration, error) {
	bad := fmt.Errorf("want seconds such as \"5s\" or \"0.5s\", got %q", s)
	num, ok := strings.CutSuffix(s, "s")
	if !ok || num == "" {
		return 0, bad
	}
	whole, frac, _ := strings.Cut(num, ".")
	if whole == "" || len(frac) > 9 || strings.ContainsAny(whole+frac, "+-") {
		return 0, bad
	}
	sec, err := strconv.ParseUint(whole, 10, 63)
	if err != nil || sec > math.MaxInt64/uint64(time.Second)-1 {
		return 0, bad
	}
	var nanos uint64
	if frac != "" {
		if nanos, err = strconv.ParseUint(frac, 10, 32); err != nil {
			return 0, bad
		}
		for range 9 - len(frac) {
			nanos *= 10
		}
	}
	return time.Duration(sec)*time.Second + time.Duration(nanos), nil
}
