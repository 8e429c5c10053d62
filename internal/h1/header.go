package h1

import "net/textproto"

// canonicalKey returns the canonical form of the valid header name k, as
// http.CanonicalHeaderKey does: k itself when it is canonical already, an
// interned string for a common header (commonKeys), or a new string. The
// server's request parser and the client's response reader share it.
func canonicalKey(k string) string {
	upper := true
	canonical := true
	for i := 0; i < len(k); i++ {
		c := k[i]
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			canonical = false
			break
		}
		upper = c == '-'
	}
	if canonical {
		return k
	}
	var arr [64]byte
	if len(k) <= len(arr) {
		b := arr[:len(k)]
		upper = true
		for i := range len(k) {
			c := k[i]
			if upper && 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			} else if !upper && 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			b[i] = c
			upper = c == '-'
		}
		if v, ok := commonKeys[string(b)]; ok {
			return v
		}
	}
	return textproto.CanonicalMIMEHeaderKey(k)
}

// commonKeys interns the canonical names of the headers clients commonly
// send and servers commonly answer with in another case, so that
// canonicalizing them does not allocate.
var commonKeys = func() map[string]string {
	m := make(map[string]string)
	for _, k := range []string{
		// Requests.
		"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Authorization",
		"Cookie", "Expect", "Forwarded", "Host", "If-Match", "If-Modified-Since",
		"If-None-Match", "Origin", "Pragma", "Proxy-Authorization", "Range", "Referer",
		"Sec-Websocket-Key", "Sec-Websocket-Version", "Sec-Websocket-Protocol",
		"Sec-Websocket-Extensions", "Te", "Trailer", "Upgrade", "User-Agent",
		"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip",
		// Responses.
		"Accept-Ranges", "Access-Control-Allow-Origin", "Age", "Alt-Svc",
		"Content-Disposition", "Content-Encoding", "Content-Language",
		"Content-Location", "Content-Range", "Content-Security-Policy", "Date", "Etag",
		"Expires", "Last-Modified", "Link", "Location", "Referrer-Policy", "Retry-After",
		"Server", "Set-Cookie", "Strict-Transport-Security", "Vary", "Www-Authenticate",
		"X-Content-Type-Options", "X-Frame-Options", "X-Powered-By", "X-Xss-Protection",
		// Both.
		"Cache-Control", "Connection", "Content-Length", "Content-Type", "Keep-Alive",
		"Transfer-Encoding", "Via", "X-Request-Id",
	} {
		m[k] = k
	}
	return m
}()
