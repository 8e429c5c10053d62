// Command ha renders the keepalived configuration of a master/backup pair
// of lbproxy load balancers sharing a virtual IP (VRRP, unicast between
// the two nodes), and the notify script that logs the pair's transitions.
// Run it once per node:
//
//	ha -role master -interface eth0 -vip 10.0.0.100/24 -self 10.0.0.11 -peer 10.0.0.12 -dir /etc/keepalived
//	ha -role backup -interface eth0 -vip 10.0.0.100/24 -self 10.0.0.12 -peer 10.0.0.11 -dir /etc/keepalived
//
// and start lbproxy on both nodes on the virtual IP, before or after
// keepalived, with -freebind (or the sysctl net.ipv4.ip_nonlocal_bind=1)
// and its admin endpoints where the health check looks:
//
//	lbproxy -listen 10.0.0.100:80 -freebind -admin 127.0.0.1:9100 -backends ...
//
// keepalived checks lbproxy every second twice: its admin port must take
// a connection (a dead lbproxy's is refused: one failure puts the node in
// FAULT, which hands the IP to the peer), and its /healthz must answer 200
// within 0.3 s (-curl, -healthz, -check-timeout): two failures in a row
// (-fall) put the node in FAULT. Two successes (-rise) make it eligible
// again. Both nodes are BACKUP with nopreempt: the IP stays where
// it is when the failed node comes back. With -dir empty, the
// configuration is printed. README.md's "High availability" walks through
// it, with the figures measured by this directory's test.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"text/template"
	"time"
)

// params are the values the templates are rendered with. The zero value
// of a field takes the default that defaults documents.
type params struct {
	Role      string       // "master" or "backup": the default priority and the router_id
	Instance  string       // vrrp_instance name (default "lbkit")
	Interface string       // the interface the virtual IP goes on
	VIP       netip.Prefix // the virtual IP and its prefix length
	Self      netip.Addr   // this node's address on Interface (unicast_src_ip)
	Peer      netip.Addr   // the other node's address (unicast_peer)
	RouterID  int          // virtual_router_id, 1 to 255 (default 51), the same on both nodes
	Priority  int          // 1 to 254 (default: master 250, backup 240)

	AdvertInt    time.Duration // VRRP advert interval, from 10ms in steps of 10ms (default 500ms)
	Interval     time.Duration // between health checks, whole seconds (default 1s)
	CheckTimeout time.Duration // curl's --max-time, below Interval (default 300ms)
	Fall, Rise   int           // failed / passed checks in a row that change the state (default 2, 2)
	Healthz      string        // lbproxy's /healthz URL (default http://127.0.0.1:9100/healthz)
	Curl         string        // path of curl (default /usr/bin/curl)
	Bash         string        // path of bash, which the liveness check connects with (default /bin/bash)
	CheckUser    string        // user the health check runs as (default nobody)
	Notify       string        // path of the notify script (default /etc/keepalived/lbkit-notify.sh)
	NotifyLog    string        // file the notify script appends to (default /var/log/lbkit-keepalived.log)
}

// defaults returns p with its zero fields set to their defaults.
func (p params) defaults() params {
	if p.Instance == "" {
		p.Instance = "lbkit"
	}
	if p.RouterID == 0 {
		p.RouterID = 51
	}
	if p.Priority == 0 {
		p.Priority = 240
		if p.Role == "master" {
			p.Priority = 250
		}
	}
	if p.AdvertInt == 0 {
		p.AdvertInt = 500 * time.Millisecond
	}
	if p.Interval == 0 {
		p.Interval = time.Second
	}
	if p.CheckTimeout == 0 {
		p.CheckTimeout = 300 * time.Millisecond
	}
	if p.Fall == 0 {
		p.Fall = 2
	}
	if p.Rise == 0 {
		p.Rise = 2
	}
	if p.Healthz == "" {
		p.Healthz = "http://127.0.0.1:9100/healthz"
	}
	if p.Curl == "" {
		p.Curl = "/usr/bin/curl"
	}
	if p.Bash == "" {
		p.Bash = "/bin/bash"
	}
	if p.CheckUser == "" {
		p.CheckUser = "nobody"
	}
	if p.Notify == "" {
		p.Notify = "/etc/keepalived/lbkit-notify.sh"
	}
	if p.NotifyLog == "" {
		p.NotifyLog = "/var/log/lbkit-keepalived.log"
	}
	return p
}

var (
	// word is what a name may be in the configuration: no blank, quote
	// or brace, which would end or open a keepalived block.
	word = regexp.MustCompile(`^[A-Za-z0-9_.:@-]+$`)
	// path is an absolute path without blank, quote or shell character.
	path = regexp.MustCompile(`^/[A-Za-z0-9_./+-]*$`)
	// httpURL is an http URL without blank or quote.
	httpURL = regexp.MustCompile(`^https?://[A-Za-z0-9_.:/%?=&\[\]-]+$`)
)

// check reports the first invalid value of p, whose defaults are set.
func (p params) check() error {
	switch {
	case p.Role != "master" && p.Role != "backup":
		return fmt.Errorf("ha: -role %q: want master or backup", p.Role)
	case !word.MatchString(p.Instance):
		return fmt.Errorf("ha: -instance %q: want letters, digits and _.:@-", p.Instance)
	case !word.MatchString(p.Interface) || len(p.Interface) > 15:
		return fmt.Errorf("ha: -interface %q: want an interface name", p.Interface)
	case !p.VIP.IsValid():
		return errors.New("ha: -vip is required, as ADDRESS/PREFIXLEN")
	case !p.Self.IsValid() || !p.Peer.IsValid():
		return errors.New("ha: -self and -peer are required: this node's and the other node's addresses")
	case p.Self == p.Peer:
		return fmt.Errorf("ha: -self and -peer are both %s", p.Self)
	case p.VIP.Addr().Is4() != p.Self.Is4() || p.Self.Is4() != p.Peer.Is4():
		return errors.New("ha: -vip, -self and -peer must be of one family")
	case p.VIP.Addr() == p.Self || p.VIP.Addr() == p.Peer:
		return fmt.Errorf("ha: -vip %s is a node's own address; it needs an address of its own", p.VIP.Addr())
	case p.RouterID < 1 || p.RouterID > 255:
		return fmt.Errorf("ha: -router-id %d: want 1 to 255", p.RouterID)
	case p.Priority < 1 || p.Priority > 254:
		return fmt.Errorf("ha: -priority %d: want 1 to 254", p.Priority)
	case p.AdvertInt < 10*time.Millisecond || p.AdvertInt > 40*time.Second || p.AdvertInt%(10*time.Millisecond) != 0:
		return fmt.Errorf("ha: -advert-int %v: want 10ms to 40s in steps of 10ms (VRRPv3)", p.AdvertInt)
	case p.Interval < time.Second || p.Interval%time.Second != 0:
		return fmt.Errorf("ha: -interval %v: want whole seconds (keepalived's vrrp_script)", p.Interval)
	case p.CheckTimeout <= 0 || p.CheckTimeout >= p.Interval:
		return fmt.Errorf("ha: -check-timeout %v: want more than 0 and less than -interval %v", p.CheckTimeout, p.Interval)
	case p.Fall < 1 || p.Rise < 1:
		return fmt.Errorf("ha: -fall %d and -rise %d: want at least 1", p.Fall, p.Rise)
	case !httpURL.MatchString(p.Healthz):
		return fmt.Errorf("ha: -healthz %q: want an http:// or https:// URL", p.Healthz)
	case !path.MatchString(p.Curl), !path.MatchString(p.Bash), !path.MatchString(p.Notify), !path.MatchString(p.NotifyLog):
		return fmt.Errorf("ha: -curl %q, -bash %q, -notify %q, -notify-log %q: want absolute paths of letters, digits and _./+-", p.Curl, p.Bash, p.Notify, p.NotifyLog)
	case !word.MatchString(p.CheckUser):
		return fmt.Errorf("ha: -check-user %q: want a user name", p.CheckUser)
	}
	return nil
}

// seconds formats d in seconds as keepalived reads them ("0.5", "1").
func seconds(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Round(time.Millisecond).Milliseconds())/1000, 'f', -1, 64)
}

// view is params as the templates print them.
type view struct {
	params
	VIP                                              string
	AdvertInt, Interval, CheckTimeout, ScriptTimeout string
	MasterDown, Skew, StallKept, HungMoved           string
	AdminHost, AdminPort                             string // of Healthz, for the liveness check
}

// render returns keepalived.conf and the notify script for p, after
// setting p's defaults and checking it.
func render(p params) (conf, notify []byte, err error) {
	p = p.defaults()
	if err := p.check(); err != nil {
		return nil, nil, err
	}
	admin, err := url.Parse(p.Healthz)
	if err != nil || admin.Hostname() == "" {
		return nil, nil, fmt.Errorf("ha: -healthz %q: want an http:// or https:// URL with a host", p.Healthz)
	}
	port := admin.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[admin.Scheme]
	}
	// 3 adverts and the skew time of RFC 9568 (VRRPv3), for this priority.
	skew := time.Duration(256-p.Priority) * p.AdvertInt / 256
	down := 3*p.AdvertInt + skew
	v := view{
		params:        p,
		VIP:           p.VIP.String(),
		AdvertInt:     seconds(p.AdvertInt),
		Interval:      seconds(p.Interval),
		CheckTimeout:  seconds(p.CheckTimeout),
		ScriptTimeout: seconds(p.Interval),
		MasterDown:    seconds(down.Round(10 * time.Millisecond)),
		Skew:          seconds(skew.Round(10 * time.Millisecond)),
		// A stall of lbproxy fails the checks that start from its
		// beginning until CheckTimeout before its end: Fall of them,
		// Interval apart, need a stall longer than StallKept. A hung
		// lbproxy fails its Fall-th check at most HungMoved after it hung.
		StallKept: seconds(time.Duration(p.Fall-1)*p.Interval + p.CheckTimeout),
		HungMoved: seconds(time.Duration(p.Fall)*p.Interval + p.CheckTimeout),
		AdminHost: admin.Hostname(),
		AdminPort: port,
	}
	var c, n bytes.Buffer
	if err := template.Must(template.New("keepalived.conf").Parse(keepalivedConf)).Execute(&c, v); err != nil {
		return nil, nil, fmt.Errorf("ha: keepalived.conf: %w", err)
	}
	if err := template.Must(template.New("notify").Parse(notifyScript)).Execute(&n, v); err != nil {
		return nil, nil, fmt.Errorf("ha: notify script: %w", err)
	}
	return c.Bytes(), n.Bytes(), nil
}

// write renders p into dir: keepalived.conf (0644) and the notify script
// at p.Notify's base name (0755). dir must exist.
func write(p params, dir string) (confPath, notifyPath string, err error) {
	conf, notify, err := render(p)
	if err != nil {
		return "", "", err
	}
	confPath = filepath.Join(dir, "keepalived.conf")
	notifyPath = filepath.Join(dir, filepath.Base(p.defaults().Notify))
	if err := os.WriteFile(confPath, conf, 0o644); err != nil {
		return "", "", fmt.Errorf("ha: %w", err)
	}
	if err := os.WriteFile(notifyPath, notify, 0o755); err != nil {
		return "", "", fmt.Errorf("ha: %w", err)
	}
	return confPath, notifyPath, nil
}

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// run parses args and renders the files into -dir, or prints them to out.
func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("ha", flag.ContinueOnError)
	var p params
	var vip, self, peer, dir string
	fs.StringVar(&p.Role, "role", "", "master or backup (required)")
	fs.StringVar(&p.Interface, "interface", "", "interface the virtual IP goes on (required)")
	fs.StringVar(&vip, "vip", "", "virtual IP with its prefix length, e.g. 10.0.0.100/24 (required)")
	fs.StringVar(&self, "self", "", "this node's address on -interface, the source of its VRRP adverts (required)")
	fs.StringVar(&peer, "peer", "", "the other node's address, the only one adverts go to and come from (required)")
	fs.StringVar(&p.Instance, "instance", "lbkit", "vrrp_instance name")
	fs.IntVar(&p.RouterID, "router-id", 51, "virtual_router_id, 1 to 255, the same on both nodes and unique on the network")
	fs.IntVar(&p.Priority, "priority", 0, "VRRP priority, 1 to 254 (0: 250 for the master, 240 for the backup); it only decides the first election (nopreempt), and the higher it is, the sooner a node takes over from a peer that gives up")
	fs.DurationVar(&p.AdvertInt, "advert-int", 500*time.Millisecond, "VRRPv3 advert interval (10ms steps); the backup takes over 3 adverts and a skew after the master vanishes")
	fs.DurationVar(&p.Interval, "interval", time.Second, "time between health checks, whole seconds")
	fs.DurationVar(&p.CheckTimeout, "check-timeout", 300*time.Millisecond, "how long a health check waits for /healthz (curl --max-time), below -interval")
	fs.IntVar(&p.Fall, "fall", 2, "failed checks in a row that give the virtual IP away")
	fs.IntVar(&p.Rise, "rise", 2, "passed checks in a row that make the node eligible again")
	fs.StringVar(&p.Healthz, "healthz", "http://127.0.0.1:9100/healthz", "lbproxy's /healthz URL (lbproxy -admin)")
	fs.StringVar(&p.Curl, "curl", "/usr/bin/curl", "path of curl")
	fs.StringVar(&p.Bash, "bash", "/bin/bash", "path of bash, whose /dev/tcp the liveness check connects with")
	fs.StringVar(&p.CheckUser, "check-user", "nobody", "user the health check runs as")
	fs.StringVar(&p.Notify, "notify", "/etc/keepalived/lbkit-notify.sh", "path keepalived runs the notify script from")
	fs.StringVar(&p.NotifyLog, "notify-log", "/var/log/lbkit-keepalived.log", "file the notify script logs transitions to")
	fs.StringVar(&dir, "dir", "", "directory to write keepalived.conf and the notify script to (empty: print them)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	if vip != "" {
		if p.VIP, err = netip.ParsePrefix(vip); err != nil {
			return fmt.Errorf("ha: -vip: %w", err)
		}
	}
	if self != "" {
		if p.Self, err = netip.ParseAddr(self); err != nil {
			return fmt.Errorf("ha: -self: %w", err)
		}
	}
	if peer != "" {
		if p.Peer, err = netip.ParseAddr(peer); err != nil {
			return fmt.Errorf("ha: -peer: %w", err)
		}
	}
	if dir == "" {
		conf, notify, err := render(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "# ---- keepalived.conf\n%s\n# ---- %s\n%s", conf, p.defaults().Notify, notify)
		return nil
	}
	confPath, notifyPath, err := write(p, dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "wrote %s and %s; install the notify script at %s\n", confPath, notifyPath, p.defaults().Notify)
	return nil
}
