package api_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	lbsdk "github.com/scaleway/scaleway-sdk-go/api/lb/v1"
	"github.com/scaleway/scaleway-sdk-go/scw"

	"github.com/lbkit/lbkit/internal/testutil"
)

// sdk returns the seed's own Go SDK pointed at e, with secret as its key.
func sdk(t *testing.T, e *env, secret string) *lbsdk.ZonedAPI {
	t.Helper()
	client, err := scw.NewClient(
		scw.WithAPIURL(e.url),
		scw.WithAuth("SCWXXXXXXXXXXXXXXXXX", secret),
		scw.WithDefaultZone(scw.ZoneFrPar1),
		scw.WithDefaultPageSize(2),
	)
	if err != nil {
		t.Fatal(err)
	}
	return lbsdk.NewZonedAPI(client)
}

// TestSDKTutorial runs the seed's tutorial through the seed's SDK,
// unchanged: a backend with two servers and a TCP health check, a
// certificate, an HTTPS frontend, an ACL, a route, then the backend stats.
func TestSDKTutorial(t *testing.T) {
	e := start(t, seed)
	api := sdk(t, e, token)
	ca := testutil.NewCA(t)

	lbs, err := api.ListLBs(&lbsdk.ZonedAPIListLBsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if lbs.TotalCount != 1 || lbs.LBs[0].Zone != scw.ZoneFrPar1 || len(lbs.LBs[0].IP) != 2 {
		t.Fatalf("ListLBs: %+v", lbs)
	}
	lbID := lbs.LBs[0].ID

	delay, timeout := 2*time.Second, time.Second
	be, err := api.CreateBackend(&lbsdk.ZonedAPICreateBackendRequest{
		LBID: lbID, Name: "web", ForwardProtocol: lbsdk.ProtocolHTTP, ForwardPort: 8080,
		ForwardPortAlgorithm: lbsdk.ForwardPortAlgorithmRoundrobin, StickySessions: lbsdk.StickySessionsTypeNone,
		ServerIP: []string{"10.0.0.1", "10.0.0.2"},
		HealthCheck: &lbsdk.HealthCheck{
			Port: 8080, CheckDelay: &delay, CheckTimeout: &timeout, CheckMaxRetries: 3,
			TCPConfig: &lbsdk.HealthCheckTCPConfig{}, TransientCheckDelay: scw.NewDurationFromTimeDuration(300 * time.Millisecond),
		},
		TimeoutServer: scw.TimeDurationPtr(30 * time.Second),
		TimeoutQueue:  scw.NewDurationFromTimeDuration(2 * time.Second),
	})
	if err != nil {
		t.Fatal(err)
	}
	if be.LB == nil || be.LB.ID != lbID || len(be.Pool) != 2 || *be.TimeoutServer != 30*time.Second ||
		*be.HealthCheck.CheckDelay != delay || be.HealthCheck.TCPConfig == nil ||
		be.TimeoutQueue.ToTimeDuration().String() != "2s" || *be.TimeoutConnect != 5*time.Second {
		t.Fatalf("CreateBackend: %+v", be)
	}

	crt, err := api.CreateCertificate(&lbsdk.ZonedAPICreateCertificateRequest{
		LBID: lbID, Name: "site",
		CustomCertificate: &lbsdk.CreateCertificateRequestCustomCertificate{CertificateChain: certPEM(t, ca, "site.example", "www.site.example")},
	})
	if err != nil {
		t.Fatal(err)
	}
	crt, err = api.WaitForCertificate(&lbsdk.WaitForCertificateRequest{CertificateID: crt.ID, Zone: scw.ZoneFrPar1, Timeout: scw.TimeDurationPtr(5 * time.Second), RetryInterval: scw.TimeDurationPtr(10 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	if crt.Status != lbsdk.CertificateStatusReady || crt.CommonName != "site.example" || crt.LB.ID != lbID || crt.NotValidAfter == nil {
		t.Fatalf("certificate: %+v", crt)
	}

	fe, err := api.CreateFrontend(&lbsdk.ZonedAPICreateFrontendRequest{
		LBID: lbID, Name: "https", InboundPort: 8443, BackendID: be.ID,
		CertificateIDs: &[]string{crt.ID}, TimeoutClient: scw.TimeDurationPtr(time.Minute),
	})
	if err != nil {
		t.Fatal(err)
	}
	if fe.Backend == nil || fe.Backend.ID != be.ID || fe.LB.ID != lbID || *fe.TimeoutClient != time.Minute || fe.CertificateIDs[0] != crt.ID {
		t.Fatalf("CreateFrontend: %+v", fe)
	}

	acl, err := api.CreateACL(&lbsdk.ZonedAPICreateACLRequest{
		FrontendID: fe.ID, Name: "blocklist", Index: 0,
		Action: &lbsdk.ACLAction{Type: lbsdk.ACLActionTypeDeny},
		Match:  &lbsdk.ACLMatch{IPSubnet: []*string{scw.StringPtr("192.0.2.0/24")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if acl.Frontend == nil || acl.Frontend.ID != fe.ID || acl.Action.Type != lbsdk.ACLActionTypeDeny {
		t.Fatalf("CreateACL: %+v", acl)
	}

	api2, err := api.CreateBackend(&lbsdk.ZonedAPICreateBackendRequest{LBID: lbID, Name: "api", ForwardProtocol: lbsdk.ProtocolHTTP, ForwardPort: 9090, ServerIP: []string{"10.0.1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := api.CreateRoute(&lbsdk.ZonedAPICreateRouteRequest{FrontendID: fe.ID, BackendID: api2.ID, Match: &lbsdk.RouteMatch{PathBegin: scw.StringPtr("/api")}})
	if err != nil {
		t.Fatal(err)
	}
	routes, err := api.ListRoutes(&lbsdk.ZonedAPIListRoutesRequest{FrontendID: &fe.ID})
	if err != nil || routes.TotalCount != 1 || routes.Routes[0].ID != rt.ID || *routes.Routes[0].Match.PathBegin != "/api" {
		t.Fatalf("ListRoutes: %+v %v", routes, err)
	}

	stats, err := api.ListBackendStats(&lbsdk.ZonedAPIListBackendStatsRequest{LBID: lbID}, scw.WithAllPages())
	if err != nil {
		t.Fatal(err)
	}
	if stats.TotalCount != 3 || len(stats.BackendServersStats) != 3 || stats.BackendServersStats[0].ServerState != lbsdk.BackendServerStatsServerStateRunning {
		t.Fatalf("ListBackendStats: %+v", stats)
	}

	// Pages: the client's page size is 2; WithAllPages walks them.
	backends, err := api.ListBackends(&lbsdk.ZonedAPIListBackendsRequest{LBID: lbID, OrderBy: lbsdk.ListBackendsRequestOrderByNameAsc}, scw.WithAllPages())
	if err != nil || backends.TotalCount != 2 || backends.Backends[0].Name != "api" {
		t.Fatalf("ListBackends: %+v %v", backends, err)
	}

	// Updates as the SDK sends them.
	be, err = api.UpdateBackend(&lbsdk.ZonedAPIUpdateBackendRequest{BackendID: be.ID, Name: "web2", ForwardProtocol: lbsdk.ProtocolHTTP, ForwardPort: 8080,
		ForwardPortAlgorithm: lbsdk.ForwardPortAlgorithmLeastconn, StickySessions: lbsdk.StickySessionsTypeCookie, StickySessionsCookieName: "srv"})
	if err != nil || be.Name != "web2" || be.StickySessions != lbsdk.StickySessionsTypeCookie || be.HealthCheck.TCPConfig == nil {
		t.Fatalf("UpdateBackend: %+v %v", be, err)
	}
	if _, err := api.AddBackendServers(&lbsdk.ZonedAPIAddBackendServersRequest{BackendID: be.ID, ServerIP: []string{"10.0.0.3"}}); err != nil {
		t.Fatal(err)
	}
	if be, err = api.RemoveBackendServers(&lbsdk.ZonedAPIRemoveBackendServersRequest{BackendID: be.ID, ServerIP: []string{"10.0.0.1"}}); err != nil || strings.Join(be.Pool, ",") != "10.0.0.2,10.0.0.3" {
		t.Fatalf("RemoveBackendServers: %v %v", be.Pool, err)
	}
	hc, err := api.UpdateHealthCheck(&lbsdk.ZonedAPIUpdateHealthCheckRequest{BackendID: be.ID, Port: 8080, CheckMaxRetries: 2,
		HTTPConfig: &lbsdk.HealthCheckHTTPConfig{URI: "/healthz", Method: "GET", Code: scw.Int32Ptr(200)}})
	if err != nil || hc.HTTPConfig == nil || hc.HTTPConfig.URI != "/healthz" || *hc.CheckDelay != 3*time.Second {
		t.Fatalf("UpdateHealthCheck: %+v %v", hc, err)
	}
	set, err := api.SetACLs(&lbsdk.ZonedAPISetACLsRequest{FrontendID: fe.ID, ACLs: []*lbsdk.ACLSpec{
		{Name: "https", Index: 0, Action: &lbsdk.ACLAction{Type: lbsdk.ACLActionTypeRedirect, Redirect: &lbsdk.ACLActionRedirect{Type: lbsdk.ACLActionRedirectRedirectTypeScheme, Target: "https"}}},
	}})
	if err != nil || set.TotalCount != 1 || set.ACLs[0].Action.Redirect.Target != "https" {
		t.Fatalf("SetACLs: %+v %v", set, err)
	}
	sub, err := api.CreateSubscriber(&lbsdk.ZonedAPICreateSubscriberRequest{Name: "ops", WebhookConfig: &lbsdk.SubscriberWebhookConfig{URI: "http://127.0.0.1:9/hook"}, ProjectID: scw.StringPtr("11111111-1111-1111-1111-111111111111")})
	if err != nil {
		t.Fatal(err)
	}
	lb, err := api.SubscribeToLB(&lbsdk.ZonedAPISubscribeToLBRequest{LBID: lbID, SubscriberID: sub.ID})
	if err != nil || lb.Subscriber == nil || lb.Subscriber.ID != sub.ID {
		t.Fatalf("SubscribeToLB: %+v %v", lb, err)
	}
	if _, err := api.UnsubscribeFromLB(&lbsdk.ZonedAPIUnsubscribeFromLBRequest{LBID: lbID}); err != nil {
		t.Fatal(err)
	}
	if err := api.DeleteSubscriber(&lbsdk.ZonedAPIDeleteSubscriberRequest{SubscriberID: sub.ID}); err != nil {
		t.Fatal(err)
	}
	if err := api.DeleteRoute(&lbsdk.ZonedAPIDeleteRouteRequest{RouteID: rt.ID}); err != nil {
		t.Fatal(err)
	}

	// Typed errors.
	_, err = api.CreateFrontend(&lbsdk.ZonedAPICreateFrontendRequest{LBID: lbID, Name: "x", InboundPort: 8443, BackendID: be.ID})
	var inv *scw.InvalidArgumentsError
	if !errors.As(err, &inv) || inv.Details[0].ArgumentName != "inbound_port" {
		t.Fatalf("a taken port: %v", err)
	}
	_, err = api.GetBackend(&lbsdk.ZonedAPIGetBackendRequest{BackendID: "11111111-1111-1111-1111-111111111111"})
	var nf *scw.ResourceNotFoundError
	if !errors.As(err, &nf) || nf.ResourceID != "11111111-1111-1111-1111-111111111111" {
		t.Fatalf("a missing backend: %v", err)
	}
	err = api.DeleteBackend(&lbsdk.ZonedAPIDeleteBackendRequest{BackendID: be.ID})
	var pf *scw.PreconditionFailedError
	if !errors.As(err, &pf) || pf.Precondition != "resource_still_in_use" {
		t.Fatalf("deleting a backend in use: %v", err)
	}
	_, err = sdk(t, e, "00000000-0000-0000-0000-000000000000").GetLB(&lbsdk.ZonedAPIGetLBRequest{LBID: lbID})
	var pd *scw.PermissionsDeniedError
	if !errors.As(err, &pd) {
		t.Fatalf("a wrong token: %T %v", err, err)
	}
}

// TestSDKRegional drives the regional flavour of the API through the SDK.
func TestSDKRegional(t *testing.T) {
	e := start(t, seed)
	client, err := scw.NewClient(scw.WithAPIURL(e.url), scw.WithAuth("SCWXXXXXXXXXXXXXXXXX", token), scw.WithDefaultRegion(scw.RegionFrPar))
	if err != nil {
		t.Fatal(err)
	}
	api := lbsdk.NewAPI(client)
	types, err := api.ListLBTypes(&lbsdk.ListLBTypesRequest{})
	if err != nil || types.TotalCount != 1 || types.LBTypes[0].Name != "lbkit" {
		t.Fatalf("ListLBTypes: %+v %v", types, err)
	}
	lbs, err := api.ListLBs(&lbsdk.ListLBsRequest{})
	if err != nil || lbs.TotalCount != 1 || lbs.LBs[0].Region == nil || *lbs.LBs[0].Region != scw.RegionFrPar {
		t.Fatalf("ListLBs: %+v %v", lbs, err)
	}
	sub, err := api.CreateSubscriber(&lbsdk.CreateSubscriberRequest{Name: "mail", EmailConfig: &lbsdk.SubscriberEmailConfig{Email: "ops@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := api.DeleteSubscriber(&lbsdk.DeleteSubscriberRequest{SubscriberID: sub.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := api.GetSubscriber(&lbsdk.GetSubscriberRequest{SubscriberID: sub.ID}); err == nil {
		t.Fatal("the subscriber is still there")
	}
}
