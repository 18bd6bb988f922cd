#!/bin/sh
# Commits numbered rows to MariaDB through the floating IP, one per attempt, and logs each
# commit that returned: "N MILLISECONDS". Stops after DURATION seconds or at STOP_FILE.
# Usage: db_writer.sh HOST USER PASSWORD DATABASE LOG STOP_FILE DURATION
set -u
host=$1 user=$2 password=$3 db=$4 log=$5 stop=$6 duration=$7
export MYSQL_PWD="$password"
mariadb -h "$host" -u "$user" --connect-timeout=2 "$db" \
  -e "DROP TABLE IF EXISTS rows_written; CREATE TABLE rows_written (n INT PRIMARY KEY, at BIGINT)" || exit 1
: > "$log"
end=$(( $(date +%s) + duration ))
n=0
while [ "$(date +%s)" -lt "$end" ] && [ ! -e "$stop" ]; do
  n=$((n + 1))
  now=$(date +%s%3N)
  if mariadb -h "$host" -u "$user" --connect-timeout=1 "$db" \
       -e "INSERT INTO rows_written VALUES ($n, $now)" 2>/dev/null; then
    echo "$n $(date +%s%3N)" >> "$log"
  else
    echo "fail $n $(date +%s%3N)" >> "$log"
    sleep 0.05
  fi
done
