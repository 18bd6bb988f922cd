#!/bin/sh
# Installed as /usr/local/sbin/systemctl by the fast tier's verify, which comes first in
# the agent's program path: every systemctl the hakeep agent runs is written down
# (it should run none: it talks to systemd over D-Bus). Others pass straight through.
parent=$(cat "/proc/$PPID/comm" 2>/dev/null)
if [ "$parent" = hakeep ]; then
  printf '%s %s\n' "$(date +%s%3N)" "$*" >>/var/log/hakeep-test-systemctl.log
fi
exec /usr/bin/systemctl "$@"
