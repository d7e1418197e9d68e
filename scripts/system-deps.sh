#!/usr/bin/env bash
# Installs the Debian packages citywatch needs when they are missing: the Mosquitto
# broker, InfluxDB 1.x server and RabbitMQ with its MQTT plugin (the tests start their own
# instances on free ports, each RabbitMQ node with its own enabled-plugins file),
# and with --browser Chromium + ChromeDriver for the crew-page tests.
set -euo pipefail
want=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || want+=(mosquitto)
command -v influxd >/dev/null 2>&1 || [ -x /usr/bin/influxd ] || want+=(influxdb)
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || want+=(rabbitmq-server)
if [ "${1:-}" = "--browser" ]; then
    [ -x /usr/bin/chromium ] || want+=(chromium)
    [ -x /usr/bin/chromedriver ] || want+=(chromium-driver)
fi
[ ${#want[@]} -eq 0 ] && exit 0
echo "installing system packages: ${want[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
# Debian's packages start their own daemons on the standard ports where an init system
# runs; citywatch never relies on those, it starts private instances.
