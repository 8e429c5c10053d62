// Package etcdstore keeps an lbkit configuration document in etcd, so that
// a fleet of load balancers shares one configuration: a [Store] is a
// config.Store, and a config.Manager over it applies every change any
// instance writes.
//
//	s, err := etcdstore.New(etcdstore.Options{Endpoints: []string{"10.0.0.5:2379"}})
//	if err != nil { ... }
//	defer s.Close()
//	m := &config.Manager{Store: s, Applier: rt}
//	if err := m.Start(ctx); err != nil { ... }
//	go m.Watch(ctx)
//
// The document is the JSON of config.Document under one key (Options.Key,
// default [DefaultKey]); its version is the key's ModRevision, in decimal.
// Save is one transaction: compare the key's ModRevision with the version
// the writer read (or, for a first write, that the key is absent), then
// put; when the comparison fails another writer got there first and Save
// returns config.ErrConflict. Two instances writing at once thus never lose
// a change silently: one write lands, the other is refused.
//
// Watch follows the key with an etcd watch that resumes from the last
// revision it saw when the connection comes back; when that revision has
// been compacted away it reads the key afresh instead. It signals changes
// not made by this Store's own Save, and also each time etcd stops or
// starts answering (found by a read of the key every
// Options.ProbeInterval), so that a Manager's status (StoreUnavailable,
// LastError) follows the store's.
//
// Every call to etcd is bounded by Options.Timeout (default
// [DefaultTimeout]); a call that fails because etcd cannot be reached or
// cannot serve it (timeout, connection refused, no leader) returns an
// error that wraps config.ErrUnavailable, and [Store.Health] says so.
// While etcd is down a Manager keeps running its last good configuration
// and writes fail (the API answers 503). A document is read with a bound
// of config.MaxDocumentBytes; etcd itself refuses writes over its
// --max-request-bytes (1.5 MiB by default): Save then returns an error
// wrapping config.ErrTooLarge (the API answers 413), as for a document over
// config.MaxDocumentBytes.
//
// A missing key is an error wrapping fs.ErrNotExist, as for a missing file
// of config.FileStore.
//
// [ParseURL] reads the etcd://HOST:PORT[,HOST:PORT]/KEY form that lbproxy's
// -config flag takes.
//
// This is the only package of the module that imports etcd's client.
package etcdstore
