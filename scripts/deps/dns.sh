# DNS server discovery (lb/dnsservers, lbproxy -servers-dns and
# -servers-srv): dnsmasq, started by the tests on loopback as the DNS
# server whose A, AAAA and SRV records change under them. dnsmasq-base is
# the program without the system service. Sourced by scripts/test.sh, which
# defines apt_install.
apt_install dnsmasq-base
