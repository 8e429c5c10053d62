module github.com/lbkit/lbkit

go 1.25.0

require (
	github.com/pires/go-proxyproto v0.15.0
	golang.org/x/crypto v0.55.0
	golang.org/x/net v0.57.0
)

require golang.org/x/text v0.41.0 // indirect
