module github.com/lbkit/lbkit

go 1.25.0

require github.com/pires/go-proxyproto v0.15.0
