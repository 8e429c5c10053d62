# Observability: headless Chromium loads the status page (lb/statuspage)
# in a real browser, driven by chromedp. Sourced by scripts/test.sh, which
# defines apt_install.
apt_install chromium
