// Package api serves the REST API of one lbkit load balancer in the shape
// of the seed's public zoned load-balancer API (lb/v1), over a
// config.Manager: the seed's clients (its Go SDK, curl scripts written for
// it) work unchanged against it. [Handler] is an http.Handler; lbproxy
// mounts it on its admin listener in -config mode.
//
//	h := &api.Handler{Manager: m, Stats: rt, Certificates: rt, IPs: ips, Token: secret}
//	mux.Handle("/lb/v1/", h)
//
// # Endpoints
//
// Every path exists under /lb/v1/zones/{zone}/ and /lb/v1/regions/{region}/;
// the zone or region is accepted as given and echoed in the responses'
// zone (region) fields. {lb_id} is the one load balancer's id (the
// document's lb.id, [DefaultLBID] when it has none).
//
//	GET    lbs, lbs/{lb_id}                  ListLBs (the one), GetLB
//	PUT    lbs/{lb_id}                       UpdateLB: name, description, tags, ssl_compatibility_level
//	POST   lbs, lbs/{lb_id}/migrate          501: one process is one load balancer
//	DELETE lbs/{lb_id}                       501
//	GET    ips, ips/{ip_id}                  the process's addresses (ListIPs, GetIP)
//	GET    lb-types                          ListLBTypes: the one type, "lbkit"
//	GET    lbs/{lb_id}/backends              ListBackends;  POST: CreateBackend
//	GET    backends/{id}                     GetBackend; PUT: UpdateBackend; DELETE
//	POST   backends/{id}/servers             AddBackendServers; DELETE: Remove; PUT: Set
//	PUT    backends/{id}/healthcheck         UpdateHealthCheck
//	GET    lbs/{lb_id}/frontends             ListFrontends; POST: CreateFrontend
//	GET    frontends/{id}                    GetFrontend; PUT: UpdateFrontend; DELETE (with its ACLs and routes)
//	GET    frontends/{id}/acls               ListACLs; POST: CreateACL; PUT: SetACLs
//	GET    acls/{id}                         GetACL; PUT: UpdateACL; DELETE
//	GET    routes[?frontend_id=]             ListRoutes; POST: CreateRoute
//	GET    routes/{id}                       GetRoute; PUT: UpdateRoute; DELETE
//	GET    lbs/{lb_id}/certificates          ListCertificates; POST: CreateCertificate
//	GET    certificates/{id}                 GetCertificate; PUT: UpdateCertificate (name); DELETE
//	GET    lbs/{lb_id}/backend-stats         ListBackendStats[?backend_id=]
//	GET    lbs/{lb_id}/stats                 GetLBStats (deprecated in the seed)
//	GET    subscribers, subscribers/{id}     ListSubscriber, GetSubscriber; POST: Create; PUT: Update
//	DELETE lb/subscription/{id}              DeleteSubscriber (also lb/subscriber/{id}, the
//	                                         regional API's path, and subscribers/{id})
//	POST   lb/{lb_id}/subscribe              SubscribeToLB {"subscriber_id"} (also lbs/{lb_id}/subscribe)
//	DELETE lb/{lb_id}/unsubscribe            UnsubscribeFromLB (also lbs/{lb_id}/unsubscribe)
//
// Beyond the seed, two endpoints set a server's runtime settings, stored in
// its backend's lbkit.servers and so kept across restarts; both answer the
// backend:
//
//	PUT backends/{id}/servers/{ip}/state   {"admin_state": "ready" | "drain" | "maint"}
//	PUT backends/{id}/servers/{ip}/weight  {"weight": 0..256}
//
// Responses embed what the seed's clients expect: a backend its lb, a
// frontend its backend and lb, an ACL its frontend, a certificate its lb.
// Lists answer total_count and the plural field, and take page (from 1),
// page_size (default 20, at most 100), order_by (created_at_asc, the
// default, created_at_desc, name_asc, name_desc; routes: created_at only)
// and name (a substring). Timestamps are RFC 3339; timeout_* and
// check_delay/check_timeout travel in milliseconds, timeout_queue and
// transient_check_delay as "5.000000000s", as the seed's model does. A
// custom certificate's PEM (certificate_chain, with its private key) is
// never returned.
//
// Updates are PUTs that carry every field, as the seed's SDK sends them: a
// field left out takes its default (a missing pointer is unset), except the
// lbkit extension objects of backends and frontends, which keep their
// stored value when a PUT does not carry them or carries "lbkit": null (to
// clear one, send an empty object). A backend's lbkit.servers may only name
// servers of its pool: a create or update naming another is refused (400);
// the servers endpoints drop the settings of the servers they remove. Created resources get random
// UUIDs; created_at and updated_at are set here.
//
// # Writes and errors
//
// Every write is one Manager.Update: the whole document is validated,
// applied, then stored; on any error nothing changes, neither the file nor
// the running configuration. Error bodies are the seed's, so that its SDK
// returns its typed errors:
//
//	400 invalid_arguments  details[{argument_name, reason, help_message}]: a field
//	                       that fails validation (reason required, constraint,
//	                       unknown = a reference to nothing), malformed JSON
//	                       (argument "body"), an unknown or mistyped field
//	413 invalid_request_error  a body over MaxBodyBytes (1 MiB), or a write that
//	                       would make the document larger than the store takes
//	                       (config.ErrTooLarge: config.MaxDocumentBytes, etcd's
//	                       --max-request-bytes)
//	401 denied_authentication  no X-Auth-Token, or an empty one (reason
//	                       invalid_argument, which the SDK renders "invalid API
//	                       key format or empty value"), whether or not a token
//	                       is configured
//	403 permissions_denied     a wrong token, or any token when none is configured;
//	                       details[{resource "lb", action read (GET) or write}]
//	404 not_found          resource, resource_id; or a path that is no endpoint
//	405 method_not_allowed a path that is an endpoint, with another method; the
//	                       Allow header lists the methods it has
//	409 conflict           the store changed since it was loaded (a file edited
//	                       on disk: reload with SIGHUP first; a shared store
//	                       such as etcd: another instance wrote, and this one
//	                       reloads through its watch, and retries a reload that
//	                       failed to apply); or a valid configuration that the
//	                       host cannot run now (a port in use by another process,
//	                       a certificate that cannot be obtained): the request is
//	                       right, the machine's state is in the way, so 409 and
//	                       not 400
//	409 precondition_failed (resource_still_in_use)  deleting a backend that a
//	                       frontend or route uses, a certificate a frontend uses,
//	                       or the subscriber the load balancer is subscribed to
//	501 precondition_failed  CreateLB, DeleteLB, MigrateLB
//	503 unavailable        the store cannot be reached, or nothing is loaded yet
//	                       (config.ErrNotStarted), or the client went away during
//	                       the write (context cancelled: logged at Debug, not as
//	                       a failure; the running configuration stays)
//	500 internal           anything else, logged at Error
//
// # Authentication
//
// Every request carries the secret in X-Auth-Token (what the seed's SDK
// sends: scw.WithAuth(accessKey, secret)); it is compared in constant time.
// A request without the header gets 401; with a Handler without a token,
// every request that carries one gets 403: the API is never open.
//
// # Subscribers
//
// [Notifier] delivers server state changes (config.ServerEvent, from the
// runtime's OnServerEvent) to the subscriber the load balancer is subscribed
// to: a webhook gets a JSON POST, with a timeout, from a bounded queue
// (events beyond it are dropped and counted) and with a bounded number of
// retries. An email subscriber is recorded and returned by the API, but
// lbkit sends no mail: its events are counted as skipped.
package api
