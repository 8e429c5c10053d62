# Programs the observability tests run: halog (HAProxy's log analyser, in
# the haproxy package) reads the access logs of lb/accesslog; promtool
# checks the exposition of lb/metrics and a real Prometheus server scrapes
# it (both in the prometheus package); headless Chromium loads the status
# page of lb/statuspage, driven by chromedp. Sourced by scripts/test.sh,
# which defines apt_install.
apt_install haproxy prometheus chromium
