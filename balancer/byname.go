package balancer

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/lbkit/lbkit/lb"
)

// ErrUnknown is returned (wrapped) by ByName for a specification it does not
// understand.
var ErrUnknown = errors.New("balancer: unknown algorithm")

// DefaultBoundedLoad is the BoundedLoad of a "hash…,bounded" specification
// without a value.
const DefaultBoundedLoad = 1.25

// ByName returns a new Balancer for a specification from a configuration
// file or a command-line flag. Algorithm names are case-insensitive:
//
//	roundrobin (also "" and "rr")  RoundRobin
//	leastconn                      LeastConn
//	first                          First
//	random                         Random
//	p2c                            P2C
//	hash, source, hash:source      Hash on the client's IP address
//	hash:header:NAME               Hash on the request header NAME
//	hash:cookie:NAME               Hash on the cookie NAME (case-sensitive)
//	hash:uri                       Hash on the request's path and query
//	hash:sni                       Hash on the TLS server name
//
// A hash specification may end with ",bounded=C" to set BoundedLoad to C
// (at least 1), or ",bounded" for DefaultBoundedLoad. Every call returns a
// new Balancer. Unknown specifications return an error wrapping ErrUnknown
// that lists the valid ones.
func ByName(spec string) (lb.Balancer, error) {
	algo, opts, hasOpts := strings.Cut(strings.TrimSpace(spec), ",")
	algo = strings.TrimSpace(algo)
	lower := strings.ToLower(algo)
	if !isHash(lower) {
		if hasOpts {
			return nil, fmt.Errorf("balancer: %q: options are only valid for hash algorithms", spec)
		}
		switch lower {
		case "", "roundrobin", "rr":
			return &RoundRobin{}, nil
		case "leastconn":
			return &LeastConn{}, nil
		case "first":
			return First{}, nil
		case "random":
			return Random{}, nil
		case "p2c":
			return P2C{}, nil
		}
		return nil, unknown(spec)
	}
	h := &Hash{}
	kind, arg, _ := strings.Cut(algo, ":") // "hash" or "source"
	if strings.EqualFold(kind, "source") && arg != "" {
		return nil, unknown(spec)
	}
	kind, arg, _ = strings.Cut(arg, ":")
	switch strings.ToLower(kind) {
	case "", "source":
		if arg != "" {
			return nil, unknown(spec)
		}
		h.Key = SourceIP
	case "uri":
		if arg != "" {
			return nil, unknown(spec)
		}
		h.Key = URI
	case "sni":
		if arg != "" {
			return nil, unknown(spec)
		}
		h.Key = SNI
	case "header":
		if arg == "" {
			return nil, fmt.Errorf("balancer: %q: missing header name", spec)
		}
		h.Key = Header(arg)
	case "cookie":
		if arg == "" {
			return nil, fmt.Errorf("balancer: %q: missing cookie name", spec)
		}
		h.Key = Cookie(arg)
	default:
		return nil, unknown(spec)
	}
	if hasOpts {
		for opt := range strings.SplitSeq(opts, ",") {
			name, val, hasVal := strings.Cut(strings.TrimSpace(opt), "=")
			if !strings.EqualFold(name, "bounded") {
				return nil, fmt.Errorf("balancer: %q: unknown option %q (valid: bounded=C)", spec, opt)
			}
			h.BoundedLoad = DefaultBoundedLoad
			if hasVal {
				c, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
				if err != nil || c < 1 || math.IsInf(c, 0) {
					return nil, fmt.Errorf("balancer: %q: bounded load must be a number ≥ 1", spec)
				}
				h.BoundedLoad = c
			}
		}
	}
	return h, nil
}

func isHash(lower string) bool {
	return lower == "hash" || lower == "source" ||
		strings.HasPrefix(lower, "hash:") || strings.HasPrefix(lower, "source:")
}

func unknown(spec string) error {
	return fmt.Errorf("%w %q (valid: %s)", ErrUnknown, spec, strings.Join(Names(), ", "))
}

// Names returns the specifications ByName understands, in a new slice, with
// NAME standing for a header or cookie name. Aliases ("", "rr",
// "hash:source") and the ",bounded=C" option are not listed.
func Names() []string {
	return []string{
		"roundrobin", "leastconn", "first", "random", "p2c",
		"hash", "source", "hash:header:NAME", "hash:cookie:NAME", "hash:uri", "hash:sni",
	}
}
