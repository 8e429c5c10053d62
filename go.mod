module github.com/lbkit/lbkit

go 1.25.0

require (
	github.com/chromedp/chromedp v0.23.0
	github.com/pires/go-proxyproto v0.15.0
	golang.org/x/crypto v0.55.0
	golang.org/x/net v0.57.0
)

require (
	github.com/chromedp/cdproto v0.159.0 // indirect
	github.com/go-json-experiment/json v0.0.0-20260213210345-44df1a37e875 // indirect
	golang.org/x/text v0.41.0 // indirect
)
