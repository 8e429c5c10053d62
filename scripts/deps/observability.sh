# Observability: the Prometheus exporter (lb/metrics) is checked with
# promtool and scraped by a real Prometheus server on loopback, both from
# Debian's prometheus package; headless Chromium loads the status page
# (lb/statuspage) in a real browser, driven by chromedp. Sourced by
# scripts/test.sh, which defines apt_install.
apt_install prometheus chromium
