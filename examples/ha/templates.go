package main

// keepalivedConf is the template of keepalived.conf for one node of the
// pair. Both nodes run the same file but for their role, priority and the
// swapped unicast addresses.
const keepalivedConf = `# keepalived.conf of the {{.Role}} lbproxy of a master/backup pair,
# rendered by lbkit's examples/ha. Both nodes start in state BACKUP with
# nopreempt: the higher priority ({{.Role}}: {{.Priority}}) only decides the
# first election, and the virtual IP then stays where it is until its
# holder fails, so a node coming back never causes a second move.
global_defs {
    router_id lbkit_{{.Role}}
    # the notify script runs as root; the health check runs as
    # {{.CheckUser}} (its vrrp_script's user)
    script_user root
    # keepalived's adverts and timers come first on a busy load balancer:
    # a late advert moves the IP for nothing, a late check delays a move
    vrrp_priority -10
    vrrp_no_swap
}

# Is lbproxy alive? Its admin port takes connections while the process
# lives, even stopped for a moment (the kernel completes them); once it is
# dead they are refused: one failure puts the node in FAULT, which hands
# the IP to the peer at once (priority 0 advert).
vrrp_script lbkit_alive {
    script "{{.Bash}} -c 'exec 3<>/dev/tcp/{{.AdminHost}}/{{.AdminPort}}'"
    interval {{.Interval}}
    timeout {{.ScriptTimeout}}
    fall 1
    rise {{.Rise}}
    user {{.CheckUser}}
}

# Is lbproxy serving? /healthz (-admin) answers 200 while it serves, 503
# while it drains or a self-check fails; a hung lbproxy lets curl give up
# after {{.CheckTimeout}} s. A check every {{.Interval}} s; {{.Fall}} failures in a row put the node
# in FAULT, {{.Rise}} successes make it eligible again. A stall of lbproxy
# shorter than {{.StallKept}} s never moves the IP; a hung lbproxy fails its last
# check at most {{.HungMoved}} s after it stopped answering.
vrrp_script lbkit_healthz {
    script "{{.Curl}} -fs -o /dev/null --max-time {{.CheckTimeout}} {{.Healthz}}"
    interval {{.Interval}}
    timeout {{.ScriptTimeout}}
    fall {{.Fall}}
    rise {{.Rise}}
    user {{.CheckUser}}
}

vrrp_instance {{.Instance}} {
    state BACKUP
    nopreempt
    interface {{.Interface}}
    virtual_router_id {{.RouterID}}
    priority {{.Priority}}
    # VRRPv3 allows adverts below a second: the backup takes over
    # 3 adverts + skew after the last one, {{.MasterDown}} s, when the master
    # vanishes; after the skew alone, {{.Skew}} s, when the master gives up
    # (priority 0 advert). The skew shrinks as the priority grows.
    version 3
    advert_int {{.AdvertInt}}
    # Unicast to the peer only: no multicast leaves the host, and adverts
    # from any other source are ignored.
    unicast_src_ip {{.Self}}
    unicast_peer {
        {{.Peer}}
    }
    check_unicast_src
    virtual_ipaddress {
        {{.VIP}} dev {{.Interface}}
    }
    track_script {
        lbkit_alive
        lbkit_healthz
    }
    notify {{.Notify}}
}
`

// notifyScript is the template of the notify script keepalived runs on
// every state change of the instance. lbproxy needs nothing from it: it
// listens on the virtual IP with -freebind whatever the state.
const notifyScript = `#!/bin/sh
# keepalived notify script, rendered by lbkit's examples/ha. keepalived
# runs it on every state change: $1 is INSTANCE (or GROUP), $2 the
# instance's name, $3 the new state (MASTER, BACKUP, FAULT or STOP), $4
# the priority. It logs the transition, with the time to the nanosecond,
# to {{.NotifyLog}} and to syslog when there is one. lbproxy needs no
# action: started with -freebind on the virtual IP, it serves the address
# as soon as the kernel delivers it.
line="$(date -u +%Y-%m-%dT%H:%M:%S.%NZ) $2 $3 $4"
echo "$line" >> '{{.NotifyLog}}'
if command -v logger >/dev/null 2>&1; then
    logger -t lbkit-keepalived "$2 is $3 (priority $4)" 2>/dev/null
fi
exit 0
`
