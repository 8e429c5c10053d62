# External attack tools run against examples/lbproxy: slowhttptest (slow
# headers, slow body and slow read clients) and testssl.sh (its binary is
# testssl) against the HTTPS frontend. Debian pins their versions; the
# tests log which one ran. The long runs are scripts/slowhttptest.sh and
# scripts/testssl.sh. Sourced by scripts/test.sh, which defines
# apt_install.
apt_install slowhttptest testssl.sh
