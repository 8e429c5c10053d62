package main

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"

	lbconfig "github.com/lbkit/lbkit/lb/config"
	"github.com/lbkit/lbkit/lb/config/api"
)

// The REST API (lb/config/api) of the configuration-file mode: with
// -config and -admin, the admin listener serves the seed's zoned
// load-balancer API under /lb/v1/ over the configuration file's Manager.
// Every write is validated, applied and stored in the file, or changes
// nothing. Requests carry the admin token in X-Auth-Token (the header the
// seed's clients send; -admin-token-file or LBKIT_ADMIN_TOKEN): a request
// without the header gets 401, one with a wrong token 403, and with no
// token configured every request is refused (401 or 403), so the API is
// never open.
//
// Without -config the API is not mounted: a configuration made of flags
// has no document to change, and /lb/v1/ is an unknown admin path.
//
// The subscriber the load balancer is subscribed to (SubscribeToLB) is
// told of server state changes: a webhook gets a JSON POST (api.Notifier:
// a bounded queue, a timeout and bounded retries); an email subscriber is
// recorded but no mail is sent. Notifications run with or without -admin.

// apiServer is the REST API and the notifier of its subscriber.
type apiServer struct {
	handler  *api.Handler
	notifier *api.Notifier
}

// newAPIServer returns the API of the addresses ips, guarded by token.
// Its notifier's Notify is the runtime's OnServerEvent; events wait in its
// queue until start.
func newAPIServer(ips []netip.Addr, token string, logger *slog.Logger) *apiServer {
	return &apiServer{
		handler:  &api.Handler{IPs: ips, Token: token, Logger: logger},
		notifier: &api.Notifier{Logger: logger},
	}
}

// start binds the API to the started manager m and the runtime rt, and
// delivers notifications until ctx ends, in a goroutine wg waits for.
// Call it before serving the handler.
func (s *apiServer) start(ctx context.Context, wg *sync.WaitGroup, m *lbconfig.Manager, rt *lbconfig.Runtime) {
	s.handler.Manager, s.handler.Stats, s.handler.Certificates = m, rt, rt
	s.notifier.Manager = m
	wg.Go(func() { s.notifier.Run(ctx) })
}
