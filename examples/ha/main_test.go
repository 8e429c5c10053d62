package main

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// pair returns the parameters of the master of a pair on eth0.
func pair() params {
	return params{
		Role:      "master",
		Interface: "eth0",
		VIP:       netip.MustParsePrefix("10.0.0.100/24"),
		Self:      netip.MustParseAddr("10.0.0.11"),
		Peer:      netip.MustParseAddr("10.0.0.12"),
	}
}

// TestRenderDefaults checks the keepalived.conf of the master and of the
// backup with the defaults: each value where keepalived reads it.
func TestRenderDefaults(t *testing.T) {
	for _, tc := range []struct {
		role, self, peer, priority string
	}{
		{"master", "10.0.0.11", "10.0.0.12", "250"},
		{"backup", "10.0.0.12", "10.0.0.11", "240"},
	} {
		p := pair()
		p.Role, p.Self, p.Peer = tc.role, netip.MustParseAddr(tc.self), netip.MustParseAddr(tc.peer)
		conf, notify, err := render(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			`(?m)^\s+state BACKUP$`,
			`(?m)^\s+nopreempt$`,
			`(?m)^\s+priority ` + tc.priority + `$`,
			`(?m)^\s+version 3$`,
			`(?m)^\s+advert_int 0\.5$`,
			`(?m)^\s+unicast_src_ip ` + regexp.QuoteMeta(tc.self) + `$`,
			`(?m)^\s+unicast_peer \{\n\s+` + regexp.QuoteMeta(tc.peer) + `\n\s+\}$`,
			`(?m)^\s+check_unicast_src$`,
			`(?m)^\s+10\.0\.0\.100/24 dev eth0$`,
			`(?m)^\s+script "/usr/bin/curl -fs -o /dev/null --max-time 0\.3 http://127\.0\.0\.1:9100/healthz"$`,
			`(?m)^\s+script "/bin/bash -c 'exec 3<>/dev/tcp/127\.0\.0\.1/9100'"$`,
			`(?m)^\s+fall 1$`,
			`(?m)^\s+track_script \{\n\s+lbkit_alive\n\s+lbkit_healthz\n\s+\}$`,
			`(?m)^\s+interval 1$`,
			`(?m)^\s+fall 2$`,
			`(?m)^\s+rise 2$`,
			`(?m)^\s+user nobody$`,
			`(?m)^\s+notify /etc/keepalived/lbkit-notify\.sh$`,
			`(?m)^\s+router_id lbkit_` + tc.role + `$`,
		} {
			if !regexp.MustCompile(want).Match(conf) {
				t.Errorf("%s: keepalived.conf lacks %s:\n%s", tc.role, want, conf)
			}
		}
		if strings.Count(string(conf), "{") != strings.Count(string(conf), "}") {
			t.Errorf("%s: unbalanced braces:\n%s", tc.role, conf)
		}
		if !strings.Contains(string(notify), "'/var/log/lbkit-keepalived.log'") {
			t.Errorf("%s: the notify script does not log to the default file:\n%s", tc.role, notify)
		}
	}
}

// TestRenderFigures checks the times the configuration's comments state,
// for the defaults and for other settings.
func TestRenderFigures(t *testing.T) {
	for _, tc := range []struct {
		fall     int
		timeout  time.Duration
		priority int
		want     []string
	}{
		{2, 300 * time.Millisecond, 200, []string{"shorter than 1.3 s never", "at most 2.3 s", "after the last one, 1.61 s", "skew alone, 0.11 s"}},
		{3, 300 * time.Millisecond, 100, []string{"shorter than 2.3 s never", "at most 3.3 s", "after the last one, 1.8 s", "skew alone, 0.3 s"}},
	} {
		p := pair()
		p.Fall, p.CheckTimeout, p.Priority = tc.fall, tc.timeout, tc.priority
		conf, _, err := render(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range tc.want {
			if !strings.Contains(string(conf), want) {
				t.Errorf("fall %d, timeout %v: keepalived.conf lacks %q:\n%s", tc.fall, tc.timeout, want, conf)
			}
		}
	}
}

// TestRenderRefuses checks that values keepalived would misread, or that
// would break out of their line, are refused.
func TestRenderRefuses(t *testing.T) {
	for name, change := range map[string]func(*params){
		"role":              func(p *params) { p.Role = "primary" },
		"interface brace":   func(p *params) { p.Interface = "eth0}" },
		"interface long":    func(p *params) { p.Interface = "a-very-long-interface" },
		"instance blank":    func(p *params) { p.Instance = "lb kit" },
		"no vip":            func(p *params) { p.VIP = netip.Prefix{} },
		"no peer":           func(p *params) { p.Peer = netip.Addr{} },
		"self is peer":      func(p *params) { p.Peer = p.Self },
		"vip is self":       func(p *params) { p.VIP = netip.PrefixFrom(p.Self, 24) },
		"families":          func(p *params) { p.Peer = netip.MustParseAddr("fd00::12") },
		"router id":         func(p *params) { p.RouterID = 256 },
		"priority":          func(p *params) { p.Priority = 255 },
		"advert step":       func(p *params) { p.AdvertInt = 505 * time.Millisecond },
		"interval fraction": func(p *params) { p.Interval = 1500 * time.Millisecond },
		"timeout interval":  func(p *params) { p.CheckTimeout = time.Second },
		"fall":              func(p *params) { p.Fall = -1 },
		"healthz quote":     func(p *params) { p.Healthz = `http://127.0.0.1:9100/healthz"; rm -rf /` },
		"curl relative":     func(p *params) { p.Curl = "curl" },
		"notify blank":      func(p *params) { p.Notify = "/etc/keepalived/a b.sh" },
		"notify log quote":  func(p *params) { p.NotifyLog = "/var/log/x'y" },
		"user":              func(p *params) { p.CheckUser = "no body" },
	} {
		p := pair()
		change(&p)
		if _, _, err := render(p); err == nil {
			t.Errorf("%s: rendered, want an error", name)
		}
	}
}

// TestNotifyScript runs the rendered notify script as keepalived does and
// checks the line it logs.
func TestNotifyScript(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	dir := t.TempDir()
	p := pair()
	p.Notify, p.NotifyLog = filepath.Join(dir, "notify.sh"), filepath.Join(dir, "notify.log")
	_, script, err := write(p, dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, state := range []string{"MASTER", "FAULT"} {
		if out, err := exec.Command(sh, script, "INSTANCE", "lbkit", state, "200").CombinedOutput(); err != nil {
			t.Fatalf("notify %s: %v: %s", state, err, out)
		}
	}
	b, err := os.ReadFile(p.NotifyLog)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	re := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z lbkit (MASTER|FAULT) 200$`)
	if len(lines) != 2 || !re.MatchString(lines[0]) || !re.MatchString(lines[1]) || !strings.Contains(lines[1], "FAULT") {
		t.Fatalf("notify log:\n%s\nwant a MASTER then a FAULT line matching %s", b, re)
	}
}

// TestRunPrints checks the command line: flags become the files' values,
// and a missing required flag is an error.
func TestRunPrints(t *testing.T) {
	var out strings.Builder
	err := run([]string{"-role", "backup", "-interface", "ens3", "-vip", "192.168.1.10/24", "-self", "192.168.1.3", "-peer", "192.168.1.2", "-router-id", "7", "-healthz", "http://127.0.0.1:9200/healthz"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"virtual_router_id 7", "192.168.1.10/24 dev ens3", "unicast_src_ip 192.168.1.3", "priority 240", "127.0.0.1:9200/healthz", "# ---- /etc/keepalived/lbkit-notify.sh"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if err := run([]string{"-role", "master", "-interface", "eth0", "-self", "10.0.0.1", "-peer", "10.0.0.2"}, &out); err == nil {
		t.Error("without -vip: no error")
	}
}
