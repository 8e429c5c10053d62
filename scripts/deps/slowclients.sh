# Slow-client attacks run against lbproxy's client timeouts
# (examples/lbproxy): slowhttptest's slow body (-B) and slow headers (-H).
# Sourced by scripts/test.sh, which defines apt_install.
apt_install slowhttptest
