# Programs the observability tests run: halog (HAProxy's log analyser, in
# the haproxy package) reads the access logs of lb/accesslog; promtool
# (prometheus) checks the metrics; headless Chromium renders the status
# page. Sourced by scripts/test.sh, which defines apt_install.
apt_install haproxy prometheus chromium
