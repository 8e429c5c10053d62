# Servers the health probes are tested against (internal/testservers):
# MariaDB, PostgreSQL, Redis and OpenLDAP. Sourced by scripts/test.sh,
# which defines apt_install.
apt_install mariadb-server postgresql redis-server slapd ldap-utils
